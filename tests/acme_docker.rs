//! ACME end to end, on the real Docker engine under `berth dev`, with Debian's pebble as the CA
//! on loopback: pebble resolves `app.test` through pebble-challtestsrv (a DNS server this test
//! runs, answering 127.0.0.1) and checks HTTP-01 on the port its configuration names, which is
//! the proxy's HTTP listener. `aws acm request-certificate --domain-name app.test` is ISSUED
//! within 30 s; an HTTPS listener with a host rule serves it, and curl trusting only pebble's
//! root gets 200 from a task. Pebble's certificates last 45 s here, so Berth renews at two
//! thirds: the new certificate is served, and no request fails under wrk (kept-alive
//! connections) nor on new connections meanwhile. Every process and container is removed even
//! when the test fails.

mod common;

use common::aws::*;
use common::wrk::Wrk;
use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Children this test started, killed (one by one, by pid) when dropped.
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A CA and a certificate it signs for 127.0.0.1 and localhost: (CA PEM, cert PEM, key PEM).
fn pebble_tls() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "pebble listener test CA");
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    (ca_pem, cert.pem(), key.serialize_pem())
}

/// Starts pebble-challtestsrv (DNS: every name is 127.0.0.1) and pebble, validating HTTP-01 on
/// `http_port`. Returns the directory URL, the management address and the CA for its HTTPS.
fn start_pebble(dir: &Path, http_port: u16, procs: &mut Procs) -> (String, String, PathBuf) {
    common::setup::tools();
    let (ca, cert, key) = pebble_tls();
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let ca = write("pebble-listener-ca.pem", &ca);
    let cert = write("pebble-cert.pem", &cert);
    let key = write("pebble-key.pem", &key);
    let (dns, acme, mgmt, chall_mgmt) = (free_port(), free_port(), free_port(), free_port());
    let config = json!({"pebble": {
        "listenAddress": format!("127.0.0.1:{acme}"),
        "managementListenAddress": format!("127.0.0.1:{mgmt}"),
        "certificate": cert, "privateKey": key,
        "httpPort": http_port, "tlsPort": free_port(),
        "ocspResponderURL": "", "externalAccountBindingRequired": false,
        "certificateValidityPeriod": 45
    }});
    let config = write("pebble.json", &config.to_string());
    procs.0.push(
        Command::new("pebble-challtestsrv")
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{chall_mgmt}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble-challtestsrv (apt-get install pebble)"),
    );
    procs.0.push(
        Command::new("pebble")
            .arg("-config")
            .arg(&config)
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble (apt-get install pebble)"),
    );
    let url = format!("https://127.0.0.1:{acme}/dir");
    wait_for(Duration::from_secs(10), "pebble to serve", || {
        curl_ok(&["--cacert", &ca.display().to_string(), &url]).map(|_| ())
    });
    (url, format!("127.0.0.1:{mgmt}"), ca)
}

/// curl ARGS…: the body when it answered 2xx.
fn curl_ok(args: &[&str]) -> Option<String> {
    let out = Command::new("curl")
        .args(["-s", "-f", "--max-time", "5"])
        .args(args)
        .output()
        .expect("run curl");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The serial of the certificate served for `host` on 127.0.0.1:PORT (openssl's hex).
fn served_serial(port: u16) -> Option<String> {
    let s_client = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", "app.test"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout", "-serial"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    use std::io::Write;
    x509.stdin.take()?.write_all(&s_client.stdout).ok()?;
    let out = x509.wait_with_output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    Some(bare_serial(text.trim().strip_prefix("serial=")?))
}

/// A serial as hex digits alone, lowercase, without leading zeros (ACM writes `0a:1b:…`).
fn bare_serial(s: &str) -> String {
    s.replace(':', "")
        .to_ascii_lowercase()
        .trim_start_matches('0')
        .to_string()
}

#[test]
fn a_requested_certificate_is_issued_served_and_renewed() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = unique_cluster("acme");
    let _cleanup = ContainerCleanup {
        cluster: cluster.clone(),
    };
    let mut procs = Procs(Vec::new());
    let http_port = free_port();
    let https_port = free_port();
    let (directory, mgmt, pebble_ca) = start_pebble(dir.path(), http_port, &mut procs);
    let mut flags: Vec<&str> = FAST.to_vec();
    let ca_root = pebble_ca.display().to_string();
    flags.extend(["--acme-directory", &directory, "--acme-ca-root", &ca_root]);
    let dev = ServerProcess::start_with("dev", dir.path(), &flags);
    let http = dev.http.as_str();
    let c = Creds::default();
    let ecs = |args: &[&str]| aws_ok(http, &c, args);
    let elb = |args: &[&str]| elbv2_ok(http, &c, args);
    let acm = |args: &[&str]| -> Value {
        let r = aws_for("acm", http, &c, args);
        assert!(r.ok, "aws acm {}: {}{}", args.join(" "), r.stdout, r.stderr);
        serde_json::from_str(&r.stdout).unwrap_or(json!(null))
    };

    // A service behind an HTTP listener on the port pebble validates on.
    let cl = cluster.as_str();
    ecs(&["create-cluster", "--cluster-name", cl]);
    let def = dir.path().join("web.json");
    std::fs::write(
        &def,
        json!({
            "family": "acme-web", "networkMode": "bridge",
            "containerDefinitions": [{
                "name": "web", "image": "berth-demo:latest", "essential": true, "memory": 32,
                "portMappings": [{"containerPort": 80, "hostPort": 0, "protocol": "tcp"}],
                "environment": [{"name": "MESSAGE", "value": "acme"}], "stopTimeout": 5
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
    let lb = elb(&["create-load-balancer", "--name", "edge"]);
    let lb = lb["LoadBalancers"][0]["LoadBalancerArn"]
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
    let forward = format!("Type=forward,TargetGroupArn={tg}");
    elb(&[
        "create-listener",
        "--load-balancer-arn",
        &lb,
        "--protocol",
        "HTTP",
        "--port",
        &http_port.to_string(),
        "--default-actions",
        &forward,
    ]);
    ecs(&[
        "create-service",
        "--cluster",
        cl,
        "--service-name",
        "web",
        "--task-definition",
        "acme-web:1",
        "--desired-count",
        "1",
        "--load-balancers",
        &format!("targetGroupArn={tg},containerName=web,containerPort=80"),
    ]);

    // Requested, validated over HTTP-01 through the proxy, ISSUED within 30 s.
    let requested = acm(&["request-certificate", "--domain-name", "app.test"]);
    let arn = requested["CertificateArn"].as_str().unwrap().to_string();
    let asked = Instant::now();
    let issued = wait_for(
        Duration::from_secs(30),
        "the certificate to be ISSUED",
        || {
            let d = acm(&["describe-certificate", "--certificate-arn", &arn]);
            let status = d["Certificate"]["Status"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            assert_ne!(status, "FAILED", "{d}");
            (status == "ISSUED").then_some(d)
        },
    );
    eprintln!("ISSUED after {:?}", asked.elapsed());
    let first_serial = bare_serial(issued["Certificate"]["Serial"].as_str().unwrap());

    // An HTTPS listener with a host rule for app.test.
    let listener = elb(&[
        "create-listener",
        "--load-balancer-arn",
        &lb,
        "--protocol",
        "HTTPS",
        "--port",
        &https_port.to_string(),
        "--certificates",
        &format!("CertificateArn={arn}"),
        "--default-actions",
        &forward,
    ]);
    let listener = listener["Listeners"][0]["ListenerArn"]
        .as_str()
        .unwrap()
        .to_string();
    elb(&[
        "create-rule",
        "--listener-arn",
        &listener,
        "--priority",
        "5",
        "--conditions",
        "Field=host-header,Values=app.test",
        "--actions",
        &forward,
    ]);
    let root = dir.path().join("pebble-root.pem");
    let pem = curl_ok(&["--cacert", &ca_root, &format!("https://{mgmt}/roots/0")])
        .expect("pebble's root");
    std::fs::write(&root, pem).unwrap();
    let root = root.display().to_string();
    let resolve = format!("app.test:{https_port}:127.0.0.1");
    let url = format!("https://app.test:{https_port}/");
    let body = wait_for(Duration::from_secs(60), "curl https://app.test/", || {
        curl_ok(&["--cacert", &root, "--resolve", &resolve, &url])
    });
    assert!(body.contains("message=acme"), "{body}");
    assert_eq!(
        served_serial(https_port).as_deref(),
        Some(first_serial.as_str())
    );

    // Renewed at two thirds of 45 s, under load: kept-alive connections (wrk) and new ones.
    let wrk = Wrk::start_url(
        &format!("https://127.0.0.1:{https_port}/"),
        &["Host: app.test"],
        4,
        40,
    );
    let mut failed_new = 0;
    let mut tried = 0;
    let renewed = wait_for(
        Duration::from_secs(60),
        "the certificate to be renewed",
        || {
            tried += 1;
            if curl_ok(&["--cacert", &root, "--resolve", &resolve, &url]).is_none() {
                failed_new += 1;
            }
            let d = acm(&["describe-certificate", "--certificate-arn", &arn]);
            let serial = bare_serial(d["Certificate"]["Serial"].as_str().unwrap_or_default());
            (serial != first_serial && !serial.is_empty()).then_some((serial, d))
        },
    );
    let (new_serial, d) = renewed;
    assert_eq!(
        d["Certificate"]["RenewalSummary"]["RenewalStatus"], "SUCCESS",
        "{d}"
    );
    wait_for(
        Duration::from_secs(10),
        "the renewed certificate to be served",
        || (served_serial(https_port).as_deref() == Some(new_serial.as_str())).then_some(()),
    );
    for _ in 0..5 {
        tried += 1;
        if curl_ok(&["--cacert", &root, "--resolve", &resolve, &url]).is_none() {
            failed_new += 1;
        }
    }
    let (requests, non_2xx, socket, report) = wrk.finish();
    assert!(requests > 0, "{report}");
    assert_eq!(
        (non_2xx, socket),
        (0, 0),
        "failed requests under wrk:\n{report}"
    );
    assert_eq!(
        failed_new, 0,
        "{failed_new} of {tried} new connections failed"
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
