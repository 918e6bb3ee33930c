//! Stacks against a real embedded store (no agents: tasks and draining are the Docker tests'):
//! the cluster a stack creates and owns, changes through UpdateService, drift, bad files.

use super::*;
use crate::store::LogStore;
use serde_json::json;
use std::sync::Arc;

fn state(dir: &tempfile::TempDir) -> State {
    State::new(Arc::new(LogStore::open(dir.path()).unwrap()))
}

fn file(cluster: &str, service: serde_json::Value) -> String {
    json!({
        "name": "site",
        "cluster": cluster,
        "taskDefinitions": [{"family": "web", "containerDefinitions": [{
            "name": "web", "image": "berth-demo:latest", "memory": 32,
            "portMappings": [{"containerPort": 80}]}]}],
        "services": [service]
    })
    .to_string()
}

fn apply_file(state: &State, text: &str) -> Result<StackReply> {
    apply(
        state,
        ApplyStackRequest {
            stack_name: "site".into(),
            stack_json: text.into(),
            dry_run: false,
        },
    )
}

fn svc(state: &State, cluster: &str) -> Service {
    services::find(state, cluster, "web").unwrap()
}

#[test]
fn a_stack_creates_its_missing_cluster_and_owns_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir);
    let text = file("shop", json!({"name": "web", "taskDefinition": "web"}));
    let reply = apply_file(&s, &text).unwrap();
    assert_eq!(
        (
            reply.changes[0].kind.as_str(),
            reply.changes[0].action.as_str()
        ),
        ("cluster", "created")
    );
    assert!(reply.stack.unwrap().owns_cluster);
    assert_eq!(
        crate::model::clusters::get_active(&s, "shop")
            .unwrap()
            .status,
        "ACTIVE"
    );
    assert_eq!(svc(&s, "shop").stack, "site");
    // Applied again: nothing changes, and the stack still owns the cluster.
    let again = apply_file(&s, &text).unwrap();
    assert!(again.changes.iter().all(|c| c.action == "unchanged"));
    assert!(again.stack.unwrap().owns_cluster);
}

#[test]
fn a_stack_on_an_existing_cluster_does_not_own_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir);
    crate::model::clusters::create(&s, "shop").unwrap();
    let text = file("shop", json!({"name": "web", "taskDefinition": "web"}));
    let reply = apply_file(&s, &text).unwrap();
    assert!(!reply.stack.unwrap().owns_cluster);
    assert!(reply.changes.iter().all(|c| c.kind != "cluster"));
}

#[test]
fn a_bad_cluster_name_is_named_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir);
    let text = file("no spaces", json!({"name": "web", "taskDefinition": "web"}));
    let Err(Error::Invalid(errs)) = apply_file(&s, &text) else {
        panic!("accepted a bad cluster name");
    };
    assert_eq!(errs[0].path, "cluster");
    assert!(
        crate::model::taskdef::describe(&s, "web").is_err(),
        "registered nothing"
    );
}

#[test]
fn placement_and_load_balancer_changes_go_through_update_service_with_a_new_deployment() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir);
    let spread = json!([{"type": "spread", "field": "instanceId"}]);
    let text = file(
        "shop",
        json!({"name": "web", "taskDefinition": "web", "placementStrategy": spread}),
    );
    apply_file(&s, &text).unwrap();
    let first = svc(&s, "shop").deployments[0].id.clone();

    let binpack = json!([{"type": "binpack", "field": "memory"}]);
    let text = file(
        "shop",
        json!({"name": "web", "taskDefinition": "web", "placementStrategy": binpack}),
    );
    let reply = apply_file(&s, &text).unwrap();
    let c = &reply.changes[1];
    assert_eq!(c.action, "updated");
    assert!(
        c.detail.starts_with("placementStrategy; new deployment"),
        "{}",
        c.detail
    );
    let now = svc(&s, "shop");
    assert_eq!(now.placement_strategy[0].r#type, "binpack");
    assert_ne!(now.deployments[0].id, first);
    assert_eq!(
        now.deployments[1].status, "ACTIVE",
        "the old one steps down"
    );

    let lb = json!({"port": 18080, "containerName": "web", "containerPort": 80});
    let text = file(
        "shop",
        json!({"name": "web", "taskDefinition": "web", "placementStrategy": binpack, "loadBalancer": lb}),
    );
    let second = svc(&s, "shop").deployments[0].id.clone();
    let reply = apply_file(&s, &text).unwrap();
    assert!(reply.changes[1]
        .detail
        .starts_with("loadBalancer; new deployment"));
    let now = svc(&s, "shop");
    assert_eq!(now.load_balancers[0].listener_port, 18080);
    assert_ne!(now.deployments[0].id, second);
}

#[test]
fn update_service_alone_changes_placement_without_a_deployment_as_ecs_does() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir);
    apply_file(
        &s,
        &file("shop", json!({"name": "web", "taskDefinition": "web"})),
    )
    .unwrap();
    let before = svc(&s, "shop").deployments.len();
    let after = services::update(
        &s,
        UpdateServiceRequest {
            cluster: "shop".into(),
            service: "web".into(),
            set_placement: true,
            placement_strategy: vec![PlacementStrategy {
                r#type: "binpack".into(),
                field: "memory".into(),
            }],
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(after.placement_strategy[0].r#type, "binpack");
    assert_eq!(after.deployments.len(), before);
    // A load balancer naming a port the container does not map is refused, naming the field.
    let Err(Error::Invalid(errs)) = services::update(
        &s,
        UpdateServiceRequest {
            cluster: "shop".into(),
            service: "web".into(),
            set_load_balancers: true,
            load_balancers: vec![LoadBalancer {
                listener_port: 18081,
                container_name: "web".into(),
                container_port: 8080,
                ..Default::default()
            }],
            ..Default::default()
        },
    ) else {
        panic!("accepted an unmapped container port");
    };
    assert_eq!(errs[0].path, "loadBalancers[0].containerPort");
    assert!(svc(&s, "shop").load_balancers.is_empty(), "changed nothing");
}

#[test]
fn the_scheduling_strategy_cannot_change_and_the_error_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir);
    apply_file(
        &s,
        &file("shop", json!({"name": "web", "taskDefinition": "web"})),
    )
    .unwrap();
    let text = file(
        "shop",
        json!({"name": "web", "taskDefinition": "web", "schedulingStrategy": "DAEMON"}),
    );
    let Err(Error::Invalid(errs)) = apply_file(&s, &text) else {
        panic!("changed the scheduling strategy");
    };
    assert_eq!(errs[0].path, "services[0].schedulingStrategy");
    assert!(errs[0].message.contains("rename the service"));
}

#[test]
fn describe_shows_drift_from_the_last_apply_and_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir);
    let text = file(
        "shop",
        json!({"name": "web", "taskDefinition": "web", "desiredCount": 2}),
    );
    apply_file(&s, &text).unwrap();
    let req = |json: &str| DescribeStackRequest {
        cluster: "shop".into(),
        stack_name: "site".into(),
        stack_json: json.into(),
    };
    assert!(describe(&s, req("")).unwrap().drift.is_empty());
    services::update(
        &s,
        UpdateServiceRequest {
            cluster: "shop".into(),
            service: "web".into(),
            desired_count: Some(3),
            ..Default::default()
        },
    )
    .unwrap();
    let d = describe(&s, req("")).unwrap();
    assert_eq!(d.drift_from, "last apply");
    let fields: Vec<(&str, &str, &str)> = d
        .drift
        .iter()
        .map(|d| (d.field.as_str(), d.declared.as_str(), d.live.as_str()))
        .collect();
    assert_eq!(fields, [("desiredCount", "2", "3")]);
    // A file with another image: the definition differs, and the service would get a revision.
    let other = text.replace("berth-demo:latest", "berth-demo:v2");
    let d = describe(&s, req(&other)).unwrap();
    let fields: Vec<&str> = d.drift.iter().map(|d| d.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "containerDefinitions[0].image",
            "taskDefinition",
            "desiredCount"
        ]
    );
    assert_eq!(d.drift[1].declared, "a new revision of web");
}

#[test]
fn a_stack_nested_past_the_json_depth_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir);
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let e = apply_file(&s, &deep).unwrap_err().to_string();
    assert!(e.contains("recursion limit exceeded"), "{e}");
    let long_expression = json!({"name": "web", "taskDefinition": "web", "desiredCount": 1,
        "placementConstraints": [{"type": "memberOf",
            "expression": vec!["zone == a"; 20_000].join(" and ")}]});
    let e = apply_file(&s, &file("site", long_expression))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("services[0].placementConstraints[0].expression: memberOf: 279995 characters is over the maximum of 2000 characters"),
        "{}",
        crate::state::error::cut(&e)
    );
    assert!(services::find(&s, "site", "web").is_err());
}
