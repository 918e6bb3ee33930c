//! Helpers for the tests that drive ECS through the aws CLI against a `berth server` cluster
//! (`cluster::cluster`): an AWS key, a small task definition, a service's running tasks.

#![allow(dead_code)]

use super::aws::*;
use super::cluster::Cluster;
use super::Run;
use serde_json::{json, Value};

pub fn creds(c: &Cluster) -> Creds {
    let r = c.ok(&["token", "create", "--aws", "-o", "json"]);
    let k = r.json();
    Creds {
        key_id: k["accessKeyId"].as_str().unwrap().to_string(),
        secret: k["secretAccessKey"].as_str().unwrap().to_string(),
        region: "us-east-1".into(),
    }
}

pub fn register(c: &Cluster, ecs: &dyn Fn(&[&str]) -> Value, family: &str) {
    let def = json!({
        "family": family,
        "containerDefinitions": [{
            "name": "web", "image": "berth-demo:latest", "essential": true, "memory": 16,
            "portMappings": [{"containerPort": 80, "hostPort": 0}], "stopTimeout": 2
        }]
    });
    let file = c.dir.path().join(format!("{family}.json"));
    std::fs::write(&file, def.to_string()).unwrap();
    ecs(&[
        "register-task-definition",
        "--cli-input-json",
        &format!("file://{}", file.display()),
    ]);
}

/// The service's tasks that are RUNNING, as describe-tasks shows them.
pub fn running(ecs: &dyn Fn(&[&str]) -> Value, cluster: &str, service: &str) -> Vec<Value> {
    let arns: Vec<String> = ecs(&[
        "list-tasks",
        "--cluster",
        cluster,
        "--service-name",
        service,
    ])["taskArns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    if arns.is_empty() {
        return Vec::new();
    }
    let mut args = vec!["describe-tasks", "--cluster", cluster, "--tasks"];
    args.extend(arns.iter().map(String::as_str));
    ecs(&args)["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["lastStatus"] == "RUNNING" && t["desiredStatus"] == "RUNNING")
        .cloned()
        .collect()
}

pub fn error_of(r: &Run) -> String {
    assert!(!r.ok, "expected a failure: {}", r.stdout);
    r.stderr.clone()
}
