use super::super::connect::check;
use super::*;
use berth_proto::v1::{ContainerDefinition, PortMapping};
use serde_json::json;

fn td() -> TaskDefinition {
    TaskDefinition {
        container_definitions: vec![ContainerDefinition {
            name: "app".into(),
            port_mappings: vec![
                PortMapping {
                    container_port: 80,
                    name: "api".into(),
                    ..Default::default()
                },
                PortMapping {
                    container_port: 6379,
                    name: "redis".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }],
        unmodeled_json:
            json!({"containerDefinitions": [{"portMappings": [{"appProtocol": "http"}, {}]}]})
                .to_string(),
        ..Default::default()
    }
}

fn connect() -> ServiceConnect {
    let c = check(
        &json!({"enabled": true, "namespace": "internal", "services": [
            {"portName": "api", "clientAliases": [{"port": 8080, "dnsName": "api"}]},
            {"portName": "redis", "clientAliases": [{"port": 6379, "dnsName": "redis"}]}
        ]}),
        &td(),
        "",
    )
    .unwrap();
    resolve(&c, &td(), "internal")
}

#[test]
fn aliases_resolve_to_their_container_port_and_become_load_balancers() {
    let sc = connect();
    assert_eq!(sc.namespace, "internal");
    let api = &sc.aliases[0];
    assert_eq!(
        (api.container_name.as_str(), api.container_port, api.port),
        ("app", 80, 8080)
    );
    let lb = alias_lb(api);
    assert_eq!((lb.listener_port, lb.container_port), (8080, 80));
    assert_eq!(lb.host_patterns, vec!["api".to_string()], "HTTP: by Host");
    let redis = alias_lb(&sc.aliases[1]);
    assert!(!is_http(&sc.aliases[1]));
    assert!(redis.host_patterns.is_empty(), "a TCP alias owns its port");
    assert_eq!(redis.health_check.unwrap().protocol, "TCP");
}

#[test]
fn only_enabled_active_services_with_aliases_are_routed() {
    let mut svc = Service {
        service_connect: Some(connect()),
        status: "ACTIVE".into(),
        ..Default::default()
    };
    assert!(routed(&svc));
    svc.status = "INACTIVE".into();
    assert!(!routed(&svc));
    let client_only = Service {
        service_connect: Some(ServiceConnect {
            enabled: true,
            namespace: "internal".into(),
            aliases: vec![],
        }),
        ..Default::default()
    };
    assert!(!routed(&client_only));
    assert!(!routed(&Service::default()));
}

#[test]
fn a_task_serves_once_healthy_when_checked_and_drains_when_stopping() {
    let task = |health: &str, desired: &str| Task {
        health_status: health.into(),
        desired_status: desired.into(),
        ..Default::default()
    };
    assert!(
        !serving(&task("UNKNOWN", "RUNNING"), true),
        "checks pending"
    );
    assert!(serving(&task("HEALTHY", "RUNNING"), true));
    assert!(serving(&task("UNKNOWN", "RUNNING"), false), "no checks");
    assert!(!serving(&task("UNHEALTHY", "RUNNING"), false));
    assert!(
        serving(&task("UNHEALTHY", "STOPPED"), true),
        "kept as draining"
    );
}

#[test]
fn a_namespace_sees_every_alias_of_its_services_once() {
    let with = |ns: &str, names: &[&str]| Service {
        service_connect: Some(ServiceConnect {
            enabled: true,
            namespace: ns.into(),
            aliases: names
                .iter()
                .map(|n| ServiceConnectAlias {
                    dns_name: n.to_string(),
                    ..Default::default()
                })
                .collect(),
        }),
        ..Default::default()
    };
    let services = [
        with("internal", &["api", "redis"]),
        with("internal", &["api"]),
        with("other", &["billing"]),
        Service::default(),
    ];
    assert_eq!(hosts_of("internal", &services), ["api", "redis"]);
    assert_eq!(hosts_of("other", &services), ["billing"]);
    assert!(hosts_of("none", &services).is_empty());
}
