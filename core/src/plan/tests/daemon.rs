//! DAEMON services: one task per qualifying node, as nodes join, drain or are lost.

use super::*;

fn daemon() -> Service {
    let mut s = service(0);
    s.scheduling_strategy = "DAEMON".into();
    s.deployment_configuration = Some(DeploymentConfiguration {
        minimum_healthy_percent: Some(0),
        maximum_percent: Some(100),
        deployment_circuit_breaker: None,
        ..Default::default()
    });
    s
}

#[test]
fn a_daemon_runs_one_task_on_every_node() {
    let p = plan(&view(daemon(), vec![]), NOW);
    let mut nodes: Vec<&str> = p.launches.iter().map(|l| l.node_id.as_str()).collect();
    nodes.sort();
    assert_eq!(nodes, vec!["n1", "n2", "n3"]);
    assert_eq!(
        p.service.desired_count, 3,
        "a daemon's desired count is its nodes"
    );
}

#[test]
fn a_node_that_joins_gets_the_daemon() {
    let tasks = vec![task("a", "d1", "n1", 60), task("b", "d1", "n2", 60)];
    let p = plan(&view(daemon(), tasks), NOW);
    assert_eq!(p.launches.len(), 1);
    assert_eq!(p.launches[0].node_id, "n3");
}

#[test]
fn a_draining_node_loses_its_daemon_task() {
    let tasks = vec![
        task("a", "d1", "n1", 60),
        task("b", "d1", "n2", 60),
        task("c", "d1", "n3", 60),
    ];
    let mut v = view(daemon(), tasks);
    v.nodes[2].active = false;
    let p = plan(&v, NOW);
    assert_eq!(stopped(&p), vec!["c"]);
    assert_eq!(p.stops[0].reason, "Node is draining");
    assert!(p.launches.is_empty());
    assert_eq!(p.service.desired_count, 2);
}

#[test]
fn a_lost_node_is_not_covered() {
    let mut lost = task("c", "d1", "n3", 60);
    lost.last_status = "STOPPED".into();
    lost.stop_code = "NodeLost".into();
    let tasks = vec![task("a", "d1", "n1", 60), task("b", "d1", "n2", 60), lost];
    let mut v = view(daemon(), tasks);
    v.nodes[2].connected = false;
    let p = plan(&v, NOW);
    assert!(p.launches.is_empty(), "no task goes to a node that is gone");
    assert_eq!(p.service.desired_count, 2);
    assert_eq!(p.service.deployments[0].rollout_state, "COMPLETED");
}

#[test]
fn member_of_limits_a_daemon_to_matching_nodes() {
    let mut s = daemon();
    s.placement_constraints = vec![PlacementConstraint {
        r#type: "memberOf".into(),
        expression: "attribute:zone == a".into(),
    }];
    let mut v = view(s, vec![]);
    std::sync::Arc::make_mut(&mut v.nodes[0].attributes).insert("zone".into(), "a".into());
    std::sync::Arc::make_mut(&mut v.nodes[1].attributes).insert("zone".into(), "b".into());
    let p = plan(&v, NOW);
    assert_eq!(p.launches.len(), 1);
    assert_eq!(p.launches[0].node_id, "n1");
}

#[test]
fn a_full_node_waits_without_blocking_the_others() {
    let mut v = view(daemon(), vec![]);
    v.nodes[0].memory_free = 0;
    let p = plan(&v, NOW);
    let mut nodes: Vec<&str> = p.launches.iter().map(|l| l.node_id.as_str()).collect();
    nodes.sort();
    assert_eq!(nodes, vec!["n2", "n3"]);
    assert!(
        p.rejections.is_empty(),
        "a daemon does not report a node without room"
    );
}

#[test]
fn a_daemon_update_replaces_each_node_s_task() {
    let mut s = daemon();
    s.deployments = vec![
        deployment("d2", TD2, "PRIMARY", "IN_PROGRESS"),
        deployment("d1", TD1, "ACTIVE", "COMPLETED"),
    ];
    let tasks = vec![task("a", "d1", "n1", 60), task("b", "d1", "n2", 60)];
    let mut v = view(s, tasks);
    v.nodes.truncate(2);
    let p = plan(&v, NOW);
    // Min 0%: the old tasks go at once; the new ones start once a node is free of them.
    assert_eq!(p.stops.len(), 2);
    assert!(p.launches.is_empty());
}
