//! Capacity providers as node pools and task scale-in protection, through the real aws CLI
//! against `berth server` with three real agents on the local Docker engine: a service with
//! base 2 on pool A and 1:3 over A:B places 10 tasks as ECS's arithmetic says, each on its
//! pool's nodes; bad strategies are refused with nothing written; a protected task survives a
//! scale-in until its protection is removed or expires, then stops.

mod common;

use common::aws::*;
use common::ecs_tasks::*;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

#[test]
fn capacity_providers_place_a_service_by_base_and_weight_on_their_nodes() {
    let c = common::cluster::cluster("cap");
    let k = creds(&c);
    let http = c.server.http.clone();
    let ecs = |args: &[&str]| aws_ok(&http, &k, args);
    let raw = |args: &[&str]| aws(&http, &k, args);
    let cl = c.name.as_str();

    // Pool a is one node, pool b the two others, by a node attribute.
    let cis: Vec<String> = ecs(&["list-container-instances", "--cluster", cl])
        ["containerInstanceArns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert_eq!(cis.len(), 3, "{cis:?}");
    let pool_of = |ci: &str| if ci == cis[0] { "a" } else { "b" };
    for ci in &cis {
        ecs(&[
            "put-attributes",
            "--cluster",
            cl,
            "--attributes",
            &format!("name=pool,value={},targetId={ci}", pool_of(ci)),
        ]);
    }
    for (name, pool) in [("pool-a", "a"), ("pool-b", "b")] {
        let tags = json!([{"key": "berth:selector", "value": format!("attribute:pool == {pool}")}]);
        let p = ecs(&[
            "create-capacity-provider",
            "--name",
            name,
            "--tags",
            &tags.to_string(),
        ]);
        assert_eq!(p["capacityProvider"]["status"], "ACTIVE", "{p}");
        assert_eq!(p["capacityProvider"]["name"], name);
    }
    let d = ecs(&[
        "describe-capacity-providers",
        "--capacity-providers",
        "pool-a",
        "nope",
        "--include",
        "TAGS",
    ]);
    assert_eq!(d["capacityProviders"][0]["name"], "pool-a", "{d}");
    assert_eq!(d["failures"][0]["reason"], "MISSING", "{d}");
    assert!(d["capacityProviders"][0]["tags"]
        .to_string()
        .contains("attribute:pool == a"));

    register(&c, &ecs, "pools");
    let strategy = r#"[{"capacityProvider":"pool-a","base":2,"weight":1},{"capacityProvider":"pool-b","weight":3}]"#;

    // Bad input: a clear ECS error, and nothing written.
    let refused: &[(&[&str], &str)] = &[
        // Not yet associated with the cluster.
        (
            &["--capacity-provider-strategy", strategy],
            "is not associated with the cluster",
        ),
    ];
    for (extra, want) in refused {
        let mut args = vec![
            "create-service",
            "--cluster",
            cl,
            "--service-name",
            "web",
            "--task-definition",
            "pools",
            "--desired-count",
            "10",
        ];
        args.extend_from_slice(extra);
        let e = error_of(&raw(&args));
        assert!(
            e.contains("InvalidParameterException") && e.contains(want),
            "{e}"
        );
    }
    let missing = ecs(&["describe-services", "--cluster", cl, "--services", "web"]);
    assert_eq!(
        missing["failures"][0]["reason"], "MISSING",
        "nothing written: {missing}"
    );

    let cases: &[(&str, &str, &str)] = &[
        (r#"["pool-a","nope"]"#, "[]", "ClientException"),
        (
            r#"["pool-a"]"#,
            r#"[{"capacityProvider":"pool-b","weight":1}]"#,
            "InvalidParameterException",
        ),
        (
            r#"["pool-a","pool-b"]"#,
            r#"[{"capacityProvider":"pool-a","base":1,"weight":1},{"capacityProvider":"pool-b","base":1,"weight":1}]"#,
            "only one capacity provider in a strategy can have a base",
        ),
    ];
    for (providers, default, want) in cases {
        let e = error_of(&raw(&[
            "put-cluster-capacity-providers",
            "--cluster",
            cl,
            "--capacity-providers",
            providers,
            "--default-capacity-provider-strategy",
            default,
        ]));
        assert!(e.contains(want), "{providers} {default}: {e}");
    }
    let cluster = ecs(&["describe-clusters", "--clusters", cl]);
    assert_eq!(
        cluster["clusters"][0]["capacityProviders"],
        json!([]),
        "nothing written: {cluster}"
    );

    let put = ecs(&[
        "put-cluster-capacity-providers",
        "--cluster",
        cl,
        "--capacity-providers",
        "pool-a",
        "pool-b",
        "--default-capacity-provider-strategy",
        r#"[{"capacityProvider":"pool-b","weight":1}]"#,
    ]);
    assert_eq!(
        put["cluster"]["capacityProviders"],
        json!(["pool-a", "pool-b"]),
        "{put}"
    );
    assert_eq!(
        put["cluster"]["defaultCapacityProviderStrategy"],
        json!([{"capacityProvider": "pool-b", "weight": 1, "base": 0}])
    );

    let svc = ecs(&[
        "create-service",
        "--cluster",
        cl,
        "--service-name",
        "web",
        "--task-definition",
        "pools",
        "--desired-count",
        "10",
        "--capacity-provider-strategy",
        strategy,
    ]);
    assert_eq!(
        svc["service"]["capacityProviderStrategy"],
        json!([
            {"capacityProvider": "pool-a", "weight": 1, "base": 2},
            {"capacityProvider": "pool-b", "weight": 3, "base": 0}
        ]),
        "{svc}"
    );
    let tasks = wait_for(Duration::from_secs(120), "10 running tasks", || {
        let t = running(&ecs, cl, "web");
        (t.len() == 10).then_some(t)
    });
    let mut per_pool = std::collections::BTreeMap::new();
    for t in &tasks {
        let provider = t["capacityProviderName"]
            .as_str()
            .unwrap_or("none")
            .to_string();
        let node = t["containerInstanceArn"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_string();
        let ci = cis.iter().find(|c| c.ends_with(&node)).unwrap();
        assert_eq!(
            provider,
            format!("pool-{}", pool_of(ci)),
            "a task on its pool's node: {t}"
        );
        *per_pool.entry(provider).or_insert(0) += 1;
    }
    assert_eq!(
        per_pool,
        [("pool-a".to_string(), 4), ("pool-b".to_string(), 6)].into(),
        "base 2 on A, then 1:3: A gets 2 + 2, B gets 6"
    );

    // The cluster's default strategy places a RunTask that names none.
    let run = ecs(&[
        "run-task",
        "--cluster",
        cl,
        "--task-definition",
        "pools",
        "--count",
        "2",
    ]);
    for t in run["tasks"].as_array().unwrap() {
        assert_eq!(t["capacityProviderName"], "pool-b", "{t}");
    }

    // A provider in use is not taken away, and one listed by a cluster is not deleted.
    let e = error_of(&raw(&[
        "put-cluster-capacity-providers",
        "--cluster",
        cl,
        "--capacity-providers",
        "pool-b",
        "--default-capacity-provider-strategy",
        "[]",
    ]));
    assert!(e.contains("ResourceInUseException"), "{e}");
    let e = error_of(&raw(&[
        "delete-capacity-provider",
        "--capacity-provider",
        "pool-a",
    ]));
    assert!(e.contains("ClientException") && e.contains("in use"), "{e}");

    ecs(&[
        "delete-service",
        "--cluster",
        cl,
        "--service",
        "web",
        "--force",
    ]);
}

#[test]
fn a_protected_task_survives_scale_in_until_its_protection_ends() {
    let c = common::cluster::cluster("protect");
    let k = creds(&c);
    let http = c.server.http.clone();
    let ecs = |args: &[&str]| aws_ok(&http, &k, args);
    let raw = |args: &[&str]| aws(&http, &k, args);
    let cl = c.name.as_str();
    register(&c, &ecs, "guarded");
    ecs(&[
        "create-service",
        "--cluster",
        cl,
        "--service-name",
        "worker",
        "--task-definition",
        "guarded",
        "--desired-count",
        "3",
    ]);
    let tasks = wait_for(Duration::from_secs(90), "3 running tasks", || {
        let t = running(&ecs, cl, "worker");
        (t.len() == 3).then_some(t)
    });
    let arn = |t: &Value| t["taskArn"].as_str().unwrap().to_string();
    let (x, y, z) = (arn(&tasks[0]), arn(&tasks[1]), arn(&tasks[2]));

    // Bad input: ECS's errors, and no protection written.
    let bad: &[(&[&str], &str)] = &[
        (
            &["--expires-in-minutes", "2881"],
            "expiresInMinutes: must be 1-2880",
        ),
        (
            &["--expires-in-minutes", "0"],
            "expiresInMinutes: must be 1-2880",
        ),
    ];
    for (extra, want) in bad {
        let mut args = vec![
            "update-task-protection",
            "--cluster",
            cl,
            "--tasks",
            &x,
            "--protection-enabled",
        ];
        args.extend_from_slice(extra);
        let e = error_of(&raw(&args));
        assert!(
            e.contains("InvalidParameterException") && e.contains(want),
            "{e}"
        );
    }
    let e = error_of(&raw(&[
        "get-task-protection",
        "--cluster",
        "nope",
        "--tasks",
        &x,
    ]));
    assert!(e.contains("ClusterNotFoundException"), "{e}");
    let g = ecs(&[
        "get-task-protection",
        "--cluster",
        cl,
        "--tasks",
        &x,
        "nothere",
    ]);
    assert_eq!(g["protectedTasks"][0]["protectionEnabled"], false, "{g}");
    assert_eq!(g["failures"][0]["reason"], "MISSING", "{g}");

    // x is protected for ECS's default (2 hours), y for one minute.
    let p = ecs(&[
        "update-task-protection",
        "--cluster",
        cl,
        "--tasks",
        &x,
        "--protection-enabled",
    ]);
    assert_eq!(p["protectedTasks"][0]["protectionEnabled"], true, "{p}");
    let exp = p["protectedTasks"][0]["expirationDate"].as_f64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (exp - now - 7200.0).abs() < 120.0,
        "2 hours ahead: {exp} vs {now}"
    );
    ecs(&[
        "update-task-protection",
        "--cluster",
        cl,
        "--tasks",
        &y,
        "--protection-enabled",
        "--expires-in-minutes",
        "1",
    ]);

    // Scale-in from 3 to 1: only z, unprotected, goes.
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
            (!t.iter().any(|t| arn(t) == z)).then_some(())
        },
    );
    std::thread::sleep(Duration::from_secs(3));
    let left: Vec<String> = running(&ecs, cl, "worker").iter().map(arn).collect();
    assert!(
        left.contains(&x) && left.contains(&y),
        "protected tasks stay: {left:?}"
    );

    // Protection removed: x is the one over desired that may go now.
    ecs(&[
        "update-task-protection",
        "--cluster",
        cl,
        "--tasks",
        &x,
        "--no-protection-enabled",
    ]);
    wait_for(
        Duration::from_secs(60),
        "x to stop once unprotected",
        || {
            let t: Vec<String> = running(&ecs, cl, "worker").iter().map(arn).collect();
            (!t.contains(&x)).then_some(())
        },
    );
    assert!(
        running(&ecs, cl, "worker").iter().any(|t| arn(t) == y),
        "y still protected"
    );

    // Scale to 0: y survives until its minute is up, then stops.
    ecs(&[
        "update-service",
        "--cluster",
        cl,
        "--service",
        "worker",
        "--desired-count",
        "0",
    ]);
    std::thread::sleep(Duration::from_secs(3));
    let g = ecs(&["get-task-protection", "--cluster", cl, "--tasks", &y]);
    if g["protectedTasks"][0]["protectionEnabled"] == true {
        assert!(
            running(&ecs, cl, "worker").iter().any(|t| arn(t) == y),
            "protected y stays at 0"
        );
    }
    wait_for(
        Duration::from_secs(90),
        "y to stop once its protection expired",
        || running(&ecs, cl, "worker").is_empty().then_some(()),
    );
    let g = ecs(&["get-task-protection", "--cluster", cl, "--tasks", &y]);
    assert_eq!(g["protectedTasks"][0]["protectionEnabled"], false, "{g}");
    ecs(&[
        "delete-service",
        "--cluster",
        cl,
        "--service",
        "worker",
        "--force",
    ]);
}
