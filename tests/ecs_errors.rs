//! ECS's errors, exactly, through boto3 against `berth server`: each bad call answers the
//! exception type and message ECS gives (the cluster is checked before anything in it), and
//! nothing is written (each case reads back). Also what a create received is echoed back, an
//! empty `tags` is left out, and `compatibilities` is derived as ECS derives it.

mod common;

use common::aws::*;
use common::*;
use serde_json::{json, Value};

const PROGRAM: &str = r#"
import boto3, json, os
from botocore.exceptions import ClientError
ecs = boto3.client("ecs", endpoint_url=os.environ["ENDPOINT"])
def err(f):
    try:
        f()
        return None
    except ClientError as e:
        return [e.response["Error"]["Code"], e.response["Error"]["Message"]]
out = {"errors": {}, "after": {}}
E = out["errors"]
made = ecs.create_cluster(clusterName="real")
out["before"] = {"clusters": sorted(ecs.list_clusters()["clusterArns"])}
out["cluster_has_tags"] = "tags" in made["cluster"]
good = ecs.register_task_definition(family="good", containerDefinitions=[
    {"name": "web", "image": "berth-demo:latest", "memory": 32,
     "logConfiguration": {"logDriver": "json-file", "options": {"max-size": "1m"}}}],
    requiresCompatibilities=["EC2"],
    placementConstraints=[{"type": "memberOf", "expression": "attribute:zone == a"}])
out["register_has_tags"] = "tags" in good
out["good"] = good["taskDefinition"]
out["good_described"] = ecs.describe_task_definition(taskDefinition="good:1")["taskDefinition"]
out["fargate"] = ecs.register_task_definition(family="fg", networkMode="awsvpc", cpu="256",
    memory="512", containerDefinitions=[{"name": "web", "image": "berth-demo:latest"}]
    )["taskDefinition"]
out["host"] = ecs.register_task_definition(family="hostnet", networkMode="host",
    containerDefinitions=[{"name": "web", "image": "berth-demo:latest", "memory": 32}]
    )["taskDefinition"]

# An unknown cluster, before any service, task, task definition or instance is looked up.
nope = dict(cluster="nope")
E["describe_services"] = err(lambda: ecs.describe_services(services=["web"], **nope))
E["list_services"] = err(lambda: ecs.list_services(**nope))
E["create_service"] = err(lambda: ecs.create_service(serviceName="web",
    taskDefinition="missing:1", desiredCount=0, **nope))
E["update_service"] = err(lambda: ecs.update_service(service="missing", desiredCount=1, **nope))
E["delete_service"] = err(lambda: ecs.delete_service(service="missing", **nope))
E["run_task"] = err(lambda: ecs.run_task(taskDefinition="missing", **nope))
E["start_task"] = err(lambda: ecs.start_task(taskDefinition="missing",
    containerInstances=["0123"], **nope))
E["stop_task"] = err(lambda: ecs.stop_task(task="0123", **nope))
E["describe_tasks"] = err(lambda: ecs.describe_tasks(tasks=["0123"], **nope))
E["list_tasks"] = err(lambda: ecs.list_tasks(**nope))
E["list_container_instances"] = err(lambda: ecs.list_container_instances(**nope))
E["describe_container_instances"] = err(lambda: ecs.describe_container_instances(
    containerInstances=["0123"], **nope))
E["update_container_instances_state"] = err(lambda: ecs.update_container_instances_state(
    containerInstances=["0123"], status="DRAINING", **nope))
E["list_service_deployments"] = err(lambda: ecs.list_service_deployments(service="web", **nope))
out["after"]["clusters"] = sorted(ecs.list_clusters()["clusterArns"])

# An unknown service in a known cluster.
real = dict(cluster="real")
E["update_unknown_service"] = err(lambda: ecs.update_service(service="missing",
    desiredCount=1, **real))
E["delete_unknown_service"] = err(lambda: ecs.delete_service(service="missing", **real))
E["revision_missing"] = err(lambda: ecs.describe_task_definition(taskDefinition="good:9"))
E["service_revision_missing"] = err(lambda: ecs.create_service(serviceName="web",
    taskDefinition="good:9", desiredCount=0, **real))
E["run_revision_missing"] = err(lambda: ecs.run_task(taskDefinition="good:9", **real))
E["pause_at_shift"] = err(lambda: ecs.create_service(serviceName="paused", taskDefinition="good:1",
    desiredCount=0, deploymentConfiguration={"strategy": "BLUE_GREEN", "lifecycleHooks": [
        {"targetType": "PAUSE", "lifecycleStages": ["PRODUCTION_TRAFFIC_SHIFT"],
         "timeoutConfiguration": {"timeoutInMinutes": 30, "action": "CONTINUE"}}]}, **real))
out["after"]["services"] = ecs.list_services(**real)["serviceArns"]
out["after"]["tasks"] = ecs.list_tasks(**real)["taskArns"]

# Container definitions ECS refuses with ClientException.
E["no_name"] = err(lambda: ecs.register_task_definition(family="bad",
    containerDefinitions=[{"image": "berth-demo:latest", "memory": 32}]))
E["no_image"] = err(lambda: ecs.register_task_definition(family="bad",
    containerDefinitions=[{"name": "web", "memory": 32}]))
E["no_memory"] = err(lambda: ecs.register_task_definition(family="bad",
    requiresCompatibilities=["EC2"],
    containerDefinitions=[{"name": "web", "image": "berth-demo:latest"}]))
out["after"]["families"] = ecs.list_task_definition_families(familyPrefix="bad")["families"]

svc = ecs.create_service(serviceName="echo", taskDefinition="good:1", desiredCount=0,
    role="arn:aws:iam::000000000000:role/ecsServiceRole", **real)
out["service_has_tags"] = "tags" in svc["service"]
out["service_role"] = svc["service"].get("roleArn")
out["service_role_described"] = ecs.describe_services(services=["echo"], **real
    )["services"][0].get("roleArn")
deps = ecs.list_service_deployments(service="echo", **real)["serviceDeployments"]
rev_arn = deps[0]["targetServiceRevisionArn"]
described = ecs.describe_service_deployments(serviceDeploymentArns=[deps[0]["serviceDeploymentArn"]])
out["same_revision"] = described["serviceDeployments"][0]["targetServiceRevision"]["arn"] == rev_arn
revs = ecs.describe_service_revisions(serviceRevisionArns=[rev_arn, rev_arn[:-3] + "zzz"])
out["revision"] = revs["serviceRevisions"]
out["revision_failures"] = revs["failures"]
E["revision_unknown_cluster"] = err(lambda: ecs.describe_service_revisions(
    serviceRevisionArns=[rev_arn.replace("/real/", "/nope/")]))
dep_arn = deps[0]["serviceDeploymentArn"]
E["continue_unknown_cluster"] = err(lambda: ecs.continue_service_deployment(
    serviceDeploymentArn=dep_arn.replace("/real/", "/nope/"), hookId="pause-0-POST_SCALE_UP-0"))
E["stop_unknown_cluster"] = err(lambda: ecs.stop_service_deployment(
    serviceDeploymentArn=dep_arn.replace("/real/", "/nope/")))
E["continue_unknown_deployment"] = err(lambda: ecs.continue_service_deployment(
    serviceDeploymentArn=dep_arn[:-3] + "zzz", hookId="pause-0-POST_SCALE_UP-0"))
E["continue_unknown_hook"] = err(lambda: ecs.continue_service_deployment(
    serviceDeploymentArn=dep_arn, hookId="pause-0-POST_SCALE_UP-0", action="ROLLBACK"))
print(json.dumps(out, default=str))
"#;

#[test]
fn ecs_errors_carry_ecs_types_and_messages_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let srv = ServerProcess::start_with("server", dir.path(), &["--insecure", "--no-proxy"]);
    let out: Value = boto3(&srv.http, &Creds::default(), PROGRAM);
    let errors = &out["errors"];
    let cluster_not_found = json!(["ClusterNotFoundException", "Cluster not found."]);
    let service_not_found = json!(["ServiceNotFoundException", "Service not found."]);
    let revision_missing = json!(["ClientException", "Revision is missing."]);
    let table: &[(&str, &Value)] = &[
        ("describe_services", &cluster_not_found),
        ("list_services", &cluster_not_found),
        ("create_service", &cluster_not_found),
        ("update_service", &cluster_not_found),
        ("delete_service", &cluster_not_found),
        ("run_task", &cluster_not_found),
        ("start_task", &cluster_not_found),
        ("stop_task", &cluster_not_found),
        ("describe_tasks", &cluster_not_found),
        ("list_tasks", &cluster_not_found),
        ("list_container_instances", &cluster_not_found),
        ("describe_container_instances", &cluster_not_found),
        ("update_container_instances_state", &cluster_not_found),
        ("list_service_deployments", &cluster_not_found),
        ("revision_unknown_cluster", &cluster_not_found),
        ("continue_unknown_cluster", &cluster_not_found),
        ("stop_unknown_cluster", &cluster_not_found),
        ("update_unknown_service", &service_not_found),
        ("delete_unknown_service", &service_not_found),
        ("revision_missing", &revision_missing),
        ("service_revision_missing", &revision_missing),
        ("run_revision_missing", &revision_missing),
    ];
    let client = |m: &str| json!(["ClientException", m]);
    let refused = [
        (
            "no_name",
            client("Container.name should not be null or empty."),
        ),
        (
            "no_image",
            client("Container.image should not be null or empty."),
        ),
        (
            "no_memory",
            client("Invalid setting for container 'web'. At least one of 'memory' or 'memoryReservation' must be specified."),
        ),
    ];
    let mut wrong = Vec::new();
    for (case, want) in table
        .iter()
        .map(|(c, w)| (*c, (*w).clone()))
        .chain(refused.iter().map(|(c, w)| (*c, w.clone())))
    {
        if errors[case] != want {
            wrong.push(format!("{case}: got {}, want {want}", errors[case]));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // Nothing was written by any refused call.
    let after = &out["after"];
    assert_eq!(after["clusters"], out["before"]["clusters"]);
    assert!(!after["clusters"].to_string().contains("/nope"));
    assert_eq!(after["services"], json!([]));
    assert_eq!(after["tasks"], json!([]));
    assert_eq!(after["families"], json!([]));

    // No tags given: no `tags` in the reply.
    assert_eq!(out["cluster_has_tags"], false);
    assert_eq!(out["register_has_tags"], false);
    assert_eq!(out["service_has_tags"], false);

    // What the create received is echoed, on register and on describe.
    for td in [&out["good"], &out["good_described"]] {
        assert_eq!(td["requiresCompatibilities"], json!(["EC2"]), "{td}");
        assert_eq!(
            td["placementConstraints"],
            json!([{"type": "memberOf", "expression": "attribute:zone == a"}]),
            "{td}"
        );
        assert_eq!(
            td["containerDefinitions"][0]["logConfiguration"],
            json!({"logDriver": "json-file", "options": {"max-size": "1m"}}),
            "{td}"
        );
    }
    assert_eq!(
        out["service_role"],
        "arn:aws:iam::000000000000:role/ecsServiceRole"
    );
    assert_eq!(out["service_role_described"], out["service_role"]);

    // ContinueServiceDeployment: a deployment that is not there, a hook that does not wait.
    assert_eq!(
        errors["continue_unknown_deployment"][0],
        "ServiceDeploymentNotFoundException"
    );
    assert_eq!(
        errors["continue_unknown_hook"][0],
        "InvalidParameterException"
    );
    assert!(
        errors["continue_unknown_hook"][1]
            .as_str()
            .is_some_and(|m| m.contains("hookId") && m.contains("none awaits")),
        "{}",
        errors["continue_unknown_hook"]
    );

    // A PAUSE hook where ECS allows none: named, and the service not made.
    assert_eq!(errors["pause_at_shift"][0], "InvalidParameterException");
    assert!(
        errors["pause_at_shift"][1]
            .as_str()
            .is_some_and(|m| m.contains("lifecycleHooks[0].lifecycleStages[0]")
                && m.contains("PAUSE hooks cannot run at PRODUCTION_TRAFFIC_SHIFT")),
        "{}",
        errors["pause_at_shift"]
    );

    // The revision a deployment names resolves, with what it runs.
    assert_eq!(out["same_revision"], true);
    let rev = &out["revision"][0];
    assert!(
        rev["taskDefinition"]
            .as_str()
            .is_some_and(|t| t.ends_with("task-definition/good:1")),
        "{rev}"
    );
    assert_eq!(
        rev["containerImages"],
        json!([{"containerName": "web", "image": "berth-demo:latest"}])
    );
    assert_eq!(out["revision_failures"][0]["reason"], "MISSING");

    // compatibilities as ECS derives them: EC2 always; EXTERNAL outside awsvpc; FARGATE for an
    // awsvpc definition with task-level cpu and memory.
    let set = |v: &Value| {
        let mut s: Vec<String> = v
            .as_array()
            .unwrap_or_else(|| panic!("no compatibilities: {v}"))
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect();
        s.sort();
        s
    };
    assert_eq!(set(&out["good"]["compatibilities"]), ["EC2", "EXTERNAL"]);
    assert_eq!(set(&out["host"]["compatibilities"]), ["EC2", "EXTERNAL"]);
    assert_eq!(set(&out["fargate"]["compatibilities"]), ["EC2", "FARGATE"]);
}

const ACCOUNT_PROGRAM: &str = r#"
import boto3, json, os
from botocore.exceptions import ClientError
ecs = boto3.client("ecs", endpoint_url=os.environ["ENDPOINT"])
def err(f):
    try:
        f()
        return None
    except ClientError as e:
        return [e.response["Error"]["Code"], e.response["Error"]["Message"]]
role = "arn:aws:iam::000000000000:role/deployer"
out = {}
out["default"] = ecs.put_account_setting_default(name="containerInsights", value="enabled")["setting"]
out["own"] = ecs.put_account_setting(name="awsvpcTrunking", value="enabled", principalArn=role)["setting"]
out["listed_role"] = ecs.list_account_settings(principalArn=role)["settings"]
out["effective_role"] = ecs.list_account_settings(principalArn=role, name="containerInsights",
    effectiveSettings=True)["settings"]
out["effective_all"] = len(ecs.list_account_settings(effectiveSettings=True, maxResults=10)["settings"])
out["paged"] = sum(len(p["settings"]) for p in ecs.get_paginator("list_account_settings").paginate(
    effectiveSettings=True, PaginationConfig={"PageSize": 5}))
out["deleted"] = ecs.delete_account_setting(name="awsvpcTrunking", principalArn=role)["setting"]
out["after_delete"] = ecs.list_account_settings(principalArn=role)["settings"]
out["bad_name"] = err(lambda: ecs.put_account_setting(name="nonsense", value="enabled"))
out["bad_value"] = err(lambda: ecs.put_account_setting(name="containerInsights", value="sometimes"))
out["after_bad"] = ecs.list_account_settings(name="containerInsights", effectiveSettings=True)["settings"]
print(json.dumps(out, default=str))
"#;

#[test]
fn account_settings_are_stored_echoed_and_effective() {
    let dir = tempfile::tempdir().unwrap();
    let srv = ServerProcess::start_with("server", dir.path(), &["--insecure", "--no-proxy"]);
    let out: Value = boto3(&srv.http, &Creds::default(), ACCOUNT_PROGRAM);
    let root = "arn:aws:iam::000000000000:root";
    let role = "arn:aws:iam::000000000000:role/deployer";
    assert_eq!(
        out["default"],
        json!({"name": "containerInsights", "value": "enabled", "principalArn": root, "type": "user"})
    );
    assert_eq!(
        out["own"],
        json!({"name": "awsvpcTrunking", "value": "enabled", "principalArn": role, "type": "user"})
    );
    // Not effective: only what the role set itself.
    assert_eq!(out["listed_role"], json!([out["own"]]));
    // Effective: the account default applies to the role.
    assert_eq!(
        out["effective_role"],
        json!([{"name": "containerInsights", "value": "enabled", "principalArn": role, "type": "user"}])
    );
    assert_eq!(out["effective_all"], 10);
    assert_eq!(out["paged"], 12);
    assert_eq!(out["deleted"], out["own"]);
    assert_eq!(out["after_delete"], json!([]));
    assert_eq!(out["bad_name"][0], "InvalidParameterException");
    assert_eq!(out["bad_value"][0], "InvalidParameterException");
    assert!(
        out["bad_value"][1].as_str().unwrap().contains("enhanced"),
        "{}",
        out["bad_value"]
    );
    assert_eq!(out["after_bad"][0]["value"], "enabled");
}
