//! ECS's in-place container restarts (`restartPolicy`): a container that exits is started
//! again in place (same container, same id) unless its exit code is ignored or it ran for less
//! than `restartAttemptPeriod`, which is also the least time between two restarts. Restarts are
//! counted on the container in the task report.

use super::Runner;
use crate::runtime::{ContainerRuntime, ContainerStatus};
use berth_proto::v1::ContainerRestartPolicy;

/// ECS's default restartAttemptPeriod, in seconds.
const DEFAULT_ATTEMPT_PERIOD_S: i64 = 300;

/// Whether a container that has exited is restarted under `policy`.
fn should_restart(policy: &ContainerRestartPolicy, s: &ContainerStatus) -> bool {
    if policy.enabled != Some(true) || !s.exited {
        return false;
    }
    if s.exit_code
        .is_some_and(|c| policy.ignored_exit_codes.iter().any(|&i| i64::from(i) == c))
    {
        return false;
    }
    let period_ms = i64::from(policy.restart_attempt_period.unwrap_or(0)).max(0) * 1000;
    let period_ms = if policy.restart_attempt_period.is_none() {
        DEFAULT_ATTEMPT_PERIOD_S * 1000
    } else {
        period_ms
    };
    let ran_ms = match (
        berth_proto::time::parse_rfc3339(&s.started_at),
        berth_proto::time::parse_rfc3339(&s.finished_at),
    ) {
        (Some(a), Some(b)) => b - a,
        _ => 0,
    };
    ran_ms >= period_ms
}

impl<R: ContainerRuntime> Runner<R> {
    /// Starts again, in place, every exited container its restartPolicy restarts. True when one
    /// was restarted (its status is then stale until the next refresh).
    pub(super) async fn restart_exited(&mut self) -> bool {
        let mut restarted = false;
        for c in self.def.container_definitions.clone() {
            let Some(policy) = &c.restart_policy else {
                continue;
            };
            let Some(s) = self.status.get(&c.name) else {
                continue;
            };
            if !should_restart(policy, s) {
                continue;
            }
            let id = s.id.clone();
            match self.rt.start(&id).await {
                Ok(()) => {
                    *self.restarts.entry(c.name.clone()).or_insert(0) += 1;
                    self.ctx.metrics.container_started();
                    tracing::info!(task = %self.arn, container = %c.name, exit_code = ?s.exit_code, "restarted in place (restartPolicy)");
                    restarted = true;
                }
                Err(e) => {
                    tracing::warn!(task = %self.arn, container = %c.name, error = %e, "restart failed")
                }
            }
        }
        restarted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Health;

    fn exited(code: i64, ran_s: i64) -> ContainerStatus {
        ContainerStatus {
            id: "c".into(),
            running: false,
            created: false,
            exited: true,
            exit_code: Some(code),
            error: String::new(),
            oom_killed: false,
            health: Health::None,
            started_at: "2026-12-01T10:00:00.000000001Z".into(),
            ip: String::new(),
            finished_at: berth_proto::time::rfc3339(
                berth_proto::time::parse_rfc3339("2026-12-01T10:00:00Z").unwrap() + ran_s * 1000,
            ),
            bindings: vec![],
        }
    }

    #[test]
    fn exits_restart_unless_ignored_or_too_soon() {
        let p = ContainerRestartPolicy {
            enabled: Some(true),
            ignored_exit_codes: vec![0],
            restart_attempt_period: Some(60),
        };
        assert!(should_restart(&p, &exited(1, 61)));
        assert!(!should_restart(&p, &exited(0, 61)), "ignored exit code");
        assert!(!should_restart(&p, &exited(1, 59)), "ran under the period");
        let default = ContainerRestartPolicy {
            enabled: Some(true),
            ..Default::default()
        };
        assert!(!should_restart(&default, &exited(1, 299)));
        assert!(should_restart(&default, &exited(1, 300)));
        let off = ContainerRestartPolicy::default();
        assert!(!should_restart(&off, &exited(1, 1000)));
    }
}
