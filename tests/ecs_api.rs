//! The ECS wire API without containers, through the real aws CLI and boto3 and raw AWS JSON 1.1:
//! the protocol's errors, pagination over 150 task definitions, tags, ECS's exception names, and
//! SigV4 under `berth server` (a wrong secret and a read-only key refused, changing nothing).

mod common;

use common::aws::*;
use common::*;
use serde_json::{json, Value};

/// `berth server --insecure`: auth off, no agent, no Docker needed.
fn open_server(dir: &std::path::Path) -> ServerProcess {
    ServerProcess::start_with("server", dir, &["--insecure", "--no-proxy"])
}

fn web_def(family: &str) -> String {
    json!({
        "family": family,
        "containerDefinitions": [{"name": "web", "image": "berth-demo:latest", "memory": 32,
            "portMappings": [{"containerPort": 80}]}],
        "executionRoleArn": "arn:aws:iam::000000000000:role/ecsTaskExecutionRole",
        "requiresCompatibilities": ["EC2"],
    })
    .to_string()
}

#[test]
fn protocol_errors_are_400s_with_ecs_exception_names_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let srv = open_server(dir.path());
    let http = srv.http.as_str();

    // A malformed body.
    let (status, head, body) = ecs_call(http, "CreateCluster", "{\"clusterName\": ");
    assert_eq!(status, 400, "{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/x-amz-json-1.1"),
        "{head}"
    );
    assert_eq!(body["__type"], "InvalidParameterException");
    assert!(body["message"].as_str().unwrap().contains("request body"));

    // A field of the wrong type, and a missing required one: each named.
    let (status, _, body) = ecs_call(http, "CreateCluster", r#"{"clusterName": 7}"#);
    assert_eq!(
        (status, body["__type"].as_str()),
        (400, Some("InvalidParameterException"))
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("clusterName:"),
        "{body}"
    );
    let (status, _, body) = ecs_call(http, "DescribeServices", r#"{"cluster": "default"}"#);
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().unwrap().starts_with("services:"),
        "{body}"
    );
    let (status, _, body) = ecs_call(http, "CreateService", r#"{"taskDefinition": "web"}"#);
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("serviceName:"),
        "{body}"
    );

    // Unknown operations, other services' calls and no target at all: answered, never hung.
    let (status, _, body) = ecs_call(http, "FrobnicateClusters", "{}");
    assert_eq!(
        (status, body["__type"].as_str()),
        (400, Some("UnknownOperationException"))
    );
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("FrobnicateClusters"));
    let (status, _, body) = ecs_call(http, "CreateDaemon", "{}");
    assert_eq!(
        (status, body["__type"].as_str()),
        (400, Some("UnsupportedFeatureException"))
    );
    let (status, _, text) = post(
        http,
        &[
            ("X-Amz-Target", "Logs_20140328.PutLogEvents"),
            ("Content-Type", "application/x-amz-json-1.1"),
        ],
        b"{}",
    );
    assert_eq!(status, 400);
    assert!(text.contains("another AWS service"), "{text}");
    let (status, _, text) = post(
        http,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"Action=DescribeInstances&Version=2016-11-15",
    );
    assert_eq!(status, 400);
    assert!(text.contains("<Code>InvalidAction</Code>"), "{text}");
    let (status, _, text) = post(
        http,
        &[("Content-Type", "application/x-amz-json-1.1")],
        b"{}",
    );
    assert_eq!(status, 400);
    assert!(text.contains("X-Amz-Target is required"), "{text}");

    // Refused requests wrote nothing: a bad definition registered no revision, a bad cluster
    // name made no cluster, a service on a missing definition made no service.
    let bad = r#"{"family": "bad", "containerDefinitions": [{"name": "web", "image": "x",
        "memory": 32, "portMappings": [{"containerPort": 70000}]}]}"#;
    let (status, _, body) = ecs_call(http, "RegisterTaskDefinition", bad);
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("containerDefinitions[0].portMappings[0].containerPort"),
        "{body}"
    );
    let (_, _, body) = ecs_call(http, "CreateCluster", r#"{"clusterName": "no spaces"}"#);
    assert_eq!(body["__type"], "InvalidParameterException");
    let (_, _, body) = ecs_call(
        http,
        "CreateService",
        r#"{"serviceName": "ghost", "taskDefinition": "missing:1", "desiredCount": 1}"#,
    );
    assert_eq!(body["__type"], "ClientException", "{body}");
    let (_, _, body) = ecs_call(http, "ListTaskDefinitionFamilies", r#"{"status": "ALL"}"#);
    assert_eq!(body["families"], json!([]));
    let (_, _, body) = ecs_call(http, "ListClusters", "{}");
    assert_eq!(body["clusterArns"].as_array().unwrap().len(), 1, "{body}");
    let (_, _, body) = ecs_call(http, "ListServices", "{}");
    assert_eq!(body["serviceArns"], json!([]));
    // GET / is still the console.
    let port: u16 = http.rsplit(':').next().unwrap().parse().unwrap();
    let (status, page) = http_get(port, "/").unwrap();
    assert_eq!(status, 200);
    assert!(
        page.contains("<html") || page.contains("<!doctype"),
        "{page}"
    );
    assert!(!srv.log().contains("panicked"), "{}", srv.log());
}

#[test]
fn the_aws_cli_pages_through_150_task_definitions_and_shapes_follow_ecs() {
    let dir = tempfile::tempdir().unwrap();
    let srv = open_server(dir.path());
    let creds = Creds::default();
    // 150 registrations in one boto3 process (150 CLI starts would take minutes).
    let defs = boto3(
        &srv.http,
        &creds,
        r#"
import boto3, json, os
ecs = boto3.client("ecs", endpoint_url=os.environ["ENDPOINT"])
for i in range(150):
    ecs.register_task_definition(family="paged", containerDefinitions=[
        {"name": "web", "image": "berth-demo:latest", "memory": 32}])
print(json.dumps({"n": 150}))
"#,
    );
    assert_eq!(defs["n"], 150);
    // The CLI's auto-pagination: pages of 100 followed by nextToken until all 150 are out.
    let all = aws_ok(
        &srv.http,
        &creds,
        &["list-task-definitions", "--family-prefix", "paged"],
    );
    let arns = all["taskDefinitionArns"].as_array().unwrap();
    assert_eq!(arns.len(), 150);
    assert_eq!(
        arns[149],
        "arn:aws:ecs:us-east-1:000000000000:task-definition/paged:150"
    );
    let unique: std::collections::HashSet<&str> =
        arns.iter().map(|a| a.as_str().unwrap()).collect();
    assert_eq!(unique.len(), 150, "pages overlap");
    // Small pages walk the same list; DESC starts from the newest.
    let small = aws_ok(
        &srv.http,
        &creds,
        &[
            "list-task-definitions",
            "--family-prefix",
            "paged",
            "--page-size",
            "7",
            "--sort",
            "DESC",
        ],
    );
    let small = small["taskDefinitionArns"].as_array().unwrap();
    assert_eq!(small.len(), 150);
    assert!(small[0].as_str().unwrap().ends_with("paged:150"));
    // A bad nextToken is refused, naming it.
    let r = aws(
        &srv.http,
        &creds,
        &["list-task-definitions", "--starting-token", "nope"],
    );
    assert!(!r.ok);

    // Shapes: epoch-second timestamps, echoed AWS-only fields, tags on request.
    let reg = aws_ok(
        &srv.http,
        &creds,
        &[
            "register-task-definition",
            "--cli-input-json",
            &web_def("shaped"),
            "--tags",
            "key=team,value=web",
        ],
    );
    let td = &reg["taskDefinition"];
    assert!(td["registeredAt"].is_number(), "{td}");
    assert_eq!(
        td["executionRoleArn"],
        "arn:aws:iam::000000000000:role/ecsTaskExecutionRole"
    );
    assert_eq!(td["requiresCompatibilities"], json!(["EC2"]));
    let d = aws_ok(
        &srv.http,
        &creds,
        &[
            "describe-task-definition",
            "--task-definition",
            "shaped",
            "--include",
            "TAGS",
        ],
    );
    assert_eq!(d["tags"], json!([{"key": "team", "value": "web"}]));
    let fams = aws_ok(&srv.http, &creds, &["list-task-definition-families"]);
    assert_eq!(fams["families"], json!(["paged", "shaped"]));

    // Deregistered, then deleted: DELETE_IN_PROGRESS, then gone since nothing uses it.
    aws_ok(
        &srv.http,
        &creds,
        &[
            "deregister-task-definition",
            "--task-definition",
            "shaped:1",
        ],
    );
    let del = aws_ok(
        &srv.http,
        &creds,
        &["delete-task-definitions", "--task-definitions", "shaped:1"],
    );
    assert_eq!(
        del["taskDefinitions"][0]["status"], "DELETE_IN_PROGRESS",
        "{del}"
    );
    let left = aws_ok(
        &srv.http,
        &creds,
        &[
            "list-task-definitions",
            "--family-prefix",
            "shaped",
            "--status",
            "DELETE_IN_PROGRESS",
        ],
    );
    assert_eq!(left["taskDefinitionArns"], json!([]));
    let r = aws(
        &srv.http,
        &creds,
        &["describe-task-definition", "--task-definition", "shaped:1"],
    );
    assert!(r.stderr.contains("ClientException"), "{}", r.stderr);
}

/// The boto3 program of `boto3_with_keys`: each observation a field of the JSON it prints.
const BOTO3_PROGRAM: &str = r#"
import boto3, json, os
from botocore.exceptions import ClientError
def client(key, secret):
    return boto3.client("ecs", endpoint_url=os.environ["ENDPOINT"], region_name="eu-west-1",
                        aws_access_key_id=key, aws_secret_access_key=secret)
rw = client(os.environ["RW_ID"], os.environ["RW_SECRET"])
ro = client(os.environ["RO_ID"], os.environ["RO_SECRET"])
bad = client(os.environ["RW_ID"], "wrong" + os.environ["RW_SECRET"][5:])
def err(f):
    try:
        f()
        return None
    except ClientError as e:
        return {"code": e.response["Error"]["Code"], "message": e.response["Error"]["Message"],
                "status": e.response["ResponseMetadata"]["HTTPStatusCode"]}
out = {}
c = rw.create_cluster(clusterName="shop", tags=[{"key": "env", "value": "test"}])["cluster"]
out["cluster_arn"] = c["clusterArn"]
rw.tag_resource(resourceArn=c["clusterArn"], tags=[{"key": "team", "value": "a"}])
rw.untag_resource(resourceArn=c["clusterArn"], tagKeys=["env"])
out["tags"] = rw.list_tags_for_resource(resourceArn=c["clusterArn"])["tags"]
for i in range(25):
    rw.register_task_definition(family="shop-web", containerDefinitions=[
        {"name": "web", "image": "berth-demo:latest", "memory": 32}])
pages = list(rw.get_paginator("list_task_definitions").paginate(
    familyPrefix="shop-web", PaginationConfig={"PageSize": 10}))
out["pages"] = [len(p["taskDefinitionArns"]) for p in pages]
svc = rw.create_service(cluster="shop", serviceName="web", taskDefinition="shop-web:25",
                        desiredCount=0, tags=[{"key": "tier", "value": "front"}])["service"]
out["service_tags"] = rw.list_tags_for_resource(resourceArn=svc["serviceArn"])["tags"]
out["unknown_cluster"] = err(lambda: rw.describe_services(cluster="nope", services=["web"]))
out["unknown_service"] = err(lambda: rw.update_service(cluster="shop", service="nope", desiredCount=1))
out["cluster_with_services"] = err(lambda: rw.delete_cluster(cluster="shop"))
out["bad_definition"] = err(lambda: rw.register_task_definition(family="bad", containerDefinitions=[
    {"name": "web", "image": "x", "memory": 32, "portMappings": [{"containerPort": 70000}]}]))
out["missing_service"] = rw.describe_services(cluster="shop", services=["nope"])["failures"]
rw.update_cluster_settings(cluster="shop", settings=[{"name": "containerInsights", "value": "enabled"}])
described = rw.describe_clusters(clusters=["shop"], include=["SETTINGS", "STATISTICS"])["clusters"][0]
out["settings"] = described["settings"]
out["statistics"] = {s["name"]: s["value"] for s in described["statistics"]}
deps = rw.list_service_deployments(cluster="shop", service="web")["serviceDeployments"]
out["deployment_status"] = [d["status"] for d in deps]
described = rw.describe_service_deployments(serviceDeploymentArns=[d["serviceDeploymentArn"] for d in deps])
out["deployment_target"] = [d["targetServiceRevision"]["requestedTaskCount"] for d in described["serviceDeployments"]]
out["deployment_same"] = [d["serviceDeploymentArn"] for d in described["serviceDeployments"]] == [d["serviceDeploymentArn"] for d in deps]
out["updated"] = rw.update_service(cluster="shop", service="web", desiredCount=0,
    placementStrategy=[{"type": "spread", "field": "instanceId"}])["service"]["placementStrategy"]
out["bad_strategy"] = err(lambda: rw.update_service(cluster="shop", service="web",
    placementStrategy=[{"type": "spread", "field": "nonsense"}]))
out["canary_without_lb"] = err(lambda: rw.update_service(cluster="shop", service="web",
    deploymentConfiguration={"strategy": "CANARY",
                             "canaryConfiguration": {"canaryPercent": 10.0, "canaryBakeTimeInMinutes": 5}}))
out["hook_not_http"] = err(lambda: rw.update_service(cluster="shop", service="web",
    deploymentConfiguration={"strategy": "LINEAR",
                             "linearConfiguration": {"stepPercent": 25.0, "stepBakeTimeInMinutes": 1},
                             "lifecycleHooks": [{"hookTargetArn": "arn:aws:lambda:eu-west-1:1:function:f",
                                                 "lifecycleStages": ["POST_SCALE_UP"]}]}))
out["strategy_after"] = rw.describe_services(cluster="shop", services=["web"])["services"][0]["deploymentConfiguration"].get("strategy")
out["stop_done"] = err(lambda: rw.stop_service_deployment(
    serviceDeploymentArn=deps[0]["serviceDeploymentArn"], stopType="ROLLBACK"))
out["by_arn"] = [s["serviceName"] for s in rw.describe_services(
    cluster=c["clusterArn"], services=[svc["serviceArn"]])["services"]]
out["ro_list"] = ro.list_clusters()["clusterArns"]
out["ro_create"] = err(lambda: ro.create_cluster(clusterName="ro-made"))
out["wrong_secret"] = err(lambda: bad.create_cluster(clusterName="bad-made"))
out["after"] = sorted(rw.list_clusters()["clusterArns"])
rw.delete_service(cluster="shop", service="web", force=True)
rw.get_waiter("services_inactive").wait(cluster="shop", services=["web"],
                                        WaiterConfig={"Delay": 1, "MaxAttempts": 30})
again = rw.create_service(cluster="shop", serviceName="web", taskDefinition="shop-web:25",
                          desiredCount=0)["service"]
out["recreated_tags"] = rw.list_tags_for_resource(resourceArn=again["serviceArn"])["tags"]
print(json.dumps(out))
"#;

fn key(srv: &ServerProcess, read_only: bool) -> (String, String) {
    let mut args = vec!["token", "create", "--aws"];
    if read_only {
        args.push("--read-only");
    }
    let r = berth(&srv.grpc, &args);
    assert!(r.ok, "{}", r.stderr);
    let field = |name: &str| {
        r.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} = ")))
            .unwrap_or_else(|| panic!("no {name} in {}", r.stdout))
            .to_string()
    };
    (field("aws_access_key_id"), field("aws_secret_access_key"))
}

#[test]
fn boto3_with_keys_pagination_tags_error_codes_and_a_read_only_key_refused() {
    let dir = tempfile::tempdir().unwrap();
    let srv = ServerProcess::start_with("server", dir.path(), &["--no-proxy"]);
    let (rw_id, rw_secret) = key(&srv, false);
    let (ro_id, ro_secret) = key(&srv, true);
    let stored = std::fs::read_to_string(dir.path().join("aws-keys.key")).unwrap();
    assert!(!stored.contains(&rw_secret));
    let program = format!(
        "import os\nos.environ.update(RW_ID={rw_id:?}, RW_SECRET={rw_secret:?}, RO_ID={ro_id:?}, RO_SECRET={ro_secret:?})\n{BOTO3_PROGRAM}"
    );
    let out: Value = boto3(&srv.http, &Creds::default(), &program);

    // The region the client signed for is the region in the ARNs.
    assert_eq!(
        out["cluster_arn"],
        "arn:aws:ecs:eu-west-1:000000000000:cluster/shop"
    );
    assert_eq!(out["tags"], json!([{"key": "team", "value": "a"}]));
    assert_eq!(
        out["service_tags"],
        json!([{"key": "tier", "value": "front"}])
    );
    assert_eq!(out["pages"], json!([10, 10, 5]));
    let code = |k: &str| out[k]["code"].as_str().unwrap_or("").to_string();
    let message = |k: &str| out[k]["message"].as_str().unwrap_or("").to_string();
    assert_eq!(code("unknown_cluster"), "ClusterNotFoundException");
    assert_eq!(message("unknown_cluster"), "Cluster not found.");
    assert_eq!(code("unknown_service"), "ServiceNotFoundException");
    assert_eq!(message("unknown_service"), "Service not found.");
    assert_eq!(
        code("cluster_with_services"),
        "ClusterContainsServicesException"
    );
    assert_eq!(code("bad_definition"), "InvalidParameterException");
    assert!(
        message("bad_definition").contains("containerDefinitions[0].portMappings[0].containerPort"),
        "{}",
        message("bad_definition")
    );
    assert_eq!(out["bad_definition"]["status"], 400);
    assert_eq!(out["missing_service"][0]["reason"], "MISSING");
    assert_eq!(out["by_arn"], json!(["web"]));
    assert_eq!(
        out["settings"],
        json!([{"name": "containerInsights", "value": "enabled"}])
    );
    assert_eq!(
        out["deployment_status"].as_array().unwrap().len(),
        1,
        "{out}"
    );
    assert!(["IN_PROGRESS", "SUCCESSFUL"].contains(&out["deployment_status"][0].as_str().unwrap()));
    assert_eq!(out["deployment_target"], json!([0]));
    assert_eq!(out["deployment_same"], true);
    assert_eq!(
        out["updated"],
        json!([{"type": "spread", "field": "instanceId"}])
    );
    assert_eq!(code("bad_strategy"), "InvalidParameterException");
    assert!(
        message("bad_strategy").contains("placementStrategy[0]"),
        "{}",
        message("bad_strategy")
    );
    // A traffic-shifting strategy needs a load balancer; a hook must be a webhook; neither
    // refused update changed the service; a deployment that is not in progress cannot be stopped.
    assert_eq!(code("canary_without_lb"), "InvalidParameterException");
    assert!(
        message("canary_without_lb").contains("deploymentConfiguration.strategy"),
        "{}",
        message("canary_without_lb")
    );
    assert!(
        message("hook_not_http").contains("lifecycleHooks[0].hookTargetArn"),
        "{}",
        message("hook_not_http")
    );
    assert_eq!(out["strategy_after"], "ROLLING");
    assert!(
        code("stop_done") == "InvalidParameterException" || code("stop_done") == "ClientException",
        "{}",
        out["stop_done"]
    );
    // Read-only: lists, but may not create.
    assert!(out["ro_list"].as_array().unwrap().len() >= 2);
    assert_eq!(code("ro_create"), "AccessDeniedException");
    assert_eq!(code("wrong_secret"), "InvalidSignatureException");
    // Neither refused call made its cluster.
    assert_eq!(
        out["after"],
        json!([
            "arn:aws:ecs:eu-west-1:000000000000:cluster/default",
            "arn:aws:ecs:eu-west-1:000000000000:cluster/shop"
        ])
    );
    // A service made again after it went INACTIVE starts without the old one's tags.
    assert_eq!(out["recreated_tags"], json!([]));
    // The same refusals from the aws CLI, and an unsigned call.
    let wrong = Creds {
        key_id: rw_id.clone(),
        secret: "not-the-secret".into(),
        ..Creds::default()
    };
    let r = aws(
        &srv.http,
        &wrong,
        &["create-cluster", "--cluster-name", "cli-wrong"],
    );
    assert!(
        !r.ok && r.stderr.contains("InvalidSignatureException"),
        "{}",
        r.stderr
    );
    let ro = Creds {
        key_id: ro_id,
        secret: ro_secret,
        ..Creds::default()
    };
    assert!(aws(&srv.http, &ro, &["list-clusters"]).ok);
    let r = aws(
        &srv.http,
        &ro,
        &["create-cluster", "--cluster-name", "cli-ro"],
    );
    assert!(
        !r.ok && r.stderr.contains("AccessDeniedException"),
        "{}",
        r.stderr
    );
    let (status, _, body) = ecs_call(&srv.http, "ListClusters", "{}");
    assert_eq!(
        (status, body["__type"].as_str()),
        (400, Some("MissingAuthenticationTokenException"))
    );
    let rw = Creds {
        key_id: rw_id,
        secret: rw_secret,
        ..Creds::default()
    };
    let list = aws_ok(&srv.http, &rw, &["list-clusters"]);
    assert_eq!(list["clusterArns"].as_array().unwrap().len(), 2, "{list}");
}

#[test]
fn a_restart_under_another_region_and_account_rewrites_the_stored_arns() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = ServerProcess::start_with(
        "server",
        dir.path(),
        &["--insecure", "--no-proxy", "--region", "eu-north-1"],
    );
    let c = Creds::default();
    aws_ok(
        &first.http,
        &c,
        &[
            "register-task-definition",
            "--cli-input-json",
            &web_def("moved"),
        ],
    );
    let r = berth(&first.grpc, &["cluster", "create", "moved", "-o", "json"]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(
        r.json()["cluster"]["clusterArn"],
        "arn:aws:ecs:eu-north-1:000000000000:cluster/moved"
    );
    first.kill9();
    let second = ServerProcess::start_with(
        "server",
        dir.path(),
        &["--insecure", "--no-proxy", "--account-id", "123456789012"],
    );
    let r = berth(&second.grpc, &["cluster", "list", "-o", "json"]);
    assert!(r.ok, "{}", r.stderr);
    let listed = r.json();
    let arns: Vec<&str> = listed["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["clusterArn"].as_str().unwrap())
        .collect();
    assert!(
        arns.contains(&"arn:aws:ecs:us-east-1:123456789012:cluster/moved"),
        "{arns:?}"
    );
    let td = aws_ok(
        &second.http,
        &c,
        &["describe-task-definition", "--task-definition", "moved"],
    );
    assert_eq!(
        td["taskDefinition"]["taskDefinitionArn"],
        "arn:aws:ecs:us-east-1:123456789012:task-definition/moved:1"
    );
}
