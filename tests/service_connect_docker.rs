//! Service Connect routing on real Docker through `berth dev` on a task network of the test's
//! own, set up with the aws CLI alone: `api` offers the alias `api:8080` (an http port of the
//! demo server), `web` is a client-only Service Connect service whose demo server calls
//! `http://api:8080/` for every page. web's answer carries api's answer, so the alias reached an
//! api task through the node's Service Connect proxy; both api tasks answer in turn; a stopped
//! api task is replaced and calls keep succeeding; `berth service describe` shows the alias and
//! web calling api.

mod common;

use common::aws::Creds;
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

/// `berth dev` on a Docker network of the test's own, for a fresh cluster name. Dropped in
/// field order: the server stops, the cluster's containers go, then the network.
struct Setup {
    dev: ServerProcess,
    _cleanup: ContainerCleanup,
    _net: Network,
    dir: tempfile::TempDir,
    cluster: String,
}

impl Setup {
    fn start(prefix: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cluster = unique_cluster(prefix);
        let net = Network(format!("berth-test-{cluster}"));
        let made = Command::new("docker")
            .args(["network", "create", "--label", "berth.test=service-connect"])
            .arg(&net.0)
            .output()
            .unwrap();
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
        let cleanup = ContainerCleanup {
            cluster: cluster.clone(),
        };
        let mut flags = FAST.to_vec();
        flags.extend_from_slice(&["--task-network", &net.0]);
        let dev = ServerProcess::start_with("dev", dir.path(), &flags);
        Setup {
            dev,
            _cleanup: cleanup,
            _net: net,
            dir,
            cluster,
        }
    }
}

/// A Docker network for one test, removed when dropped (after the containers on it).
struct Network(String);

impl Drop for Network {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["network", "rm", &self.0])
            .output();
    }
}

fn ecs(http: &str, args: &[&str]) -> Value {
    common::aws::aws_ok(http, &Creds::default(), args)
}

fn task_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap()
}

fn register(http: &str, dir: &std::path::Path, def: Value) {
    let file = dir.join(format!("{}.json", def["family"].as_str().unwrap()));
    std::fs::write(&file, def.to_string()).unwrap();
    ecs(
        http,
        &[
            "register-task-definition",
            "--cli-input-json",
            &format!("file://{}", file.display()),
        ],
    );
}

/// The running tasks of a service: (task id, own address).
fn running(http: &str, cluster: &str, service: &str) -> Vec<(String, String)> {
    let arns = ecs(
        http,
        &[
            "list-tasks",
            "--cluster",
            cluster,
            "--service-name",
            service,
            "--desired-status",
            "RUNNING",
        ],
    );
    let arns: Vec<&str> = arns["taskArns"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    if arns.is_empty() {
        return Vec::new();
    }
    let mut args = vec!["describe-tasks", "--cluster", cluster, "--tasks"];
    args.extend(arns);
    ecs(http, &args)["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["lastStatus"] == "RUNNING")
        .filter_map(|t| {
            let ip = t["containers"][0]["networkBindings"][0]["bindIP"].as_str()?;
            Some((task_id(t["taskArn"].as_str()?).to_string(), ip.to_string()))
        })
        .collect()
}

/// GET http://IP:80/ once: (status, body).
fn get(ip: &str) -> Option<(u16, String)> {
    let out = Command::new("curl")
        .args([
            "-s",
            "-m",
            "5",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            &format!("http://{ip}:80/"),
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n')?;
    Some((code.trim().parse().ok()?, body.to_string()))
}

/// The api task id named in web's answer (after "upstream: task=…/ID").
fn upstream_task(body: &str) -> Option<String> {
    let rest = body.split("upstream: task=").nth(1)?;
    let arn = rest.split_whitespace().next()?;
    Some(task_id(arn).to_string())
}

#[test]
fn a_client_task_calls_a_service_by_its_alias_through_the_node_proxy() {
    let setup = Setup::start("sc");
    let (http, cl, dir) = (
        setup.dev.http.as_str(),
        setup.cluster.as_str(),
        setup.dir.path(),
    );

    ecs(http, &["create-cluster", "--cluster-name", cl]);
    register(
        http,
        dir,
        json!({"family": format!("{cl}-api"), "containerDefinitions": [
            {"name": "api", "image": "berth-demo:latest", "memory": 32,
             "environment": [{"name": "MESSAGE", "value": "from-api"}],
             "portMappings": [{"containerPort": 80, "name": "api", "appProtocol": "http"}]}]}),
    );
    register(
        http,
        dir,
        json!({"family": format!("{cl}-web"), "containerDefinitions": [
            {"name": "web", "image": "berth-demo:latest", "memory": 32,
             "environment": [{"name": "UPSTREAM", "value": "http://api:8080/"}],
             "portMappings": [{"containerPort": 80}]}]}),
    );
    let api_connect = json!({"enabled": true, "namespace": "internal", "services": [
        {"portName": "api", "clientAliases": [{"port": 8080, "dnsName": "api"}]}]});
    ecs(
        http,
        &[
            "create-service",
            "--cluster",
            cl,
            "--service-name",
            "api",
            "--task-definition",
            &format!("{cl}-api"),
            "--desired-count",
            "2",
            "--service-connect-configuration",
            &api_connect.to_string(),
        ],
    );
    ecs(
        http,
        &[
            "create-service",
            "--cluster",
            cl,
            "--service-name",
            "web",
            "--task-definition",
            &format!("{cl}-web"),
            "--desired-count",
            "1",
            "--service-connect-configuration",
            &json!({"enabled": true, "namespace": "internal"}).to_string(),
        ],
    );
    let api_ids = wait_for(Duration::from_secs(60), "two running api tasks", || {
        let t = running(http, cl, "api");
        (t.len() == 2).then(|| t.into_iter().map(|t| t.0).collect::<BTreeSet<_>>())
    });
    let web_ip = wait_for(Duration::from_secs(60), "a running web task", || {
        running(http, cl, "web").first().map(|t| t.1.clone())
    });

    // web's page carries api's answer: the alias reached api, in turn on both tasks.
    let mut reached = BTreeSet::new();
    wait_for(
        Duration::from_secs(30),
        "web reaching both api tasks",
        || {
            if let Some((200, body)) = get(&web_ip) {
                assert!(body.contains("message=from-api"), "{body}");
                reached.extend(upstream_task(&body));
            }
            (reached == api_ids).then_some(())
        },
    );
    println!("web reached api tasks {reached:?} through api:8080");

    // An api task stopped: calls keep succeeding, and its replacement is reached.
    let stopped = api_ids.iter().next().unwrap().clone();
    ecs(
        http,
        &[
            "stop-task",
            "--cluster",
            cl,
            "--task",
            &stopped,
            "--reason",
            "test",
        ],
    );
    let mut failures = Vec::new();
    let replacement = wait_for(
        Duration::from_secs(60),
        "the replacement reached",
        || match get(&web_ip) {
            Some((200, body)) => {
                let id = upstream_task(&body)?;
                (!api_ids.contains(&id)).then_some(id)
            }
            other => {
                failures.push(format!("{other:?}"));
                None
            }
        },
    );
    assert!(
        failures.is_empty(),
        "calls failed while an api task was replaced: {failures:?}"
    );
    println!("replacement {replacement} reached; no call failed");

    // describe shows the alias and who calls api.
    let described = wait_for(Duration::from_secs(20), "web among api's callers", || {
        get(&web_ip);
        let r = berth(
            &setup.dev.grpc,
            &["service", "describe", "--cluster", cl, "api"],
        );
        (r.ok && r.stdout.contains("web")).then_some(r.stdout)
    });
    assert!(described.contains("api:8080"), "{described}");
    println!("{described}");
}

/// `redis-cli -h redis -p 6379 ARGS…` inside the client's container: its output, when it ran.
fn redis_cli(container: &str, args: &[&str]) -> Option<String> {
    let out = Command::new("docker")
        .args(["exec", container, "redis-cli", "-h", "redis", "-p", "6379"])
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn a_tcp_alias_reaches_redis_and_follows_its_replacement() {
    let image = common::redis::redis_image();
    let setup = Setup::start("sctcp");
    let (http, cl, dir) = (
        setup.dev.http.as_str(),
        setup.cluster.as_str(),
        setup.dir.path(),
    );
    ecs(http, &["create-cluster", "--cluster-name", cl]);
    register(
        http,
        dir,
        json!({"family": format!("{cl}-redis"), "containerDefinitions": [
            {"name": "redis", "image": image, "memory": 64, "stopTimeout": 2,
             // Callers come through the node's proxy, not loopback: protected mode would refuse
             // them (`-DENIED Redis is running in protected mode`).
             "command": ["redis-server", "--port", "6379", "--save", "", "--protected-mode", "no"],
             "healthCheck": {"command": ["CMD", "redis-cli", "ping"], "interval": 5,
                             "timeout": 2, "retries": 2, "startPeriod": 0},
             "portMappings": [{"containerPort": 6379, "name": "redis"}]}]}),
    );
    register(
        http,
        dir,
        json!({"family": format!("{cl}-client"), "containerDefinitions": [
            {"name": "client", "image": image, "memory": 32, "stopTimeout": 2,
             "command": ["redis-server", "--port", "7000", "--save", ""],
             "portMappings": [{"containerPort": 7000}]}]}),
    );
    let connect = json!({"enabled": true, "namespace": "internal", "services": [
        {"portName": "redis", "clientAliases": [{"port": 6379, "dnsName": "redis"}]}]});
    for (name, family, config) in [
        ("redis", format!("{cl}-redis"), connect),
        (
            "client",
            format!("{cl}-client"),
            json!({"enabled": true, "namespace": "internal"}),
        ),
    ] {
        ecs(
            http,
            &[
                "create-service",
                "--cluster",
                cl,
                "--service-name",
                name,
                "--task-definition",
                &family,
                "--desired-count",
                "1",
                "--service-connect-configuration",
                &config.to_string(),
            ],
        );
    }
    let client = wait_for(Duration::from_secs(60), "a running client", || {
        running(http, cl, "client")
            .first()
            .map(|t| format!("berth-{}-client", t.0))
    });
    wait_for(Duration::from_secs(60), "SET through redis:6379", || {
        (redis_cli(&client, &["SET", "greeting", "hello"]).as_deref() == Some("OK")).then_some(())
    });
    assert_eq!(
        redis_cli(&client, &["GET", "greeting"]).as_deref(),
        Some("hello")
    );
    println!("SET/GET through the alias redis:6379 works");

    // The Redis task replaced: once the new one is healthy, the alias reaches it.
    let first = running(http, cl, "redis")[0].0.clone();
    ecs(
        http,
        &[
            "stop-task",
            "--cluster",
            cl,
            "--task",
            &first,
            "--reason",
            "test",
        ],
    );
    wait_for(
        Duration::from_secs(90),
        "SET/GET on the replacement",
        || {
            let moved = running(http, cl, "redis").iter().any(|t| t.0 != first);
            let set = redis_cli(&client, &["SET", "greeting", "again"]);
            let got = redis_cli(&client, &["GET", "greeting"]);
            (moved && set.as_deref() == Some("OK") && got.as_deref() == Some("again")).then_some(())
        },
    );
    println!("SET/GET through redis:6379 works again after the task was replaced");
}
