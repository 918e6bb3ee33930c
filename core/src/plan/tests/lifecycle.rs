//! A service's life around its tasks: deletion (drain, then INACTIVE), inactive services,
//! and replica tasks on nodes that drain.

use super::*;

fn deleted(tasks: Vec<Task>) -> ServiceView {
    let mut s = service(0);
    s.status = "DRAINING".into();
    view(s, tasks)
}

#[test]
fn a_deleted_service_stops_every_task() {
    let p = plan(
        &deleted(vec![task("a", "d1", "n1", 60), task("b", "d1", "n2", 60)]),
        NOW,
    );
    assert_eq!(p.stops.len(), 2);
    assert!(p.stops.iter().all(|s| s.reason == "Service deleted"));
    assert!(p.launches.is_empty());
    assert_eq!(
        p.service.status, "DRAINING",
        "INACTIVE only once they have stopped"
    );
}

#[test]
fn a_drained_service_becomes_inactive_and_forgets_its_tasks() {
    let mut a = task("a", "d1", "n1", 60);
    a.last_status = "STOPPED".into();
    let p = plan(&deleted(vec![a]), NOW);
    assert_eq!(p.service.status, "INACTIVE");
    assert!(p.service.deployments.iter().all(|d| d.status == "INACTIVE"));
    assert_eq!(p.forget, vec![arn::task("demo", "a")]);
}

#[test]
fn a_deleted_service_waits_for_stopping_tasks() {
    let mut a = task("a", "d1", "n1", 60);
    a.desired_status = "STOPPED".into();
    let p = plan(&deleted(vec![a]), NOW);
    assert_eq!(p.service.status, "DRAINING");
    assert!(p.forget.is_empty());
}

#[test]
fn an_inactive_service_is_left_alone() {
    let mut s = service(3);
    s.status = "INACTIVE".into();
    let v = view(s, vec![]);
    let p = plan(&v, NOW);
    assert!(p.is_noop(&v.service));
}

#[test]
fn a_draining_node_s_replica_is_replaced_before_it_stops() {
    let mut v = view(service(1), vec![task("a", "d1", "n1", 60)]);
    v.nodes[0].active = false;
    let p = plan(&v, NOW);
    assert_eq!(p.launches.len(), 1);
    assert_ne!(
        p.launches[0].node_id, "n1",
        "a draining node takes no new task"
    );
    assert!(
        p.stops.is_empty(),
        "min 100%: the task serves until its replacement is healthy"
    );
    // With the replacement healthy, the draining node's task goes.
    v.tasks.push(task("r", "d1", &p.launches[0].node_id, 60));
    let p = plan(&v, NOW);
    assert_eq!(stopped(&p), vec!["a"]);
    assert_eq!(p.stops[0].reason, "Node is draining");
}

#[test]
fn a_task_on_a_lost_node_is_replaced() {
    let mut gone = task("a", "d1", "n1", 60);
    gone.last_status = "STOPPED".into();
    gone.stop_code = "NodeLost".into();
    let mut v = view(service(1), vec![gone]);
    v.nodes[0].connected = false;
    let p = plan(&v, NOW);
    assert_eq!(p.launches.len(), 1);
    assert_ne!(p.launches[0].node_id, "n1");
    assert_eq!(
        p.service.deployments[0].failed_tasks, 0,
        "a lost node is not the task's failure"
    );
}

#[test]
fn launches_carry_the_load_balancer_flag_and_demand() {
    let mut s = service(1);
    s.load_balancers = vec![LoadBalancer {
        container_name: "web".into(),
        container_port: 80,
        listener_port: 8080,
        ..Default::default()
    }];
    let p = plan(&view(s, vec![]), NOW);
    assert!(p.launches[0].load_balanced);
    assert_eq!(p.launches[0].memory, 128);
}
