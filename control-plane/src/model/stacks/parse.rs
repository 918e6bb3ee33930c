//! A stack file (JSON; the CLI turns YAML into JSON first) into task definitions and service
//! requests, with every problem named by its path in the file. Nothing here reads the store.

use crate::model::taskdef;
use crate::state::error::FieldError;
use berth_proto::v1::*;
use serde_json::{Map, Value};

/// One declared service: the create request it amounts to, and the family it runs.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    pub request: CreateServiceRequest,
    pub family: String,
}

/// What a stack file declares, decoded and normalised like a registration would be.
#[derive(Debug, Clone, Default)]
pub struct StackSpec {
    pub name: String,
    pub cluster: String,
    pub task_definitions: Vec<TaskDefinition>,
    pub services: Vec<ServiceSpec>,
    /// Fields Berth accepted but does not use, with their paths.
    pub ignored: Vec<String>,
    pub warnings: Vec<String>,
}

const STACK_FIELDS: &[&str] = &["name", "cluster", "taskDefinitions", "services"];
const SERVICE_FIELDS: &[&str] = &[
    "name",
    "taskDefinition",
    "desiredCount",
    "loadBalancer",
    "deploymentConfiguration",
    "placementStrategy",
    "placementConstraints",
    "schedulingStrategy",
    "healthCheckGracePeriodSeconds",
];
const LB_FIELDS: &[&str] = &[
    "port",
    "containerName",
    "containerPort",
    "healthCheckPath",
    "drainTimeoutSeconds",
];

fn unknown(errs: &mut Vec<FieldError>, m: &Map<String, Value>, allowed: &[&str], path: &str) {
    for k in m.keys().filter(|k| !allowed.contains(&k.as_str())) {
        errs.push(FieldError::new(
            format!("{path}{k}"),
            format!("is not a stack field; use one of {}", allowed.join(", ")),
        ));
    }
}

fn string(errs: &mut Vec<FieldError>, m: &Map<String, Value>, key: &str, path: &str) -> String {
    match m.get(key) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            errs.push(FieldError::new(format!("{path}{key}"), "must be a string"));
            String::new()
        }
    }
}

fn int(errs: &mut Vec<FieldError>, m: &Map<String, Value>, key: &str, path: &str) -> Option<i32> {
    match m.get(key) {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64().and_then(|n| i32::try_from(n).ok()) {
            Some(n) => Some(n),
            None => {
                errs.push(FieldError::new(
                    format!("{path}{key}"),
                    format!("{v} must be a whole number"),
                ));
                None
            }
        },
    }
}

/// A field holding one of Berth's messages, read through its serde (lowerCamelCase) mapping.
fn message<T: serde::de::DeserializeOwned + Default>(
    errs: &mut Vec<FieldError>,
    m: &Map<String, Value>,
    key: &str,
    path: &str,
) -> T {
    match m.get(key) {
        None | Some(Value::Null) => T::default(),
        Some(v) => serde_json::from_value(v.clone()).unwrap_or_else(|e| {
            errs.push(FieldError::new(format!("{path}{key}"), e.to_string()));
            T::default()
        }),
    }
}

/// Decodes the stack. `default_name` names it when the file has no `name`.
pub fn decode(text: &str, default_name: &str) -> Result<StackSpec, Vec<FieldError>> {
    let top = top_object(text)?;
    let mut errs = Vec::new();
    unknown(&mut errs, &top, STACK_FIELDS, "");
    let mut spec = StackSpec {
        name: stack_name(&mut errs, &top, default_name),
        cluster: cluster_name(&mut errs, &top),
        ..Default::default()
    };
    for (i, v) in list(&mut errs, &top, "taskDefinitions").iter().enumerate() {
        task_definition(&mut errs, &mut spec, i, v);
    }
    for (i, v) in list(&mut errs, &top, "services").iter().enumerate() {
        if let Some(s) = service(&mut errs, &spec.cluster, i, v) {
            spec.services.push(s);
        }
    }
    if errs.is_empty() {
        Ok(spec)
    } else {
        Err(errs)
    }
}

fn top_object(text: &str) -> Result<Map<String, Value>, Vec<FieldError>> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        vec![FieldError::new(
            "",
            format!(
                "the stack is not valid JSON: {e} (line {}, column {})",
                e.line(),
                e.column()
            ),
        )]
    })?;
    match value {
        Value::Object(top) => Ok(top),
        _ => Err(vec![FieldError::new(
            "",
            "a stack must be an object with cluster, taskDefinitions and services",
        )]),
    }
}

/// The file's `name`, else `default_name` (the file name).
fn stack_name(errs: &mut Vec<FieldError>, top: &Map<String, Value>, default_name: &str) -> String {
    let mut name = string(errs, top, "name", "");
    if name.is_empty() {
        name = default_name.to_string();
    }
    if !is_name(&name, 128) {
        errs.push(FieldError::new(
            "name",
            format!(
                "{} must be 1-128 letters, digits, hyphens or underscores (the file name is used when absent)",
                crate::state::error::quote(&name)
            ),
        ));
    }
    name
}

/// The file's `cluster`, else `default`. A cluster that does not exist yet is created by the
/// apply, so its name is checked here as a create would check it.
fn cluster_name(errs: &mut Vec<FieldError>, top: &Map<String, Value>) -> String {
    let cluster = string(errs, top, "cluster", "");
    if cluster.is_empty() {
        return crate::model::clusters::DEFAULT_CLUSTER.to_string();
    }
    if !is_name(berth_core::arn::cluster_name(&cluster), 255) {
        errs.push(FieldError::new(
            "cluster",
            format!(
                "{} must be 1-255 letters, digits, hyphens or underscores (or a cluster ARN)",
                crate::state::error::quote(&cluster)
            ),
        ));
    }
    cluster
}

fn is_name(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn list(errs: &mut Vec<FieldError>, top: &Map<String, Value>, key: &str) -> Vec<Value> {
    match top.get(key) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => {
            errs.push(FieldError::new(key, "must be a list"));
            Vec::new()
        }
    }
}

/// `taskDefinitions[i]`: decoded and normalised as `berth taskdef register` would.
fn task_definition(errs: &mut Vec<FieldError>, spec: &mut StackSpec, i: usize, v: &Value) {
    let path = format!("taskDefinitions[{i}]");
    let prefixed = |e: FieldError| {
        let sep = if e.path.is_empty() { "" } else { "." };
        FieldError::new(format!("{path}{sep}{}", e.path), e.message)
    };
    let decoded = match taskdef::decode(&v.to_string()) {
        Ok(d) => d,
        Err(e) => {
            errs.extend(e.into_iter().map(prefixed));
            return;
        }
    };
    let mut td = decoded.task_definition;
    match taskdef::normalize(&mut td) {
        Ok(w) => spec
            .warnings
            .extend(w.into_iter().map(|w| format!("{path}: {w}"))),
        Err(e) => errs.extend(e.into_iter().map(prefixed)),
    }
    spec.ignored
        .extend(decoded.ignored.into_iter().map(|f| format!("{path}.{f}")));
    if spec.task_definitions.iter().any(|t| t.family == td.family) {
        errs.push(FieldError::new(
            format!("{path}.family"),
            format!(
                "{} appears twice; a stack declares each family once",
                crate::state::error::quote(&td.family)
            ),
        ));
    }
    spec.task_definitions.push(td);
}

/// `services[i]`: the create request it amounts to and the family it runs.
fn service(errs: &mut Vec<FieldError>, cluster: &str, i: usize, v: &Value) -> Option<ServiceSpec> {
    let path = format!("services[{i}].");
    let Value::Object(m) = v else {
        errs.push(FieldError::new(
            format!("services[{i}]"),
            "must be an object",
        ));
        return None;
    };
    unknown(errs, m, SERVICE_FIELDS, &path);
    let request = CreateServiceRequest {
        cluster: cluster.to_string(),
        service_name: string(errs, m, "name", &path),
        desired_count: int(errs, m, "desiredCount", &path).unwrap_or(1),
        scheduling_strategy: string(errs, m, "schedulingStrategy", &path),
        health_check_grace_period_seconds: int(errs, m, "healthCheckGracePeriodSeconds", &path)
            .unwrap_or(0),
        deployment_configuration: m
            .get("deploymentConfiguration")
            .map(|_| message(errs, m, "deploymentConfiguration", &path)),
        placement_strategy: message(errs, m, "placementStrategy", &path),
        placement_constraints: message(errs, m, "placementConstraints", &path),
        load_balancers: load_balancer(errs, m, &path).into_iter().collect(),
        ..Default::default()
    };
    let family = string(errs, m, "taskDefinition", &path);
    if family.is_empty() {
        errs.push(FieldError::new(
            format!("{path}taskDefinition"),
            "is required: the family of one of this stack's taskDefinitions",
        ));
    }
    Some(ServiceSpec { request, family })
}

/// A service's `loadBalancer`: Berth's one listener rule in front of the service.
fn load_balancer(
    errs: &mut Vec<FieldError>,
    m: &Map<String, Value>,
    path: &str,
) -> Option<LoadBalancer> {
    let lb = match m.get("loadBalancer") {
        None | Some(Value::Null) => return None,
        Some(Value::Object(lb)) => lb,
        Some(_) => {
            errs.push(FieldError::new(
                format!("{path}loadBalancer"),
                "must be an object with port, containerName, containerPort, healthCheckPath",
            ));
            return None;
        }
    };
    let lp = format!("{path}loadBalancer.");
    unknown(errs, lb, LB_FIELDS, &lp);
    Some(LoadBalancer {
        listener_port: int(errs, lb, "port", &lp).unwrap_or(0),
        container_name: string(errs, lb, "containerName", &lp),
        container_port: int(errs, lb, "containerPort", &lp).unwrap_or(0),
        drain_timeout_seconds: int(errs, lb, "drainTimeoutSeconds", &lp),
        health_check: Some(TargetHealthCheck {
            path: string(errs, lb, "healthCheckPath", &lp),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// A service check's path (`loadBalancers[0].containerPort`) as the stack file spells it.
pub fn service_path(i: usize, path: &str) -> String {
    format!("services[{i}].{}", file_field(path))
}

/// A service field's path as the stack file spells it (`loadBalancer.port`, `name`).
pub fn file_field(path: &str) -> String {
    let path = path
        .replace("loadBalancers[0].listenerPort", "loadBalancer.port")
        .replace(
            "loadBalancers[0].healthCheck.path",
            "loadBalancer.healthCheckPath",
        )
        .replace("loadBalancers[0]", "loadBalancer");
    if path == "serviceName" {
        "name".into()
    } else {
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEB: &str = r#"{"family": "web", "containerDefinitions": [{"name": "web", "image": "berth-demo:latest", "memory": 64, "portMappings": [{"containerPort": 80}]}]}"#;

    #[test]
    fn every_bad_field_is_named_by_its_path() {
        let text = format!(
            r#"{{"cluster": "demo", "taskDefinitions": [{WEB}], "services": [
                {{"name": "web", "taskDefinition": "web", "desiredCount": 2}},
                {{"name": "api", "taskDefinition": "web", "desiredCount": "two", "colour": 1}}]}}"#
        );
        let errs = decode(&text, "s").unwrap_err();
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["services[1].colour", "services[1].desiredCount"]);
    }

    #[test]
    fn the_name_comes_from_the_file_name_unless_given() {
        let text = format!(r#"{{"taskDefinitions": [{WEB}]}}"#);
        let spec = decode(&text, "shop").unwrap();
        assert_eq!(
            (spec.name.as_str(), spec.cluster.as_str()),
            ("shop", "default")
        );
        let text = format!(r#"{{"name": "other", "taskDefinitions": [{WEB}]}}"#);
        assert_eq!(decode(&text, "shop").unwrap().name, "other");
    }

    #[test]
    fn service_check_paths_use_the_file_names() {
        assert_eq!(
            service_path(1, "loadBalancers[0].containerPort"),
            "services[1].loadBalancer.containerPort"
        );
        assert_eq!(service_path(0, "serviceName"), "services[0].name");
    }
}
