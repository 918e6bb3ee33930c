//! A stack's whole life on the real Docker engine, as a CloudFormation stack's: `berth apply -f`
//! of a stack naming a new cluster creates the cluster and brings its services up, a changed
//! placement or load balancer in the file rolls the service out through UpdateService, `berth
//! stack list` / `describe` show what it owns and where the live service drifted, and `berth
//! delete -f` removes the cluster too (keeping it, and saying why, while others still use it).

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn stack(cluster: &str, service: Value) -> Value {
    json!({
        "cluster": cluster,
        "taskDefinitions": [{
            "family": format!("{cluster}-web"),
            "containerDefinitions": [{
                "name": "web",
                "image": "berth-demo:latest",
                "memory": 32,
                "portMappings": [{"containerPort": 80}],
                "stopTimeout": 5
            }]
        }],
        "services": [service]
    })
}

fn web(cluster: &str, extra: Value) -> Value {
    let mut s =
        json!({"name": "web", "taskDefinition": format!("{cluster}-web"), "desiredCount": 2});
    for (k, v) in extra.as_object().unwrap() {
        s[k] = v.clone();
    }
    s
}

fn write(dir: &Path, v: &Value) -> PathBuf {
    let p = dir.join("site.json");
    std::fs::write(&p, serde_json::to_string_pretty(v).unwrap()).unwrap();
    p
}

fn ok(server: &str, args: &[&str]) -> Run {
    let r = berth(server, args);
    assert!(r.ok, "berth {args:?}: {}{}", r.stdout, r.stderr);
    r
}

fn service(server: &str, cluster: &str, name: &str) -> Value {
    let r = ok(
        server,
        &[
            "service",
            "describe",
            name,
            "--cluster",
            cluster,
            "-o",
            "json",
        ],
    );
    r.json()["service"].clone()
}

/// The ARNs of the service's RUNNING tasks.
fn running_tasks(server: &str, cluster: &str, name: &str) -> HashSet<String> {
    let r = ok(
        server,
        &[
            "task",
            "list",
            "--cluster",
            cluster,
            "--service",
            name,
            "-o",
            "json",
        ],
    );
    r.json()["tasks"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|t| t["lastStatus"] == "RUNNING")
        .map(|t| t["taskArn"].as_str().unwrap().to_string())
        .collect()
}

fn cluster_status(server: &str, cluster: &str) -> String {
    let r = ok(server, &["cluster", "describe", cluster, "-o", "json"]);
    let v = r.json();
    let c = if v["cluster"].is_object() {
        &v["cluster"]
    } else {
        &v
    };
    c["status"].as_str().unwrap_or_default().to_string()
}

fn describe(server: &str, cluster: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "stack",
        "describe",
        "site",
        "--cluster",
        cluster,
        "-o",
        "json",
    ];
    args.extend_from_slice(extra);
    ok(server, &args).json()
}

#[test]
fn apply_creates_the_stacks_cluster_and_delete_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = unique_cluster("stackcl");
    let _cleanup = ContainerCleanup {
        cluster: cluster.clone(),
    };
    let dev = ServerProcess::start_with("dev", dir.path(), FAST);
    let s = dev.grpc.as_str();
    let file = write(dir.path(), &stack(&cluster, web(&cluster, json!({}))));
    let f = file.to_str().unwrap();

    // The cluster does not exist: a dry run says it would create it, and creates nothing.
    let r = ok(s, &["apply", "-f", f, "--dry-run", "-o", "json"]);
    assert_eq!(
        r.json()["changes"][0]["action"],
        "would create",
        "{}",
        r.stdout
    );
    assert!(!berth(s, &["cluster", "describe", &cluster]).ok);

    let r = ok(s, &["apply", "-f", f, "--wait", "--timeout", "90s"]);
    assert!(
        r.stdout.contains("cluster") && r.stdout.contains("owned by the stack"),
        "{}",
        r.stdout
    );
    assert_eq!(cluster_status(s, &cluster), "ACTIVE");
    assert_eq!(running_tasks(s, &cluster, "web").len(), 2);
    assert_eq!(service(s, &cluster, "web")["runningCount"], 2);

    // The stack says what it owns.
    let list = ok(s, &["stack", "list", "--cluster", &cluster, "-o", "json"]).json();
    let one = &list["stacks"][0];
    assert_eq!(one["name"], "site", "{list}");
    assert_eq!(one["ownsCluster"], true, "{list}");
    let r = ok(s, &["stack", "list", "--cluster", &cluster]);
    assert!(
        r.stdout.contains("cluster, 1 task definition, 1 service"),
        "{}",
        r.stdout
    );
    let d = describe(s, &cluster, &[]);
    let kinds: Vec<&str> = d["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["cluster", "taskDefinition", "service"], "{d}");
    assert!(
        d.get("drift").is_none(),
        "no drift (the list is left out): {d}"
    );

    // Now delete removes everything, the cluster too.
    let r = ok(s, &["delete", "-f", f, "--timeout", "90s"]);
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("cluster") && l.contains(" deleted ")),
        "{}",
        r.stdout
    );
    assert_eq!(cluster_status(s, &cluster), "INACTIVE");
    let clusters = ok(s, &["cluster", "list", "-o", "json"]).stdout;
    assert!(!clusters.contains(&format!("\"{cluster}\"")), "{clusters}");
    wait_for(Duration::from_secs(30), "no task container left", || {
        containers_with_label(&format!("berth.cluster={cluster}"))
            .is_empty()
            .then_some(())
    });
    assert!(!berth(s, &["stack", "describe", "site", "--cluster", &cluster]).ok);
}

#[test]
fn delete_keeps_a_cluster_others_still_use_and_never_takes_an_existing_one() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = unique_cluster("stackkeep");
    let _cleanup = ContainerCleanup {
        cluster: cluster.clone(),
    };
    let dev = ServerProcess::start_with("dev", dir.path(), FAST);
    let s = dev.grpc.as_str();
    let file = write(dir.path(), &stack(&cluster, web(&cluster, json!({}))));
    let f = file.to_str().unwrap();
    ok(s, &["apply", "-f", f, "--wait", "--timeout", "90s"]);

    // A service from outside the stack keeps the cluster, and delete says why.
    let family = format!("{cluster}-web");
    ok(
        s,
        &[
            "service",
            "create",
            "--cluster",
            &cluster,
            "--name",
            "other",
            "--taskdef",
            &family,
            "--desired",
            "0",
        ],
    );
    let r = ok(s, &["delete", "-f", f, "--timeout", "90s"]);
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("cluster") && l.contains(" kept ")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("other"),
        "names what uses it: {}",
        r.stdout
    );
    assert_eq!(cluster_status(s, &cluster), "ACTIVE");
    ok(
        s,
        &[
            "service",
            "delete",
            "other",
            "--cluster",
            &cluster,
            "--force",
        ],
    );

    // Applied again: the cluster exists now, so this stack does not own it, and its delete
    // leaves the cluster alone.
    ok(s, &["apply", "-f", f, "--wait", "--timeout", "90s"]);
    assert_eq!(
        ok(s, &["stack", "list", "--cluster", &cluster, "-o", "json"]).json()["stacks"][0]
            ["ownsCluster"],
        false,
        "an existing cluster is not the stack's"
    );
    let r = ok(s, &["delete", "-f", f, "--timeout", "90s"]);
    assert!(
        !r.stdout.lines().any(|l| l.starts_with("cluster")),
        "not the stack's cluster: {}",
        r.stdout
    );
    assert_eq!(cluster_status(s, &cluster), "ACTIVE");
    wait_for(Duration::from_secs(30), "the cluster to empty", || {
        berth(s, &["cluster", "delete", &cluster]).ok.then_some(())
    });
}

#[test]
fn a_placement_or_load_balancer_change_in_the_file_rolls_the_service_out() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = unique_cluster("stackpl");
    let _cleanup = ContainerCleanup {
        cluster: cluster.clone(),
    };
    let dev = ServerProcess::start_with("dev", dir.path(), FAST);
    let s = dev.grpc.as_str();
    let spread = json!({"placementStrategy": [{"type": "spread", "field": "instanceId"}]});
    let first = stack(&cluster, web(&cluster, spread));
    let file = write(dir.path(), &first);
    let f = file.to_str().unwrap();
    ok(s, &["apply", "-f", f, "--wait", "--timeout", "90s"]);
    let before = service(s, &cluster, "web");
    let old_tasks = running_tasks(s, &cluster, "web");
    assert_eq!(old_tasks.len(), 2);
    let old_file = dir.path().join("first.json");
    std::fs::write(&old_file, first.to_string()).unwrap();

    // Out of band, the service is scaled: describe shows the drift from the last apply.
    ok(
        s,
        &[
            "service",
            "update",
            "web",
            "--cluster",
            &cluster,
            "--desired",
            "1",
        ],
    );
    let d = describe(s, &cluster, &[]);
    assert_eq!(d["driftFrom"], "last apply");
    assert_eq!(
        d["drift"],
        json!([{"kind": "service", "name": "web", "field": "desiredCount", "declared": "2", "live": "1"}]),
        "{d}"
    );

    // The file now binpacks: applied through UpdateService, with a new deployment that replaces
    // every task; the desired count goes back to the file's.
    let binpack = json!({"placementStrategy": [{"type": "binpack", "field": "memory"}]});
    write(dir.path(), &stack(&cluster, web(&cluster, binpack)));
    let r = ok(s, &["apply", "-f", f, "-o", "json"]);
    let changed = &r.json()["changes"][1];
    assert_eq!(changed["action"], "updated", "{}", r.stdout);
    let detail = changed["detail"].as_str().unwrap();
    assert!(
        detail.contains("placementStrategy") && detail.contains("new deployment"),
        "{detail}"
    );
    let after = service(s, &cluster, "web");
    assert_eq!(
        after["placementStrategy"],
        json!([{"type": "binpack", "field": "memory"}])
    );
    assert_ne!(
        after["deployments"][0]["id"],
        before["deployments"][0]["id"]
    );
    let r = ok(s, &["service", "describe", "web", "--cluster", &cluster]);
    assert!(
        r.stdout.contains("Placement        binpack(memory)"),
        "{}",
        r.stdout
    );
    wait_for(Duration::from_secs(90), "the tasks to be replaced", || {
        let now = running_tasks(s, &cluster, "web");
        (now.len() == 2 && now.is_disjoint(&old_tasks)).then_some(())
    });

    // Against the first file, the live service has drifted in its placement.
    let d = describe(s, &cluster, &["-f", old_file.to_str().unwrap()]);
    assert_eq!(d["driftFrom"], "file");
    assert_eq!(
        d["drift"],
        json!([
            {"kind": "service", "name": "web", "field": "placementStrategy[0].field", "declared": "\"instanceId\"", "live": "\"memory\""},
            {"kind": "service", "name": "web", "field": "placementStrategy[0].type", "declared": "\"spread\"", "live": "\"binpack\""}
        ]),
        "{d}"
    );

    // A load balancer added in the file: a new deployment, and the listener serves the tasks.
    let port = free_port();
    let lb = json!({
        "placementStrategy": [{"type": "binpack", "field": "memory"}],
        "loadBalancer": {"port": port, "containerName": "web", "containerPort": 80, "healthCheckPath": "/health", "drainTimeoutSeconds": 1}
    });
    write(dir.path(), &stack(&cluster, web(&cluster, lb)));
    let replaced = running_tasks(s, &cluster, "web");
    let r = ok(s, &["apply", "-f", f, "--wait", "--timeout", "90s"]);
    assert!(
        r.stdout.contains("loadBalancer; new deployment"),
        "{}",
        r.stdout
    );
    let svc = service(s, &cluster, "web");
    assert_eq!(svc["loadBalancers"][0]["listenerPort"], port, "{svc}");
    wait_for(
        Duration::from_secs(60),
        "the listener to answer 200",
        || http_get(port, "/").filter(|(code, _)| *code == 200),
    );
    assert!(running_tasks(s, &cluster, "web").is_disjoint(&replaced));
    let d = describe(s, &cluster, &[]);
    assert!(
        d.get("drift").is_none(),
        "no drift (the list is left out): {d}"
    );
    ok(s, &["delete", "-f", f, "--timeout", "90s"]);
}
