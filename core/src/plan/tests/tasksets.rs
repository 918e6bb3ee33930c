//! EXTERNAL services: each task set kept at ceil(desired x scale%), a deleted one drained and
//! dropped, and none of the service's own rollout logic in the way.

use super::*;

fn ts(id: &str, td: &str, status: &str, scale: f64) -> TaskSet {
    TaskSet {
        id: id.into(),
        status: status.into(),
        task_definition: td.into(),
        scale_percent: scale,
        ..Default::default()
    }
}

fn external(desired: i32, sets: Vec<TaskSet>) -> Service {
    let mut s = service(desired);
    s.deployment_controller = "EXTERNAL".into();
    s.deployments.clear();
    s.task_sets = sets;
    s
}

fn launched_by(p: &ServicePlan, id: &str) -> usize {
    p.launches.iter().filter(|l| l.deployment_id == id).count()
}

#[test]
fn computed_desired_count_rounds_up_as_ecs_does() {
    // (desired, scale %, computed)
    let cases = [
        (10, 100.0, 10),
        (10, 50.0, 5),
        (3, 50.0, 2),
        (3, 33.3333, 1),
        (1, 1.0, 1),
        (10, 0.0, 0),
        (0, 100.0, 0),
    ];
    for (desired, scale, want) in cases {
        let svc = external(desired, vec![]);
        let got =
            crate::plan::tasksets::computed_desired_count(&svc, &ts("a", TD1, "ACTIVE", scale));
        assert_eq!(got, want, "{desired} x {scale}%");
    }
    let svc = external(10, vec![]);
    assert_eq!(
        crate::plan::tasksets::computed_desired_count(&svc, &ts("a", TD1, "DRAINING", 100.0)),
        0
    );
}

#[test]
fn each_task_set_is_kept_at_its_share_with_its_definition() {
    let svc = external(
        4,
        vec![
            ts("blue", TD1, "PRIMARY", 100.0),
            ts("green", TD2, "ACTIVE", 50.0),
        ],
    );
    let p = plan(&view(svc, vec![]), NOW);
    assert_eq!(launched_by(&p, "blue"), 4);
    assert_eq!(launched_by(&p, "green"), 2);
    assert!(p
        .launches
        .iter()
        .all(|l| (l.deployment_id == "blue") == (l.task_definition_arn == TD1)));
    assert!(p.stops.is_empty());
}

#[test]
fn scaling_a_task_set_down_stops_its_newest_unprotected_tasks() {
    let svc = external(
        3,
        vec![
            ts("blue", TD1, "PRIMARY", 100.0),
            ts("green", TD2, "ACTIVE", 0.0),
        ],
    );
    let mut tasks: Vec<Task> = (0..3)
        .map(|i| task(&format!("b{i}"), "blue", "n1", 100))
        .collect();
    tasks.push(task("g0", "green", "n2", 100));
    tasks.push(Task {
        protected_until_ms: NOW + 1,
        ..task("g1", "green", "n2", 50)
    });
    let p = plan(&view(svc, tasks), NOW);
    assert_eq!(stopped(&p), vec!["g0"], "the protected one stays");
    assert!(p.launches.is_empty());
}

#[test]
fn a_deleted_task_set_drains_then_goes_and_strays_are_stopped() {
    let svc = external(
        2,
        vec![
            ts("blue", TD1, "DRAINING", 100.0),
            ts("green", TD2, "PRIMARY", 100.0),
        ],
    );
    let mut tasks: Vec<Task> = (0..2)
        .map(|i| task(&format!("b{i}"), "blue", "n1", 100))
        .collect();
    tasks.extend((0..2).map(|i| task(&format!("g{i}"), "green", "n2", 100)));
    tasks.push(task("stray", "ecs-svc/old", "n3", 100));
    let p = plan(&view(svc.clone(), tasks.clone()), NOW);
    let mut s = stopped(&p);
    s.sort();
    assert_eq!(s, vec!["b0", "b1", "stray"]);
    assert_eq!(p.service.task_sets.len(), 2, "kept while its tasks stop");
    for t in tasks.iter_mut().filter(|t| t.started_by != "green") {
        t.last_status = "STOPPED".into();
        t.desired_status = "STOPPED".into();
    }
    let p = plan(&view(svc, tasks), NOW);
    assert_eq!(p.service.task_sets.len(), 1, "gone once its tasks stopped");
    assert_eq!(p.service.task_sets[0].id, "green");
    assert!(p.launches.is_empty() && p.stops.is_empty());
}
