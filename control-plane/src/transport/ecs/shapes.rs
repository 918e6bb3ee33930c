//! Berth's model in the shapes the ECS API reference gives: timestamps as epoch seconds, task
//! CPU and memory as strings, container instances under their cluster, drained deployments left
//! out, and the tags and accepted fields kept in `ecs_extras` merged back in.

use crate::model::ecs_extras::Extras;
use berth_core::arn;
use berth_proto::v1::*;
use serde_json::{json, Map, Value};

/// An RFC 3339 timestamp as ECS sends it: seconds since the epoch, a JSON number.
pub fn epoch(ts: &str) -> Value {
    match crate::time::parse_rfc3339(ts) {
        Some(ms) => json!(ms as f64 / 1000.0),
        None => Value::Null,
    }
}

/// Drops nulls and empty strings, which ECS leaves out rather than sends.
pub fn prune(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null() && v.as_str() != Some(""))
                .map(|(k, v)| (k, prune(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(prune).collect()),
        other => other,
    }
}

/// A resource's tags; none is no `tags` at all (null, pruned), as ECS leaves it out.
fn tags(extras: &Extras) -> Value {
    if extras.tags.is_empty() {
        Value::Null
    } else {
        json!(extras.tags)
    }
}

/// Echoes the accepted fields ECS echoes, without overwriting what Berth set.
fn merge(into: &mut Map<String, Value>, fields: &Map<String, Value>, echoed: &[&str]) {
    for (k, v) in fields {
        if echoed.contains(&k.as_str()) && !into.contains_key(k) {
            into.insert(k.clone(), v.clone());
        }
    }
}

fn object(v: Value) -> Map<String, Value> {
    match prune(v) {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

pub fn cluster(c: &Cluster, extras: &Extras) -> Value {
    let settings = extras
        .fields
        .get("settings")
        .cloned()
        .unwrap_or_else(|| json!([{"name": "containerInsights", "value": "disabled"}]));
    let mut m = object(json!({
        "clusterArn": c.cluster_arn,
        "clusterName": c.cluster_name,
        "status": c.status,
        "registeredContainerInstancesCount": c.registered_container_instances_count,
        "runningTasksCount": c.running_tasks_count,
        "pendingTasksCount": c.pending_tasks_count,
        "activeServicesCount": c.active_services_count,
        "statistics": [],
        "tags": tags(extras),
        "settings": settings,
        "capacityProviders": c.capacity_providers,
        "defaultCapacityProviderStrategy": strategy(&c.default_capacity_provider_strategy),
    }));
    merge(
        &mut m,
        &extras.fields,
        &["configuration", "serviceConnectDefaults"],
    );
    Value::Object(m)
}

/// Top-level task definition fields ECS echoes back as registered.
pub const TASK_DEFINITION_ECHOED: &[&str] = &[
    "taskRoleArn",
    "executionRoleArn",
    "volumes",
    "placementConstraints",
    "requiresCompatibilities",
    "pidMode",
    "ipcMode",
    "proxyConfiguration",
    "inferenceAccelerators",
    "ephemeralStorage",
    "runtimePlatform",
    "enableFaultInjection",
];

/// Container fields beyond the basics, left out of a description when unset.
const EXTENDED: &[&str] = &[
    "links",
    "ulimits",
    "extraHosts",
    "dnsServers",
    "dnsSearchDomains",
    "hostname",
    "systemControls",
    "dockerSecurityOptions",
    "resourceRequirements",
    "logConfiguration",
    "linuxParameters",
    "restartPolicy",
    "readonlyRootFilesystem",
    "interactive",
    "pseudoTerminal",
    "privileged",
];

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

pub fn task_definition(td: &TaskDefinition, extras: &Extras) -> Value {
    let mut m = object(serde_json::to_value(td).unwrap_or_default());
    // Berth's own events on the revision are not part of ECS's shape.
    m.remove("events");
    if let Some(Value::String(rest)) = m.remove(crate::model::taskdef::unmodeled::FIELD) {
        if let Ok(Value::Object(rest)) = serde_json::from_str(&rest) {
            crate::model::taskdef::unmodeled::merge_object(&mut m, rest);
        }
    }
    for k in ["registeredAt", "deregisteredAt"] {
        if let Some(Value::String(s)) = m.get(k).cloned() {
            m.insert(k.into(), epoch(&s));
        }
    }
    if td.network_mode.is_empty() {
        m.insert("networkMode".into(), json!("bridge"));
    }
    m.retain(|k, v| !(matches!(k.as_str(), "pidMode" | "ipcMode") && is_empty(v)));
    // Unset limits are absent in ECS, not 0.
    if let Some(Value::Array(cs)) = m.get_mut("containerDefinitions") {
        for c in cs.iter_mut().filter_map(Value::as_object_mut) {
            for k in ["memory", "memoryReservation", "stopTimeout", "startTimeout"] {
                if c.get(k) == Some(&json!(0)) {
                    c.remove(k);
                }
            }
            // Extended fields a definition does not set are absent in ECS, not empty.
            c.retain(|k, v| !(EXTENDED.contains(&k.as_str()) && is_empty(v)));
        }
    }
    m.insert("compatibilities".into(), json!(compatibilities(td, extras)));
    m.insert("requiresAttributes".into(), json!([]));
    // What the request gave first, so an echoed field is not hidden by a default below.
    merge(&mut m, &extras.fields, TASK_DEFINITION_ECHOED);
    m.entry("volumes").or_insert(json!([]));
    m.entry("placementConstraints").or_insert(json!([]));
    Value::Object(m)
}

/// The launch types a definition fits, as ECS derives them: EC2 always; EXTERNAL (ECS Anywhere)
/// for every network mode but awsvpc; FARGATE for awsvpc with task-level cpu and memory and no
/// container feature Fargate lacks (privileged, links, host devices).
fn compatibilities(td: &TaskDefinition, extras: &Extras) -> Vec<&'static str> {
    let awsvpc = td.network_mode == "awsvpc";
    let mut out = Vec::new();
    if !awsvpc {
        out.push("EXTERNAL");
    }
    out.push("EC2");
    let constrained = extras
        .fields
        .get("placementConstraints")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    let fargate_lacks = td.container_definitions.iter().any(|c| {
        c.privileged == Some(true)
            || !c.links.is_empty()
            || c.linux_parameters
                .as_ref()
                .is_some_and(|l| !l.devices.is_empty())
    });
    if awsvpc && !td.cpu.is_empty() && !td.memory.is_empty() && !constrained && !fargate_lacks {
        out.push("FARGATE");
    }
    out
}

/// `container-instance/CLUSTER/ID`, as ECS names an instance within a cluster.
pub fn instance_arn(cluster_name: &str, stored_arn: &str) -> String {
    if stored_arn.is_empty() {
        return String::new();
    }
    format!(
        "{}:container-instance/{cluster_name}/{}",
        arn::prefix(),
        arn::last_segment(stored_arn)
    )
}

fn container(c: &Container) -> Value {
    let bindings: Vec<Value> = c
        .network_bindings
        .iter()
        .map(|b| {
            json!({
                "bindIP": b.bind_ip,
                "containerPort": b.container_port,
                "hostPort": b.host_port,
                "protocol": if b.protocol.is_empty() { "tcp" } else { &b.protocol },
            })
        })
        .collect();
    json!({
        "containerArn": c.container_arn,
        "taskArn": c.task_arn,
        "name": c.name,
        "image": c.image,
        "imageDigest": c.image_digest,
        "runtimeId": c.runtime_id,
        "lastStatus": c.last_status,
        "exitCode": c.exit_code,
        "reason": c.reason,
        "healthStatus": c.health_status,
        "networkBindings": bindings,
        "networkInterfaces": c.network_interfaces.iter().map(|n| json!({
            "attachmentId": n.attachment_id,
            "privateIpv4Address": n.private_ipv4_address,
        })).collect::<Vec<_>>(),
        "cpu": "0",
    })
}

pub fn task(t: &Task, extras: &Extras) -> Value {
    let cluster = crate::model::tasks::cluster_of_arn(&t.task_arn).unwrap_or_default();
    let overrides =
        extras.fields.get("overrides").cloned().unwrap_or_else(
            || json!({"containerOverrides": [], "inferenceAcceleratorOverrides": []}),
        );
    let mut m = object(json!({
        "taskArn": t.task_arn,
        "clusterArn": t.cluster_arn,
        "taskDefinitionArn": t.task_definition_arn,
        "containerInstanceArn": instance_arn(cluster, &t.container_instance_arn),
        "lastStatus": t.last_status,
        "desiredStatus": t.desired_status,
        "healthStatus": t.health_status,
        "stopCode": t.stop_code,
        "stoppedReason": t.stopped_reason,
        "createdAt": epoch(&t.created_at),
        "startedAt": epoch(&t.started_at),
        "stoppingAt": epoch(&t.stopping_at),
        "stoppedAt": epoch(&t.stopped_at),
        "group": t.group,
        "startedBy": t.started_by,
        "containers": t.containers.iter().map(container).collect::<Vec<_>>(),
        "cpu": t.cpu.to_string(),
        "memory": t.memory.to_string(),
        "version": t.version,
        "launchType": "EC2",
        "connectivity": "CONNECTED",
        "attributes": [],
        "attachments": attachments(t),
        "overrides": overrides,
        "tags": tags(extras),
        "enableExecuteCommand": false,
    }));
    if !t.capacity_provider_name.is_empty() {
        // ECS names the provider and leaves the launch type out.
        m.remove("launchType");
        m.insert(
            "capacityProviderName".into(),
            json!(t.capacity_provider_name),
        );
    }
    merge(&mut m, &extras.fields, &["platformVersion"]);
    Value::Object(m)
}

/// An awsvpc task's address as ECS shows its ENI attachment (the containers share it).
fn attachments(t: &Task) -> Value {
    let Some(n) = t
        .containers
        .iter()
        .find_map(|c| c.network_interfaces.first())
    else {
        return json!([]);
    };
    json!([{
        "id": n.attachment_id,
        "type": "ElasticNetworkInterface",
        "status": "ATTACHED",
        "details": [
            {"name": "networkInterfaceId", "value": format!("eni-{}", n.attachment_id.replace('-', "").get(..17).unwrap_or(""))},
            {"name": "privateIPv4Address", "value": n.private_ipv4_address},
        ],
    }])
}

fn deployment(d: &Deployment) -> Value {
    json!({
        "id": d.id,
        "status": d.status,
        "taskDefinition": d.task_definition,
        "desiredCount": d.desired_count,
        "pendingCount": d.pending_count,
        "runningCount": d.running_count,
        "failedTasks": d.failed_tasks,
        "createdAt": epoch(&d.created_at),
        "updatedAt": epoch(&d.updated_at),
        "launchType": "EC2",
        "rolloutState": d.rollout_state,
        "rolloutStateReason": d.rollout_state_reason,
        "lifecycleStage": d.lifecycle_stage,
    })
}

fn deployment_configuration(dc: &DeploymentConfiguration) -> Value {
    let cb = dc.deployment_circuit_breaker.unwrap_or_default();
    let mut v = json!({
        "deploymentCircuitBreaker": {"enable": cb.enable, "rollback": cb.rollback},
        "maximumPercent": dc.maximum_percent,
        "minimumHealthyPercent": dc.minimum_healthy_percent,
        "strategy": if dc.strategy.is_empty() { "ROLLING" } else { dc.strategy.as_str() },
        "bakeTimeInMinutes": dc.bake_time_in_minutes,
    });
    if let Some(c) = dc.canary_configuration {
        v["canaryConfiguration"] = json!({
            "canaryPercent": c.canary_percent,
            "canaryBakeTimeInMinutes": c.canary_bake_time_in_minutes,
        });
    }
    if !dc.lifecycle_hooks.is_empty() {
        v["lifecycleHooks"] = dc
            .lifecycle_hooks
            .iter()
            .map(|h| {
                let mut v = prune(json!({
                    "targetType": h.target_type,
                    "hookTargetArn": h.hook_target_arn,
                    "lifecycleStages": h.lifecycle_stages,
                }));
                if h.timeout_in_minutes > 0 || !h.timeout_action.is_empty() {
                    let (ms, continues) = berth_core::plan::pause::timeout(h);
                    v["timeoutConfiguration"] = json!({
                        "timeoutInMinutes": ms / 60_000,
                        "action": if continues { "CONTINUE" } else { "ROLLBACK" },
                    });
                }
                v
            })
            .collect();
    }
    if let Some(l) = dc.linear_configuration {
        v["linearConfiguration"] = json!({
            "stepPercent": l.step_percent,
            "stepBakeTimeInMinutes": l.step_bake_time_in_minutes,
        });
    }
    v
}

/// Service fields ECS echoes back as created.
pub const SERVICE_ECHOED: &[&str] = &[
    "loadBalancers",
    "serviceRegistries",
    "platformVersion",
    "networkConfiguration",
    "propagateTags",
    "enableECSManagedTags",
    "enableExecuteCommand",
    "availabilityZoneRebalancing",
];

pub fn service(s: &Service, extras: &Extras) -> Value {
    let deployments: Vec<Value> = s
        .deployments
        .iter()
        .filter(|d| d.status != "INACTIVE")
        .map(deployment)
        .collect();
    let events: Vec<Value> = s
        .events
        .iter()
        .map(|e| json!({"id": e.id, "createdAt": epoch(&e.created_at), "message": e.message}))
        .collect();
    let strategies: Vec<Value> = s
        .placement_strategy
        .iter()
        .map(|p| json!({"type": p.r#type, "field": p.field}))
        .collect();
    let constraints: Vec<Value> = s
        .placement_constraints
        .iter()
        .map(|p| json!({"type": p.r#type, "expression": p.expression}))
        .collect();
    let lbs: Vec<Value> = s
        .load_balancers
        .iter()
        .map(|l| {
            let mut v =
                json!({"containerName": l.container_name, "containerPort": l.container_port});
            if !l.target_group_arn.is_empty() {
                v["targetGroupArn"] = json!(l.target_group_arn);
            }
            v
        })
        .collect();
    let mut m = object(json!({
        "serviceArn": s.service_arn,
        "serviceName": s.service_name,
        "clusterArn": s.cluster_arn,
        "loadBalancers": lbs,
        "serviceRegistries": [],
        "status": s.status,
        "desiredCount": s.desired_count,
        "runningCount": s.running_count,
        "pendingCount": s.pending_count,
        "launchType": "EC2",
        "taskDefinition": s.task_definition,
        "deploymentConfiguration": deployment_configuration(
            &s.deployment_configuration.clone().unwrap_or_default()
        ),
        "deployments": deployments,
        "events": events,
        "createdAt": epoch(&s.created_at),
        "placementConstraints": constraints,
        "placementStrategy": strategies,
        "healthCheckGracePeriodSeconds": s.health_check_grace_period_seconds,
        "schedulingStrategy": s.scheduling_strategy,
        "deploymentController": {"type": "ECS"},
        "tags": tags(extras),
        "enableECSManagedTags": false,
        "propagateTags": "NONE",
        "enableExecuteCommand": false,
    }));
    if !s.capacity_provider_strategy.is_empty() {
        m.remove("launchType");
        m.insert(
            "capacityProviderStrategy".into(),
            strategy(&s.capacity_provider_strategy),
        );
    }
    if !s.deployments.is_empty() {
        let current = &s.deployments[0];
        m.insert(
            "currentServiceDeployment".into(),
            json!(service_deployment_arn(s, &current.id)),
        );
    }
    // ECS shows Service Connect on the deployment that runs it (botocore's Deployment), not the
    // service: the current configuration goes on the primary deployment.
    if let (Some(sc), Some(Value::Array(ds))) = (
        extras.fields.get("serviceConnectConfiguration"),
        m.get_mut("deployments"),
    ) {
        if let Some(Value::Object(primary)) = ds.first_mut() {
            primary.insert("serviceConnectConfiguration".into(), sc.clone());
        }
    }
    for (k, v) in &extras.fields {
        if SERVICE_ECHOED.contains(&k.as_str()) && (k != "loadBalancers" || lbs_empty(&m)) {
            m.insert(k.clone(), v.clone());
        }
    }
    // CreateService takes `role`; ECS shows it as `roleArn`.
    if let Some(role) = extras.fields.get("role").filter(|r| !is_empty(r)) {
        m.insert("roleArn".into(), role.clone());
    }
    Value::Object(m)
}

fn lbs_empty(m: &Map<String, Value>) -> bool {
    m.get("loadBalancers")
        .and_then(Value::as_array)
        .is_none_or(|a| a.is_empty())
}

/// `service-deployment/CLUSTER/SERVICE/ID`: a deployment as ECS's service deployment APIs name it.
pub fn service_deployment_arn(s: &Service, deployment_id: &str) -> String {
    let cluster = arn::cluster_name(&s.cluster_arn);
    let id = deployment_id
        .strip_prefix("ecs-svc/")
        .unwrap_or(deployment_id);
    format!(
        "{}:service-deployment/{cluster}/{}/{id}",
        arn::prefix(),
        s.service_name
    )
}

fn resource(r: &Resource) -> Value {
    if r.name == "PORTS" || !r.string_set_value.is_empty() {
        json!({"name": r.name, "type": "STRINGSET", "stringSetValue": r.string_set_value,
               "doubleValue": 0.0, "longValue": 0, "integerValue": 0})
    } else {
        json!({"name": r.name, "type": "INTEGER", "integerValue": r.integer_value,
               "doubleValue": 0.0, "longValue": 0})
    }
}

pub fn container_instance(n: &ContainerInstance, cluster_name: &str, extras: &Extras) -> Value {
    let attributes: Vec<Value> = n
        .attributes
        .iter()
        .map(|a| json!({"name": a.name, "value": a.value}))
        .collect();
    Value::Object(object(json!({
        "containerInstanceArn": instance_arn(cluster_name, &n.container_instance_arn),
        "ec2InstanceId": n.ec2_instance_id,
        "version": 1,
        "versionInfo": {"agentVersion": n.version},
        "remainingResources": n.remaining_resources.iter().map(resource).collect::<Vec<_>>(),
        "registeredResources": n.registered_resources.iter().map(resource).collect::<Vec<_>>(),
        "status": n.status,
        "agentConnected": n.agent_connected,
        "runningTasksCount": n.running_tasks_count,
        "pendingTasksCount": n.pending_tasks_count,
        "attributes": attributes,
        "registeredAt": epoch(&n.registered_at),
        "attachments": [],
        "tags": tags(extras),
    })))
}

/// A `failures` entry, as ECS reports a name it could not find.
pub fn failure(arn: &str, reason: &str, detail: &str) -> Value {
    prune(json!({"arn": arn, "reason": reason, "detail": detail}))
}

/// A capacity provider strategy as ECS writes it.
pub fn strategy(items: &[CapacityProviderStrategyItem]) -> Value {
    json!(items
        .iter()
        .map(|it| json!({"capacityProvider": it.capacity_provider, "weight": it.weight, "base": it.base}))
        .collect::<Vec<_>>())
}
