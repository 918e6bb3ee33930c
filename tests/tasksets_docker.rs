//! Task sets of an EXTERNAL service through the real aws CLI against `berth server` with three
//! real agents on the local Docker engine: create a task set, make it primary, scale another
//! (whose tasks, and only they, join its target group), delete the old one; bad input refused
//! with nothing written.

mod common;

use common::aws::*;
use common::ecs_tasks::*;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

#[test]
fn an_external_deployment_through_task_sets() {
    let c = common::cluster::cluster("tasksets");
    let k = creds(&c);
    let http = c.server.http.clone();
    let ecs = |args: &[&str]| aws_ok(&http, &k, args);
    let raw = |args: &[&str]| aws(&http, &k, args);
    let cl = c.name.as_str();
    register(&c, &ecs, "blue");
    register(&c, &ecs, "green");
    ecs(&[
        "create-service",
        "--cluster",
        cl,
        "--service-name",
        "plain",
        "--task-definition",
        "blue",
        "--desired-count",
        "0",
    ]);
    let svc = ecs(&[
        "create-service",
        "--cluster",
        cl,
        "--service-name",
        "bg",
        "--desired-count",
        "2",
        "--deployment-controller",
        "type=EXTERNAL",
    ]);
    assert_eq!(
        svc["service"]["deploymentController"]["type"], "EXTERNAL",
        "{svc}"
    );

    // Bad input: ECS's errors, and no task set written.
    let bad: &[(&[&str], &str)] = &[
        (
            &["--service", "plain", "--task-definition", "blue"],
            "InvalidParameterException",
        ),
        (
            &[
                "--service",
                "bg",
                "--task-definition",
                "blue",
                "--scale",
                "value=150,unit=PERCENT",
            ],
            "InvalidParameterException",
        ),
        (
            &["--service", "nope", "--task-definition", "blue"],
            "ServiceNotFoundException",
        ),
    ];
    for (extra, want) in bad {
        let mut args = vec!["create-task-set", "--cluster", cl];
        args.extend_from_slice(extra);
        let e = error_of(&raw(&args));
        assert!(e.contains(want), "{extra:?}: {e}");
    }
    let sets = ecs(&["describe-task-sets", "--cluster", cl, "--service", "bg"]);
    assert_eq!(sets["taskSets"], json!([]), "nothing written: {sets}");
    let e = error_of(&raw(&[
        "update-task-set",
        "--cluster",
        cl,
        "--service",
        "bg",
        "--task-set",
        "ecs-svc/0",
        "--scale",
        "value=50,unit=PERCENT",
    ]));
    assert!(e.contains("TaskSetNotFoundException"), "{e}");

    let set_id = |v: &Value| v["taskSet"]["id"].as_str().unwrap().to_string();
    let blue = set_id(&ecs(&[
        "create-task-set",
        "--cluster",
        cl,
        "--service",
        "bg",
        "--task-definition",
        "blue",
        "--external-id",
        "blue",
        "--scale",
        "value=100,unit=PERCENT",
    ]));
    let p = ecs(&[
        "update-service-primary-task-set",
        "--cluster",
        cl,
        "--service",
        "bg",
        "--primary-task-set",
        &blue,
    ]);
    assert_eq!(p["taskSet"]["status"], "PRIMARY", "{p}");
    let by_set = |id: &str| {
        running(&ecs, cl, "bg")
            .into_iter()
            .filter(|t| t["startedBy"] == id)
            .count()
    };
    wait_for(Duration::from_secs(90), "blue's 2 tasks", || {
        (by_set(&blue) == 2).then_some(())
    });

    // Green at 50% of 2: one task; scaled to 100%: two; made primary; blue deleted. Green's
    // tasks, and only they, join green's target group.
    let tg = elbv2_ok(
        &http,
        &k,
        &[
            "create-target-group",
            "--name",
            "green-tg",
            "--protocol",
            "HTTP",
            "--port",
            "80",
            "--target-type",
            "ip",
        ],
    )["TargetGroups"][0]["TargetGroupArn"]
        .as_str()
        .unwrap()
        .to_string();
    let lb = format!("targetGroupArn={tg},containerName=web,containerPort=80");
    let g = ecs(&[
        "create-task-set",
        "--cluster",
        cl,
        "--service",
        "bg",
        "--task-definition",
        "green",
        "--scale",
        "value=50,unit=PERCENT",
        "--load-balancers",
        &lb,
    ]);
    assert_eq!(
        g["taskSet"]["loadBalancers"][0]["targetGroupArn"],
        tg.as_str(),
        "{g}"
    );
    assert_eq!(g["taskSet"]["status"], "ACTIVE");
    assert_eq!(g["taskSet"]["computedDesiredCount"], 1, "{g}");
    let green = set_id(&g);
    wait_for(Duration::from_secs(90), "green's 1 task", || {
        (by_set(&green) == 1).then_some(())
    });
    let u = ecs(&[
        "update-task-set",
        "--cluster",
        cl,
        "--service",
        "bg",
        "--task-set",
        &green,
        "--scale",
        "value=100,unit=PERCENT",
    ]);
    assert_eq!(u["taskSet"]["computedDesiredCount"], 2, "{u}");
    wait_for(Duration::from_secs(90), "green's 2 tasks", || {
        (by_set(&green) == 2).then_some(())
    });
    assert_eq!(by_set(&blue), 2, "blue keeps its tasks while both run");
    let ports_of = |id: &str| -> std::collections::BTreeSet<i64> {
        running(&ecs, cl, "bg")
            .iter()
            .filter(|t| t["startedBy"] == id)
            .filter_map(|t| t["containers"][0]["networkBindings"][0]["hostPort"].as_i64())
            .collect()
    };
    wait_for(
        Duration::from_secs(30),
        "green's tasks in green's target group",
        || {
            let h = elbv2_ok(
                &http,
                &k,
                &["describe-target-health", "--target-group-arn", &tg],
            );
            let ports: std::collections::BTreeSet<i64> = h["TargetHealthDescriptions"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|d| {
                    d["Target"]["Port"]
                        .as_i64()
                        .or_else(|| d["Target"]["Port"].as_str()?.parse().ok())
                })
                .collect();
            (ports.len() == 2 && ports == ports_of(&green)).then_some(())
        },
    );
    let e = error_of(&raw(&[
        "delete-task-set",
        "--cluster",
        cl,
        "--service",
        "bg",
        "--task-set",
        &blue,
    ]));
    assert!(
        e.contains("PRIMARY"),
        "the primary goes only with force: {e}"
    );
    ecs(&[
        "update-service-primary-task-set",
        "--cluster",
        cl,
        "--service",
        "bg",
        "--primary-task-set",
        &green,
    ]);
    let d = ecs(&[
        "delete-task-set",
        "--cluster",
        cl,
        "--service",
        "bg",
        "--task-set",
        &blue,
    ]);
    assert_eq!(d["taskSet"]["status"], "DRAINING", "{d}");
    wait_for(
        Duration::from_secs(90),
        "blue's tasks stopped and blue gone",
        || {
            let sets = ecs(&["describe-task-sets", "--cluster", cl, "--service", "bg"]);
            let ids: Vec<&str> = sets["taskSets"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|s| s["id"].as_str())
                .collect();
            (by_set(&blue) == 0 && ids == [green.as_str()]).then_some(())
        },
    );
    let sets = ecs(&[
        "describe-task-sets",
        "--cluster",
        cl,
        "--service",
        "bg",
        "--task-sets",
        &green,
    ]);
    let s = &sets["taskSets"][0];
    assert_eq!(s["status"], "PRIMARY", "{s}");
    assert_eq!(s["runningCount"], 2, "{s}");
    assert!(
        s["taskDefinition"].as_str().unwrap().ends_with("green:1"),
        "{s}"
    );
    let desc = ecs(&["describe-services", "--cluster", cl, "--services", "bg"]);
    assert_eq!(
        desc["services"][0]["taskSets"].as_array().unwrap().len(),
        1,
        "{desc}"
    );
    assert_eq!(desc["services"][0]["runningCount"], 2, "{desc}");
    ecs(&[
        "delete-service",
        "--cluster",
        cl,
        "--service",
        "bg",
        "--force",
    ]);
}
