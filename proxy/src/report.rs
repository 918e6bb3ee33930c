//! Target health going back to the control plane: state changes queue on a channel and leave in one
//! `ReportTargetHealth` call at most every `report_interval`, the latest state per target winning.
//! Reports that fail to send are kept and sent again, merged with newer ones. Every report, and
//! one at least every `COUNTS_EVERY` even when no target changed, carries each service's request
//! counter, from which the control plane's auto scaling takes request rates.

use berth_proto::v1::endpoints_client::EndpointsClient;
use berth_proto::v1::{
    ConnectCount, RevisionCount, ServiceRequestCount, TargetHealth, TargetHealthReport,
};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Where targets post their state changes. Cheap to clone; sending never blocks.
#[derive(Clone, Debug)]
pub(crate) struct Reporter {
    tx: mpsc::UnboundedSender<TargetHealth>,
}

pub(crate) fn channel() -> (Reporter, mpsc::UnboundedReceiver<TargetHealth>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Reporter { tx }, rx)
}

impl Reporter {
    pub fn send(&self, service_arn: &str, task_arn: &str, port: u16, state: &str, reason: &str) {
        let _ = self.tx.send(TargetHealth {
            service_arn: service_arn.to_string(),
            task_arn: task_arn.to_string(),
            port: i32::from(port),
            state: state.to_string(),
            reason: reason.to_string(),
        });
    }
}

/// Replaces the queued report of the same target, or queues this one.
fn merge(pending: &mut Vec<TargetHealth>, report: TargetHealth) {
    match pending.iter_mut().find(|p| {
        p.service_arn == report.service_arn
            && p.task_arn == report.task_arn
            && p.port == report.port
    }) {
        Some(p) => *p = report,
        None => pending.push(report),
    }
}

/// How often request counters go out when no target health changes.
const COUNTS_EVERY: Duration = Duration::from_secs(1);

pub(crate) async fn run(
    mut rx: mpsc::UnboundedReceiver<TargetHealth>,
    mut client: EndpointsClient<crate::failover::Failover>,
    proxy_id: String,
    interval: Duration,
    request_totals: impl Fn() -> (
            Vec<ServiceRequestCount>,
            Vec<RevisionCount>,
            Vec<ConnectCount>,
        ) + Send,
    mut stop: watch::Receiver<bool>,
) {
    let mut pending: Vec<TargetHealth> = Vec::new();
    let mut failures = 0u32;
    let mut counts_tick = tokio::time::interval(COUNTS_EVERY);
    counts_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if pending.is_empty() {
            tokio::select! {
                report = rx.recv() => match report {
                    Some(r) => merge(&mut pending, r),
                    None => return,
                },
                _ = counts_tick.tick() => {}
                _ = crate::stopped(&mut stop) => return,
            }
        }
        // Let a burst (a whole table's worth of new targets, a failing service) gather into one call;
        // back off while the control plane does not take them.
        let wait = interval * 2u32.pow(failures.min(5));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = crate::stopped(&mut stop) => return,
        }
        while let Ok(r) = rx.try_recv() {
            merge(&mut pending, r);
        }
        let (service_requests, revisions, connect_calls) = request_totals();
        if pending.is_empty() && service_requests.is_empty() {
            continue;
        }
        let report = TargetHealthReport {
            proxy_id: proxy_id.clone(),
            targets: pending.clone(),
            service_requests,
            revisions,
            connect_calls,
        };
        let sent =
            tokio::time::timeout(Duration::from_secs(5), client.report_target_health(report)).await;
        match sent {
            Ok(Ok(_)) => {
                pending.clear();
                failures = 0;
            }
            Ok(Err(status)) => {
                failures += 1;
                tracing::debug!("cannot report target health: {}", status.message());
            }
            Err(_) => {
                failures += 1;
                tracing::debug!("cannot report target health: no answer within 5 s");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(task: &str, state: &str) -> TargetHealth {
        TargetHealth {
            service_arn: "s".into(),
            task_arn: task.into(),
            port: 80,
            state: state.into(),
            reason: String::new(),
        }
    }

    #[test]
    fn the_latest_state_per_target_wins() {
        let mut pending = Vec::new();
        merge(&mut pending, health("a", "INITIAL"));
        merge(&mut pending, health("b", "INITIAL"));
        merge(&mut pending, health("a", "HEALTHY"));
        let states: Vec<_> = pending
            .iter()
            .map(|p| (p.task_arn.as_str(), p.state.as_str()))
            .collect();
        assert_eq!(states, [("a", "HEALTHY"), ("b", "INITIAL")]);
    }
}
