//! A hostile client against real `berth server` processes: counts past their bounds are refused
//! on every transport with the limit named (and the server does not grow), a stored count from
//! before the bound is reported and left alone, and the data directory is owner-only.

mod common;

use common::*;
use serde_json::{json, Value};

use std::path::Path;
use std::time::Duration;

/// One plaintext JSON POST to the API: (status, body).
fn post(addr: &str, method: &str, body: &Value) -> (u16, Value) {
    let a = common::http::exchange(
        addr,
        "POST",
        &format!("/api/v1/{method}"),
        &[("Host", "localhost"), ("Content-Type", "application/json")],
        body.to_string().as_bytes(),
        Duration::from_secs(10),
    )
    .unwrap_or_else(|e| panic!("{method}: {e}"));
    let text = a.body;
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method}: {e}: {text}"));
    (a.status, v)
}

fn stack_file(dir: &Path, desired: i64) -> String {
    let td: Value = serde_json::from_str(&std::fs::read_to_string(web_json()).unwrap()).unwrap();
    let stack = json!({
        "name": "big",
        "taskDefinitions": [td],
        "services": [{"name": "big-web", "taskDefinition": "web", "desiredCount": desired}],
    });
    let path = dir.join("stack.json");
    std::fs::write(&path, stack.to_string()).unwrap();
    path.display().to_string()
}

#[test]
fn a_desired_count_of_two_billion_is_refused_on_every_transport_naming_the_limit_and_the_server_stays_small(
) {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_with(
        "server",
        &dir.path().join("data"),
        &["--insecure", "--no-proxy", "--resync", "100ms"],
    );
    let url = server.grpc.as_str();
    let before = rss_kib(server.pid());
    let r = berth(url, &["taskdef", "register", "-f", &web_json()]);
    assert!(r.ok, "{}", r.stderr);

    // gRPC, CreateService.
    let r = berth(
        url,
        &[
            "service",
            "create",
            "--name",
            "big",
            "--taskdef",
            "web",
            "--desired",
            "2147483647",
        ],
    );
    assert!(!r.ok, "accepted: {}", r.stdout);
    assert!(
        r.stderr
            .contains("desiredCount: 2147483647 is over the maximum of 5000 (tasks per service"),
        "{}",
        r.stderr
    );
    // gRPC, UpdateService.
    let r = berth(
        url,
        &[
            "service",
            "create",
            "--name",
            "small",
            "--taskdef",
            "web",
            "--desired",
            "0",
        ],
    );
    assert!(r.ok, "{}", r.stderr);
    let r = berth(
        url,
        &["service", "update", "small", "--desired", "2147483647"],
    );
    assert!(!r.ok, "accepted: {}", r.stdout);
    assert!(
        r.stderr.contains("over the maximum of 5000"),
        "{}",
        r.stderr
    );
    // JSON API, both.
    let (status, v) = post(
        &server.http,
        "Services/CreateService",
        &json!({"serviceName": "big", "taskDefinition": "web", "desiredCount": 2147483647}),
    );
    assert_eq!(status, 400, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("over the maximum of 5000"),
        "{v}"
    );
    let (status, v) = post(
        &server.http,
        "Services/UpdateService",
        &json!({"service": "small", "desiredCount": 2147483647}),
    );
    assert_eq!(status, 400, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("over the maximum of 5000"),
        "{v}"
    );
    // A stack.
    let r = berth(url, &["apply", "-f", &stack_file(dir.path(), 2147483647)]);
    assert!(!r.ok, "accepted: {}", r.stdout);
    assert!(
        r.stderr
            .contains("services[0].desiredCount: 2147483647 is over the maximum of 5000"),
        "{}",
        r.stderr
    );

    // Nothing was stored: the one service is still at 0, and many controller passes later the
    // server answers and has not grown.
    std::thread::sleep(Duration::from_secs(2));
    let r = berth(url, &["service", "describe", "small", "-o", "json"]);
    assert!(r.ok, "{}", r.stderr);
    let desired = r.json()["service"]["desiredCount"].as_i64().unwrap_or(0);
    assert_eq!(desired, 0, "{}", r.stdout);
    let r = berth(url, &["service", "list"]);
    assert!(!r.stdout.contains("big"), "{}", r.stdout);
    let after = rss_kib(server.pid());
    eprintln!("server RSS {before} KiB before, {after} KiB after");
    assert!(
        after < before + 64 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
}

#[test]
fn the_desired_count_limit_is_the_servers_flag() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_with(
        "server",
        &dir.path().join("data"),
        &["--insecure", "--no-proxy", "--max-desired-count", "3"],
    );
    let url = server.grpc.as_str();
    assert!(berth(url, &["taskdef", "register", "-f", &web_json()]).ok);
    let r = berth(
        url,
        &[
            "service",
            "create",
            "--name",
            "w",
            "--taskdef",
            "web",
            "--desired",
            "4",
        ],
    );
    assert!(!r.ok, "accepted: {}", r.stdout);
    assert!(
        r.stderr.contains("4 is over the maximum of 3"),
        "{}",
        r.stderr
    );
    let r = berth(
        url,
        &[
            "service",
            "create",
            "--name",
            "w",
            "--taskdef",
            "web",
            "--desired",
            "3",
        ],
    );
    assert!(r.ok, "{}", r.stderr);
}

#[test]
fn a_stored_service_past_the_limit_is_reported_invalid_at_start_and_left_alone_while_the_server_serves(
) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // An older server took any count (here: a server whose limit is the largest count).
    let flags = ["--insecure", "--no-proxy", "--resync", "100ms"];
    let mut old = ServerProcess::start_with(
        "server",
        &data,
        &[&flags[..], &["--max-desired-count", "2147483647"]].concat(),
    );
    let url = old.grpc.clone();
    assert!(berth(&url, &["taskdef", "register", "-f", &web_json()]).ok);
    let r = berth(
        &url,
        &[
            "service",
            "create",
            "--name",
            "huge",
            "--taskdef",
            "web",
            "--desired",
            "2147483647",
        ],
    );
    assert!(r.ok, "{}", r.stderr);
    // Even so, no pass allocates for two billion tasks: it still answers.
    std::thread::sleep(Duration::from_secs(1));
    assert!(berth(&url, &["cluster", "list"]).ok);
    old.kill9();

    let server = ServerProcess::start_logging(
        "server",
        &data,
        &[&["--listen", "127.0.0.1:0"], &flags[..]].concat(),
        "error",
    );
    let url = server.grpc.as_str();
    let log = server.log();
    assert!(
        log.contains("stored service is invalid") && log.contains("huge"),
        "{log}"
    );
    let r = berth(url, &["service", "describe", "huge", "-o", "json"]);
    assert!(r.ok, "{}", r.stderr);
    let events = r.json()["service"]["events"].to_string();
    assert!(
        events.contains("(service huge) is invalid and is left as it is: desiredCount: 2147483647 is over the maximum of 5000"),
        "{events}"
    );
    assert!(berth(url, &["cluster", "list"]).ok);
    // Fixing it is an ordinary update.
    let r = berth(url, &["service", "update", "huge", "--desired", "0"]);
    assert!(r.ok, "{}", r.stderr);
}

/// Every mode under `dir` that group or others may use.
fn open_modes(dir: &Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            out.push(format!("{:o} {}", mode, p.display()));
        }
        if meta.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    out
}

#[cfg(unix)]
#[test]
fn after_the_first_start_no_file_under_the_data_directory_is_readable_by_group_or_others() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = ServerProcess::start_with("server", &data, &["--no-proxy"]);
    assert!(berth(&server.grpc, &["taskdef", "register", "-f", &web_json()]).ok);
    let open = open_modes(&data);
    assert!(open.is_empty(), "readable by others: {open:?}");
    drop(server);

    // A directory an older version left open is closed on the next start.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        data.join("log/LOCK"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    assert_eq!(open_modes(&data).len(), 2);
    let _server = ServerProcess::start_with("server", &data, &["--no-proxy"]);
    let open = open_modes(&data);
    assert!(open.is_empty(), "readable by others: {open:?}");
}

#[test]
fn errors_quote_little_name_unknown_fields_and_a_too_large_body_is_json() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_with(
        "server",
        &dir.path().join("data"),
        &["--insecure", "--no-proxy", "--http-max-body", "1m"],
    );
    // A megabyte of name is quoted as a hundred characters.
    let name = "x".repeat(1_000_000);
    let (status, v) = post(
        &server.http,
        "Clusters/CreateCluster",
        &json!({"clusterName": name}),
    );
    assert_eq!(status, 400, "{}", &v.to_string()[..200]);
    let message = v["message"].as_str().unwrap();
    assert!(
        message.len() < 300,
        "{} bytes: {}",
        message.len(),
        &message[..300]
    );
    assert!(
        message.contains("… (1000000 characters) must be 1-255 letters"),
        "{message}"
    );

    // A task of 300 published ports, and a RunTask of 11, are refused naming the bound.
    let ports: Vec<Value> = (0..300)
        .map(|p| json!({"containerPort": 1000 + p}))
        .collect();
    let td = json!({"family": "many", "containerDefinitions": [
        {"name": "web", "image": "berth-demo:latest", "portMappings": ports}]});
    let (status, v) = post(
        &server.http,
        "TaskDefinitions/RegisterTaskDefinition",
        &json!({"taskDefinitionJson": td.to_string()}),
    );
    assert_eq!(status, 400, "{v}");
    let message = v["message"].as_str().unwrap();
    assert!(
        message.contains(
            "containerDefinitions[0].portMappings: 300 port mappings; at most 100 per container"
        ),
        "{message}"
    );
    let (status, v) = post(
        &server.http,
        "Tasks/RunTask",
        &json!({"taskDefinition": "many", "count": 11}),
    );
    assert_eq!(status, 400, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("count: 11 is over the maximum of 10"),
        "{v}"
    );

    // A misspelled field is named in the reply, not silently ignored.
    let (status, v) = post(
        &server.http,
        "Clusters/ListClusters",
        &json!({"clusterNme": "x"}),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["ignoredFields"], json!(["clusterNme"]), "{v}");
    let (status, v) = post(
        &server.http,
        "Services/UpdateService",
        &json!({"clusterNme": "x", "service": "nope", "desiredCount": 1}),
    );
    assert_eq!(status, 404, "{v}");
    assert_eq!(v["ignoredFields"], json!(["clusterNme"]), "{v}");

    // Past the body limit: 413, with the JSON error every other status has.
    let big = json!({"clusterName": "y".repeat(2 * 1024 * 1024)});
    let (status, v) = post(&server.http, "Clusters/CreateCluster", &big);
    assert_eq!(status, 413, "{v}");
    assert_eq!(v["code"], "InvalidArgument", "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("--http-max-body"),
        "{v}"
    );
}
