//! REPLICA services: filling up to desired, replacing lost tasks, scaling, placement failures.

use super::*;

#[test]
fn a_new_service_launches_its_desired_count() {
    let p = plan(&view(service(2), vec![]), NOW);
    assert_eq!(p.launches.len(), 2);
    assert!(p
        .launches
        .iter()
        .all(|l| l.deployment_id == "d1" && l.task_definition_arn == TD1));
    assert_eq!(p.events.first(), Some(&Event::TasksStarted));
    assert_eq!(p.service.pending_count, 2);
    assert_eq!(p.service.deployments[0].pending_count, 2);
}

#[test]
fn launches_spread_over_nodes() {
    let p = plan(&view(service(3), vec![]), NOW);
    let mut nodes: Vec<&str> = p.launches.iter().map(|l| l.node_id.as_str()).collect();
    nodes.sort();
    assert_eq!(nodes, vec!["n1", "n2", "n3"]);
}

#[test]
fn a_stopped_task_is_replaced_at_min_100_max_200() {
    let tasks = vec![task("a", "d1", "n1", 60), failed("b", "d1")];
    let p = plan(&view(service(2), tasks), NOW);
    assert_eq!(p.launches.len(), 1, "one replacement");
    assert!(p.stops.is_empty(), "the healthy task stays");
    assert_eq!(p.service.deployments[0].failed_tasks, 1);
}

#[test]
fn scaling_in_stops_pending_tasks_first_then_the_newest() {
    let mut newer = task("newer", "d1", "n2", 30);
    newer.created_at = ago(20);
    let tasks = vec![
        task("old", "d1", "n1", 300),
        newer,
        pending("pend", "d1", "n3"),
    ];
    let p = plan(&view(service(1), tasks), NOW);
    assert_eq!(stopped(&p), vec!["pend", "newer"]);
    assert!(p
        .stops
        .iter()
        .all(|s| s.reason == "Scaling activity initiated by the service (desired count lowered)"));
    assert!(p.launches.is_empty());
    assert!(messages(&p)[0].starts_with("(service web) has stopped 2 running tasks:"));
}

#[test]
fn a_steady_service_changes_nothing_but_says_it_once() {
    let tasks = vec![task("a", "d1", "n1", 60), task("b", "d1", "n2", 60)];
    let p = plan(&view(service(2), tasks.clone()), NOW);
    assert!(p.launches.is_empty() && p.stops.is_empty());
    assert_eq!(
        messages(&p),
        vec![
            "(service web) (deployment d1) deployment completed.".to_string(),
            "(service web) has reached a steady state.".to_string()
        ]
    );
    assert_eq!(p.service.deployments[0].rollout_state, "COMPLETED");
    // The next pass, remembering it said so, is silent and writes nothing.
    let mut v = view(p.service.clone(), tasks);
    v.memory = p.memory.clone();
    let again = plan(&v, NOW + 2_000);
    assert!(again.events.is_empty());
    assert!(again.is_noop(&v.service), "a steady service writes nothing");
}

#[test]
fn acting_again_leaves_the_steady_state() {
    let mut v = view(service(2), vec![task("a", "d1", "n1", 60)]);
    v.memory.steady = true;
    let p = plan(&v, NOW);
    assert_eq!(p.launches.len(), 1);
    assert!(!p.memory.steady);
}

#[test]
fn no_node_means_a_placement_failure_told_every_30_s() {
    let mut v = view(service(2), vec![]);
    v.nodes.clear();
    let p = plan(&v, NOW);
    assert!(p.launches.is_empty());
    assert_eq!(p.service.placement_failures.len(), 1);
    assert_eq!(p.service.placement_failures[0].reason, "AGENT");
    assert!(messages(&p)[0].contains("was unable to place a task"));
    v.memory = p.memory.clone();
    let soon = plan(&v, NOW + 10_000);
    assert!(messages(&soon)
        .iter()
        .all(|m| !m.contains("unable to place")));
    let later = plan(&v, NOW + 31_000);
    assert!(messages(&later)
        .iter()
        .any(|m| m.contains("unable to place")));
}

#[test]
fn a_node_without_memory_is_named_in_the_failure() {
    let mut v = view(service(1), vec![]);
    for n in v.nodes.iter_mut() {
        n.memory_free = 64;
    }
    let p = plan(&v, NOW);
    assert_eq!(p.rejections[0].reason, "RESOURCE:MEMORY");
    assert!(messages(&p)[0].contains("has insufficient memory available"));
}

#[test]
fn placement_fills_only_what_fits() {
    // Each node holds two tasks of 128 MiB.
    let mut v = view(service(10), vec![]);
    for n in v.nodes.iter_mut() {
        n.memory_free = 256;
    }
    let p = plan(&v, NOW);
    assert_eq!(p.launches.len(), 6);
    assert_eq!(p.rejections.len(), 1);
}

#[test]
fn distinct_instance_places_one_task_per_node() {
    let mut svc = service(4);
    svc.placement_constraints = vec![PlacementConstraint {
        r#type: "distinctInstance".into(),
        expression: String::new(),
    }];
    let p = plan(&view(svc, vec![task("a", "d1", "n1", 60)]), NOW);
    let mut nodes: Vec<&str> = p.launches.iter().map(|l| l.node_id.as_str()).collect();
    nodes.sort();
    assert_eq!(nodes, vec!["n2", "n3"], "n1 already has one");
    assert_eq!(p.rejections[0].reason, "DISTINCT_INSTANCE");
}

#[test]
fn a_huge_desired_count_launches_at_most_a_bounded_batch() {
    let mut v = view(service(i32::MAX), vec![]);
    v.definitions
        .insert(TD1.into(), definition(TD1, "0", false));
    let p = plan(&v, NOW);
    assert!(p.launches.len() <= launch::MAX_LAUNCHES_PER_PASS);
    assert!(!p.launches.is_empty());
}

#[test]
fn a_partial_view_asks_for_every_node_before_placing() {
    let mut v = view(service(2), vec![task("a", "d1", "n1", 60)]);
    v.all_nodes = false;
    v.nodes.retain(|n| &*n.id == "n1");
    let p = plan(&v, NOW);
    assert!(p.needs_all_nodes);
    assert!(p.launches.is_empty() && p.stops.is_empty() && p.events.is_empty());
}

#[test]
fn a_partial_view_is_enough_when_nothing_is_placed() {
    let tasks = vec![task("a", "d1", "n1", 60), task("b", "d1", "n2", 60)];
    let mut v = view(service(2), tasks);
    v.all_nodes = false;
    v.nodes.retain(|n| &*n.id != "n3");
    let p = plan(&v, NOW);
    assert!(!p.needs_all_nodes);
    assert_eq!(p.service.deployments[0].rollout_state, "COMPLETED");
}

#[test]
fn counts_per_deployment_follow_the_tasks() {
    let tasks = vec![
        task("a", "d1", "n1", 60),
        task("b", "d2", "n2", 60),
        pending("c", "d2", "n3"),
    ];
    let p = plan(&view(rolling(2, 100, 200), tasks), NOW);
    let d2 = &p.service.deployments[0];
    assert_eq!((d2.id.as_str(), d2.running_count), ("d2", 1));
    assert_eq!(d2.pending_count, 1 + p.launches.len() as i32);
    assert_eq!(d2.desired_count, 2);
    let d1 = &p.service.deployments[1];
    assert_eq!(d1.desired_count, 0);
}

#[test]
fn the_same_view_gives_the_same_plan() {
    let v = view(service(3), vec![task("a", "d1", "n1", 60)]);
    let (a, b) = (plan(&v, NOW), plan(&v, NOW));
    assert_eq!(a.launches, b.launches);
    assert_eq!(a.stops, b.stops);
    assert_eq!(a.events, b.events);
}

#[test]
fn a_pass_fits_in_etcd_s_transaction_limit() {
    // etcd's 128 operations: three a launch, one a stop, a few for the service itself.
    let mut v = view(service(100), vec![]);
    v.op_budget = Some(128);
    for n in v.nodes.iter_mut() {
        n.memory_free = 1 << 30;
    }
    let p = plan(&v, NOW);
    assert_eq!(p.launches.len(), 40);
    let tasks: Vec<Task> = (0..200)
        .map(|i| task(&format!("t{i}"), "d1", "n1", 60))
        .collect();
    let mut v = view(service(0), tasks);
    v.op_budget = Some(128);
    let p = plan(&v, NOW);
    assert_eq!(
        p.stops.len(),
        120,
        "the rest are stopped by the next passes"
    );
}
