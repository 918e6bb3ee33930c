//! One target (a task's address and host port) of one service: its health state, draining flag,
//! requests in flight and counters. Every snapshot that lists the target shares the same `Target`,
//! so its state survives table changes; all of it is atomics, written by the health checker, the
//! router and requests without a lock.

use crate::counters::TargetMetrics;
use crate::report::Reporter;
use hyper::http::uri::Authority;
use std::net::Ipv6Addr;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

/// A target's health as the proxy sees it. Only `Healthy` targets get requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Health {
    /// New, not yet through `healthy_threshold` passing checks.
    Initial = 0,
    Healthy = 1,
    Unhealthy = 2,
}

impl Health {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Health::Healthy,
            2 => Health::Unhealthy,
            _ => Health::Initial,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Health::Initial => "INITIAL",
            Health::Healthy => "HEALTHY",
            Health::Unhealthy => "UNHEALTHY",
        }
    }
}

/// What identifies a target within its service across tables.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TargetKey {
    pub task_arn: String,
    pub address: String,
    pub port: u16,
}

pub(crate) struct Target {
    /// Unique for the life of the process: names the target's idle upstream connections.
    pub id: u64,
    pub key: TargetKey,
    pub service_arn: String,
    /// `address:port` (IPv6 in brackets): where requests and checks go, and the metrics label.
    pub authority: Authority,
    pub metrics: TargetMetrics,
    state: AtomicU8,
    draining: AtomicBool,
    in_flight: AtomicUsize,
    reporter: Reporter,
    /// Milliseconds after `epoch()` when the target last became healthy; 0 for one that was
    /// healthy from the start (handed over), which no slow start holds back.
    healthy_at: AtomicU64,
}

/// The process's clock origin for `healthy_at`.
fn epoch() -> std::time::Instant {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

fn since_epoch_ms() -> u64 {
    epoch().elapsed().as_millis() as u64 + 1
}

impl Target {
    /// A new target starts `initial` (INITIAL, or the health a previous proxy process saw) and
    /// says so, or DRAINED when it is already draining. `None` when its address and port do not
    /// make an authority.
    pub fn new(
        service_arn: &str,
        target: &berth_proto::v1::Target,
        reporter: Reporter,
        initial: Health,
    ) -> Option<Arc<Self>> {
        let port = u16::try_from(target.port).ok().filter(|p| *p > 0)?;
        let authority = match target.address.parse::<Ipv6Addr>() {
            Ok(ip) => format!("[{ip}]:{port}"),
            Err(_) => format!("{}:{port}", target.address),
        };
        let authority = Authority::try_from(authority).ok()?;
        static IDS: AtomicU64 = AtomicU64::new(0);
        let t = Arc::new(Self {
            id: IDS.fetch_add(1, SeqCst),
            key: TargetKey {
                task_arn: target.task_arn.clone(),
                address: target.address.clone(),
                port,
            },
            service_arn: service_arn.to_string(),
            authority,
            metrics: TargetMetrics::default(),
            state: AtomicU8::new(initial as u8),
            draining: AtomicBool::new(target.draining),
            in_flight: AtomicUsize::new(0),
            reporter,
            healthy_at: AtomicU64::new(0),
        });
        t.report_current();
        Some(t)
    }

    pub fn health(&self) -> Health {
        Health::from_u8(self.state.load(SeqCst))
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(SeqCst)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(SeqCst)
    }

    /// Healthy and not draining: may get a new request.
    pub fn is_available(&self) -> bool {
        self.health() == Health::Healthy && !self.is_draining()
    }

    /// Moves `from` → `to` unless someone else moved the target first; reports the change.
    pub fn transition(&self, from: Health, to: Health, reason: &str) -> bool {
        if from == to {
            return false;
        }
        let moved = self
            .state
            .compare_exchange(from as u8, to as u8, SeqCst, SeqCst)
            .is_ok();
        if moved && to == Health::Healthy {
            self.healthy_at.store(since_epoch_ms(), SeqCst);
        }
        if moved {
            tracing::info!(
                target = %self.authority,
                task = %self.key.task_arn,
                service = %self.service_arn,
                "target {} → {}{}{}",
                from.as_str(),
                to.as_str(),
                if reason.is_empty() { "" } else { ": " },
                reason
            );
            self.report(to.as_str(), reason);
        }
        moved
    }

    /// The share of its turns a target takes during a slow start of `window`: rising linearly
    /// from 0 to 1 over the window after it became healthy (1 outside any window).
    pub fn slow_start_share(&self, window: std::time::Duration) -> f64 {
        let at = self.healthy_at.load(SeqCst);
        if at == 0 || window.is_zero() {
            return 1.0;
        }
        let elapsed = since_epoch_ms().saturating_sub(at) as f64;
        (elapsed / window.as_millis() as f64).clamp(0.0, 1.0)
    }

    /// Passive ejection: a request could not connect, so stop sending here at once. The target
    /// comes back only through the active checks.
    pub fn eject(&self, reason: &str) {
        self.transition(Health::Healthy, Health::Unhealthy, reason);
    }

    /// Sets the draining flag from a new table. The store happens before the in-flight count is
    /// read, mirroring `acquire`, so a request either sees the flag or is counted here.
    pub fn set_draining(&self, draining: bool) {
        let was = self.draining.swap(draining, SeqCst);
        if draining && !was {
            tracing::info!(target = %self.authority, task = %self.key.task_arn, "target draining");
        }
        if draining && self.in_flight.load(SeqCst) == 0 {
            self.report("DRAINED", "");
        }
    }

    /// Sends the current state again: DRAINED for an idle draining target, else its health.
    pub fn report_current(&self) {
        if self.is_draining() {
            if self.in_flight() == 0 {
                self.report("DRAINED", "");
            }
        } else {
            self.report(self.health().as_str(), "");
        }
    }

    fn report(&self, state: &str, reason: &str) {
        self.reporter.send(
            &self.service_arn,
            &self.key.task_arn,
            self.key.port,
            state,
            reason,
        );
    }

    /// Counts one request in flight, unless the target started draining meanwhile.
    pub fn acquire(self: &Arc<Self>) -> Option<TargetGuard> {
        self.in_flight.fetch_add(1, SeqCst);
        let guard = TargetGuard(self.clone());
        if self.draining.load(SeqCst) {
            // Dropping the guard reports DRAINED if this was the last one.
            return None;
        }
        Some(guard)
    }
}

/// One request (or upgraded connection) in flight to a target; dropping it ends the request.
pub(crate) struct TargetGuard(Arc<Target>);

impl TargetGuard {
    pub fn target(&self) -> &Arc<Target> {
        &self.0
    }
}

impl Deref for TargetGuard {
    type Target = Target;
    fn deref(&self) -> &Target {
        &self.0
    }
}

impl Drop for TargetGuard {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, SeqCst) == 1 && self.0.draining.load(SeqCst) {
            self.0.report("DRAINED", "");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(
        draining: bool,
    ) -> (
        Arc<Target>,
        tokio::sync::mpsc::UnboundedReceiver<berth_proto::v1::TargetHealth>,
    ) {
        let (reporter, rx) = crate::report::channel();
        let t = Target::new(
            "svc",
            &berth_proto::v1::Target {
                task_arn: "task".into(),
                address: "127.0.0.1".into(),
                port: 8080,
                draining,
            },
            reporter,
            Health::Initial,
        )
        .unwrap();
        (t, rx)
    }

    #[test]
    fn a_new_target_reports_initial_and_gets_no_traffic() {
        let (t, mut rx) = target(false);
        assert_eq!(rx.try_recv().unwrap().state, "INITIAL");
        assert!(!t.is_available());
        assert!(t.transition(Health::Initial, Health::Healthy, ""));
        assert!(t.is_available());
        assert_eq!(rx.try_recv().unwrap().state, "HEALTHY");
    }

    #[test]
    fn drained_is_reported_when_the_last_request_ends() {
        let (t, mut rx) = target(false);
        let _ = rx.try_recv();
        t.transition(Health::Initial, Health::Healthy, "");
        let _ = rx.try_recv();
        let guard = t.acquire().unwrap();
        t.set_draining(true);
        assert!(rx.try_recv().is_err(), "a request is still in flight");
        assert!(
            t.acquire().is_none(),
            "draining targets take no new requests"
        );
        assert!(rx.try_recv().is_err());
        drop(guard);
        assert_eq!(rx.try_recv().unwrap().state, "DRAINED");
    }

    #[test]
    fn ipv6_addresses_get_brackets() {
        let (reporter, _rx) = crate::report::channel();
        let t = Target::new(
            "svc",
            &berth_proto::v1::Target {
                task_arn: "task".into(),
                address: "::1".into(),
                port: 80,
                draining: false,
            },
            reporter,
            Health::Initial,
        )
        .unwrap();
        assert_eq!(t.authority.as_str(), "[::1]:80");
    }
}
