//! The secret store's operations on a real embedded store: staging on new versions, the forms of
//! valueFrom a task may use, and a recovery window that ends the secret.

use super::{key, manager, parameters, resolve};
use crate::state::State;
use crate::store::LogStore;
use serde_json::json;
use std::sync::Arc;

fn state(dir: &tempfile::TempDir) -> State {
    key::install(&dir.path().join("key"), true).unwrap();
    State::new(Arc::new(LogStore::open(&dir.path().join("store")).unwrap()))
}

#[test]
fn every_value_from_form_resolves_and_a_missing_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir);
    let made = manager::call(
        &s,
        "CreateSecret",
        &json!({"Name": "db", "SecretString": r#"{"user":"app","pw":"one"}"#}),
    )
    .unwrap()
    .unwrap();
    let arn = made["ARN"].as_str().unwrap().to_string();
    let first = made["VersionId"].as_str().unwrap().to_string();
    manager::call(
        &s,
        "PutSecretValue",
        &json!({"SecretId": "db", "SecretString": r#"{"user":"app","pw":"two"}"#}),
    )
    .unwrap()
    .unwrap();
    parameters::call(
        &s,
        "PutParameter",
        &json!({"Name": "/p/key", "Value": "v1", "Type": "SecureString"}),
    )
    .unwrap()
    .unwrap();
    let v = |from: &str| resolve::value(&s, from);
    assert_eq!(v("db").unwrap(), r#"{"user":"app","pw":"two"}"#);
    assert_eq!(v(&format!("{arn}:pw::")).unwrap(), "two");
    assert_eq!(v(&format!("{arn}:pw:AWSPREVIOUS:")).unwrap(), "one");
    assert_eq!(v(&format!("{arn}:pw::{first}")).unwrap(), "one");
    let partial = arn.rsplit_once('-').unwrap().0.to_string();
    assert_eq!(v(&format!("{partial}:user::")).unwrap(), "app");
    assert_eq!(v("/p/key").unwrap(), "v1");
    let param_arn = format!("{}:parameter/p/key", super::arn_prefix("ssm"));
    assert_eq!(v(&param_arn).unwrap(), "v1");
    let err = v("nope").unwrap_err();
    assert!(err.contains("nope"), "{err}");
    let err = v(&format!("{arn}:missing::")).unwrap_err();
    assert!(err.contains("no JSON key missing"), "{err}");
}

#[test]
fn a_deleted_secret_is_refused_then_gone_after_its_window() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir);
    manager::call(
        &s,
        "CreateSecret",
        &json!({"Name": "t", "SecretString": "x"}),
    )
    .unwrap()
    .unwrap();
    manager::call(
        &s,
        "DeleteSecret",
        &json!({"SecretId": "t", "RecoveryWindowInDays": 7}),
    )
    .unwrap()
    .unwrap();
    let e = manager::call(&s, "GetSecretValue", &json!({"SecretId": "t"}))
        .unwrap()
        .unwrap_err();
    assert_eq!(e.kind, "InvalidRequestException");
    // The window passed: the record says so, and the next look-up removes it.
    let k = format!("{}t", super::records::SECRETS);
    let mut r: super::records::SecretRecord =
        serde_json::from_slice(&s.get_raw(&k).unwrap().unwrap()).unwrap();
    r.deletion_date = Some(super::now() - 1.0);
    s.commit(vec![super::put_op(&k, &r)]).unwrap();
    let e = manager::call(&s, "DescribeSecret", &json!({"SecretId": "t"}))
        .unwrap()
        .unwrap_err();
    assert_eq!(e.kind, "ResourceNotFoundException");
    assert!(s.get_raw(&k).unwrap().is_none());
}
