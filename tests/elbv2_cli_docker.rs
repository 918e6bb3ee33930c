//! Application load balancers through `aws elbv2` and `aws ecs` alone, on the real Docker engine
//! under `berth dev`: create-load-balancer, create-target-group, create-listener, an ECS service of
//! two attached to the target group (`--load-balancers targetGroupArn=…`), then curl the load
//! balancer's DNSName and hear both tasks; describe-target-health shows them healthy. A rule with
//! a path pattern forwards by weight to a second service's target group. Bad input gets ELBv2's
//! error codes and changes nothing. Containers carry the test's cluster label and are removed
//! even when it fails.

mod common;

use common::aws::*;
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

/// `curl -s http://ADDRESS/PATH`: the body, or None when it did not answer 200.
fn curl(address: &str, path: &str) -> Option<String> {
    common::setup::tools();
    let out = Command::new("curl")
        .args(["-s", "-f", "--max-time", "5"])
        .arg(format!("http://{address}{path}"))
        .output()
        .expect("run curl");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn word<'a>(body: &'a str, key: &str) -> &'a str {
    body.split_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .unwrap_or_default()
}

fn task_definition(dir: &std::path::Path, family: &str, message: &str) -> String {
    let file = dir.join(format!("{family}.json"));
    let def = json!({
        "family": family,
        "networkMode": "bridge",
        "containerDefinitions": [{
            "name": "web", "image": "berth-demo:latest", "essential": true, "memory": 32,
            "portMappings": [{"containerPort": 80, "hostPort": 0, "protocol": "tcp"}],
            "environment": [{"name": "MESSAGE", "value": message}],
            "stopTimeout": 5
        }]
    });
    std::fs::write(&file, def.to_string()).unwrap();
    format!("file://{}", file.display())
}

fn error_code(r: &Run) -> String {
    assert!(!r.ok, "expected a failure: {}", r.stdout);
    r.stderr
        .split_once("An error occurred (")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(code, _)| code.to_string())
        .unwrap_or_else(|| panic!("no error code in: {}", r.stderr))
}

fn target_group(elb: &dyn Fn(&[&str]) -> Value, name: &str) -> String {
    let tg = elb(&[
        "create-target-group",
        "--name",
        name,
        "--protocol",
        "HTTP",
        "--port",
        "80",
        "--target-type",
        "ip",
        "--health-check-path",
        "/health",
        "--health-check-interval-seconds",
        "5",
        "--health-check-timeout-seconds",
        "2",
        "--healthy-threshold-count",
        "2",
    ]);
    let tg = &tg["TargetGroups"][0];
    assert_eq!(tg["HealthCheckPath"], "/health", "{tg}");
    assert_eq!(tg["Matcher"]["HttpCode"], "200-399", "{tg}");
    tg["TargetGroupArn"].as_str().unwrap().to_string()
}

#[test]
fn a_load_balancer_made_with_aws_elbv2_serves_an_ecs_service() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = unique_cluster("elbv2");
    let _cleanup = ContainerCleanup {
        cluster: cluster.clone(),
    };
    let dev = ServerProcess::start_with("dev", dir.path(), FAST);
    let http = dev.http.as_str();
    let c = Creds::default();
    let ecs = |args: &[&str]| aws_ok(http, &c, args);
    let elb = |args: &[&str]| elbv2_ok(http, &c, args);
    let cl = cluster.as_str();
    ecs(&["create-cluster", "--cluster-name", cl]);
    ecs(&[
        "register-task-definition",
        "--cli-input-json",
        &task_definition(dir.path(), "elb-blue", "blue"),
    ]);

    let lb = elb(&["create-load-balancer", "--name", "journey"]);
    let lb = &lb["LoadBalancers"][0];
    let lb_arn = lb["LoadBalancerArn"].as_str().unwrap().to_string();
    assert!(
        lb_arn.starts_with(
            "arn:aws:elasticloadbalancing:us-east-1:000000000000:loadbalancer/app/journey/"
        ),
        "{lb}"
    );
    assert_eq!(lb["State"]["Code"], "active");
    let blue = target_group(&elb, "blue");
    let port = free_port().to_string();
    let listener = elb(&[
        "create-listener",
        "--load-balancer-arn",
        &lb_arn,
        "--protocol",
        "HTTP",
        "--port",
        &port,
        "--default-actions",
        &format!("Type=forward,TargetGroupArn={blue}"),
    ]);
    let listener_arn = listener["Listeners"][0]["ListenerArn"]
        .as_str()
        .unwrap()
        .to_string();
    let described = elb(&["describe-load-balancers", "--names", "journey"]);
    let address = described["LoadBalancers"][0]["DNSName"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(address, format!("127.0.0.1:{port}"));

    // Bad input: ELBv2's codes, naming the field; nothing changes.
    let again = elbv2(
        http,
        &c,
        &[
            "create-listener",
            "--load-balancer-arn",
            &lb_arn,
            "--port",
            &port,
            "--default-actions",
            &format!("Type=forward,TargetGroupArn={blue}"),
        ],
    );
    assert_eq!(error_code(&again), "DuplicateListener");
    assert!(again.stderr.contains("Port:"), "{}", again.stderr);
    let missing = elbv2(http, &c, &["describe-target-groups", "--names", "nope"]);
    assert_eq!(error_code(&missing), "TargetGroupNotFound");
    let bad = elbv2(http, &c, &["create-load-balancer", "--name=-bad-"]);
    assert_eq!(error_code(&bad), "ValidationError");
    assert!(bad.stderr.contains("Name:"), "{}", bad.stderr);
    let lbs = elb(&["describe-load-balancers"]);
    assert_eq!(lbs["LoadBalancers"].as_array().unwrap().len(), 1, "{lbs}");
    let unknown_tg = ecs_fails(
        http,
        &c,
        cl,
        "nowhere",
        "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/none/0000000000000000",
    );
    assert!(unknown_tg.contains("targetGroupArn"), "{unknown_tg}");

    // An ECS service of two on the target group: curl the load balancer, hear both tasks.
    let svc = ecs(&[
        "create-service",
        "--cluster",
        cl,
        "--service-name",
        "blue",
        "--task-definition",
        "elb-blue:1",
        "--desired-count",
        "2",
        "--load-balancers",
        &format!("targetGroupArn={blue},containerName=web,containerPort=80"),
    ]);
    assert_eq!(
        svc["service"]["loadBalancers"][0]["targetGroupArn"], blue,
        "{svc}"
    );
    let mut tasks = BTreeSet::new();
    wait_for(Duration::from_secs(90), "both tasks to answer", || {
        if let Some(body) = curl(&address, "/") {
            assert_eq!(word(&body, "message="), "blue", "{body}");
            tasks.insert(word(&body, "task=").to_string());
        }
        (tasks.len() == 2).then_some(())
    });
    let health = elb(&["describe-target-health", "--target-group-arn", &blue]);
    let states: Vec<&str> = health["TargetHealthDescriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["TargetHealth"]["State"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["healthy", "healthy"], "{health}");
    let in_use = elbv2(
        http,
        &c,
        &["delete-target-group", "--target-group-arn", &blue],
    );
    assert_eq!(error_code(&in_use), "ResourceInUse");

    weighted_rule(http, &c, dir.path(), cl, &listener_arn, &address, &blue);

    ecs(&[
        "delete-service",
        "--cluster",
        cl,
        "--service",
        "blue",
        "--force",
    ]);
    elb(&["delete-load-balancer", "--load-balancer-arn", &lb_arn]);
    let left = elb(&["describe-load-balancers"]);
    assert_eq!(left["LoadBalancers"], json!([]), "{left}");
}

/// An ECS create-service naming a target group that does not exist: its error message.
fn ecs_fails(http: &str, c: &Creds, cluster: &str, name: &str, tg: &str) -> String {
    let r = aws(
        http,
        c,
        &[
            "create-service",
            "--cluster",
            cluster,
            "--service-name",
            name,
            "--task-definition",
            "elb-blue:1",
            "--desired-count",
            "1",
            "--load-balancers",
            &format!("targetGroupArn={tg},containerName=web,containerPort=80"),
        ],
    );
    assert_eq!(error_code(&r), "InvalidParameterException");
    r.stderr
}

/// A path rule forwarding half to blue and half to a green service's target group.
fn weighted_rule(
    http: &str,
    c: &Creds,
    dir: &std::path::Path,
    cl: &str,
    listener: &str,
    address: &str,
    blue: &str,
) {
    let ecs = |args: &[&str]| aws_ok(http, c, args);
    let elb = |args: &[&str]| elbv2_ok(http, c, args);
    ecs(&[
        "register-task-definition",
        "--cli-input-json",
        &task_definition(dir, "elb-green", "green"),
    ]);
    let green = target_group(&elb, "green");
    ecs(&[
        "create-service",
        "--cluster",
        cl,
        "--service-name",
        "green",
        "--task-definition",
        "elb-green:1",
        "--desired-count",
        "1",
        "--load-balancers",
        &format!("targetGroupArn={green},containerName=web,containerPort=80"),
    ]);
    let actions = json!([{
        "Type": "forward",
        "ForwardConfig": {"TargetGroups": [
            {"TargetGroupArn": blue, "Weight": 1},
            {"TargetGroupArn": green, "Weight": 1}
        ]}
    }])
    .to_string();
    let rule = elb(&[
        "create-rule",
        "--listener-arn",
        listener,
        "--priority",
        "10",
        "--conditions",
        "Field=path-pattern,Values=/split/*",
        "--actions",
        &actions,
    ]);
    assert_eq!(rule["Rules"][0]["Priority"], "10", "{rule}");
    let rules = elb(&["describe-rules", "--listener-arn", listener]);
    let priorities: Vec<&str> = rules["Rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Priority"].as_str().unwrap())
        .collect();
    assert_eq!(priorities, ["10", "default"], "{rules}");
    let mut heard = BTreeSet::new();
    wait_for(Duration::from_secs(60), "blue and green on /split/", || {
        if let Some(body) = curl(address, "/split/x") {
            heard.insert(word(&body, "message=").to_string());
        }
        (heard.len() == 2).then_some(())
    });
    // The default rule still goes to blue only.
    for _ in 0..6 {
        let body = curl(address, "/").expect("blue answers");
        assert_eq!(word(&body, "message="), "blue", "{body}");
    }
    ecs(&[
        "delete-service",
        "--cluster",
        cl,
        "--service",
        "green",
        "--force",
    ]);
}
