//! The real aws CLI and boto3 (from PyPI, in the virtual environment `tests/setup/install.sh`
//! makes) against Berth's ECS API, and raw AWS JSON 1.1 requests for what no client would send.

use super::Run;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The virtual environment with awscli and boto3: `BERTH_AWS_VENV`, else /var/tmp/berth-venv.
/// A test without it fails, saying how to make it.
pub fn venv() -> PathBuf {
    super::setup::tools();
    let dir = std::env::var_os("BERTH_AWS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/berth-venv"));
    for bin in ["aws", "python3"] {
        assert!(
            dir.join("bin").join(bin).exists(),
            "{}/bin/{bin} is missing: the ECS API tests need the real aws CLI and boto3. Make them with \
             `python3 -m venv {0} && {0}/bin/pip install awscli boto3` (tests/setup/install.sh does), or point BERTH_AWS_VENV at one",
            dir.display()
        );
    }
    dir
}

/// Credentials and region for a client: `berth dev` takes any.
#[derive(Clone)]
pub struct Creds {
    pub key_id: String,
    pub secret: String,
    pub region: String,
}

impl Default for Creds {
    fn default() -> Self {
        Self {
            key_id: "AKIDBERTHTEST".into(),
            secret: "anything".into(),
            region: "us-east-1".into(),
        }
    }
}

fn client_env(cmd: &mut Command, creds: &Creds) {
    cmd.env("AWS_ACCESS_KEY_ID", &creds.key_id)
        .env("AWS_SECRET_ACCESS_KEY", &creds.secret)
        .env("AWS_DEFAULT_REGION", &creds.region)
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_ECS")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_PAGER", "")
        .env("AWS_RETRY_MODE", "standard")
        .env("AWS_MAX_ATTEMPTS", "1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null());
}

/// `aws ecs ARGS… --endpoint-url http(s)://HTTP --output json`.
pub fn aws(http: &str, creds: &Creds, args: &[&str]) -> Run {
    aws_for("ecs", http, creds, args)
}

/// `aws elbv2 ARGS…` against the same HTTP port.
pub fn elbv2(http: &str, creds: &Creds, args: &[&str]) -> Run {
    aws_for("elbv2", http, creds, args)
}

/// `aws elbv2 ARGS…` that must succeed; its JSON output (`null` when it prints nothing).
pub fn elbv2_ok(http: &str, creds: &Creds, args: &[&str]) -> serde_json::Value {
    let r = elbv2(http, creds, args);
    assert!(
        r.ok,
        "aws elbv2 {}: {}{}",
        args.join(" "),
        r.stdout,
        r.stderr
    );
    if r.stdout.trim().is_empty() {
        serde_json::Value::Null
    } else {
        r.json()
    }
}

/// `aws SERVICE ARGS… --endpoint-url http(s)://HTTP --output json`.
pub fn aws_for(service: &str, http: &str, creds: &Creds, args: &[&str]) -> Run {
    let mut cmd = Command::new(venv().join("bin/aws"));
    let (url, ca) = super::http_url(http);
    cmd.arg(service)
        .args(args)
        .args(["--endpoint-url", &url, "--output", "json"]);
    client_env(&mut cmd, creds);
    if let Some(ca) = ca {
        // A server's HTTP port speaks TLS: verify it with the cluster CA.
        cmd.env("AWS_CA_BUNDLE", ca);
    }
    let out = cmd.output().expect("run aws");
    Run {
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `aws ecs ARGS…` that must succeed; its JSON output (`null` when it prints nothing).
pub fn aws_ok(http: &str, creds: &Creds, args: &[&str]) -> serde_json::Value {
    let r = aws(http, creds, args);
    assert!(r.ok, "aws ecs {}: {}{}", args.join(" "), r.stdout, r.stderr);
    if r.stdout.trim().is_empty() {
        serde_json::Value::Null
    } else {
        r.json()
    }
}

/// Runs a Python program with boto3, `ENDPOINT` in its environment; its stdout's last line is
/// JSON it reports.
pub fn boto3(http: &str, creds: &Creds, program: &str) -> serde_json::Value {
    let mut cmd = Command::new(venv().join("bin/python3"));
    let (url, ca) = super::http_url(http);
    cmd.arg("-c").arg(program).env("ENDPOINT", url);
    client_env(&mut cmd, creds);
    if let Some(ca) = ca {
        cmd.env("AWS_CA_BUNDLE", ca);
    }
    let out = cmd.output().expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "boto3 program failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or("");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// A raw `POST /` with these headers and body: (status, headers text, body). Bounded: a
/// server that does not answer within 10 s fails the test.
pub fn post(http: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String, String) {
    if let (url, Some(ca)) = super::http_url(http) {
        return post_tls(&url, &ca, headers, body);
    }
    let a = super::http::exchange(http, "POST", "/", headers, body, Duration::from_secs(10))
        .expect("the ECS API answered within 10 s");
    (a.status, a.head, a.body)
}

/// `post` to a TLS HTTP port, through curl verifying the cluster CA.
fn post_tls(
    url: &str,
    ca: &std::path::Path,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, String) {
    super::setup::tools();
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-i", "--max-time", "10", "--cacert"])
        .arg(ca)
        .args(["-X", "POST", "--data-binary", "@-"]);
    for (k, v) in headers {
        cmd.args(["-H", &format!("{k}: {v}")]);
    }
    let mut child = cmd
        .arg(format!("{url}/"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("curl");
    child.stdin.take().expect("stdin").write_all(body).unwrap();
    let out = child.wait_with_output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// A raw ECS call: `X-Amz-Target: AmazonEC2ContainerServiceV20141113.OP`, AWS JSON 1.1.
pub fn ecs_call(http: &str, op: &str, body: &str) -> (u16, String, serde_json::Value) {
    let target = format!("AmazonEC2ContainerServiceV20141113.{op}");
    let (status, head, text) = post(
        http,
        &[
            ("X-Amz-Target", &target),
            ("Content-Type", "application/x-amz-json-1.1"),
        ],
        body.as_bytes(),
    );
    let json = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("{op}: body is not JSON ({e}): {head}\n{text}"));
    (status, head, json)
}
