//! `berth secret …` against a TLS `berth server`: a secret made from a file is listed and
//! described without its value, revealed with a read-write token, refused to a read-only one,
//! and the same secret answers the Secrets Manager API; deletion is scheduled, then forced.

mod common;

use common::aws::*;
use common::*;

const VALUE: &str = "cli-secret-value-Qw3r";

#[test]
fn the_cli_manages_secrets_and_reveals_a_value_only_to_a_read_write_token() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let srv = ServerProcess::start_with("server", &data, &["--no-proxy"]);
    let url = srv.grpc.clone();
    let file = dir.path().join("value");
    std::fs::write(&file, format!("{VALUE}\n")).unwrap();

    let made = berth(
        &url,
        &[
            "secret",
            "create",
            "app-token",
            "--value-file",
            file.to_str().unwrap(),
            "-o",
            "json",
        ],
    );
    assert!(made.ok, "{}", made.stderr);
    assert_eq!(made.json()["secret"]["name"], "app-token");
    assert!(!made.stdout.contains(VALUE));
    let listed = berth(&url, &["secret", "list"]);
    assert!(
        listed.ok && listed.stdout.contains("app-token"),
        "{}",
        listed.stderr
    );
    let described = berth(&url, &["secret", "describe", "app-token", "-o", "json"]);
    assert!(described.ok, "{}", described.stderr);
    assert_eq!(described.json()["secret"]["versions"], 1);
    for r in [&listed, &described] {
        assert!(!r.stdout.contains(VALUE), "{}", r.stdout);
    }
    let again = berth(
        &url,
        &[
            "secret",
            "create",
            "app-token",
            "--value-file",
            file.to_str().unwrap(),
        ],
    );
    assert!(
        !again.ok && again.stderr.contains("already exists"),
        "{}",
        again.stderr
    );

    // The sealing key lives beside the data directory, not in it, readable by its owner only.
    let key = dir.path().join("data.secrets-key");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "{}", key.display());

    let revealed = berth(&url, &["secret", "reveal", "app-token"]);
    assert!(revealed.ok, "{}", revealed.stderr);
    assert_eq!(revealed.stdout.trim(), VALUE);

    // A read-only token describes, but may not read a value.
    let ro = berth(&url, &["token", "create", "--read-only"]);
    assert!(ro.ok, "{}", ro.stderr);
    let ro = ro.stdout.lines().last().unwrap().trim().to_string();
    let ca = data.join("ca.crt");
    let env = [
        ("BERTH_CA", ca.to_str().unwrap()),
        ("BERTH_TOKEN", ro.as_str()),
    ];
    let r = berth_with(&url, &env, &["secret", "describe", "app-token"]);
    assert!(r.ok, "{}", r.stderr);
    let r = berth_with(&url, &env, &["secret", "reveal", "app-token"]);
    assert!(
        !r.ok && r.stderr.contains("read-write token"),
        "{}{}",
        r.stdout,
        r.stderr
    );
    assert!(!r.stdout.contains(VALUE));

    // The same store behind the Secrets Manager API (a read-write AWS key).
    let key = berth(&url, &["token", "create", "--aws", "-o", "json"]);
    assert!(key.ok, "{}", key.stderr);
    let k = key.json();
    let creds = Creds {
        key_id: k["accessKeyId"].as_str().unwrap_or_default().to_string(),
        secret: k["secretAccessKey"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        region: "us-east-1".into(),
    };
    let got = aws_for(
        "secretsmanager",
        &srv.http,
        &creds,
        &["get-secret-value", "--secret-id", "app-token"],
    );
    assert!(got.ok, "{}{}", got.stdout, got.stderr);
    assert_eq!(got.json()["SecretString"], VALUE);

    let deleted = berth(&url, &["secret", "delete", "app-token", "-o", "json"]);
    assert!(deleted.ok, "{}", deleted.stderr);
    assert!(!deleted.json()["secret"]["deletedDate"]
        .as_str()
        .unwrap_or("")
        .is_empty());
    let r = berth(&url, &["secret", "reveal", "app-token"]);
    assert!(
        !r.ok && r.stderr.contains("marked for deletion"),
        "{}",
        r.stderr
    );
    let r = berth(&url, &["secret", "delete", "app-token", "--force"]);
    assert!(r.ok, "{}", r.stderr);
    let r = berth(&url, &["secret", "describe", "app-token"]);
    assert!(!r.ok, "{}", r.stdout);
}
