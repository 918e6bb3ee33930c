//! A task protects itself through ECS's agent API (`$ECS_AGENT_URI/task-protection/v1/state`),
//! on real Docker with `berth server` and a TLS agent: the PUT made inside the task's container
//! shows in the real aws CLI's get-task-protection, a scale-in leaves the protected task
//! running, bad bodies get ECS's agent's error shape, and a PUT of false ends the protection.

mod common;

use common::aws::*;
use common::ecs_tasks::*;
use common::shell::shell_image;
use common::*;
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

/// Calls the endpoint from inside the container with its own `$ECS_AGENT_URI` (busybox's nc;
/// stdin stays open while the answer comes): `sh -c SCRIPT sh METHOD BODY`.
const CALL: &str = r#"
u=${ECS_AGENT_URI:?ECS_AGENT_URI is not set}; u=${u#http://}; hp=${u%%/*}; base=/${u#*/}
(printf '%s %s/task-protection/v1/state HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: %s\r\n\r\n%s' \
  "$1" "$base" "${#2}" "$2"; sleep 2) | busybox nc -w 5 ${hp%:*} ${hp#*:}
"#;

/// The status and JSON body the task got for `method` with `body`.
fn call(task: &str, method: &str, body: &str) -> (u16, Value) {
    let id = task.rsplit('/').next().unwrap();
    let out = Command::new("docker")
        .args([
            "exec",
            &format!("berth-{id}-app"),
            "/bin/busybox",
            "sh",
            "-c",
        ])
        .args([CALL, "sh", method, body])
        .output()
        .expect("docker exec");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no HTTP answer: {text} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let json = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let json = serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status, json)
}

#[test]
fn a_task_protects_itself_through_its_agent_and_survives_scale_in() {
    let c = common::cluster::cluster_with("selfprot", common::cluster::SERVER_FLAGS, 1);
    let k = creds(&c);
    let http = c.server.http.clone();
    let ecs = |args: &[&str]| aws_ok(&http, &k, args);
    let cl = c.name.as_str();
    let def = json!({"family": "selfprot", "containerDefinitions": [{
        "name": "app", "image": shell_image(), "essential": true, "memory": 16,
        "command": ["/bin/busybox", "sleep", "600"], "stopTimeout": 2}]});
    let file = c.dir.path().join("selfprot.json");
    std::fs::write(&file, def.to_string()).unwrap();
    let input = format!("file://{}", file.display());
    ecs(&["register-task-definition", "--cli-input-json", &input]);
    ecs(&[
        "create-service",
        "--cluster",
        cl,
        "--service-name",
        "worker",
        "--task-definition",
        "selfprot",
        "--desired-count",
        "2",
    ]);
    let tasks = wait_for(Duration::from_secs(60), "2 running tasks", || {
        let t = running(&ecs, cl, "worker");
        (t.len() == 2).then_some(t)
    });
    let arn = |t: &Value| t["taskArn"].as_str().unwrap().to_string();
    let (x, y) = (arn(&tasks[0]), arn(&tasks[1]));

    // Off to begin with; then x protects itself for 30 minutes.
    let (s, v) = call(&x, "GET", "");
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["protection"]["ProtectionEnabled"], false, "{v}");
    assert_eq!(v["protection"]["TaskArn"], x, "{v}");
    let (s, v) = call(
        &x,
        "PUT",
        r#"{"ProtectionEnabled":true,"ExpiresInMinutes":30}"#,
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["protection"]["ProtectionEnabled"], true, "{v}");
    assert!(v["protection"]["ExpirationDate"].is_string(), "{v}");
    let g = ecs(&["get-task-protection", "--cluster", cl, "--tasks", &x, &y]);
    let of = |t: &str| {
        g["protectedTasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["taskArn"] == t)
            .cloned()
            .unwrap_or_else(|| panic!("{t} in {g}"))
    };
    assert_eq!(of(&x)["protectionEnabled"], true, "{g}");
    let exp = of(&x)["expirationDate"].as_f64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (exp - now - 1800.0).abs() < 120.0,
        "30 minutes: {exp} vs {now}"
    );
    assert_eq!(of(&y)["protectionEnabled"], false, "{g}");

    // Bad bodies: ECS's agent's error shape, and the protection unchanged.
    let (s, v) = call(&x, "PUT", "{not json");
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["Code"], "InvalidParameterException", "{v}");
    let m = v["error"]["Message"].as_str().unwrap();
    assert!(m.contains("failed to decode request"), "{v}");
    let (s, v) = call(
        &x,
        "PUT",
        r#"{"ProtectionEnabled":true,"ExpiresInMinutes":2881}"#,
    );
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["Code"], "InvalidParameterException", "{v}");
    assert_eq!(v["error"]["Arn"], x, "{v}");
    let m = v["error"]["Message"].as_str().unwrap();
    assert!(m.contains("expiresInMinutes: must be 1-2880"), "{v}");
    let (s, v) = call(&x, "PUT", r#"{"ExpiresInMinutes":5}"#);
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["Message"]
            .as_str()
            .unwrap()
            .contains("ProtectionEnabled"),
        "{v}"
    );
    let (_, v) = call(&x, "GET", "");
    assert_eq!(v["protection"]["ProtectionEnabled"], true, "{v}");

    // Scale-in to 1: the unprotected y goes, x stays.
    ecs(&[
        "update-service",
        "--cluster",
        cl,
        "--service",
        "worker",
        "--desired-count",
        "1",
    ]);
    wait_for(
        Duration::from_secs(60),
        "the unprotected task to stop",
        || {
            let t = running(&ecs, cl, "worker");
            (!t.iter().any(|t| arn(t) == y)).then_some(())
        },
    );
    let left: Vec<String> = running(&ecs, cl, "worker").iter().map(arn).collect();
    assert_eq!(left, vec![x.clone()], "the protected task stays");

    // x ends its protection itself.
    let (s, v) = call(&x, "PUT", r#"{"ProtectionEnabled":false}"#);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["protection"]["ProtectionEnabled"], false, "{v}");
    let (_, v) = call(&x, "GET", "");
    assert_eq!(v["protection"]["ProtectionEnabled"], false, "{v}");
    assert!(v["protection"]["ExpirationDate"].is_null(), "{v}");
    let g = ecs(&["get-task-protection", "--cluster", cl, "--tasks", &x]);
    assert_eq!(g["protectedTasks"][0]["protectionEnabled"], false, "{g}");
}
