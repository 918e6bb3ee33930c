//! The transport's pure parts: which target is which error, ARNs under the addressed region
//! and account, pages, and ECS's exception names for Berth's errors.

use super::*;
use crate::state::error::Error;
use serde_json::json;

fn kind_of(target: &str) -> &'static str {
    match operation(target) {
        Ok(_) => "ok",
        Err(e) => e.kind,
    }
}

#[test]
fn targets_resolve_or_say_why_not() {
    assert_eq!(
        kind_of("AmazonEC2ContainerServiceV20141113.ListClusters"),
        "ok"
    );
    assert_eq!(
        kind_of("AmazonEC2ContainerServiceV20141113.CreateDaemon"),
        "UnsupportedFeatureException"
    );
    assert_eq!(
        kind_of("AmazonEC2ContainerServiceV20141113.Frob"),
        "UnknownOperationException"
    );
    let e = operation("Logs_20140328.PutLogEvents").err().unwrap();
    assert!(e.message.contains("another AWS service"), "{}", e.message);
    assert_eq!(kind_of("ListClusters"), "UnknownOperationException");
}

#[test]
fn every_operation_is_named_once_and_none_is_also_unsupported() {
    let mut names: Vec<&str> = OPERATIONS.iter().map(|(n, _)| *n).collect();
    names.sort();
    let before = names.len();
    names.dedup();
    assert_eq!(names.len(), before);
    for n in &names {
        assert!(!NOT_IN_BERTH.contains(n), "{n} is in both lists");
    }
}

#[test]
fn replies_name_the_region_and_account_the_client_addressed() {
    let signed = sigv4::Signed {
        access_key_id: "123456789012".into(),
        date: "20261201".into(),
        region: "eu-west-1".into(),
        service: "ecs".into(),
        signed_headers: vec![],
        signature: String::new(),
    };
    let to = addressed_prefix(Some(&signed));
    assert_eq!(to, "arn:aws:ecs:eu-west-1:123456789012");
    let from = berth_core::arn::prefix();
    let mut v = json!({"a": [format!("{from}:cluster/x")], "b": "arn:aws:iam::1:role/r"});
    readdress(&mut v, &format!("{from}:"), &format!("{to}:"));
    assert_eq!(v["a"][0], "arn:aws:ecs:eu-west-1:123456789012:cluster/x");
    assert_eq!(v["b"], "arn:aws:iam::1:role/r");
    let mut signed = signed;
    signed.access_key_id = "AKIAEXAMPLE".into();
    signed.region = "Not A Region".into();
    assert_eq!(addressed_prefix(Some(&signed)), from);
}

#[test]
fn pages_follow_next_tokens_to_the_end() {
    let items: Vec<serde_json::Value> = (0..25).map(|i| json!(i)).collect();
    let mut token: Option<String> = None;
    let mut seen = Vec::new();
    loop {
        let mut body = json!({"maxResults": 10});
        if let Some(t) = &token {
            body["nextToken"] = json!(t);
        }
        let input = Input::parse(body.to_string().as_bytes()).unwrap();
        let page = paging::page(&input, items.clone(), "x", 100, 100).unwrap();
        seen.extend(page["x"].as_array().unwrap().iter().cloned());
        match page.get("nextToken") {
            Some(t) => token = Some(t.as_str().unwrap().to_string()),
            None => break,
        }
    }
    assert_eq!(seen, items);
    let bad = Input::parse(br#"{"nextToken": "garbage"}"#).unwrap();
    let e = paging::page(&bad, items.clone(), "x", 100, 100).unwrap_err();
    assert!(e.message.starts_with("nextToken:"), "{}", e.message);
    let big = Input::parse(br#"{"maxResults": 1000}"#).unwrap();
    let e = paging::page(&big, items, "x", 100, 100).unwrap_err();
    assert!(e.message.starts_with("maxResults:"), "{}", e.message);
}

#[test]
fn berth_errors_carry_ecs_exception_names() {
    let cases: Vec<(Error, &str)> = vec![
        (Error::invalid("count", "bad"), "InvalidParameterException"),
        (
            Error::not_found("Cluster", "x", ""),
            "ClusterNotFoundException",
        ),
        (
            Error::not_found("Service", "x", ""),
            "ServiceNotFoundException",
        ),
        (
            Error::not_found("TaskDefinition", "x", ""),
            "ClientException",
        ),
        (
            Error::not_found("Resource", "x", ""),
            "ResourceNotFoundException",
        ),
        (
            Error::ClusterContainsServices("c".into(), 1),
            "ClusterContainsServicesException",
        ),
        (
            Error::ClusterContainsTasks("c".into(), 1),
            "ClusterContainsTasksException",
        ),
        (
            Error::ServiceNotActive("s".into(), "DRAINING".into()),
            "ServiceNotActiveException",
        ),
        (Error::Client("no".into()), "ClientException"),
    ];
    for (e, kind) in cases {
        let mapped = EcsError::from(e);
        assert_eq!(mapped.kind, kind);
        assert_eq!(mapped.status, StatusCode::BAD_REQUEST);
        assert!(!mapped.message.contains("Exception:"), "{}", mapped.message);
    }
    let fault = EcsError::from(Error::Store(crate::store::StoreError::Io(
        "disk gone".into(),
    )));
    assert_eq!(
        (fault.kind, fault.status.as_u16()),
        ("ServerException", 500)
    );
}

#[test]
fn inputs_name_the_field_at_fault() {
    let i = Input::parse(br#"{"a": 1, "o": {"l": [{"n": true}]}}"#).unwrap();
    assert!(i
        .str("a")
        .unwrap_err()
        .message
        .starts_with("a: must be a string"));
    let inner = &i.object("o").unwrap().unwrap().objects("l").unwrap()[0];
    let e = inner.str("n").unwrap_err();
    assert!(e.message.starts_with("o.l[0].n:"), "{}", e.message);
    assert!(i
        .required("missing")
        .unwrap_err()
        .message
        .contains("is required"));
    assert!(Input::parse(b"[1]").is_err());
    assert!(Input::parse(b"").is_ok());
}
