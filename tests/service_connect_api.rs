//! `serviceConnectConfiguration` through the real `aws ecs` CLI, without containers (`berth
//! server --insecure --no-proxy`): a valid configuration is taken and echoed on the primary
//! deployment (where botocore's shapes put it); an unknown
//! portName, a tcp port given a per-request timeout, and a tcp alias port another service of the
//! namespace already holds are refused naming the field, and nothing is written.

mod common;

use common::aws::*;
use common::*;
use serde_json::json;

fn register(http: &str, c: &Creds, dir: &std::path::Path, family: &str) {
    let file = dir.join(format!("{family}.json"));
    let def = json!({
        "family": family,
        "containerDefinitions": [{"name": "app", "image": "berth-demo:latest", "memory": 32,
            "portMappings": [
                {"containerPort": 8080, "name": "api", "appProtocol": "http"},
                {"containerPort": 6379, "name": "redis"}
            ]}]
    });
    std::fs::write(&file, def.to_string()).unwrap();
    aws_ok(
        http,
        c,
        &[
            "register-task-definition",
            "--cli-input-json",
            &format!("file://{}", file.display()),
        ],
    );
}

fn create(http: &str, c: &Creds, name: &str, config: serde_json::Value) -> Run {
    aws(
        http,
        c,
        &[
            "create-service",
            "--cluster",
            "sc",
            "--service-name",
            name,
            "--task-definition",
            "sc-app",
            "--desired-count",
            "0",
            "--service-connect-configuration",
            &config.to_string(),
        ],
    )
}

fn refused(r: &Run, field: &str) {
    assert!(!r.ok, "expected a refusal: {}", r.stdout);
    assert!(
        r.stderr.contains("InvalidParameterException") && r.stderr.contains(field),
        "{field} named in: {}",
        r.stderr
    );
}

#[test]
fn service_connect_configurations_are_checked_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let srv = ServerProcess::start_with("server", dir.path(), &["--insecure", "--no-proxy"]);
    let http = srv.http.as_str();
    let c = Creds::default();
    aws_ok(http, &c, &["create-cluster", "--cluster-name", "sc"]);
    register(http, &c, dir.path(), "sc-app");

    let ok = create(
        http,
        &c,
        "api",
        json!({"enabled": true, "namespace": "internal", "services": [
            {"portName": "api", "clientAliases": [{"port": 8080, "dnsName": "api"}]},
            {"portName": "redis", "clientAliases": [{"port": 6379, "dnsName": "redis"}]}
        ]}),
    );
    assert!(ok.ok, "{}", ok.stderr);
    let svc: serde_json::Value = serde_json::from_str(&ok.stdout).unwrap();
    assert_eq!(
        svc["service"]["deployments"][0]["serviceConnectConfiguration"]["services"][1]
            ["clientAliases"][0]["dnsName"],
        "redis",
        "{svc}"
    );
    // A client-only service.
    let client = create(
        http,
        &c,
        "web",
        json!({"enabled": true, "namespace": "internal"}),
    );
    assert!(client.ok, "{}", client.stderr);

    refused(
        &create(
            http,
            &c,
            "bad1",
            json!({"enabled": true, "namespace": "internal",
                   "services": [{"portName": "http"}]}),
        ),
        "serviceConnectConfiguration.services[0].portName",
    );
    refused(
        &create(
            http,
            &c,
            "bad2",
            json!({"enabled": true, "namespace": "internal", "services": [
                {"portName": "redis", "timeout": {"perRequestTimeoutSeconds": 3}}]}),
        ),
        "perRequestTimeoutSeconds",
    );
    refused(
        &create(
            http,
            &c,
            "bad3",
            json!({"enabled": true, "namespace": "internal", "services": [
                {"portName": "redis", "clientAliases": [{"port": 6379, "dnsName": "cache"}]}]}),
        ),
        "pick another port",
    );
    refused(
        &create(http, &c, "bad4", json!({"enabled": true})),
        "serviceConnectConfiguration.namespace",
    );
    let listed = aws_ok(http, &c, &["list-services", "--cluster", "sc"]);
    assert_eq!(
        listed["serviceArns"].as_array().unwrap().len(),
        2,
        "refused services are not written: {listed}"
    );
}
