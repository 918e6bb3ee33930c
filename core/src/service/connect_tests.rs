use super::*;
use berth_proto::v1::{ContainerDefinition, PortMapping};
use serde_json::json;

fn td() -> TaskDefinition {
    TaskDefinition {
        container_definitions: vec![ContainerDefinition {
            name: "app".into(),
            port_mappings: vec![
                PortMapping {
                    container_port: 8080,
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

fn fields(r: Result<Checked, Vec<FieldError>>) -> Vec<String> {
    r.unwrap_err().into_iter().map(|e| e.path).collect()
}

#[test]
fn a_valid_configuration_gives_its_aliases_with_their_protocols() {
    let c = check(
        &json!({"enabled": true, "namespace": "internal", "services": [
            {"portName": "api", "clientAliases": [{"port": 8080, "dnsName": "api"}]},
            {"portName": "redis", "discoveryName": "cache", "clientAliases": [{"port": 6379}]}
        ]}),
        &td(),
        "",
    )
    .unwrap();
    assert_eq!(c.namespace, "internal");
    let got: Vec<(&str, i32, &str)> = c
        .aliases
        .iter()
        .map(|a| (a.dns_name.as_str(), a.port, a.app_protocol.as_str()))
        .collect();
    assert_eq!(got, [("api", 8080, "http"), ("cache", 6379, "tcp")]);
}

#[test]
fn a_client_only_service_needs_only_enabled_and_a_namespace() {
    let c = check(&json!({"enabled": true}), &td(), "from-cluster").unwrap();
    assert_eq!((c.enabled, c.namespace.as_str()), (true, "from-cluster"));
    assert!(c.aliases.is_empty());
    assert_eq!(
        fields(check(&json!({"enabled": true}), &td(), "")),
        ["serviceConnectConfiguration.namespace"]
    );
}

#[test]
fn bad_input_names_the_field() {
    let e = check(
        &json!({"enabled": true, "namespace": "n", "services": [{"portName": "web"}]}),
        &td(),
        "",
    )
    .unwrap_err();
    assert_eq!(
        e[0].path,
        "serviceConnectConfiguration.services[0].portName"
    );
    assert!(
        e[0].message.contains("use one of api, redis"),
        "{}",
        e[0].message
    );
    assert_eq!(
        fields(check(
            &json!({"enabled": true, "namespace": "n", "services": [
                {"portName": "redis", "clientAliases": [{"port": 70000}],
                 "timeout": {"perRequestTimeoutSeconds": 5}}
            ]}),
            &td(),
            ""
        )),
        [
            "serviceConnectConfiguration.services[0].timeout.perRequestTimeoutSeconds",
            "serviceConnectConfiguration.services[0].clientAliases[0].port"
        ]
    );
    assert_eq!(
        fields(check(
            &json!({"enabled": false, "services": [{"portName": "api"}]}),
            &td(),
            "n"
        )),
        ["serviceConnectConfiguration.services"]
    );
    assert_eq!(
        fields(check(
            &json!({"enabled": true, "namespace": "n", "sevices": []}),
            &td(),
            ""
        )),
        ["serviceConnectConfiguration.sevices"]
    );
    assert_eq!(
        fields(check(
            &json!({"enabled": true, "namespace": "n", "services": [
                {"portName": "api", "clientAliases": [{"port": 80, "dnsName": "bad_name"}]}]}),
            &td(),
            ""
        )),
        ["serviceConnectConfiguration.services[0].clientAliases[0].dnsName"]
    );
}

#[test]
fn tcp_aliases_need_their_port_to_themselves_http_ones_share_by_name() {
    let alias = |dns: &str, port, app: &str| Alias {
        port_name: "p".into(),
        discovery_name: dns.into(),
        dns_name: dns.into(),
        port,
        app_protocol: app.into(),
    };
    let others = vec![(
        "api".to_string(),
        vec![alias("api", 8080, "http"), alias("redis", 6379, "tcp")],
    )];
    assert!(port_clash(&[alias("web", 8080, "http")], &others).is_none());
    let e = port_clash(&[alias("api", 8080, "http")], &others).unwrap();
    assert!(e.message.contains("pick another dnsName"), "{}", e.message);
    let e = port_clash(&[alias("cache", 6379, "tcp")], &others).unwrap();
    assert!(e.message.contains("pick another port"), "{}", e.message);
    let e = port_clash(&[alias("web", 6379, "http")], &others).unwrap();
    assert!(e.message.contains("its port to itself"), "{}", e.message);
}
