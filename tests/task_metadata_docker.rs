//! ECS's task metadata endpoint on real Docker through `berth dev`: a container reads its own
//! task's metadata and stats at `$ECS_CONTAINER_METADATA_URI_V4`, in awsvpc (from a container
//! that joined the task's namespace) and host mode, and a token it was not given answers 404.

mod common;

use common::shell::shell_image;
use common::task_env::{self, TaskEnv};
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// A shell script that prints, between markers, the body of each metadata path (busybox's nc:
/// its static wget cannot resolve in a bare image; stdin is held open while the answer comes, as
/// a real client's is), then the status line of a made-up token.
const READER: &str = r#"
u=${ECS_CONTAINER_METADATA_URI_V4#http://}; hp=${u%%/*}; base=/${u#*/}
get() { (printf 'GET %s HTTP/1.0\r\n\r\n' "$1"; sleep 2) | busybox nc -w 5 ${hp%:*} ${hp#*:}; }
sleep 2
for p in task task/stats self; do
  path=$base/$p; [ $p = self ] && path=$base
  echo "BEGIN $p"; get $path | busybox sed '1,/^\r$/d'; echo; echo "END $p"
done
echo "BOGUS $(get /v4/00000000000000000000000000000000/task | busybox head -n 1)"
echo "URI3 $ECS_CONTAINER_METADATA_URI"
sleep 600
"#;

fn section(logs: &str, name: &str) -> Value {
    let start = logs
        .find(&format!("BEGIN {name}\n"))
        .unwrap_or_else(|| panic!("no {name} in {logs}"));
    let body = &logs[start + 7 + name.len()..];
    let end = body.find(&format!("END {name}")).unwrap();
    serde_json::from_str(body[..end].trim()).unwrap_or_else(|e| panic!("{name}: {e}: {logs}"))
}

/// Runs the reader (beside `extra` containers) in a task of `network_mode`; the task's ARN and
/// the reader's output once it has read everything.
fn run_reader(network_mode: &str, extra: Vec<Value>) -> (TaskEnv, String, String) {
    let e = TaskEnv::start(
        &format!("meta-{network_mode}"),
        &["--heartbeat", "500ms", "--stop-timeout", "2s"],
    );
    let mut containers = extra;
    let essential = containers.is_empty();
    containers.push(
        json!({"name": "reader", "image": shell_image(), "memory": 16,
        "essential": essential, "command": ["/bin/busybox", "sh", "-c", READER]}),
    );
    let td = e.register(json!({"family": format!("meta-{network_mode}"),
        "networkMode": network_mode, "containerDefinitions": containers}));
    let arn = e.run_one(&td);
    let logs = wait_for(Duration::from_secs(30), "the reader's report", || {
        let l = e.logs(&arn, "reader");
        l.contains("URI3 ").then_some(l)
    });
    (e, arn, logs)
}

fn docker_id(e: &TaskEnv, arn: &str, name: &str) -> String {
    e.describe(arn)["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap()["runtimeId"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn an_awsvpc_container_reads_its_own_tasks_metadata_and_stats() {
    let (e, arn, logs) = run_reader(
        "awsvpc",
        vec![
            json!({"name": "app", "image": "berth-demo:latest", "memory": 64,
            "portMappings": [{"containerPort": 80}]}),
        ],
    );
    let task = section(&logs, "task");
    assert_eq!(task["TaskARN"], arn, "{task:#}");
    assert_eq!(task["Family"], "meta-awsvpc");
    assert_eq!(task["KnownStatus"], "RUNNING");
    let containers = task["Containers"].as_array().unwrap();
    assert_eq!(containers.len(), 2, "{task:#}");
    for name in ["app", "reader"] {
        let c = containers.iter().find(|c| c["Name"] == name).unwrap();
        assert_eq!(c["DockerId"], docker_id(&e, &arn, name), "{c:#}");
        assert!(
            c["ImageID"].as_str().unwrap().starts_with("sha256:"),
            "{c:#}"
        );
        assert!(c["Networks"][0]["IPv4Addresses"][0].is_string(), "{c:#}");
        assert_eq!(c["Networks"][0]["NetworkMode"], "awsvpc");
    }
    let stats = section(&logs, "task/stats");
    for name in ["app", "reader"] {
        let s = &stats[docker_id(&e, &arn, name)];
        assert!(s["memory_stats"].is_object(), "{name}: {stats:#}");
    }
    let me = section(&logs, "self");
    assert_eq!(me["Name"], "reader");
    assert_eq!(me["Limits"]["Memory"], 16);
    assert!(logs.contains(" 404 Not Found"), "{logs}");
    assert!(logs.contains("/v3/"), "{logs}");
}

#[test]
fn a_host_mode_container_reaches_the_endpoint_too() {
    let (e, arn, logs) = run_reader("host", vec![]);
    let task = section(&logs, "task");
    assert_eq!(task["TaskARN"], arn, "{task:#}");
    assert_eq!(
        task["Containers"][0]["DockerId"],
        docker_id(&e, &arn, "reader")
    );
}

#[test]
fn an_adopted_container_still_reads_its_metadata_after_the_agent_restarts() {
    let (mut e, arn, logs) = run_reader("bridge", vec![]);
    assert_eq!(section(&logs, "task")["TaskARN"], arn);
    e.dev.kill9();
    e.dev = ServerProcess::start_with(
        "dev",
        e.dir.path(),
        &["--heartbeat", "500ms", "--stop-timeout", "2s"],
    );
    // The adopted container's URI, as it was started with, answers again.
    let env = task_env::inspect_container(&arn, "reader")["Config"]["Env"].clone();
    let uri = env
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .find_map(|v| v.strip_prefix("ECS_CONTAINER_METADATA_URI_V4="))
        .unwrap()
        .to_string();
    let rest = uri.strip_prefix("http://").unwrap();
    let (addr, path) = rest.split_at(rest.find('/').unwrap());
    let body = wait_for(
        Duration::from_secs(20),
        "the metadata after a restart",
        || {
            let a = common::http::exchange(
                addr,
                "GET",
                &format!("{path}/task"),
                &[],
                b"",
                Duration::from_secs(3),
            )
            .ok()?;
            (a.status == 200).then(|| serde_json::from_str::<Value>(&a.body).unwrap())
        },
    );
    assert_eq!(body["TaskARN"], arn, "{body:#}");
    assert_eq!(
        body["Containers"][0]["DockerId"],
        docker_id(&e, &arn, "reader")
    );
}
