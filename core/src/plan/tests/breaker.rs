//! ECS's deployment circuit breaker, its threshold clamp, rollback, and the launch backoff.

use super::*;

fn with_breaker(mut s: Service, rollback: bool, threshold: i32) -> Service {
    if let Some(dc) = s.deployment_configuration.as_mut() {
        dc.deployment_circuit_breaker = Some(DeploymentCircuitBreaker {
            enable: true,
            rollback,
            threshold,
        });
    }
    s
}

fn failures(dep: &str, n: usize) -> Vec<Task> {
    (0..n).map(|i| failed(&format!("f{dep}{i}"), dep)).collect()
}

#[test]
fn the_threshold_is_half_desired_clamped_to_10_200() {
    // Table: (desired, failures) -> tripped.
    let cases = [
        (2, 9, false),
        (2, 10, true),
        (30, 14, false),
        (30, 15, true),
        (1000, 199, false),
        (1000, 200, true),
    ];
    for (desired, n, tripped) in cases {
        let mut v = view(
            with_breaker(rolling(desired, 100, 200), false, 0),
            failures("d2", n),
        );
        v.memory.failures_seen = ("d2".into(), n as i32);
        let p = plan(&v, NOW);
        assert_eq!(
            p.service.deployments[0].rollout_state == "FAILED",
            tripped,
            "desired {desired}, {n} failures"
        );
    }
}

#[test]
fn a_set_threshold_overrides_the_formula() {
    let v = view(
        with_breaker(rolling(2, 100, 200), false, 3),
        failures("d2", 3),
    );
    let p = plan(&v, NOW);
    assert_eq!(p.service.deployments[0].rollout_state, "FAILED");
    assert_eq!(
        p.service.deployments[0].rollout_state_reason,
        "ECS deployment circuit breaker: 3 tasks failed to start."
    );
    assert!(messages(&p)
        .iter()
        .any(|m| m == "(service web) (deployment d2) deployment failed: tasks failed to start."));
}

#[test]
fn a_failed_deployment_without_rollback_launches_nothing() {
    let v = view(
        with_breaker(rolling(2, 100, 200), false, 3),
        failures("d2", 3),
    );
    let p = plan(&v, NOW);
    assert!(p.launches.is_empty());
    assert_eq!(p.service.deployments.len(), 2, "no rollback deployment");
}

#[test]
fn rollback_returns_to_the_last_completed_deployment() {
    let mut tasks = failures("d2", 3);
    tasks.push(task("old", "d1", "n1", 600));
    let v = view(with_breaker(rolling(2, 100, 200), true, 3), tasks);
    let p = plan(&v, NOW);
    let back = &p.service.deployments[0];
    assert_eq!(back.id, "ecs-svc/rollback", "the id the view reserved");
    assert_eq!(back.task_definition, TD1);
    assert_eq!(back.status, "PRIMARY");
    assert_eq!(p.service.deployments[1].status, "ACTIVE");
    assert_eq!(p.service.deployments[1].rollout_state, "FAILED");
    assert_eq!(p.service.task_definition, TD1);
    assert!(p
        .launches
        .iter()
        .all(|l| l.task_definition_arn == TD1 && l.deployment_id == "ecs-svc/rollback"));
    assert!(messages(&p)
        .iter()
        .any(|m| m.contains("rolling back to deployment d1")));
}

#[test]
fn a_disabled_breaker_never_trips() {
    let v = view(rolling(2, 100, 200), failures("d2", 50));
    let p = plan(&v, NOW);
    assert_eq!(p.service.deployments[0].rollout_state, "IN_PROGRESS");
}

#[test]
fn three_failures_in_a_row_back_off_launches() {
    let mut v = view(service(1), vec![]);
    v.memory.failures_seen = ("d1".into(), 0);
    v.tasks = failures("d1", 3);
    let p = plan(&v, NOW);
    assert_eq!(p.memory.next_launch_ms, NOW + 1_000);
    assert!(p.launches.is_empty(), "launches wait for the backoff");
    assert!(messages(&p)
        .iter()
        .any(|m| m == "(service web) is unable to consistently start tasks successfully."));
    // Once the delay has passed, it tries again.
    let mut later = v.clone();
    later.memory = p.memory.clone();
    assert_eq!(plan(&later, NOW + 1_500).launches.len(), 1);
}

#[test]
fn the_backoff_doubles_up_to_30_s() {
    // Table: consecutive failures -> delay.
    for (n, delay) in [
        (3, 1_000),
        (4, 2_000),
        (5, 4_000),
        (8, 30_000),
        (20, 30_000),
    ] {
        let mut v = view(service(1), failures("d1", n));
        v.memory.failures_seen = ("d1".into(), 0);
        let p = plan(&v, NOW);
        assert_eq!(p.memory.next_launch_ms - NOW, delay, "{n} failures");
    }
}

#[test]
fn a_new_deployment_resets_the_backoff() {
    let mut v = view(rolling(1, 100, 200), vec![]);
    v.memory = ServiceMemory {
        failures_seen: ("d1".into(), 5),
        consecutive_failures: 5,
        next_launch_ms: NOW + 30_000,
        ..Default::default()
    };
    let p = plan(&v, NOW);
    assert_eq!(p.memory.consecutive_failures, 0);
    assert_eq!(p.memory.failures_seen.0, "d2");
    assert_eq!(p.launches.len(), 1, "the new deployment launches at once");
}

#[test]
fn a_task_that_runs_long_enough_resets_the_count() {
    let mut v = view(service(2), vec![task("ok", "d1", "n1", 60)]);
    v.memory = ServiceMemory {
        failures_seen: ("d1".into(), 0),
        consecutive_failures: 2,
        ..Default::default()
    };
    v.tasks.push(failed("f", "d1"));
    let p = plan(&v, NOW);
    assert_eq!(
        p.memory.consecutive_failures, 1,
        "reset by the healthy task, then one more"
    );
    assert_eq!(p.launches.len(), 1);
}
