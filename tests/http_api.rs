//! The JSON HTTP API and `/metrics` of a real `berth server` (and a real `berth agent` with
//! `--metrics-addr` on the Docker engine): the same handlers as gRPC, so the same validation and
//! messages as the CLI, with gRPC codes as HTTP statuses; the console's assets on `/`.

mod common;

use common::*;
use serde_json::{json, Value};

use std::process::{Child, Command, Stdio};
use std::time::Duration;

thread_local! {
    /// The bearer token this test thread's requests carry (none when empty).
    static TOKEN: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

fn use_token(token: &str) {
    TOKEN.with(|t| *t.borrow_mut() = token.trim().to_string());
}

/// One request to `addr` (HOST:PORT) with this thread's token: (status, body).
fn request(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let auth = TOKEN.with(|t| t.borrow().clone());
    let bearer = format!("Bearer {auth}");
    let mut headers = vec![("Content-Type", "application/json")];
    if !auth.is_empty() {
        headers.push(("Authorization", bearer.as_str()));
    }
    let timeout = Duration::from_secs(30);
    let a = common::http::exchange(addr, method, path, &headers, body.as_bytes(), timeout)
        .unwrap_or_else(|e| panic!("{method} {path} on {addr}: {e}"));
    (a.status, a.body)
}

fn post(addr: &str, method: &str, body: Value) -> (u16, Value) {
    let (status, text) = request(
        addr,
        "POST",
        &format!("/api/v1/{method}"),
        &body.to_string(),
    );
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method}: {e}: {text}"));
    (status, v)
}

fn metrics(addr: &str) -> String {
    request(addr, "GET", "/metrics", "").1
}

#[test]
fn json_api_answers_as_grpc_does_with_http_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        ServerProcess::start_with("server", dir.path(), &["--no-proxy", "--http-insecure"]);
    let http = server.http.as_str();

    // The same tokens as gRPC: none is refused, naming where the admin token is.
    let (status, v) = post(http, "Clusters/ListClusters", json!({}));
    assert_eq!(status, 401, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("admin.token"),
        "{v}"
    );
    let admin = std::fs::read_to_string(dir.path().join("admin.token")).unwrap();
    assert!(
        !v.to_string().contains(admin.trim()),
        "the token is never echoed"
    );
    use_token(&admin);

    let (status, v) = post(
        http,
        "Clusters/CreateCluster",
        json!({"clusterName": "web-http"}),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["cluster"]["clusterName"], "web-http");
    assert_eq!(v["cluster"]["status"], "ACTIVE");
    // One store behind both transports.
    assert!(berth(&server.grpc, &["cluster", "create", "web-grpc"]).ok);
    // A read-only token lists but changes nothing, over HTTP as over gRPC.
    let created = berth(&server.grpc, &["token", "create", "--read-only"]);
    assert!(created.ok, "{}", created.stderr);
    use_token(created.stdout.lines().last().unwrap());
    assert_eq!(post(http, "Clusters/ListClusters", json!({})).0, 200);
    let (status, v) = post(
        http,
        "Clusters/CreateCluster",
        json!({"clusterName": "nope"}),
    );
    assert_eq!(status, 403, "{v}");
    use_token(&admin);
    let (_, v) = post(http, "Clusters/ListClusters", json!({}));
    let names: Vec<&str> = v["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["clusterName"].as_str())
        .collect();
    assert!(
        names.contains(&"web-http") && names.contains(&"web-grpc"),
        "{names:?}"
    );

    // The CLI's message, word for word, under the gRPC code's HTTP status.
    let (status, v) = post(
        http,
        "Clusters/CreateCluster",
        json!({"clusterName": "bad name!"}),
    );
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["code"], "InvalidArgument");
    let message = v["message"].as_str().unwrap();
    assert!(message.contains("clusterName"), "{message}");
    let cli = berth(&server.grpc, &["cluster", "create", "bad name!"]);
    assert!(!cli.ok && cli.stderr.contains(message), "{}", cli.stderr);

    let (status, v) = post(http, "Clusters/DescribeCluster", json!({"cluster": "nope"}));
    assert_eq!((status, v["code"].as_str()), (404, Some("NotFound")), "{v}");

    // ECS JSON as the user wrote it: AWS-only fields are reported, not refused.
    let def = r#"{"family": "web", "executionRoleArn": "arn:aws:iam::1:role/x",
        "containerDefinitions": [{"name": "web", "image": "berth-demo:latest", "memory": 32,
        "portMappings": [{"containerPort": 80}]}]}"#;
    let (status, v) = post(
        http,
        "TaskDefinitions/RegisterTaskDefinition",
        json!({ "taskDefinitionJson": def }),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["taskDefinition"]["revision"], 1);
    assert_eq!(v["ignoredFields"], json!(["executionRoleArn"]));

    // A service that cannot be placed (no node): the cluster cannot go while it exists.
    let (status, v) = post(
        http,
        "Services/CreateService",
        json!({"cluster": "web-http", "serviceName": "web", "taskDefinition": "web:1",
               "desiredCount": 1}),
    );
    assert_eq!(status, 200, "{v}");
    let (status, v) = post(
        http,
        "Clusters/DeleteCluster",
        json!({"cluster": "web-http"}),
    );
    assert_eq!(
        (status, v["code"].as_str()),
        (409, Some("FailedPrecondition")),
        "{v}"
    );
    assert!(v["message"]
        .as_str()
        .unwrap()
        .contains("ClusterContainsServicesException"));
    // Bad requests name what is wrong.
    let (status, text) = request(http, "POST", "/api/v1/Clusters/CreateCluster", "{nope");
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("request body"), "{text}");
    let (status, v) = post(http, "Clusters/Explode", json!({}));
    assert_eq!(
        (status, v["code"].as_str()),
        (501, Some("Unimplemented")),
        "{v}"
    );

    // The console itself.
    let (status, page) = request(http, "GET", "/", "");
    assert_eq!(status, 200);
    assert!(
        page.contains("<title>Berth</title>") && page.contains("/app.js"),
        "{page}"
    );
    let (status, js) = request(http, "GET", "/api.js", "");
    assert_eq!(status, 200);
    assert!(js.contains("/api/v1/"), "{js}");

    // The controller counted its passes and the placement it could not make.
    let text = wait_for(
        Duration::from_secs(10),
        "a placement failure counted",
        || Some(metrics(http)).filter(|m| m.contains("berth_placement_failures_total{reason=")),
    );
    assert!(text.contains("berth_agents_connected 0\n"), "{text}");
    assert!(
        text.contains("# TYPE berth_reconcile_seconds histogram"),
        "{text}"
    );
    let passes: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("berth_reconcile_seconds_count "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(passes > 0, "{text}");

    // An optional field left out keeps its value; given, it changes it.
    let (status, v) = post(
        http,
        "Services/UpdateService",
        json!({"cluster": "web-http", "service": "web"}),
    );
    assert_eq!(
        (status, &v["service"]["desiredCount"]),
        (200, &json!(1)),
        "{v}"
    );
    let (status, v) = post(
        http,
        "Services/UpdateService",
        json!({"cluster": "web-http", "service": "web", "desiredCount": 0}),
    );
    assert_eq!(
        (status, &v["service"]["desiredCount"]),
        (200, &json!(0)),
        "{v}"
    );
}

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn agent_and_server_metrics_count_a_running_task() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = unique_cluster("metrics");
    let _cleanup = ContainerCleanup {
        cluster: cluster.clone(),
    };
    assert!(berth("http://unused", &["images", "build"]).ok);
    let server =
        ServerProcess::start_with("server", dir.path(), &["--no-proxy", "--http-insecure"]);
    let agent_http = format!("127.0.0.1:{}", free_port());
    let _agent = Agent(
        Command::new(BERTH)
            .args(["--server", &server.grpc, "agent", "--name", "metrics-node"])
            .arg("--join-token-file")
            .arg(dir.path().join("join.token"))
            .args([
                "--stop-timeout",
                "2s",
                "--metrics-addr",
                &agent_http,
                "--data",
            ])
            .arg(dir.path().join("agent"))
            .env("BERTH_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn agent"),
    );
    wait_for(Duration::from_secs(30), "the agent connected", || {
        let m = std::net::TcpStream::connect(&agent_http)
            .ok()
            .map(|_| metrics(&agent_http))?;
        m.contains("berth_agent_connected{node=\"metrics-node\"} 1\n")
            .then_some(())
    });
    assert!(metrics(&server.http).contains("berth_agents_connected 1\n"));

    assert!(berth(&server.grpc, &["cluster", "create", &cluster]).ok);
    let def = dir.path().join("web.json");
    std::fs::write(
        &def,
        r#"{"family": "metrics-web", "containerDefinitions": [{"name": "web",
            "image": "berth-demo:latest", "memory": 32, "portMappings": [{"containerPort": 80}],
            "stopTimeout": 2}]}"#,
    )
    .unwrap();
    assert!(
        berth(
            &server.grpc,
            &["taskdef", "register", "-f", def.to_str().unwrap()]
        )
        .ok
    );
    let run = berth(
        &server.grpc,
        &[
            "task",
            "run",
            "--cluster",
            &cluster,
            "--taskdef",
            "metrics-web",
        ],
    );
    assert!(run.ok, "{}", run.stderr);

    let agent_text = wait_for(
        Duration::from_secs(60),
        "the task running on the agent",
        || {
            Some(metrics(&agent_http)).filter(|m| {
                m.contains("berth_agent_tasks{node=\"metrics-node\",state=\"RUNNING\"} 1\n")
            })
        },
    );
    assert!(
        agent_text.contains("berth_agent_container_starts_total{node=\"metrics-node\"} 1\n"),
        "{agent_text}"
    );
    assert!(
        agent_text.contains("berth_agent_session_reconnects_total{node=\"metrics-node\"} 0\n"),
        "{agent_text}"
    );
    let server_text = wait_for(
        Duration::from_secs(30),
        "the task running on the server",
        || {
            Some(metrics(&server.http)).filter(|m| {
                m.contains(&format!(
                    "berth_tasks{{cluster=\"{cluster}\",state=\"RUNNING\"}} 1\n"
                ))
            })
        },
    );
    assert!(
        server_text.contains("berth_placements_total 1\n"),
        "{server_text}"
    );
}
