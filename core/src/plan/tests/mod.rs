//! Table tests of the planner, in the manner of Nomad's `reconcile_test.go`: each builds a view
//! in memory (no store, no Docker), plans, and checks what a user of ECS would expect.

mod breaker;
mod daemon;
mod health;
mod lb;
mod lifecycle;
mod pools;
mod powers;
mod replica;
mod rollout;
mod shift;
mod tasksets;
mod volumes;

use super::*;
use crate::arn;
use crate::scheduler::NodeSnapshot;
use crate::time;
use berth_proto::v1::*;

pub const NOW: i64 = 1_800_000_000_000;
pub const TD1: &str = "arn:berth:ecs:local:000000000000:task-definition/web:1";
pub const TD2: &str = "arn:berth:ecs:local:000000000000:task-definition/web:2";

/// An instant `s` seconds before NOW.
pub fn ago(s: i64) -> String {
    time::rfc3339(NOW - s * 1000)
}

pub fn node(id: &str) -> NodeSnapshot {
    NodeSnapshot {
        id: id.into(),
        name: id.into(),
        connected: true,
        active: true,
        cpu_free: 4096,
        memory_free: 8192,
        ports_used: Default::default(),
        tasks: 0,
        attributes: std::sync::Arc::new([("ecs.instance-id".to_string(), id.to_string())].into()),
        service_tasks: 0,
        allowed_host_paths: Default::default(),
    }
}

pub fn definition(arn: &str, memory: &str, checks: bool) -> TaskDefinition {
    TaskDefinition {
        task_definition_arn: arn.into(),
        family: "web".into(),
        memory: memory.into(),
        cpu: "0".into(),
        status: "ACTIVE".into(),
        container_definitions: vec![ContainerDefinition {
            name: "web".into(),
            image: "berth-demo:latest".into(),
            health_check: checks.then(HealthCheck::default),
            ..Default::default()
        }],
        ..Default::default()
    }
}

pub fn deployment(id: &str, td: &str, status: &str, rollout: &str) -> Deployment {
    Deployment {
        id: id.into(),
        status: status.into(),
        task_definition: td.into(),
        rollout_state: rollout.into(),
        created_at: ago(600),
        ..Default::default()
    }
}

/// A REPLICA service `web` at `desired`, its one deployment `d1` in progress on TD1.
pub fn service(desired: i32) -> Service {
    Service {
        service_arn: arn::service("demo", "web"),
        service_name: "web".into(),
        cluster_arn: arn::cluster("demo"),
        status: "ACTIVE".into(),
        desired_count: desired,
        task_definition: TD1.into(),
        scheduling_strategy: "REPLICA".into(),
        deployment_configuration: Some(DeploymentConfiguration {
            minimum_healthy_percent: Some(100),
            maximum_percent: Some(200),
            deployment_circuit_breaker: None,
            ..Default::default()
        }),
        deployments: vec![deployment("d1", TD1, "PRIMARY", "IN_PROGRESS")],
        ..Default::default()
    }
}

/// A task of deployment `dep` on `node`, RUNNING since `started_s_ago` (healthy by default).
pub fn task(id: &str, dep: &str, node: &str, started_s_ago: i64) -> Task {
    Task {
        task_arn: arn::task("demo", id),
        cluster_arn: arn::cluster("demo"),
        task_definition_arn: if dep == "d1" { TD1 } else { TD2 }.into(),
        container_instance_arn: arn::container_instance(node),
        last_status: "RUNNING".into(),
        desired_status: "RUNNING".into(),
        health_status: "UNKNOWN".into(),
        created_at: ago(started_s_ago + 1),
        started_at: ago(started_s_ago),
        group: "service:web".into(),
        started_by: dep.into(),
        ..Default::default()
    }
}

pub fn pending(id: &str, dep: &str, node: &str) -> Task {
    Task {
        last_status: "PENDING".into(),
        started_at: String::new(),
        created_at: ago(1),
        ..task(id, dep, node, 0)
    }
}

/// A task of `dep` that stopped because its essential container exited.
pub fn failed(id: &str, dep: &str) -> Task {
    Task {
        last_status: "STOPPED".into(),
        desired_status: "STOPPED".into(),
        stop_code: "EssentialContainerExited".into(),
        stopped_reason: "Essential container in task exited".into(),
        ..task(id, dep, "n1", 30)
    }
}

/// A view of `svc` with `tasks` on nodes n1..n3, every node seen.
pub fn view(svc: Service, tasks: Vec<Task>) -> ServiceView {
    ServiceView {
        service: svc,
        tasks,
        definitions: [
            (TD1.to_string(), definition(TD1, "128", false)),
            (TD2.to_string(), definition(TD2, "128", false)),
        ]
        .into(),
        nodes: vec![node("n1"), node("n2"), node("n3")],
        all_nodes: true,
        fresh_deployment_id: "ecs-svc/rollback".into(),
        memory: ServiceMemory {
            failures_seen: ("d1".into(), 0),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// A service rolling from d1 (COMPLETED, TD1) to d2 (IN_PROGRESS, TD2).
pub fn rolling(desired: i32, min: i32, max: i32) -> Service {
    let mut s = service(desired);
    s.task_definition = TD2.into();
    s.deployment_configuration = Some(DeploymentConfiguration {
        minimum_healthy_percent: Some(min),
        maximum_percent: Some(max),
        deployment_circuit_breaker: None,
        ..Default::default()
    });
    s.deployments = vec![
        deployment("d2", TD2, "PRIMARY", "IN_PROGRESS"),
        deployment("d1", TD1, "ACTIVE", "COMPLETED"),
    ];
    s
}

pub fn messages(p: &ServicePlan) -> Vec<String> {
    p.events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m.clone()),
            Event::TasksStarted => None,
        })
        .collect()
}

pub fn stopped(p: &ServicePlan) -> Vec<String> {
    p.stops
        .iter()
        .map(|s| arn::last_segment(&s.task_arn).to_string())
        .collect()
}

/// Carries a plan out as the applier and agents would at `now`: launches become tasks RUNNING
/// (healthy once they have run long enough), stops become STOPPED.
pub fn advance(v: &mut ServiceView, p: &ServicePlan, seq: &mut usize, now: i64) {
    for s in &p.stops {
        if let Some(t) = v.tasks.iter_mut().find(|t| t.task_arn == s.task_arn) {
            t.last_status = "STOPPED".into();
            t.desired_status = "STOPPED".into();
        }
    }
    for l in &p.launches {
        *seq += 1;
        let id = format!("new{seq}");
        let mut t = task(&id, &l.deployment_id, &l.node_id, 0);
        t.task_definition_arn = l.task_definition_arn.clone();
        t.started_at = time::rfc3339(now);
        t.created_at = time::rfc3339(now);
        v.tasks.push(t);
    }
    v.service = p.service.clone();
    v.memory = p.memory.clone();
}
