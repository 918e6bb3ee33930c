//! Traffic-shifting deployments, pass by pass: the new revision comes up beside the old one,
//! production traffic moves by the strategy's steps and bakes, the old tasks go only after the
//! bake, and the proxies' figures roll a bad revision back to tasks that never stopped.

use super::*;
use crate::plan::shift::{Strategy, BAKE_TIME, PRODUCTION_TRAFFIC_SHIFT};

/// A service moving from d1 to d2 by CANARY 10% baked 60 s, then a 120 s bake.
fn canary(desired: i32) -> Service {
    let mut s = rolling(desired, 100, 200);
    let dc = s.deployment_configuration.as_mut().unwrap();
    dc.strategy = "CANARY".into();
    dc.canary_configuration = Some(CanaryConfiguration {
        canary_percent: 10.0,
        canary_bake_time_seconds: Some(60),
        ..Default::default()
    });
    dc.bake_time_seconds = Some(120);
    dc.traffic_rollback = Some(TrafficRollback {
        error_percent: 1.0,
        ..Default::default()
    });
    s.deployments[1].traffic_percent = 100.0;
    s
}

fn old_tasks(n: usize) -> Vec<Task> {
    (0..n)
        .map(|i| task(&format!("old{i}"), "d1", &format!("n{}", i % 3 + 1), 600))
        .collect()
}

fn live_of<'a>(v: &'a ServiceView, dep: &str) -> Vec<&'a Task> {
    v.tasks
        .iter()
        .filter(|t| t.started_by == dep && t.last_status != "STOPPED")
        .collect()
}

/// Runs passes 2 s apart from `from` for `seconds`; returns the view and the clock.
fn run(v: &mut ServiceView, seq: &mut usize, from: i64, seconds: i64) -> i64 {
    let mut now = from;
    while now < from + seconds * 1000 {
        let p = plan(v, now);
        advance(v, &p, seq, now);
        now += 2_000;
    }
    now
}

#[test]
fn a_canary_starts_a_full_new_set_then_shifts_10_percent_then_all_then_bakes() {
    let mut v = view(canary(2), old_tasks(2));
    let mut seq = 0;
    let first = plan(&v, NOW);
    assert_eq!(
        first.launches.len(),
        2,
        "the new revision starts at full size"
    );
    assert!(first.stops.is_empty(), "the old revision keeps serving");
    assert_eq!(first.service.deployments[0].lifecycle_stage, "SCALE_UP");
    assert_eq!(first.service.deployments[0].traffic_percent, 0.0);
    assert_eq!(first.service.deployments[1].traffic_percent, 100.0);
    advance(&mut v, &first, &mut seq, NOW);

    // Healthy after the min healthy time: 10% of production traffic moves.
    let now = run(&mut v, &mut seq, NOW + 2_000, 8);
    let d = &v.service.deployments;
    assert_eq!(d[0].lifecycle_stage, PRODUCTION_TRAFFIC_SHIFT);
    assert_eq!((d[0].traffic_percent, d[1].traffic_percent), (10.0, 90.0));
    assert_eq!(
        live_of(&v, "d1").len(),
        2,
        "old tasks stay during the canary"
    );

    // After the canary's bake, all of it; the old tasks stay through the bake time.
    let now = run(&mut v, &mut seq, now, 62);
    let d = &v.service.deployments;
    assert_eq!(d[0].lifecycle_stage, BAKE_TIME);
    assert_eq!((d[0].traffic_percent, d[1].traffic_percent), (100.0, 0.0));
    assert_eq!(live_of(&v, "d1").len(), 2);
    let now = run(&mut v, &mut seq, now, 100);
    assert_eq!(live_of(&v, "d1").len(), 2, "still baking");

    // Bake over: the old tasks go and the deployment completes.
    run(&mut v, &mut seq, now, 30);
    assert!(live_of(&v, "d1").is_empty());
    assert_eq!(live_of(&v, "d2").len(), 2);
    assert_eq!(v.service.deployments.len(), 1);
    assert_eq!(v.service.deployments[0].rollout_state, "COMPLETED");
}

#[test]
fn a_linear_shift_moves_by_its_step_after_each_bake() {
    let mut s = canary(1);
    let dc = s.deployment_configuration.as_mut().unwrap();
    dc.strategy = "LINEAR".into();
    dc.linear_configuration = Some(LinearConfiguration {
        step_percent: 40.0,
        step_bake_time_seconds: Some(10),
        ..Default::default()
    });
    let mut v = view(s, old_tasks(1));
    let mut seq = 0;
    let mut seen = Vec::new();
    let mut now = NOW;
    for _ in 0..30 {
        let p = plan(&v, now);
        advance(&mut v, &p, &mut seq, now);
        let pct = v.service.deployments[0].traffic_percent;
        if seen.last() != Some(&pct) {
            seen.push(pct);
        }
        now += 2_000;
    }
    assert_eq!(seen, [0.0, 40.0, 80.0, 100.0]);
}

#[test]
fn errors_the_proxies_measure_roll_the_new_revision_back_to_the_old_tasks() {
    let mut v = view(canary(2), old_tasks(2));
    let mut seq = 0;
    let now = run(&mut v, &mut seq, NOW, 10);
    assert_eq!(v.service.deployments[0].traffic_percent, 10.0);
    let new_ids: Vec<String> = live_of(&v, "d2")
        .iter()
        .map(|t| t.task_arn.clone())
        .collect();
    v.revisions = [
        (
            "d2".to_string(),
            RevisionFigures {
                requests: 100,
                errors_5xx: 20,
                p99_ms: 3.0,
            },
        ),
        (
            "d1".to_string(),
            RevisionFigures {
                requests: 900,
                errors_5xx: 0,
                p99_ms: 3.0,
            },
        ),
    ]
    .into();
    let p = plan(&v, now);
    let d = &p.service.deployments;
    assert_eq!(d[0].id, "d1", "the old deployment is the primary again");
    assert_eq!((d[0].traffic_percent, d[1].traffic_percent), (100.0, 0.0));
    assert_eq!(d[1].rollout_state, "FAILED");
    assert!(
        d[1].rollout_state_reason.contains("20%"),
        "{}",
        d[1].rollout_state_reason
    );
    assert_eq!(p.service.task_definition, TD1);
    assert!(p.launches.is_empty(), "the old tasks never stopped");
    let mut stopped = p
        .stops
        .iter()
        .map(|s| s.task_arn.clone())
        .collect::<Vec<_>>();
    stopped.sort();
    let mut want = new_ids.clone();
    want.sort();
    assert_eq!(stopped, want, "the new revision's tasks go");
    let events = messages(&p);
    assert!(
        events
            .iter()
            .any(|e| e.contains("rolled back") && e.contains("5xx to 20% of 100 requests")),
        "{events:?}"
    );
}

#[test]
fn too_few_requests_or_errors_no_worse_than_the_old_revision_are_no_reason_to_roll_back() {
    let mut v = view(canary(2), old_tasks(2));
    let mut seq = 0;
    let now = run(&mut v, &mut seq, NOW, 10);
    let figures = |requests, errors_5xx| RevisionFigures {
        requests,
        errors_5xx,
        p99_ms: 1.0,
    };
    v.revisions = [
        ("d2".to_string(), figures(10, 5)),
        ("d1".to_string(), figures(900, 0)),
    ]
    .into();
    assert_eq!(plan(&v, now).service.deployments[0].id, "d2", "10 requests");
    v.revisions = [
        ("d2".to_string(), figures(100, 5)),
        ("d1".to_string(), figures(900, 90)),
    ]
    .into();
    assert_eq!(
        plan(&v, now).service.deployments[0].id,
        "d2",
        "old is worse"
    );
}

#[test]
fn a_first_deployment_has_nothing_to_shift_from_and_just_starts() {
    let mut s = canary(2);
    s.deployments.truncate(1);
    let p = plan(&view(s, Vec::new()), NOW);
    assert_eq!(p.launches.len(), 2);
    assert_eq!(p.service.deployments[0].lifecycle_stage, "");
    assert_eq!(
        Strategy::of(p.service.deployment_configuration.as_ref()).name(),
        "CANARY"
    );
}

fn with_hook(mut s: Service, stage: &str) -> Service {
    s.deployment_configuration
        .as_mut()
        .unwrap()
        .lifecycle_hooks
        .push(DeploymentLifecycleHook {
            hook_target_arn: "http://hooks.example/check".into(),
            lifecycle_stages: vec![stage.into()],
            ..Default::default()
        });
    s
}

/// Answers the primary deployment's pending hook runs as the hook runner would.
fn answer(v: &mut ServiceView, status: &str) {
    for r in &mut v.service.deployments[0].hooks {
        if r.status == "PENDING" {
            r.status = status.into();
            r.reason = "smoke test said so".into();
        }
    }
}

#[test]
fn a_post_scale_up_hook_holds_production_traffic_until_it_answers_succeeded() {
    let mut v = view(with_hook(canary(2), "POST_SCALE_UP"), old_tasks(2));
    let mut seq = 0;
    let now = run(&mut v, &mut seq, NOW, 20);
    let d = &v.service.deployments[0];
    assert_eq!(d.lifecycle_stage, "SCALE_UP", "held at the hook");
    assert_eq!(d.traffic_percent, 0.0);
    assert_eq!(d.hooks.len(), 1, "one call asked for: {:?}", d.hooks);
    assert_eq!(
        (d.hooks[0].stage.as_str(), d.hooks[0].status.as_str()),
        ("POST_SCALE_UP", "PENDING")
    );
    answer(&mut v, "SUCCEEDED");
    run(&mut v, &mut seq, now, 4);
    assert_eq!(v.service.deployments[0].traffic_percent, 10.0);
}

#[test]
fn a_hook_that_answers_failed_rolls_the_shift_back() {
    let mut v = view(
        with_hook(canary(2), "PRODUCTION_TRAFFIC_SHIFT"),
        old_tasks(2),
    );
    let mut seq = 0;
    let now = run(&mut v, &mut seq, NOW, 12);
    assert_eq!(v.service.deployments[0].traffic_percent, 10.0);
    answer(&mut v, "FAILED");
    let p = plan(&v, now);
    assert_eq!(
        p.service.deployments[0].id, "d1",
        "back on the old deployment"
    );
    let events = messages(&p);
    assert!(
        events.iter().any(|e| e.contains("rolled back")
            && e.contains("answered FAILED at PRODUCTION_TRAFFIC_SHIFT (smoke test said so)")),
        "{events:?}"
    );
}

#[test]
fn a_pre_scale_up_hook_holds_the_new_tasks() {
    let v = view(with_hook(canary(2), "PRE_SCALE_UP"), old_tasks(2));
    let p = plan(&v, NOW);
    assert!(p.launches.is_empty(), "no new task before the hook agrees");
    assert_eq!(p.service.deployments[0].hooks[0].status, "PENDING");
}

fn with_pause(mut s: Service, stage: &str, minutes: i32, action: &str) -> Service {
    s.deployment_configuration
        .as_mut()
        .unwrap()
        .lifecycle_hooks
        .push(DeploymentLifecycleHook {
            target_type: "PAUSE".into(),
            lifecycle_stages: vec![stage.into()],
            timeout_in_minutes: minutes,
            timeout_action: action.into(),
            ..Default::default()
        });
    s
}

/// ContinueServiceDeployment's answer to the awaiting pause, as the model writes it.
fn continue_pause(v: &mut ServiceView, status: &str) {
    for r in &mut v.service.deployments[0].hooks {
        if r.status == "AWAITING_ACTION" {
            r.status = status.into();
        }
    }
}

#[test]
fn a_pause_hook_holds_the_shift_until_continued_and_is_never_called() {
    let mut v = view(with_pause(canary(2), "POST_SCALE_UP", 0, ""), old_tasks(2));
    let mut seq = 0;
    let now = run(&mut v, &mut seq, NOW, 60);
    let d = &v.service.deployments[0];
    assert_eq!(
        (d.lifecycle_stage.as_str(), d.traffic_percent),
        ("SCALE_UP", 0.0)
    );
    assert_eq!(d.hooks.len(), 1, "{:?}", d.hooks);
    assert_eq!(
        (d.hooks[0].url.as_str(), d.hooks[0].status.as_str()),
        ("pause:0", "AWAITING_ACTION"),
        "no webhook to call: the runner only calls PENDING runs"
    );
    assert_eq!(
        crate::plan::pause::hook_id(&d.hooks[0]),
        "pause-0-POST_SCALE_UP-0"
    );
    continue_pause(&mut v, "SUCCEEDED");
    run(&mut v, &mut seq, now, 4);
    assert_eq!(v.service.deployments[0].traffic_percent, 10.0);
}

#[test]
fn a_pause_answered_rollback_or_timed_out_rolls_back_unless_its_timeout_continues() {
    // ROLLBACK through ContinueServiceDeployment.
    let mut v = view(with_pause(canary(2), "POST_SCALE_UP", 0, ""), old_tasks(2));
    let mut seq = 0;
    let now = run(&mut v, &mut seq, NOW, 20);
    continue_pause(&mut v, "FAILED");
    let p = plan(&v, now);
    assert_eq!(
        p.service.deployments[0].id, "d1",
        "back on the old deployment"
    );
    // A 1-minute timeout whose action is ROLLBACK (ECS's default).
    let mut v = view(with_pause(canary(2), "POST_SCALE_UP", 1, ""), old_tasks(2));
    let now = run(&mut v, &mut seq, NOW, 20);
    assert_eq!(
        plan(&v, now).service.deployments[0].id,
        "d2",
        "still waiting"
    );
    let p = plan(&v, now + 61_000);
    assert_eq!(p.service.deployments[0].id, "d1", "timed out: rolled back");
    assert!(
        messages(&p).iter().any(|e| e.contains("timed out")),
        "{:?}",
        messages(&p)
    );
    // A timeout whose action is CONTINUE lets the shift go on.
    let mut v = view(
        with_pause(canary(2), "POST_SCALE_UP", 1, "CONTINUE"),
        old_tasks(2),
    );
    let now = run(&mut v, &mut seq, NOW, 20);
    run(&mut v, &mut seq, now + 61_000, 4);
    assert_eq!(v.service.deployments[0].id, "d2");
    assert_eq!(v.service.deployments[0].traffic_percent, 10.0);
}

#[test]
fn a_new_revision_much_slower_than_the_old_one_is_rolled_back_by_its_p99() {
    let mut s = canary(2);
    s.deployment_configuration
        .as_mut()
        .unwrap()
        .traffic_rollback = Some(TrafficRollback {
        p99_ratio: 2.0,
        ..Default::default()
    });
    let mut v = view(s, old_tasks(2));
    let mut seq = 0;
    let now = run(&mut v, &mut seq, NOW, 10);
    let figures = |requests, p99_ms| RevisionFigures {
        requests,
        errors_5xx: 0,
        p99_ms,
    };
    // Slower but within 2x, or slow only below the floor the buckets can tell apart: no verdict.
    v.revisions = [
        ("d2".to_string(), figures(200, 40.0)),
        ("d1".to_string(), figures(2000, 25.0)),
    ]
    .into();
    assert_eq!(plan(&v, now).service.deployments[0].id, "d2");
    v.revisions = [
        ("d2".to_string(), figures(200, 2.5)),
        ("d1".to_string(), figures(2000, 0.5)),
    ]
    .into();
    assert_eq!(plan(&v, now).service.deployments[0].id, "d2");
    v.revisions = [
        ("d2".to_string(), figures(200, 100.0)),
        ("d1".to_string(), figures(2000, 25.0)),
    ]
    .into();
    let p = plan(&v, now);
    assert_eq!(p.service.deployments[0].id, "d1");
    assert!(
        messages(&p)
            .iter()
            .any(|e| e.contains("p99 latency of 100.0 ms")
                && e.contains("2× the previous revision's 25.0 ms")),
        "{:?}",
        messages(&p)
    );
}
