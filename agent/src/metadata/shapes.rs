//! The JSON ECS's metadata endpoint answers with (v4 names; v3 is the same minus Networks'
//! extra detail), built from what the runner published and Docker's inspect of each container.

use super::TaskMeta;
use serde_json::{json, Map, Value};

/// One container, as `${ECS_CONTAINER_METADATA_URI_V4}` answers.
pub fn container(meta: &TaskMeta, name: &str, inspect: Option<&Value>) -> Value {
    let def = meta
        .definition
        .container_definitions
        .iter()
        .find(|c| c.name == name);
    let empty = Value::Null;
    let i = inspect.unwrap_or(&empty);
    let docker_id = meta
        .docker_ids
        .get(name)
        .cloned()
        .or_else(|| i["Id"].as_str().map(String::from))
        .unwrap_or_default();
    let network_mode = i["HostConfig"]["NetworkMode"].as_str().unwrap_or("");
    let networks: Vec<Value> = i["NetworkSettings"]["Networks"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(net, n)| {
                    let ip = n["IPAddress"].as_str().unwrap_or("");
                    json!({
                        "NetworkMode": if meta.definition.network_mode.is_empty() { net.as_str() } else { meta.definition.network_mode.as_str() },
                        "IPv4Addresses": if ip.is_empty() { vec![] } else { vec![ip] },
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let mut out = Map::new();
    out.insert("DockerId".into(), json!(docker_id));
    out.insert("Name".into(), json!(name));
    out.insert(
        "DockerName".into(),
        json!(i["Name"].as_str().unwrap_or("").trim_start_matches('/')),
    );
    out.insert(
        "Image".into(),
        json!(def.map(|d| d.image.as_str()).unwrap_or("")),
    );
    out.insert("ImageID".into(), i["Image"].clone());
    out.insert(
        "Labels".into(),
        i["Config"]["Labels"]
            .as_object()
            .cloned()
            .map_or(json!({}), Value::Object),
    );
    out.insert("DesiredStatus".into(), json!(meta.desired_status));
    out.insert(
        "KnownStatus".into(),
        json!(meta
            .container_status
            .get(name)
            .map_or("PENDING", String::as_str)),
    );
    out.insert(
        "Limits".into(),
        json!({
            "CPU": def.map_or(0, |d| d.cpu),
            "Memory": def.map_or(0, |d| d.memory),
        }),
    );
    out.insert("CreatedAt".into(), i["Created"].clone());
    out.insert("StartedAt".into(), i["State"]["StartedAt"].clone());
    out.insert("Type".into(), json!("NORMAL"));
    out.insert(
        "ContainerARN".into(),
        json!(format!("{}/{name}", meta.task_arn)),
    );
    if let Some(driver) = i["HostConfig"]["LogConfig"]["Type"].as_str() {
        out.insert("LogDriver".into(), json!(driver));
        out.insert(
            "LogOptions".into(),
            i["HostConfig"]["LogConfig"]["Config"].clone(),
        );
    }
    // A container that joined its task's namespace has none of its own: the task's is shown.
    if !network_mode.starts_with("container:") || !networks.is_empty() {
        out.insert("Networks".into(), json!(networks));
    }
    if let Some(n) = i["RestartCount"].as_i64().filter(|n| *n > 0) {
        out.insert("RestartCount".into(), json!(n));
    }
    Value::Object(out)
}

/// The task, as `${ECS_CONTAINER_METADATA_URI_V4}/task` answers.
pub fn task(meta: &TaskMeta, containers: Vec<Value>) -> Value {
    let d = &meta.definition;
    let mut limits = Map::new();
    if let Ok(cpu) = d.cpu.parse::<f64>() {
        limits.insert("CPU".into(), json!(cpu / 1024.0));
    }
    if let Ok(mem) = d.memory.parse::<i64>() {
        limits.insert("Memory".into(), json!(mem));
    }
    json!({
        "Cluster": meta.cluster,
        "TaskARN": meta.task_arn,
        "Family": d.family,
        "Revision": d.revision.to_string(),
        "DesiredStatus": meta.desired_status,
        "KnownStatus": meta.known_status,
        "Containers": containers,
        "Limits": limits,
        "PullStartedAt": meta.started_at,
        "LaunchType": "EC2",
    })
}
