//! Cloud Map and node DNS on real Docker through `berth dev` on a task network of the test's
//! own: a private DNS namespace made with `aws servicediscovery`, an ECS service registered in
//! it through `serviceRegistries`, and from inside a task `nslookup api.internal` returns the
//! healthy tasks' addresses, SRV their ports, and a stopped task leaves the answer within 2 s.
//! list-instances and discover-instances (CBOR, as the aws CLI speaks) and a raw JSON 1.1
//! request show the same tasks.

mod common;

use common::aws::{aws_for, post, Creds};
use common::shell::shell_image;
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

/// A Docker network for one test, removed when dropped (after the containers on it).
struct Network(String);

impl Drop for Network {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["network", "rm", &self.0])
            .output();
    }
}

fn sd(http: &str, args: &[&str]) -> Value {
    let r = aws_for("servicediscovery", http, &Creds::default(), args);
    assert!(
        r.ok,
        "aws servicediscovery {}: {}{}",
        args.join(" "),
        r.stdout,
        r.stderr
    );
    if r.stdout.trim().is_empty() {
        Value::Null
    } else {
        r.json()
    }
}

fn ecs(http: &str, args: &[&str]) -> Value {
    common::aws::aws_ok(http, &Creds::default(), args)
}

/// `busybox nslookup [-type=T] NAME` inside the client container: its output.
fn nslookup(container: &str, args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(["exec", container, "/bin/busybox", "nslookup"])
        .args(args)
        .output()
        .expect("docker exec");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn task_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap()
}

#[test]
fn tasks_find_a_services_healthy_tasks_by_dns_and_cloud_map_shows_the_same() {
    // DiscoverInstances is sent to `data-HOST` unless told not to, as with any custom endpoint.
    std::env::set_var("AWS_DISABLE_HOST_PREFIX_INJECTION", "true");
    let dir = tempfile::tempdir().unwrap();
    let cluster = unique_cluster("sd");
    let net = Network(format!("berth-test-{cluster}"));
    let made = Command::new("docker")
        .args([
            "network",
            "create",
            "--label",
            "berth.test=discovery",
            &net.0,
        ])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let _cleanup = ContainerCleanup {
        cluster: cluster.clone(),
    };
    let mut flags = FAST.to_vec();
    flags.extend_from_slice(&["--task-network", &net.0]);
    let dev = ServerProcess::start_with("dev", dir.path(), &flags);
    let http = dev.http.as_str();
    let cl = cluster.as_str();

    // The namespace and its service, as a Cloud Map user makes them.
    let op = sd(
        http,
        &[
            "create-private-dns-namespace",
            "--name",
            "internal",
            "--vpc",
            "vpc-berth",
        ],
    );
    let op = sd(
        http,
        &[
            "get-operation",
            "--operation-id",
            op["OperationId"].as_str().unwrap(),
        ],
    );
    assert_eq!(op["Operation"]["Status"], "SUCCESS", "{op}");
    let ns = op["Operation"]["Targets"]["NAMESPACE"]
        .as_str()
        .unwrap()
        .to_string();
    let listed = sd(http, &["list-namespaces"]);
    assert_eq!(listed["Namespaces"][0]["Name"], "internal", "{listed}");
    assert_eq!(listed["Namespaces"][0]["Type"], "DNS_PRIVATE");
    let svc = sd(
        http,
        &[
            "create-service",
            "--name",
            "api",
            "--namespace-id",
            &ns,
            "--dns-config",
            "DnsRecords=[{Type=A,TTL=5},{Type=SRV,TTL=5}]",
        ],
    );
    let registry = svc["Service"]["Arn"].as_str().unwrap().to_string();
    let svc_id = svc["Service"]["Id"].as_str().unwrap().to_string();

    // A registry that is not there is refused, and no service is made.
    let bad = common::aws::aws(
        http,
        &Creds::default(),
        &[
            "create-service",
            "--cluster",
            cl,
            "--service-name",
            "nope",
            "--task-definition",
            "x",
            "--service-registries",
            "registryArn=arn:aws:servicediscovery:us-east-1:000000000000:service/srv-nothere",
        ],
    );
    assert!(
        !bad.ok && bad.stderr.contains("serviceRegistries[0].registryArn"),
        "{}",
        bad.stderr
    );

    ecs(http, &["create-cluster", "--cluster-name", cl]);
    let api = json!({"family": format!("{cl}-api"), "containerDefinitions": [
        {"name": "api", "image": shell_image(), "memory": 16,
         "command": ["/bin/busybox", "sleep", "600"],
         "portMappings": [{"containerPort": 8080}]}]});
    let client = json!({"family": format!("{cl}-client"), "containerDefinitions": [
        {"name": "client", "image": shell_image(), "memory": 16,
         "command": ["/bin/busybox", "sleep", "600"]}]});
    for def in [&api, &client] {
        let file = dir
            .path()
            .join(format!("{}.json", def["family"].as_str().unwrap()));
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
            "--service-registries",
            &format!("registryArn={registry},containerName=api,containerPort=8080"),
        ],
    );
    let run = ecs(
        http,
        &[
            "run-task",
            "--cluster",
            cl,
            "--task-definition",
            &format!("{cl}-client"),
        ],
    );
    let client_task = run["tasks"][0]["taskArn"].as_str().unwrap().to_string();
    ecs(
        http,
        &[
            "wait",
            "tasks-running",
            "--cluster",
            cl,
            "--tasks",
            &client_task,
        ],
    );
    let client_box = format!("berth-{}-client", task_id(&client_task));

    // The service's running tasks, as ECS describes them: id → (address, port).
    let running = || -> Vec<(String, String, i64)> {
        let arns = ecs(
            http,
            &[
                "list-tasks",
                "--cluster",
                cl,
                "--service-name",
                "api",
                "--desired-status",
                "RUNNING",
            ],
        );
        let arns: Vec<&str> = arns["taskArns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        if arns.is_empty() {
            return Vec::new();
        }
        let mut args = vec!["describe-tasks", "--cluster", cl, "--tasks"];
        args.extend(arns);
        let d = ecs(http, &args);
        d["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["lastStatus"] == "RUNNING")
            .filter_map(|t| {
                let b = &t["containers"][0]["networkBindings"][0];
                Some((
                    task_id(t["taskArn"].as_str()?).to_string(),
                    b["bindIP"].as_str()?.to_string(),
                    b["hostPort"].as_i64()?,
                ))
            })
            .collect()
    };
    let tasks = wait_for(Duration::from_secs(60), "two running api tasks", || {
        let t = running();
        (t.len() == 2).then_some(t)
    });
    let ids: BTreeSet<String> = tasks.iter().map(|t| t.0.clone()).collect();

    // Cloud Map lists them (the aws CLI speaks RPC v2 CBOR) …
    let listed = wait_for(Duration::from_secs(10), "two instances", || {
        let l = sd(http, &["list-instances", "--service-id", &svc_id]);
        (l["Instances"].as_array().unwrap().len() == 2).then_some(l)
    });
    let listed_ids: BTreeSet<String> = listed["Instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["Id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed_ids, ids, "{listed}");
    for (id, ip, port) in &tasks {
        let i = listed["Instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["Id"] == id.as_str())
            .unwrap();
        assert_eq!(i["Attributes"]["AWS_INSTANCE_IPV4"], ip.as_str(), "{i}");
        assert_eq!(i["Attributes"]["AWS_INSTANCE_PORT"], port.to_string());
    }
    let found = sd(
        http,
        &[
            "discover-instances",
            "--namespace-name",
            "internal",
            "--service-name",
            "api",
        ],
    );
    let found_ids: BTreeSet<String> = found["Instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["InstanceId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(found_ids, ids, "{found}");
    // … and so does AWS JSON 1.1, as older clients speak it.
    let (status, _, body) = post(
        http,
        &[
            ("X-Amz-Target", "Route53AutoNaming_v20170314.ListInstances"),
            ("Content-Type", "application/x-amz-json-1.1"),
        ],
        json!({"ServiceId": svc_id}).to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{body}");
    let json_ids: BTreeSet<String> = serde_json::from_str::<Value>(&body).unwrap()["Instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["Id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(json_ids, ids);
    let (status, _, body) = post(
        http,
        &[
            ("X-Amz-Target", "Route53AutoNaming_v20170314.GetNamespace"),
            ("Content-Type", "application/x-amz-json-1.1"),
        ],
        b"{\"Id\": \"ns-nothere\"}",
    );
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("NamespaceNotFound"), "{body}");
    let by_ns = ecs(
        http,
        &["list-services-by-namespace", "--namespace", "internal"],
    );
    assert_eq!(by_ns["serviceArns"].as_array().unwrap().len(), 1, "{by_ns}");

    // Inside a task: A records of both tasks, SRV records of their ports.
    let a = wait_for(
        Duration::from_secs(10),
        "nslookup api.internal with both tasks",
        || {
            let out = nslookup(&client_box, &["api.internal"]);
            tasks
                .iter()
                .all(|(_, ip, _)| out.contains(ip.as_str()))
                .then_some(out)
        },
    );
    assert!(!a.contains("NXDOMAIN"), "{a}");
    let srv = nslookup(&client_box, &["-type=SRV", "api.internal"]);
    for (id, _, port) in &tasks {
        assert!(
            srv.contains(&format!("{port} {id}.api.internal")),
            "no SRV for {id}:{port}: {srv}"
        );
    }

    // A stopped task leaves the answer within 2 s of the stop.
    let (gone_id, _, _) = tasks[0].clone();
    // A raw StopTask, so the clock starts when the request goes, not when a CLI has started.
    let stop_at = Instant::now();
    let (status, _, stopped) = common::aws::ecs_call(
        http,
        "StopTask",
        &json!({"cluster": cl, "task": gone_id}).to_string(),
    );
    assert_eq!(status, 200, "{stopped}");
    wait_for(
        Duration::from_secs(2),
        "the stopped task to leave the SRV answer",
        || {
            let out = nslookup(&client_box, &["-type=SRV", "api.internal"]);
            (!out.contains(&gone_id) && out.contains("api.internal")).then_some(())
        },
    );
    let left = stop_at.elapsed();
    eprintln!("the stopped task left the DNS answer {left:?} after StopTask");
    assert!(
        left <= Duration::from_millis(2500),
        "the stopped task left after {left:?}"
    );
    let listed = sd(http, &["list-instances", "--service-id", &svc_id]);
    assert!(!listed.to_string().contains(&gone_id), "{listed}");

    // A namespace that still has a service is not deleted.
    let busy = aws_for(
        "servicediscovery",
        http,
        &Creds::default(),
        &["delete-namespace", "--id", &ns],
    );
    assert!(
        !busy.ok && busy.stderr.contains("ResourceInUse"),
        "{}",
        busy.stderr
    );
    let _ = Command::new("docker")
        .args(["rm", "-f", &client_box])
        .output();
}
