//! Secrets end to end on the real Docker engine through `berth dev`: values made with the real
//! `aws secretsmanager create-secret` and `aws ssm put-parameter --type SecureString` reach a
//! task's environment (a whole secret, one JSON key of another, and a parameter), and appear
//! nowhere else: not in the data directory, Berth's log, `aws ecs describe-tasks`,
//! `describe-task-definition`, `berth task describe -o json` or `/metrics`. A task naming a
//! missing secret stops with ResourceInitializationError naming it.

mod common;

use common::aws::*;
use common::shell::shell_image;
use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const WHOLE: &str = "whole-secret-Zq81vX";
const JSON_PASSWORD: &str = "json-key-secret-9Lp2";
const PARAMETER: &str = "parameter-secret-7Hq4";

fn aws_json(service: &str, http: &str, args: &[&str]) -> Value {
    let r = aws_for(service, http, &Creds::default(), args);
    assert!(r.ok, "aws {service} {args:?}: {}{}", r.stdout, r.stderr);
    if r.stdout.trim().is_empty() {
        Value::Null
    } else {
        r.json()
    }
}

/// Every file under `dir` whose bytes hold `needle`.
fn files_holding(dir: &Path, needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                    out.push(p.display().to_string());
                }
            }
        }
    }
    out
}

#[test]
fn secrets_reach_the_task_and_nothing_else() {
    let image = shell_image();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cluster = unique_cluster("secrets");
    let _cleanup = ContainerCleanup {
        cluster: cluster.clone(),
    };
    let mut flags = vec!["--listen", "127.0.0.1:0"];
    flags.extend_from_slice(FAST);
    let dev = ServerProcess::start_logging("dev", &data, &flags, "info");
    let ok = |args: &[&str]| {
        let r = berth(&dev.grpc, args);
        assert!(r.ok, "berth {args:?}: {}{}", r.stdout, r.stderr);
        r
    };
    ok(&["cluster", "create", &cluster]);
    let http = dev.http.as_str();

    let whole = aws_json(
        "secretsmanager",
        http,
        &[
            "create-secret",
            "--name",
            "db-password",
            "--secret-string",
            WHOLE,
        ],
    );
    let whole_arn = whole["ARN"].as_str().unwrap().to_string();
    assert!(whole_arn.contains(":secretsmanager:") && whole_arn.contains(":secret:db-password-"));
    let doc = json!({"username": "app", "password": JSON_PASSWORD}).to_string();
    let creds = aws_json(
        "secretsmanager",
        http,
        &[
            "create-secret",
            "--name",
            "db-creds",
            "--secret-string",
            &doc,
        ],
    );
    let creds_arn = creds["ARN"].as_str().unwrap().to_string();
    let put = aws_json(
        "ssm",
        http,
        &[
            "put-parameter",
            "--name",
            "/prod/api-key",
            "--type",
            "SecureString",
            "--value",
            PARAMETER,
        ],
    );
    assert_eq!(put["Version"], 1);
    // The APIs answer as AWS's do: the value back to a reader, an existing name refused.
    let got = aws_json(
        "secretsmanager",
        http,
        &["get-secret-value", "--secret-id", "db-password"],
    );
    assert_eq!(got["SecretString"], WHOLE);
    let param = aws_json(
        "ssm",
        http,
        &[
            "get-parameter",
            "--name",
            "/prod/api-key",
            "--with-decryption",
        ],
    );
    assert_eq!(param["Parameter"]["Value"], PARAMETER);
    let again = aws_for(
        "secretsmanager",
        http,
        &Creds::default(),
        &[
            "create-secret",
            "--name",
            "db-password",
            "--secret-string",
            "x",
        ],
    );
    assert!(
        !again.ok && again.stderr.contains("ResourceExistsException"),
        "{}",
        again.stderr
    );
    let listed = aws_json("secretsmanager", http, &["list-secrets"]);
    assert_eq!(
        listed["SecretList"].as_array().map(Vec::len),
        Some(2),
        "{listed}"
    );

    let def = json!({"family": "uses-secrets", "containerDefinitions": [{
    "name": "app", "image": image, "memory": 16, "stopTimeout": 1,
    "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"],
    "secrets": [
        {"name": "DB_PASSWORD", "valueFrom": whole_arn},
        {"name": "DB_USER_PASSWORD", "valueFrom": format!("{creds_arn}:password::")},
        {"name": "API_KEY", "valueFrom": "/prod/api-key"}
    ]}]});
    // Registers `def` and runs one task of it: (FAMILY:REVISION, task ARN).
    let run_def = |def: &Value| -> (String, String) {
        let path = dir
            .path()
            .join(format!("{}.json", def["family"].as_str().unwrap()));
        std::fs::write(&path, def.to_string()).unwrap();
        let td = register_file(&dev.grpc, &path);
        let run = ok(&[
            "task",
            "run",
            "--cluster",
            &cluster,
            "--taskdef",
            &td,
            "-o",
            "json",
        ]);
        let arn = run.json()["tasks"][0]["taskArn"]
            .as_str()
            .unwrap()
            .to_string();
        (td, arn)
    };
    let (td, arn) = run_def(&def);
    let describe = |arn: &str| -> Value {
        berth(
            &dev.grpc,
            &["task", "describe", arn, "--cluster", &cluster, "-o", "json"],
        )
        .json()
    };
    let t = wait_for(
        Duration::from_secs(60),
        "the task RUNNING or STOPPED",
        || {
            let t = describe(&arn);
            matches!(
                t["task"]["lastStatus"].as_str(),
                Some("RUNNING" | "STOPPED")
            )
            .then_some(t)
        },
    );
    assert_eq!(t["task"]["lastStatus"], "RUNNING", "{t:#}");
    // The shell image's busybox has no printenv applet; its env prints the same.
    let env = ok(&["exec", &arn, "--cluster", &cluster, "--", "busybox", "env"]);
    for line in [
        format!("DB_PASSWORD={WHOLE}"),
        format!("DB_USER_PASSWORD={JSON_PASSWORD}"),
        format!("API_KEY={PARAMETER}"),
    ] {
        assert!(
            env.stdout.lines().any(|l| l == line),
            "{line} not in:\n{}",
            env.stdout
        );
    }

    // Nowhere else.
    let mut outputs = vec![
        ("berth task describe -o json", describe(&arn).to_string()),
        (
            "aws ecs describe-tasks",
            aws_json(
                "ecs",
                http,
                &["describe-tasks", "--cluster", &cluster, "--tasks", &arn],
            )
            .to_string(),
        ),
        (
            "aws ecs describe-task-definition",
            aws_json(
                "ecs",
                http,
                &["describe-task-definition", "--task-definition", &td],
            )
            .to_string(),
        ),
        (
            "aws secretsmanager describe-secret",
            aws_json(
                "secretsmanager",
                http,
                &["describe-secret", "--secret-id", "db-creds"],
            )
            .to_string(),
        ),
        (
            "aws ssm describe-parameters",
            aws_json("ssm", http, &["describe-parameters"]).to_string(),
        ),
        (
            "/metrics",
            common::http::get_addr(http, "/metrics")
                .map(|(_, b)| b)
                .unwrap_or_default(),
        ),
    ];
    outputs.push(("berth's log", dev.output.lock().unwrap().join("\n")));
    for value in [WHOLE, JSON_PASSWORD, PARAMETER] {
        for (what, text) in &outputs {
            assert!(!text.contains(value), "{what} shows a secret value: {text}");
        }
        let found = files_holding(dir.path(), value);
        assert!(
            found.is_empty(),
            "the data directory holds a value in plain text: {found:?}"
        );
    }
    assert!(outputs[0].1.contains("\"RUNNING\""), "{}", outputs[0].1);

    // A secret that does not exist stops the task, naming it.
    let def = json!({"family": "missing-secret", "containerDefinitions": [{
        "name": "app", "image": image, "memory": 16, "command": ["sleep", "30"],
        "secrets": [{"name": "NOPE", "valueFrom": "no-such-secret"}]}]});
    let (_, arn) = run_def(&def);
    let t = wait_for(Duration::from_secs(60), "the task STOPPED", || {
        let t = describe(&arn);
        (t["task"]["lastStatus"] == "STOPPED").then_some(t)
    });
    let reason = t["task"]["stoppedReason"].as_str().unwrap_or("");
    assert!(
        reason.starts_with("ResourceInitializationError") && reason.contains("no-such-secret"),
        "{t:#}"
    );
}
