//! Load-balanced services: the proxies' target health, and deregistration before a stop.

use super::*;

fn balanced(desired: i32) -> Service {
    let mut s = service(desired);
    s.load_balancers = vec![LoadBalancer {
        container_name: "web".into(),
        container_port: 80,
        listener_port: 8080,
        drain_timeout_seconds: Some(30),
        ..Default::default()
    }];
    s
}

fn target(state: &str, reason: &str, ever_healthy: bool) -> TargetView {
    TargetView {
        state: state.into(),
        reason: reason.into(),
        ever_healthy,
    }
}

fn watched(mut v: ServiceView, targets: &[(&str, TargetView)]) -> ServiceView {
    v.lb_watched = true;
    for (id, t) in targets {
        v.targets.insert(arn::task("demo", id), t.clone());
    }
    v
}

#[test]
fn an_unhealthy_target_is_stopped_with_the_elb_reason() {
    let v = watched(
        view(balanced(1), vec![task("a", "d1", "n1", 60)]),
        &[(
            "a",
            target(
                "UNHEALTHY",
                "Health checks failed with these codes: [500]",
                true,
            ),
        )],
    );
    // Min 100%: the replacement starts first; max 200% is then reached, so the bad one goes.
    let p = plan(&v, NOW);
    assert_eq!(p.launches.len(), 1);
    assert_eq!(stopped(&p), vec!["a"]);
    assert_eq!(
        p.stops[0].reason,
        "Task failed ELB health checks in (target-group web) due to (Health checks failed with these codes: [500])"
    );
    assert!(messages(&p).iter().any(|m| m
        == "(service web) (task a) (port 8080) is unhealthy in (target-group web) due to (Health checks failed with these codes: [500])."));
}

#[test]
fn a_target_that_never_served_gets_a_startup_allowance() {
    // Table: (started s ago, ever healthy) -> judged unhealthy (allowance 15 s).
    for (started, ever, bad) in [(10, false, false), (16, false, true), (10, true, true)] {
        let v = watched(
            view(balanced(1), vec![task("a", "d1", "n1", started)]),
            &[("a", target("UNHEALTHY", "timeout", ever))],
        );
        let p = plan(&v, NOW);
        assert_eq!(
            stopped(&p) == vec!["a"],
            bad,
            "started {started} s ago, ever healthy {ever}"
        );
    }
}

#[test]
fn when_proxies_watch_a_task_is_healthy_only_once_its_target_is() {
    let v = watched(
        view(balanced(1), vec![task("a", "d1", "n1", 60)]),
        &[("a", target("INITIAL", "", false))],
    );
    let p = plan(&v, NOW);
    assert_eq!(p.service.deployments[0].rollout_state, "IN_PROGRESS");
    let v = watched(v, &[("a", target("HEALTHY", "", true))]);
    let p = plan(&v, NOW);
    assert_eq!(p.service.deployments[0].rollout_state, "COMPLETED");
}

#[test]
fn with_no_proxy_watching_target_health_is_not_waited_for() {
    let v = view(balanced(1), vec![task("a", "d1", "n1", 60)]);
    let p = plan(&v, NOW);
    assert_eq!(p.service.deployments[0].rollout_state, "COMPLETED");
}

fn stopping(id: &str, since_s: i64) -> Task {
    Task {
        desired_status: "STOPPED".into(),
        stopping_at: ago(since_s),
        load_balanced: true,
        ..task(id, "d1", "n1", 600)
    }
}

#[test]
fn a_stopping_task_leaves_the_load_balancer_when_drained_or_timed_out() {
    // Table: (proxy watching, drained, stopping for s) -> deregistered, and why.
    let cases = [
        (false, false, 1, Some("no proxy routes to it")),
        (true, true, 1, Some("drained by every proxy")),
        (true, false, 1, None),
        (true, false, 30, Some("drain timeout reached")),
    ];
    for (watching, drained, since, want) in cases {
        let mut v = view(balanced(0), vec![stopping("s", since)]);
        v.lb_watched = watching;
        if drained {
            v.drained.insert(arn::task("demo", "s"));
        }
        let p = plan(&v, NOW);
        let got = p.deregister.first().map(|(_, why)| *why);
        assert_eq!(
            got, want,
            "watching {watching}, drained {drained}, {since} s"
        );
    }
}

#[test]
fn a_deregistered_task_is_not_deregistered_again() {
    let mut t = stopping("s", 60);
    t.deregistered_at = ago(1);
    let p = plan(&view(balanced(0), vec![t]), NOW);
    assert!(p.deregister.is_empty());
}
