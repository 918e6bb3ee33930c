//! HTTPS listeners through `aws acm` and `aws elbv2` alone, on the real Docker engine under
//! `berth dev`: two certificates, each from its own CA, imported with `aws acm
//! import-certificate`, on one HTTPS listener; curl reaches a task under each host name and
//! trusts only that host's CA, so each name got its own certificate by SNI. HTTP/2 is offered by
//! ALPN. A certificate in use is not deleted; no key reaches a describe or the server's log.
//! Containers carry the test's cluster label and are removed even when it fails.

mod common;

use common::aws::*;
use common::*;
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A CA and a certificate for `host` it signs: (CA PEM, certificate PEM, key PEM).
fn ca_and_certificate(host: &str) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, format!("test CA for {host}"));
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec![host.to_string()]).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, host);
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

/// `curl https://HOST:PORT/` resolved to the proxy, trusting only `ca`: (HTTP version, body),
/// or None when the request failed (a certificate `ca` did not sign, most likely).
fn curl(host: &str, port: u16, ca: &Path, extra: &[&str]) -> Option<(String, String)> {
    common::setup::tools();
    let out = Command::new("curl")
        .args(["-s", "-f", "--max-time", "5", "--cacert"])
        .arg(ca)
        .args(["--resolve", &format!("{host}:{port}:127.0.0.1")])
        .args(["-w", "\n%{http_version}"])
        .args(extra)
        .arg(format!("https://{host}:{port}/"))
        .output()
        .expect("run curl");
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, version) = text.rsplit_once('\n')?;
    Some((version.to_string(), body.to_string()))
}

#[test]
fn imported_certificates_are_each_served_to_their_host_name() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = unique_cluster("https");
    let _cleanup = ContainerCleanup {
        cluster: cluster.clone(),
    };
    let dev = ServerProcess::start_with("dev", dir.path(), FAST);
    let http = dev.http.as_str();
    let c = Creds::default();
    let ecs = |args: &[&str]| aws_ok(http, &c, args);
    let elb = |args: &[&str]| elbv2_ok(http, &c, args);
    let acm = |args: &[&str]| {
        let r = aws_for("acm", http, &c, args);
        assert!(r.ok, "aws acm {}: {}{}", args.join(" "), r.stdout, r.stderr);
        serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap_or(json!(null))
    };
    let mut keys = Vec::new();
    let mut import = |host: &str| {
        let (ca, cert, key) = ca_and_certificate(host);
        let files = [("ca", &ca), ("cert", &cert), ("key", &key)].map(|(what, text)| {
            let f = dir.path().join(format!("{host}.{what}.pem"));
            std::fs::write(&f, text).unwrap();
            f
        });
        let out = acm(&[
            "import-certificate",
            "--certificate",
            &format!("fileb://{}", files[1].display()),
            "--private-key",
            &format!("fileb://{}", files[2].display()),
        ]);
        keys.push(key);
        (
            out["CertificateArn"].as_str().unwrap().to_string(),
            files[0].clone(),
        )
    };
    let (a_arn, a_ca) = import("a.test");
    let (b_arn, b_ca) = import("b.test");
    let described = acm(&["describe-certificate", "--certificate-arn", &a_arn]);
    assert_eq!(
        described["Certificate"]["DomainName"], "a.test",
        "{described}"
    );
    assert_eq!(described["Certificate"]["Type"], "IMPORTED", "{described}");
    assert_eq!(described["Certificate"]["Status"], "ISSUED", "{described}");

    let cl = cluster.as_str();
    ecs(&["create-cluster", "--cluster-name", cl]);
    let def = dir.path().join("web.json");
    std::fs::write(
        &def,
        json!({
            "family": "tls-web",
            "networkMode": "bridge",
            "containerDefinitions": [{
                "name": "web", "image": "berth-demo:latest", "essential": true, "memory": 32,
                "portMappings": [{"containerPort": 80, "hostPort": 0, "protocol": "tcp"}],
                "environment": [{"name": "MESSAGE", "value": "over-tls"}],
                "stopTimeout": 5
            }]
        })
        .to_string(),
    )
    .unwrap();
    ecs(&[
        "register-task-definition",
        "--cli-input-json",
        &format!("file://{}", def.display()),
    ]);
    let lb = elb(&["create-load-balancer", "--name", "secure"]);
    let lb_arn = lb["LoadBalancers"][0]["LoadBalancerArn"]
        .as_str()
        .unwrap()
        .to_string();
    let tg = elb(&[
        "create-target-group",
        "--name",
        "web",
        "--protocol",
        "HTTP",
        "--port",
        "80",
        "--target-type",
        "ip",
        "--health-check-path",
        "/health",
        "--health-check-interval-seconds",
        "5",
        "--healthy-threshold-count",
        "2",
    ]);
    let tg = tg["TargetGroups"][0]["TargetGroupArn"]
        .as_str()
        .unwrap()
        .to_string();
    let port = free_port();
    let no_cert = elbv2(
        http,
        &c,
        &[
            "create-listener",
            "--load-balancer-arn",
            &lb_arn,
            "--protocol",
            "HTTPS",
            "--port",
            &port.to_string(),
            "--default-actions",
            &format!("Type=forward,TargetGroupArn={tg}"),
        ],
    );
    assert!(
        !no_cert.ok && no_cert.stderr.contains("CertificateNotFound"),
        "{}",
        no_cert.stderr
    );
    let listener = elb(&[
        "create-listener",
        "--load-balancer-arn",
        &lb_arn,
        "--protocol",
        "HTTPS",
        "--port",
        &port.to_string(),
        "--certificates",
        &format!("CertificateArn={a_arn}"),
        "--default-actions",
        &format!("Type=forward,TargetGroupArn={tg}"),
    ]);
    let listener = &listener["Listeners"][0];
    assert_eq!(
        listener["SslPolicy"], "ELBSecurityPolicy-TLS13-1-2-2021-06",
        "{listener}"
    );
    let listener_arn = listener["ListenerArn"].as_str().unwrap().to_string();
    elb(&[
        "add-listener-certificates",
        "--listener-arn",
        &listener_arn,
        "--certificates",
        &format!("CertificateArn={b_arn}"),
    ]);
    let certs = elb(&[
        "describe-listener-certificates",
        "--listener-arn",
        &listener_arn,
    ]);
    assert_eq!(
        certs["Certificates"],
        json!([
            {"CertificateArn": a_arn, "IsDefault": true},
            {"CertificateArn": b_arn, "IsDefault": false}
        ]),
        "{certs}"
    );
    ecs(&[
        "create-service",
        "--cluster",
        cl,
        "--service-name",
        "web",
        "--task-definition",
        "tls-web:1",
        "--desired-count",
        "1",
        "--load-balancers",
        &format!("targetGroupArn={tg},containerName=web,containerPort=80"),
    ]);

    // Each host name hears the task, trusting only its own certificate's CA.
    let (version, body) = wait_for(Duration::from_secs(90), "a.test over HTTPS", || {
        curl("a.test", port, &a_ca, &["--http1.1"])
    });
    assert!(body.contains("message=over-tls"), "{body}");
    assert_eq!(version, "1.1");
    let (_, body) = curl("b.test", port, &b_ca, &[]).expect("b.test with its own CA");
    assert!(body.contains("message=over-tls"), "{body}");
    assert!(
        curl("b.test", port, &a_ca, &[]).is_none(),
        "b.test served a.test's certificate"
    );
    assert!(
        curl("a.test", port, &b_ca, &[]).is_none(),
        "a.test served b.test's certificate"
    );
    // A name no certificate covers gets the default one (a.test's), which curl then refuses.
    assert!(curl("c.test", port, &a_ca, &[]).is_none());
    // ALPN: HTTP/2 when the client offers it.
    let (version, _) = curl("a.test", port, &a_ca, &["--http2"]).expect("HTTP/2 over TLS");
    assert_eq!(version, "2");

    let in_use = aws_for(
        "acm",
        http,
        &c,
        &["delete-certificate", "--certificate-arn", &b_arn],
    );
    assert!(
        !in_use.ok && in_use.stderr.contains("ResourceInUseException"),
        "{}",
        in_use.stderr
    );
    let listed = acm(&["list-certificates"]);
    assert_eq!(
        listed["CertificateSummaryList"].as_array().unwrap().len(),
        2,
        "{listed}"
    );
    for key in &keys {
        let body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
        let sample = &body[..32];
        for arn in [&a_arn, &b_arn] {
            let d = acm(&["describe-certificate", "--certificate-arn", arn]).to_string();
            let g = acm(&["get-certificate", "--certificate-arn", arn]).to_string();
            assert!(!d.contains(sample) && !g.contains(sample));
        }
        let log = dev.output.lock().unwrap().join("\n");
        assert!(!log.contains(sample), "a private key in the server's log");
    }
    elb(&[
        "remove-listener-certificates",
        "--listener-arn",
        &listener_arn,
        "--certificates",
        &format!("CertificateArn={b_arn}"),
    ]);
    acm(&["delete-certificate", "--certificate-arn", &b_arn]);
    wait_for(
        Duration::from_secs(10),
        "b.test to get the default certificate",
        || curl("b.test", port, &b_ca, &[]).is_none().then_some(()),
    );
    ecs(&[
        "delete-service",
        "--cluster",
        cl,
        "--service",
        "web",
        "--force",
    ]);
}
