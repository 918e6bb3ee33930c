//! Every bounded field of a task definition, past its bound, names the field, the value and the
//! limit (`memory: 5000000 MiB is over the maximum of 4194304 MiB`).

use super::normalize;
use berth_proto::v1::TaskDefinition;
use serde_json::{json, Value};

/// The one error a definition with `task` fields and one container with `container` fields
/// gets (panics, naming them, when there is not exactly one).
fn error_of(task: Value, container: Value) -> String {
    let mut c = json!({"name": "web", "image": "berth-demo:latest"});
    c.as_object_mut()
        .unwrap()
        .extend(container.as_object().unwrap().clone());
    let mut td = json!({"family": "web", "containerDefinitions": [c]});
    td.as_object_mut()
        .unwrap()
        .extend(task.as_object().unwrap().clone());
    let mut td: TaskDefinition = serde_json::from_value(td).unwrap();
    let errs = normalize(&mut td).expect_err("out of bounds");
    assert_eq!(errs.len(), 1, "{errs:?}");
    errs[0].to_string()
}

fn task(v: Value) -> String {
    error_of(v, json!({}))
}

fn container(v: Value) -> String {
    error_of(json!({}), v)
}

#[test]
fn task_memory_names_the_value_and_the_maximum() {
    assert_eq!(
        task(json!({"memory": "5000000"})),
        "memory: 5000000 MiB is over the maximum of 4194304 MiB"
    );
    assert_eq!(
        task(json!({"memory": "5000GB"})),
        "memory: 5120000 MiB is over the maximum of 4194304 MiB"
    );
    assert_eq!(
        task(json!({"memory": "4"})),
        "memory: 4 MiB is under the minimum of 6 MiB"
    );
    assert!(task(json!({"memory": "lots"})).starts_with("memory: \"lots\" is not a memory size"));
}

#[test]
fn task_cpu_names_the_value_and_the_limits() {
    assert_eq!(
        task(json!({"cpu": "200000"})),
        "cpu: 200000 CPU units is over the maximum of 196608 CPU units (1024 units a core)"
    );
    assert_eq!(
        task(json!({"cpu": "0.1 vCPU"})),
        "cpu: 102 CPU units is under the minimum of 128 CPU units (1024 units a core)"
    );
}

#[test]
fn container_cpu_memory_and_reservation_name_their_limits() {
    assert_eq!(
        container(json!({"cpu": 200000})),
        "containerDefinitions[0].cpu: 200000 CPU units is over the maximum of 196608 CPU units (1024 units a core)"
    );
    assert_eq!(
        container(json!({"memory": 5000000})),
        "containerDefinitions[0].memory: 5000000 MiB is over the maximum of 4194304 MiB (unset or 0 for no hard limit)"
    );
    assert_eq!(
        container(json!({"memory": 3})),
        "containerDefinitions[0].memory: 3 MiB is under the minimum of 6 MiB (unset or 0 for no hard limit)"
    );
    assert_eq!(
        container(json!({"memoryReservation": 5000000})),
        "containerDefinitions[0].memoryReservation: 5000000 MiB is over the maximum of 4194304 MiB"
    );
    assert_eq!(
        container(json!({"memoryReservation": -1})),
        "containerDefinitions[0].memoryReservation: -1 MiB is under the minimum of 0 MiB"
    );
}

#[test]
fn ports_and_stop_timeout_name_their_limits() {
    assert_eq!(
        container(json!({"portMappings": [{"containerPort": 70000}]})),
        "containerDefinitions[0].portMappings[0].containerPort: 70000 is over the maximum of 65535"
    );
    assert_eq!(
        container(json!({"portMappings": [{"containerPort": 80, "hostPort": 70000}]})),
        "containerDefinitions[0].portMappings[0].hostPort: 70000 is over the maximum of 65535 (0 lets Docker pick a free port)"
    );
    assert_eq!(
        container(json!({"stopTimeout": 7200})),
        "containerDefinitions[0].stopTimeout: 7200 seconds is over the maximum of 3600 seconds"
    );
}

#[test]
fn health_check_timings_name_their_limits() {
    let hc = |field: &str, v: i32| {
        container(json!({"healthCheck": {"command": ["CMD", "true"], field: v}}))
    };
    assert_eq!(
        hc("interval", 1),
        "containerDefinitions[0].healthCheck.interval: 1 seconds is under the minimum of 5 seconds"
    );
    assert_eq!(
        hc("timeout", 61),
        "containerDefinitions[0].healthCheck.timeout: 61 seconds is over the maximum of 60 seconds"
    );
    assert_eq!(
        hc("retries", 11),
        "containerDefinitions[0].healthCheck.retries: 11 is over the maximum of 10"
    );
    assert_eq!(
        hc("startPeriod", 301),
        "containerDefinitions[0].healthCheck.startPeriod: 301 seconds is over the maximum of 300 seconds"
    );
}

#[test]
fn too_many_containers_names_the_count_and_the_maximum() {
    let containers: Vec<Value> = (0..11)
        .map(|i| json!({"name": format!("c{i}"), "image": "berth-demo:latest"}))
        .collect();
    let mut td: TaskDefinition =
        serde_json::from_value(json!({"family": "web", "containerDefinitions": containers}))
            .unwrap();
    let errs = normalize(&mut td).expect_err("11 containers");
    assert_eq!(
        errs[0].to_string(),
        "containerDefinitions: 11 containers is over the maximum of 10 (ECS's limit per task definition)"
    );
}
