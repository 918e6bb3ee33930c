//! Container health checks, the grace period and minimum healthy time.

use super::*;

fn checked(v: &mut ServiceView) {
    v.definitions
        .insert(TD1.into(), definition(TD1, "128", true));
}

fn unhealthy(id: &str, node: &str, started_s_ago: i64) -> Task {
    Task {
        health_status: "UNHEALTHY".into(),
        ..task(id, "d1", node, started_s_ago)
    }
}

#[test]
fn an_unhealthy_task_is_replaced_then_stopped() {
    let mut v = view(
        service(2),
        vec![task("a", "d1", "n1", 60), unhealthy("b", "n2", 60)],
    );
    checked(&mut v);
    v.tasks[0].health_status = "HEALTHY".into();
    let p = plan(&v, NOW);
    assert_eq!(p.launches.len(), 1, "a replacement starts");
    assert!(
        p.stops.is_empty(),
        "it keeps serving until the replacement is healthy"
    );
    // The replacement is up and healthy: now the unhealthy task goes.
    let mut r = task("r", "d1", &p.launches[0].node_id, 60);
    r.health_status = "HEALTHY".into();
    v.tasks.push(r);
    let p = plan(&v, NOW);
    assert_eq!(stopped(&p), vec!["b"]);
    assert_eq!(p.stops[0].reason, "Task failed container health checks");
    assert!(messages(&p)
        .iter()
        .any(|m| m.contains("(task b) failed container health checks.")));
}

#[test]
fn an_unhealthy_task_stays_while_it_is_the_only_capacity_and_room_remains() {
    // max 300%: a replacement fits beside it, and the old one waits for it to be healthy.
    let mut s = service(1);
    s.deployment_configuration = Some(DeploymentConfiguration {
        minimum_healthy_percent: Some(100),
        maximum_percent: Some(300),
        deployment_circuit_breaker: None,
        ..Default::default()
    });
    let mut v = view(s, vec![unhealthy("b", "n2", 60)]);
    checked(&mut v);
    let p = plan(&v, NOW);
    assert_eq!(p.launches.len(), 1);
    assert!(p.stops.is_empty());
}

#[test]
fn the_grace_period_shields_a_starting_task() {
    // Table: (grace s, started s ago) -> judged unhealthy and stopped.
    for (grace, started, stops) in [
        (0, 10, true),
        (60, 10, false),
        (60, 61, true),
        (30, 30, true),
    ] {
        let mut s = service(1);
        s.health_check_grace_period_seconds = grace;
        s.deployment_configuration = Some(DeploymentConfiguration {
            minimum_healthy_percent: Some(0),
            maximum_percent: Some(200),
            deployment_circuit_breaker: None,
            ..Default::default()
        });
        let mut v = view(s, vec![unhealthy("b", "n1", started)]);
        checked(&mut v);
        let p = plan(&v, NOW);
        assert_eq!(
            !p.stops.is_empty(),
            stops,
            "grace {grace}, started {started} s ago"
        );
    }
}

#[test]
fn with_checks_a_task_counts_as_healthy_only_once_they_pass() {
    let mut v = view(service(1), vec![task("a", "d1", "n1", 60)]);
    checked(&mut v);
    let p = plan(&v, NOW);
    assert_eq!(
        p.service.deployments[0].rollout_state, "IN_PROGRESS",
        "UNKNOWN is not healthy"
    );
    assert_eq!(p.service.deployments[0].healthy_count, 0);
    v.tasks[0].health_status = "HEALTHY".into();
    let p = plan(&v, NOW);
    assert_eq!(p.service.deployments[0].rollout_state, "COMPLETED");
    assert_eq!(p.service.deployments[0].healthy_count, 1);
}

#[test]
fn a_task_must_run_the_minimum_healthy_time() {
    // Table: running for s -> healthy (min healthy time 5 s).
    for (running, healthy) in [(1, false), (4, false), (5, true), (60, true)] {
        let v = view(service(1), vec![task("a", "d1", "n1", running)]);
        let p = plan(&v, NOW);
        assert_eq!(
            p.service.deployments[0].healthy_count == 1,
            healthy,
            "running {running} s"
        );
    }
}

#[test]
fn a_pending_task_is_neither_healthy_nor_unhealthy() {
    let p = plan(&view(service(1), vec![pending("p", "d1", "n1")]), NOW);
    assert!(p.stops.is_empty() && p.launches.is_empty());
    assert_eq!(p.service.pending_count, 1);
    assert_eq!(p.service.running_count, 0);
}
