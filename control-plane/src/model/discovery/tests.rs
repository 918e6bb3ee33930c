//! Cloud Map's operations on a real embedded store: bad input is refused naming the field and
//! writes nothing; namespaces, services and instances go through their whole life; the DNS
//! records follow registrations.

use super::{ops, records::Records};
use crate::state::State;
use crate::store::LogStore;
use serde_json::{json, Value};
use std::sync::Arc;

fn state(dir: &tempfile::TempDir) -> State {
    State::new(Arc::new(LogStore::open(&dir.path().join("store")).unwrap()))
}

fn call(s: &State, op: &str, input: Value) -> Result<Value, super::CmError> {
    ops::call(s, op, &input).expect("an operation Berth answers")
}

fn stored_keys(s: &State) -> Vec<String> {
    s.scan_keys(berth_core::keys::DISCOVERY).unwrap()
}

/// Namespaces: a missing or bad field, an unknown id, a bad list filter.
#[test]
fn bad_namespace_calls_are_refused_naming_the_field_and_write_nothing() {
    refused_writing_nothing(vec![
        (
            "CreateHttpNamespace",
            json!({}),
            "InvalidInput",
            "Name: is required",
        ),
        (
            "CreateHttpNamespace",
            json!({"Name": "a b"}),
            "InvalidInput",
            "Name:",
        ),
        (
            "CreatePrivateDnsNamespace",
            json!({"Name": "internal"}),
            "InvalidInput",
            "Vpc: is required",
        ),
        (
            "CreatePrivateDnsNamespace",
            json!({"Name": "bad_label!", "Vpc": "v"}),
            "InvalidInput",
            "not a DNS name",
        ),
        ("GetNamespace", json!({}), "InvalidInput", "Id: is required"),
        (
            "GetNamespace",
            json!({"Id": "ns-nothere"}),
            "NamespaceNotFound",
            "ns-nothere",
        ),
        (
            "DeleteNamespace",
            json!({"Id": "ns-nothere"}),
            "NamespaceNotFound",
            "ns-nothere",
        ),
        (
            "ListNamespaces",
            json!({"MaxResults": 0}),
            "InvalidInput",
            "MaxResults",
        ),
        (
            "ListNamespaces",
            json!({"Filters": [{"Name": "COLOR", "Values": ["x"]}]}),
            "InvalidInput",
            "Filters[0].Name",
        ),
    ]);
}

/// Services, instances and operations: a missing field, an unknown id or namespace.
#[test]
fn bad_service_and_instance_calls_are_refused_naming_the_field_and_write_nothing() {
    refused_writing_nothing(vec![
        (
            "CreateService",
            json!({"NamespaceId": "ns-x"}),
            "InvalidInput",
            "Name: is required",
        ),
        (
            "CreateService",
            json!({"Name": "api"}),
            "InvalidInput",
            "NamespaceId: is required",
        ),
        (
            "CreateService",
            json!({"Name": "api", "NamespaceId": "ns-nothere"}),
            "NamespaceNotFound",
            "ns-nothere",
        ),
        (
            "GetService",
            json!({"Id": "srv-nothere"}),
            "ServiceNotFound",
            "srv-nothere",
        ),
        (
            "RegisterInstance",
            json!({"ServiceId": "srv-nothere", "InstanceId": "i1", "Attributes": {"AWS_INSTANCE_IPV4": "10.0.0.1"}}),
            "ServiceNotFound",
            "srv-nothere",
        ),
        (
            "RegisterInstance",
            json!({"ServiceId": "srv-x", "InstanceId": "i1"}),
            "InvalidInput",
            "Attributes: is required",
        ),
        (
            "RegisterInstance",
            json!({"ServiceId": "srv-x", "Attributes": {"A": "b"}}),
            "InvalidInput",
            "InstanceId: is required",
        ),
        (
            "DiscoverInstances",
            json!({"NamespaceName": "nothere", "ServiceName": "api"}),
            "NamespaceNotFound",
            "nothere",
        ),
        (
            "DiscoverInstances",
            json!({"ServiceName": "api"}),
            "InvalidInput",
            "NamespaceName: is required",
        ),
        (
            "ListInstances",
            json!({}),
            "InvalidInput",
            "ServiceId: is required",
        ),
        (
            "GetOperation",
            json!({"OperationId": "nope"}),
            "OperationNotFound",
            "nope",
        ),
    ]);
}

/// Each call fails with its error kind and a message naming the field, and nothing is stored.
fn refused_writing_nothing(cases: Vec<(&str, Value, &str, &str)>) {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir);
    for (op, input, kind, message) in cases {
        let e = call(&s, op, input.clone()).expect_err(&format!("{op} {input} must fail"));
        assert_eq!(e.kind, kind, "{op} {input}: {}", e.message);
        assert!(e.message.contains(message), "{op} {input}: {}", e.message);
        assert!(
            stored_keys(&s).is_empty(),
            "{op} {input} wrote {:?}",
            stored_keys(&s)
        );
    }
}

#[test]
fn a_dns_namespace_service_and_instance_live_and_leave() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir);
    let op = call(
        &s,
        "CreatePrivateDnsNamespace",
        json!({"Name": "internal", "Vpc": "vpc-1"}),
    )
    .unwrap();
    let got = call(
        &s,
        "GetOperation",
        json!({"OperationId": op["OperationId"]}),
    )
    .unwrap();
    assert_eq!(got["Operation"]["Status"], "SUCCESS");
    let ns_id = got["Operation"]["Targets"]["NAMESPACE"]
        .as_str()
        .unwrap()
        .to_string();
    let again = call(
        &s,
        "CreatePrivateDnsNamespace",
        json!({"Name": "internal", "Vpc": "vpc-1"}),
    );
    assert_eq!(again.unwrap_err().kind, "NamespaceAlreadyExists");
    let dns = json!({"DnsRecords": [{"Type": "A", "TTL": 60}, {"Type": "SRV", "TTL": 60}]});
    let no_dns = call(
        &s,
        "CreateService",
        json!({"Name": "api", "NamespaceId": ns_id}),
    );
    assert!(no_dns.unwrap_err().message.contains("DnsConfig"));
    let svc = call(
        &s,
        "CreateService",
        json!({"Name": "api", "NamespaceId": ns_id, "DnsConfig": dns}),
    )
    .unwrap();
    let svc_id = svc["Service"]["Id"].as_str().unwrap().to_string();
    assert_eq!(svc["Service"]["Type"], "DNS_HTTP");
    call(
        &s,
        "RegisterInstance",
        json!({"ServiceId": svc_id, "InstanceId": "db1",
        "Attributes": {"AWS_INSTANCE_IPV4": "10.1.2.3", "AWS_INSTANCE_PORT": "5432"}}),
    )
    .unwrap();
    let mut r = Records::default();
    r.refresh_all(&s).unwrap();
    let recs = r.records();
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(
        (recs[0].namespace.as_str(), recs[0].service.as_str()),
        ("internal", "api")
    );
    assert_eq!(
        (recs[0].address.as_str(), recs[0].port, recs[0].ttl_seconds),
        ("10.1.2.3", 5432, 5)
    );
    let found = call(
        &s,
        "DiscoverInstances",
        json!({"NamespaceName": "internal", "ServiceName": "api"}),
    )
    .unwrap();
    assert_eq!(found["Instances"][0]["InstanceId"], "db1");
    let in_use = call(&s, "DeleteService", json!({"Id": svc_id})).unwrap_err();
    assert_eq!(in_use.kind, "ResourceInUse");
    let ns_in_use = call(&s, "DeleteNamespace", json!({"Id": ns_id})).unwrap_err();
    assert_eq!(ns_in_use.kind, "ResourceInUse");
    call(
        &s,
        "DeregisterInstance",
        json!({"ServiceId": svc_id, "InstanceId": "db1"}),
    )
    .unwrap();
    assert!(r
        .refresh(&s, &[format!("discovery/inst/{svc_id}/db1")])
        .unwrap());
    assert!(r.records().is_empty());
    call(&s, "DeleteService", json!({"Id": svc_id})).unwrap();
    call(&s, "DeleteNamespace", json!({"Id": ns_id})).unwrap();
    let left = call(&s, "ListNamespaces", json!({})).unwrap();
    assert_eq!(left["Namespaces"], json!([]));
}
