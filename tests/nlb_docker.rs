//! A network load balancer through `aws elbv2` and `aws ecs` alone, on the real Docker engine
//! under `berth dev`: create-load-balancer --type network, a TCP target group checked over TCP, a
//! TCP listener, and an ECS service of two TCP echo tasks (`berth demo tcp`) on it. The listener
//! refuses connections while no target is healthy, forwards to both tasks once they are, and with
//! `proxy_protocol_v2.enabled` each task reads the client's own address from the PROXY v2
//! header. Containers carry the test's cluster label and are removed even when it fails.

mod common;

use common::aws::*;
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

/// What a connection to the echo service shows: its greeting line, our local address, and
/// whether a line sent came back.
struct Echoed {
    greeting: String,
    local: std::net::SocketAddr,
}

/// Connects to `address`: Err(kind) when the connection fails, else the greeting and an echo.
fn talk(address: &str) -> Result<Echoed, std::io::ErrorKind> {
    let addr = address.parse().unwrap();
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.kind())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let local = stream.local_addr().unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut greeting = String::new();
    reader.read_line(&mut greeting).map_err(|e| e.kind())?;
    if greeting.is_empty() {
        return Err(std::io::ErrorKind::UnexpectedEof);
    }
    (&stream).write_all(b"ping 42\n").map_err(|e| e.kind())?;
    let mut echo = String::new();
    reader.read_line(&mut echo).map_err(|e| e.kind())?;
    assert_eq!(echo, "ping 42\n", "the target echoes what we send");
    Ok(Echoed { greeting, local })
}

fn word<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .unwrap_or_default()
}

fn error_code(r: &Run) -> String {
    assert!(!r.ok, "expected a failure: {}", r.stdout);
    r.stderr
        .split_once("An error occurred (")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(code, _)| code.to_string())
        .unwrap_or_else(|| panic!("no error code in: {}", r.stderr))
}

fn task_definition(dir: &std::path::Path) -> String {
    let file = dir.join("echo.json");
    let def = json!({
        "family": "nlb-echo",
        "networkMode": "bridge",
        "containerDefinitions": [{
            "name": "echo", "image": "berth-demo:latest", "essential": true, "memory": 32,
            "command": ["demo", "tcp", "--port", "7000"],
            "portMappings": [{"containerPort": 7000, "hostPort": 0, "protocol": "tcp"}],
            "stopTimeout": 2
        }]
    });
    std::fs::write(&file, def.to_string()).unwrap();
    format!("file://{}", file.display())
}

#[test]
fn a_network_load_balancer_made_with_aws_elbv2_forwards_tcp_with_proxy_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = unique_cluster("nlb");
    let _cleanup = ContainerCleanup {
        cluster: cluster.clone(),
    };
    // The proxy's log says when the TCP listener binds and closes, should this fail.
    let mut args = vec!["--listen", "127.0.0.1:0"];
    args.extend_from_slice(FAST);
    let dev = ServerProcess::start_logging("dev", dir.path(), &args, "warn,berth_proxy=info");
    let http = dev.http.as_str();
    let c = Creds::default();
    let ecs = |args: &[&str]| aws_ok(http, &c, args);
    let elb = |args: &[&str]| elbv2_ok(http, &c, args);
    let cl = cluster.as_str();
    ecs(&["create-cluster", "--cluster-name", cl]);
    ecs(&[
        "register-task-definition",
        "--cli-input-json",
        &task_definition(dir.path()),
    ]);

    let lb = elb(&["create-load-balancer", "--name", "tcp", "--type", "network"]);
    let lb = &lb["LoadBalancers"][0];
    assert_eq!(lb["Type"], "network", "{lb}");
    let lb_arn = lb["LoadBalancerArn"].as_str().unwrap().to_string();
    assert!(lb_arn.contains(":loadbalancer/net/tcp/"), "{lb_arn}");
    let tg = elb(&[
        "create-target-group",
        "--name",
        "echo",
        "--protocol",
        "TCP",
        "--port",
        "7000",
        "--target-type",
        "ip",
        "--health-check-protocol",
        "TCP",
        "--health-check-interval-seconds",
        "5",
        "--health-check-timeout-seconds",
        "2",
        "--healthy-threshold-count",
        "2",
    ]);
    let tg = &tg["TargetGroups"][0];
    assert_eq!(
        (&tg["Protocol"], &tg["HealthCheckProtocol"]),
        (&json!("TCP"), &json!("TCP")),
        "{tg}"
    );
    let tg_arn = tg["TargetGroupArn"].as_str().unwrap().to_string();

    // Bad input names the field; nothing is written.
    let http_on_nlb = elbv2(
        http,
        &c,
        &[
            "create-listener",
            "--load-balancer-arn",
            &lb_arn,
            "--protocol",
            "HTTP",
            "--port",
            &free_port().to_string(),
            "--default-actions",
            &format!("Type=forward,TargetGroupArn={tg_arn}"),
        ],
    );
    assert_eq!(error_code(&http_on_nlb), "UnsupportedProtocol");
    assert!(
        http_on_nlb.stderr.contains("Protocol:"),
        "{}",
        http_on_nlb.stderr
    );
    let bad_attr = elbv2(
        http,
        &c,
        &[
            "modify-target-group-attributes",
            "--target-group-arn",
            &tg_arn,
            "--attributes",
            "Key=proxy_protocol_v2.enabled,Value=maybe",
        ],
    );
    assert_eq!(error_code(&bad_attr), "ValidationError");
    assert!(
        bad_attr.stderr.contains("proxy_protocol_v2.enabled"),
        "{}",
        bad_attr.stderr
    );

    let port = free_port().to_string();
    elb(&[
        "create-listener",
        "--load-balancer-arn",
        &lb_arn,
        "--protocol",
        "TCP",
        "--port",
        &port,
        "--default-actions",
        &format!("Type=forward,TargetGroupArn={tg_arn}"),
    ]);
    let described = elb(&["describe-load-balancers", "--names", "tcp"]);
    let address = described["LoadBalancers"][0]["DNSName"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(address, format!("127.0.0.1:{port}"));

    // No target yet: the listener refuses, it does not accept and hang up.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        talk(&address).err(),
        Some(std::io::ErrorKind::ConnectionRefused)
    );

    ecs(&[
        "create-service",
        "--cluster",
        cl,
        "--service-name",
        "echo",
        "--task-definition",
        "nlb-echo:1",
        "--desired-count",
        "2",
        "--load-balancers",
        &format!("targetGroupArn={tg_arn},containerName=echo,containerPort=7000"),
    ]);
    let mut tasks = BTreeSet::new();
    wait_for(
        Duration::from_secs(180),
        "both echo tasks to answer",
        || {
            if let Ok(e) = talk(&address) {
                assert_eq!(word(&e.greeting, "proxy="), "none", "{}", e.greeting);
                tasks.insert(word(&e.greeting, "task=").to_string());
            }
            (tasks.len() == 2).then_some(())
        },
    );
    let health = elb(&["describe-target-health", "--target-group-arn", &tg_arn]);
    let states: Vec<&str> = health["TargetHealthDescriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["TargetHealth"]["State"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["healthy", "healthy"], "{health}");

    // PROXY protocol v2: each target reads the client's own address and port.
    let changed = elb(&[
        "modify-target-group-attributes",
        "--target-group-arn",
        &tg_arn,
        "--attributes",
        "Key=proxy_protocol_v2.enabled,Value=true",
    ]);
    assert!(
        has_attribute(&changed, "proxy_protocol_v2.enabled", "true"),
        "{changed}"
    );
    let described = elb(&[
        "describe-target-group-attributes",
        "--target-group-arn",
        &tg_arn,
    ]);
    assert!(
        has_attribute(&described, "proxy_protocol_v2.enabled", "true"),
        "{described}"
    );
    let mut proxied = BTreeSet::new();
    wait_for(
        Duration::from_secs(30),
        "both tasks to get PROXY v2 headers",
        || {
            if let Ok(e) = talk(&address) {
                if word(&e.greeting, "proxy=") == "v2" {
                    assert_eq!(
                        word(&e.greeting, "client="),
                        e.local.to_string(),
                        "the target sees our address: {}",
                        e.greeting
                    );
                    proxied.insert(word(&e.greeting, "task=").to_string());
                }
            }
            (proxied.len() == 2).then_some(())
        },
    );

    // Scaled to zero: refused again once the targets are gone.
    ecs(&[
        "update-service",
        "--cluster",
        cl,
        "--service",
        "echo",
        "--desired-count",
        "0",
    ]);
    wait_for(
        Duration::from_secs(60),
        "the listener to refuse again",
        || (talk(&address).err() == Some(std::io::ErrorKind::ConnectionRefused)).then_some(()),
    );
    ecs(&[
        "delete-service",
        "--cluster",
        cl,
        "--service",
        "echo",
        "--force",
    ]);
    elb(&["delete-load-balancer", "--load-balancer-arn", &lb_arn]);
}

fn has_attribute(reply: &Value, key: &str, value: &str) -> bool {
    reply["Attributes"]
        .as_array()
        .is_some_and(|a| a.iter().any(|kv| kv["Key"] == key && kv["Value"] == value))
}
