//! Certificates: import reads and seals, describes never show a key, and a certificate in use
//! is not deleted.

use super::ops;
use crate::state::State;
use base64::Engine;
use serde_json::json;

fn call(
    state: &State,
    op: &str,
    input: &serde_json::Value,
) -> Option<crate::model::secrets::AwsResult<serde_json::Value>> {
    // No load balancer here: nothing uses a certificate (tests/https_docker.rs covers that).
    let nobody = super::Users {
        now: |_, _| Ok(Vec::new()),
        in_commit: |_, _| Ok(Vec::new()),
    };
    ops::call(state, nobody, op, input)
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn state() -> (tempfile::TempDir, State) {
    let dir = tempfile::tempdir().unwrap();
    crate::model::secrets::key::install(&dir.path().join("key"), true).unwrap();
    let state = State::new(std::sync::Arc::new(
        crate::store::LogStore::open(&dir.path().join("store")).unwrap(),
    ));
    (dir, state)
}

fn self_signed(name: &str) -> (String, String) {
    let c = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    (c.cert.pem(), c.signing_key.serialize_pem())
}

#[test]
fn imported_certificates_are_described_without_their_key() {
    let (_d, state) = state();
    let (cert, key) = self_signed("a.test");
    let out = call(
        &state,
        "ImportCertificate",
        &json!({"Certificate": b64(&cert), "PrivateKey": b64(&key)}),
    )
    .unwrap()
    .unwrap();
    let arn = out["CertificateArn"].as_str().unwrap().to_string();
    let d = call(
        &state,
        "DescribeCertificate",
        &json!({"CertificateArn": arn}),
    )
    .unwrap()
    .unwrap();
    assert_eq!(d["Certificate"]["DomainName"], "a.test");
    assert_eq!(d["Certificate"]["Status"], "ISSUED");
    assert_eq!(d["Certificate"]["KeyAlgorithm"], "EC_prime256v1");
    let key_body: String = key.lines().filter(|l| !l.starts_with("---")).collect();
    for (_, raw) in state.store().scan("").unwrap() {
        let text = String::from_utf8_lossy(&raw.value);
        assert!(
            !text.contains(&key_body[..40]),
            "a key in the store: {text}"
        );
    }
    assert!(!d.to_string().contains(&key_body[..40]));
    let got = call(&state, "GetCertificate", &json!({"CertificateArn": arn}))
        .unwrap()
        .unwrap();
    assert!(got.to_string().contains("BEGIN CERTIFICATE"));
    assert!(!got.to_string().contains("PRIVATE KEY"));
    let r = super::get(&state, &arn).unwrap().unwrap();
    assert_eq!(super::for_proxy(&r).unwrap().key_pem, key);
}

#[test]
fn a_key_of_another_certificate_is_refused_naming_the_field() {
    let (_d, state) = state();
    let (cert, _) = self_signed("a.test");
    let (_, other_key) = self_signed("b.test");
    let e = call(
        &state,
        "ImportCertificate",
        &json!({"Certificate": b64(&cert), "PrivateKey": b64(&other_key)}),
    )
    .unwrap()
    .unwrap_err();
    assert!(e.message.starts_with("PrivateKey:"), "{}", e.message);
    assert!(super::list(&state).unwrap().is_empty());
}

#[test]
fn a_requested_certificate_waits_for_validation() {
    let (_d, state) = state();
    let out = call(
        &state,
        "RequestCertificate",
        &json!({"DomainName": "app.test"}),
    )
    .unwrap()
    .unwrap();
    let arn = out["CertificateArn"].as_str().unwrap();
    let d = call(
        &state,
        "DescribeCertificate",
        &json!({"CertificateArn": arn}),
    )
    .unwrap()
    .unwrap();
    assert_eq!(d["Certificate"]["Status"], "PENDING_VALIDATION");
    let e = call(&state, "GetCertificate", &json!({"CertificateArn": arn}))
        .unwrap()
        .unwrap_err();
    assert_eq!(e.kind, "RequestInProgressException");
    let e = call(
        &state,
        "RequestCertificate",
        &json!({"DomainName": "*.app.test"}),
    )
    .unwrap()
    .unwrap_err();
    assert_eq!(e.kind, "InvalidDomainValidationOptionsException");
}
