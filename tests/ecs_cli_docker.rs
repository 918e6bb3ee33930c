//! The seed's journey through `aws ecs` alone, on the real Docker engine under `berth dev`:
//! create-cluster, register-task-definition --cli-input-json, run-task, wait tasks-running,
//! describe-tasks (and curl the bound port), create-service of 2, wait services-stable, stop one
//! task and see it replaced, update-service to revision 2, wait services-stable, delete-service
//! --force, wait services-inactive, delete-cluster. Containers carry the test's cluster label
//! and are removed even when it fails.

mod common;

use common::aws::*;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

fn arns(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {v}"))
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_seed_journey_through_aws_ecs_alone() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = unique_cluster("ecs-cli");
    let _cleanup = ContainerCleanup {
        cluster: cluster.clone(),
    };
    let dev = ServerProcess::start_with("dev", dir.path(), FAST);
    let http = dev.http.as_str();
    let c = Creds::default();
    let ecs = |args: &[&str]| aws_ok(http, &c, args);
    let cl = cluster.as_str();

    let created = ecs(&["create-cluster", "--cluster-name", cl]);
    assert_eq!(
        created["cluster"]["clusterArn"],
        format!("arn:aws:ecs:us-east-1:000000000000:cluster/{cluster}")
    );
    let file = dir.path().join("web.json");
    let def = |message: &str| {
        json!({
            "family": "journey-web",
            "networkMode": "bridge",
            "containerDefinitions": [{
                "name": "web", "image": "berth-demo:latest", "essential": true, "memory": 32,
                "portMappings": [{"containerPort": 80, "hostPort": 0, "protocol": "tcp"}],
                "environment": [{"name": "MESSAGE", "value": message}],
                "stopTimeout": 5
            }],
            "requiresCompatibilities": ["EC2"]
        })
        .to_string()
    };
    std::fs::write(&file, def("hello from aws ecs")).unwrap();
    let input = format!("file://{}", file.display());
    let reg = ecs(&["register-task-definition", "--cli-input-json", &input]);
    assert_eq!(reg["taskDefinition"]["revision"], 1);

    // A one-off task, waited for, described, reached.
    let run = ecs(&[
        "run-task",
        "--cluster",
        cl,
        "--task-definition",
        "journey-web",
    ]);
    assert_eq!(run["failures"], json!([]), "{run}");
    let task = run["tasks"][0]["taskArn"].as_str().unwrap().to_string();
    ecs(&["wait", "tasks-running", "--cluster", cl, "--tasks", &task]);
    let d = ecs(&["describe-tasks", "--cluster", cl, "--tasks", &task]);
    let t = &d["tasks"][0];
    assert_eq!(t["lastStatus"], "RUNNING");
    assert!(
        t["createdAt"].is_number() && t["startedAt"].is_number(),
        "{t}"
    );
    assert!(t["containerInstanceArn"]
        .as_str()
        .unwrap()
        .contains(&format!(":container-instance/{cluster}/")));
    let port = t["containers"][0]["networkBindings"][0]["hostPort"]
        .as_u64()
        .unwrap_or_else(|| panic!("no bound port: {t}")) as u16;
    let (status, body) = wait_for(Duration::from_secs(20), "the task to answer", || {
        http_get(port, "/").filter(|(s, _)| *s == 200)
    });
    assert_eq!(status, 200);
    assert!(body.contains("hello from aws ecs"), "{body}");

    // A service of two, stable.
    let svc = ecs(&[
        "create-service",
        "--cluster",
        cl,
        "--service-name",
        "web",
        "--task-definition",
        "journey-web:1",
        "--desired-count",
        "2",
    ]);
    assert_eq!(svc["service"]["status"], "ACTIVE");
    ecs(&[
        "wait",
        "services-stable",
        "--cluster",
        cl,
        "--services",
        "web",
    ]);
    let listed = ecs(&["list-tasks", "--cluster", cl, "--service-name", "web"]);
    let first = arns(&listed, "taskArns");
    assert_eq!(first.len(), 2, "{listed}");

    // Stop one: the service replaces it.
    let stopped = ecs(&[
        "stop-task",
        "--cluster",
        cl,
        "--task",
        &first[0],
        "--reason",
        "journey: stop one",
    ]);
    assert_eq!(stopped["task"]["desiredStatus"], "STOPPED");
    let replaced = wait_for(Duration::from_secs(60), "a replacement task", || {
        let now = arns(
            &ecs(&["list-tasks", "--cluster", cl, "--service-name", "web"]),
            "taskArns",
        );
        (now.len() == 2 && !now.contains(&first[0])).then_some(now)
    });
    assert!(replaced.contains(&first[1]));
    ecs(&[
        "wait",
        "tasks-stopped",
        "--cluster",
        cl,
        "--tasks",
        &first[0],
    ]);
    let gone = ecs(&["describe-tasks", "--cluster", cl, "--tasks", &first[0]]);
    assert_eq!(gone["tasks"][0]["stoppedReason"], "journey: stop one");

    // Revision 2, rolled out.
    std::fs::write(&file, def("hello from revision 2")).unwrap();
    let reg2 = ecs(&["register-task-definition", "--cli-input-json", &input]);
    assert_eq!(reg2["taskDefinition"]["revision"], 2);
    let upd = ecs(&[
        "update-service",
        "--cluster",
        cl,
        "--service",
        "web",
        "--task-definition",
        "journey-web:2",
    ]);
    assert_eq!(upd["service"]["deployments"][0]["status"], "PRIMARY");
    ecs(&[
        "wait",
        "services-stable",
        "--cluster",
        cl,
        "--services",
        "web",
    ]);
    let deployments = ecs(&[
        "describe-services",
        "--cluster",
        cl,
        "--services",
        "web",
        "--query",
        "services[0].deployments",
    ]);
    let deps = deployments.as_array().unwrap();
    assert_eq!(deps.len(), 1, "{deployments}");
    let dep = &deps[0];
    assert_eq!(dep["status"], "PRIMARY");
    assert_eq!(dep["rolloutState"], "COMPLETED");
    assert_eq!(
        (dep["desiredCount"].as_i64(), dep["runningCount"].as_i64()),
        (Some(2), Some(2))
    );
    assert!(dep["taskDefinition"]
        .as_str()
        .unwrap()
        .ends_with("task-definition/journey-web:2"));
    assert!(dep["createdAt"].is_number() && dep["id"].as_str().unwrap().starts_with("ecs-svc/"));
    let now = arns(
        &ecs(&["list-tasks", "--cluster", cl, "--service-name", "web"]),
        "taskArns",
    );
    let d = ecs(&[
        "describe-tasks",
        "--cluster",
        cl,
        "--tasks",
        &now[0],
        &now[1],
    ]);
    for t in d["tasks"].as_array().unwrap() {
        assert!(
            t["taskDefinitionArn"].as_str().unwrap().ends_with(":2"),
            "{t}"
        );
    }

    // Deleted with force, inactive, then the cluster goes once its last task has stopped.
    let del = ecs(&[
        "delete-service",
        "--cluster",
        cl,
        "--service",
        "web",
        "--force",
    ]);
    assert_eq!(del["service"]["status"], "DRAINING");
    ecs(&[
        "wait",
        "services-inactive",
        "--cluster",
        cl,
        "--services",
        "web",
    ]);
    let r = aws(http, &c, &["delete-cluster", "--cluster", cl]);
    assert!(
        !r.ok && r.stderr.contains("ClusterContainsTasksException"),
        "{}",
        r.stderr
    );
    ecs(&["stop-task", "--cluster", cl, "--task", &task]);
    ecs(&["wait", "tasks-stopped", "--cluster", cl, "--tasks", &task]);
    let deleted = ecs(&["delete-cluster", "--cluster", cl]);
    assert_eq!(deleted["cluster"]["status"], "INACTIVE");
    let left = ecs(&["list-clusters"]);
    assert!(!arns(&left, "clusterArns").iter().any(|a| a.ends_with(cl)));
}

#[test]
fn container_instances_attributes_overrides_and_start_task_through_aws_ecs() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = unique_cluster("ecs-ci");
    let _cleanup = ContainerCleanup {
        cluster: cluster.clone(),
    };
    let dev = ServerProcess::start_with("dev", dir.path(), FAST);
    let http = dev.http.as_str();
    let c = Creds::default();
    let ecs = |args: &[&str]| aws_ok(http, &c, args);
    let cl = cluster.as_str();
    ecs(&["create-cluster", "--cluster-name", cl]);
    let def = json!({"family": "ci-web", "containerDefinitions": [{"name": "web",
        "image": "berth-demo:latest", "memory": 32, "portMappings": [{"containerPort": 80}],
        "environment": [{"name": "MESSAGE", "value": "from the definition"}], "stopTimeout": 5}]});
    ecs(&[
        "register-task-definition",
        "--cli-input-json",
        &def.to_string(),
    ]);

    // The local agent's node, under this cluster's name.
    let listed = ecs(&["list-container-instances", "--cluster", cl]);
    let instances = arns(&listed, "containerInstanceArns");
    assert_eq!(instances.len(), 1, "{listed}");
    let ci = instances[0].clone();
    assert!(
        ci.contains(&format!(":container-instance/{cluster}/")),
        "{ci}"
    );
    let d = ecs(&[
        "describe-container-instances",
        "--cluster",
        cl,
        "--container-instances",
        &ci,
    ]);
    let node = &d["containerInstances"][0];
    assert_eq!(node["status"], "ACTIVE");
    assert_eq!(node["agentConnected"], true);
    assert!(node["registeredResources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "MEMORY" && r["integerValue"].as_i64() > Some(0)));

    // A custom attribute: listed, filtered on, and required by a placement constraint.
    ecs(&[
        "put-attributes",
        "--cluster",
        cl,
        "--attributes",
        &format!("name=stack,value=blue,targetId={ci}"),
    ]);
    let attrs = ecs(&[
        "list-attributes",
        "--cluster",
        cl,
        "--target-type",
        "container-instance",
        "--attribute-name",
        "stack",
    ]);
    assert_eq!(attrs["attributes"][0]["value"], "blue", "{attrs}");
    let blue = ecs(&[
        "list-container-instances",
        "--cluster",
        cl,
        "--filter",
        "attribute:stack == blue",
    ]);
    assert_eq!(arns(&blue, "containerInstanceArns").len(), 1);
    let green = ecs(&[
        "list-container-instances",
        "--cluster",
        cl,
        "--filter",
        "attribute:stack == green",
    ]);
    assert_eq!(arns(&green, "containerInstanceArns").len(), 0);
    let refused = ecs(&[
        "run-task",
        "--cluster",
        cl,
        "--task-definition",
        "ci-web",
        "--placement-constraints",
        "type=memberOf,expression=attribute:stack == green",
    ]);
    assert_eq!(refused["tasks"], json!([]));
    assert_eq!(refused["failures"][0]["reason"], "MEMBER_OF", "{refused}");

    // StartTask on the named instance, with an environment override the container sees.
    let overrides = json!({"containerOverrides": [{"name": "web",
        "environment": [{"name": "MESSAGE", "value": "from the override"}]}]});
    let started = ecs(&[
        "start-task",
        "--cluster",
        cl,
        "--task-definition",
        "ci-web",
        "--container-instances",
        &ci,
        "--overrides",
        &overrides.to_string(),
        "--tags",
        "key=owner,value=test",
        "--started-by",
        "ci-test",
    ]);
    let task = started["tasks"][0]["taskArn"].as_str().unwrap().to_string();
    assert_eq!(started["tasks"][0]["containerInstanceArn"], ci.as_str());
    assert_eq!(started["tasks"][0]["overrides"], overrides);
    ecs(&["wait", "tasks-running", "--cluster", cl, "--tasks", &task]);
    let t = ecs(&[
        "describe-tasks",
        "--cluster",
        cl,
        "--tasks",
        &task,
        "--include",
        "TAGS",
    ]);
    assert_eq!(
        t["tasks"][0]["tags"],
        json!([{"key": "owner", "value": "test"}])
    );
    let port = t["tasks"][0]["containers"][0]["networkBindings"][0]["hostPort"]
        .as_u64()
        .unwrap() as u16;
    let (_, body) = wait_for(Duration::from_secs(20), "the task to answer", || {
        http_get(port, "/").filter(|(s, _)| *s == 200)
    });
    assert!(body.contains("from the override"), "{body}");
    let on_node = ecs(&["list-tasks", "--cluster", cl, "--container-instance", &ci]);
    assert_eq!(arns(&on_node, "taskArns"), vec![task.clone()]);
    let mine = ecs(&["list-tasks", "--cluster", cl, "--started-by", "ci-test"]);
    assert_eq!(arns(&mine, "taskArns"), vec![task.clone()]);
    let others = ecs(&[
        "list-tasks",
        "--cluster",
        cl,
        "--started-by",
        "someone-else",
    ]);
    assert_eq!(arns(&others, "taskArns"), Vec::<String>::new());

    // Draining and back; a node with a task is not deregistered without force.
    let drained = ecs(&[
        "update-container-instances-state",
        "--cluster",
        cl,
        "--container-instances",
        &ci,
        "--status",
        "DRAINING",
    ]);
    assert_eq!(drained["containerInstances"][0]["status"], "DRAINING");
    let active = ecs(&[
        "update-container-instances-state",
        "--cluster",
        cl,
        "--container-instances",
        &ci,
        "--status",
        "ACTIVE",
    ]);
    assert_eq!(active["containerInstances"][0]["status"], "ACTIVE");
    let r = aws(
        http,
        &c,
        &[
            "deregister-container-instance",
            "--cluster",
            cl,
            "--container-instance",
            &ci,
        ],
    );
    assert!(
        !r.ok && r.stderr.contains("InvalidParameterException"),
        "{}",
        r.stderr
    );
    ecs(&[
        "delete-attributes",
        "--cluster",
        cl,
        "--attributes",
        &format!("name=stack,targetId={ci}"),
    ]);
    let attrs = ecs(&[
        "list-attributes",
        "--cluster",
        cl,
        "--target-type",
        "container-instance",
        "--attribute-name",
        "stack",
    ]);
    assert_eq!(attrs["attributes"], json!([]));
    ecs(&["stop-task", "--cluster", cl, "--task", &task]);
    ecs(&["wait", "tasks-stopped", "--cluster", cl, "--tasks", &task]);
}
