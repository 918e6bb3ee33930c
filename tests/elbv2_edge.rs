//! The ALB's actions and conditions, the client's address and the ELBv2 calls IaC makes, through
//! the real `aws elbv2` CLI against `berth dev`, with targets that are not ECS tasks: two small
//! HTTP servers this test runs on 127.0.0.1, registered with register-targets. A redirect
//! listener answers 301 to https:// with the same host and path; a fixed-response rule answers
//! its body; an http-header rule routes to the second target group; the targets see
//! X-Forwarded-For (appended), -Proto and -Port, over HTTP and over an HTTPS listener with a
//! certificate imported through ACM; an AWSALB cookie keeps a client on one target
//! of a sticky target group. add-tags/describe-tags and the target group attributes work, and a
//! deregistered target drains for the delay just set (measured).

mod common;

use common::aws::*;
use common::edge::*;
use common::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

fn error_code(r: &Run) -> String {
    assert!(!r.ok, "expected a failure: {}", r.stdout);
    r.stderr
        .split_once("An error occurred (")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(code, _)| code.to_string())
        .unwrap_or_else(|| panic!("no error code in: {}", r.stderr))
}

fn ip_group(elb: &dyn Fn(&[&str]) -> Value, name: &str, port: u16) -> String {
    let tg = elb(&[
        "create-target-group",
        "--name",
        name,
        "--protocol",
        "HTTP",
        "--port",
        &port.to_string(),
        "--target-type",
        "ip",
        "--health-check-interval-seconds",
        "5",
        "--health-check-timeout-seconds",
        "2",
        "--healthy-threshold-count",
        "2",
        "--tags",
        "Key=made-by,Value=test",
    ]);
    tg["TargetGroups"][0]["TargetGroupArn"]
        .as_str()
        .unwrap()
        .to_string()
}

fn attribute(attrs: &Value, key: &str) -> String {
    attrs["Attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["Key"] == key)
        .map(|a| a["Value"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("no {key} in {attrs}"))
}

#[test]
fn alb_actions_conditions_client_address_and_iac_calls_work_through_aws_elbv2() {
    let dir = tempfile::tempdir().unwrap();
    let dev = ServerProcess::start_with("dev", dir.path(), FAST);
    let http = dev.http.as_str();
    let c = Creds::default();
    let elb = |args: &[&str]| elbv2_ok(http, &c, args);

    let (a, b) = (backend("blue"), backend("green"));
    let blue = ip_group(&elb, "edge-blue", a);
    let green = ip_group(&elb, "edge-green", b);
    elb(&[
        "register-targets",
        "--target-group-arn",
        &blue,
        "--targets",
        &format!("Id=127.0.0.1,Port={a}"),
    ]);
    elb(&[
        "register-targets",
        "--target-group-arn",
        &green,
        "--targets",
        "Id=127.0.0.1",
    ]);

    let lb = elb(&["create-load-balancer", "--name", "edge"]);
    let lb_arn = lb["LoadBalancers"][0]["LoadBalancerArn"]
        .as_str()
        .unwrap()
        .to_string();
    let port = free_port();
    let listener = elb(&[
        "create-listener",
        "--load-balancer-arn",
        &lb_arn,
        "--protocol",
        "HTTP",
        "--port",
        &port.to_string(),
        "--default-actions",
        &format!("Type=forward,TargetGroupArn={blue}"),
    ]);
    let listener_arn = listener["Listeners"][0]["ListenerArn"]
        .as_str()
        .unwrap()
        .to_string();
    let beta = elb(&[
        "create-rule",
        "--listener-arn",
        &listener_arn,
        "--priority",
        "10",
        "--conditions",
        r#"[{"Field":"http-header","HttpHeaderConfig":{"HttpHeaderName":"X-Version","Values":["beta*"]}}]"#,
        "--actions",
        &format!("Type=forward,TargetGroupArn={green}"),
    ]);
    assert_eq!(
        beta["Rules"][0]["Conditions"][0]["HttpHeaderConfig"]["HttpHeaderName"], "X-Version",
        "{beta}"
    );
    let fixed = elb(&[
        "create-rule",
        "--listener-arn",
        &listener_arn,
        "--priority",
        "20",
        "--conditions",
        "Field=path-pattern,Values=/maintenance",
        "--actions",
        r#"[{"Type":"fixed-response","FixedResponseConfig":{"StatusCode":"503","ContentType":"text/plain","MessageBody":"down for maintenance"}}]"#,
    ]);
    assert_eq!(
        fixed["Rules"][0]["Actions"][0]["FixedResponseConfig"]["MessageBody"],
        "down for maintenance",
        "{fixed}"
    );
    let redirect_port = free_port();
    let redirect = elb(&[
        "create-listener",
        "--load-balancer-arn",
        &lb_arn,
        "--protocol",
        "HTTP",
        "--port",
        &redirect_port.to_string(),
        "--default-actions",
        r#"[{"Type":"redirect","RedirectConfig":{"Protocol":"HTTPS","Port":"443","StatusCode":"HTTP_301"}}]"#,
    ]);
    let rc = &redirect["Listeners"][0]["DefaultActions"][0]["RedirectConfig"];
    assert_eq!(
        (rc["Host"].as_str(), rc["Path"].as_str()),
        (Some("#{host}"), Some("/#{path}")),
        "{redirect}"
    );

    // Bad actions and conditions: ELBv2's codes, the field named, nothing written.
    let bad = elbv2(
        http,
        &c,
        &[
            "create-rule",
            "--listener-arn",
            &listener_arn,
            "--priority",
            "30",
            "--conditions",
            r#"[{"Field":"source-ip","SourceIpConfig":{"Values":["10.0.0.1"]}}]"#,
            "--actions",
            &format!("Type=forward,TargetGroupArn={green}"),
        ],
    );
    assert_eq!(error_code(&bad), "ValidationError");
    assert!(
        bad.stderr.contains("SourceIpConfig.Values.member.1"),
        "{}",
        bad.stderr
    );
    let bad = elbv2(
        http,
        &c,
        &[
            "create-rule",
            "--listener-arn",
            &listener_arn,
            "--priority",
            "30",
            "--conditions",
            "Field=path-pattern,Values=/x",
            "--actions",
            r#"[{"Type":"redirect","RedirectConfig":{"Protocol":"FTP","StatusCode":"HTTP_301"}}]"#,
        ],
    );
    assert!(
        bad.stderr.contains("RedirectConfig.Protocol"),
        "{}",
        bad.stderr
    );
    let rules = elb(&["describe-rules", "--listener-arn", &listener_arn]);
    assert_eq!(rules["Rules"].as_array().unwrap().len(), 3, "{rules}");

    // Forwarding: the target sees the client's address appended, the listener's proto and port.
    let url = format!("http://127.0.0.1:{port}");
    let (_, _, body) = wait_for(
        Duration::from_secs(30),
        "the registered target to answer",
        || {
            curl(&format!("{url}/hello"), &["X-Forwarded-For: 203.0.113.7"])
                .filter(|(s, _, _)| *s == 200)
        },
    );
    assert!(body.starts_with("name=blue"), "{body}");
    assert!(
        body.contains("x-forwarded-for: 203.0.113.7, 127.0.0.1"),
        "{body}"
    );
    assert!(body.contains("x-forwarded-proto: http\r\n"), "{body}");
    assert!(
        body.contains(&format!("x-forwarded-port: {port}")),
        "{body}"
    );
    let (_, _, body) = wait_for(
        Duration::from_secs(30),
        "the http-header rule's target",
        || curl(&format!("{url}/"), &["X-Version: beta-2"]).filter(|(s, _, _)| *s == 200),
    );
    assert!(body.starts_with("name=green"), "{body}");
    let (status, _, body) = curl(&format!("{url}/maintenance"), &[]).unwrap();
    assert_eq!((status, body.as_str()), (503, "down for maintenance"));
    let (status, head, _) = curl(
        &format!("http://127.0.0.1:{redirect_port}/a/b?x=1"),
        &["Host: app.test"],
    )
    .unwrap();
    assert_eq!(status, 301, "{head}");
    assert_eq!(
        header(&head, "location"),
        Some("https://app.test/a/b?x=1"),
        "{head}"
    );
    // Behind an HTTPS listener (a certificate imported through ACM), the target sees
    // X-Forwarded-Proto: https, the client's address appended, and the HTTPS port.
    let tls_port = free_port();
    let cert_arn = import_self_signed(http, &c, dir.path(), "app.test");
    elb(&[
        "create-listener",
        "--load-balancer-arn",
        &lb_arn,
        "--protocol",
        "HTTPS",
        "--port",
        &tls_port.to_string(),
        "--certificates",
        &format!("CertificateArn={cert_arn}"),
        "--default-actions",
        &format!("Type=forward,TargetGroupArn={blue}"),
    ]);
    let (_, _, body) = wait_for(
        Duration::from_secs(30),
        "the target to answer over HTTPS",
        || {
            curl_insecure(
                &format!("https://app.test:{tls_port}/tls"),
                tls_port,
                &["X-Forwarded-For: 203.0.113.8"],
            )
            .filter(|(s, _, _)| *s == 200)
        },
    );
    assert!(body.starts_with("name=blue"), "{body}");
    assert!(body.contains("x-forwarded-proto: https\r\n"), "{body}");
    assert!(
        body.contains("x-forwarded-for: 203.0.113.8, 127.0.0.1"),
        "{body}"
    );
    assert!(
        body.contains(&format!("x-forwarded-port: {tls_port}")),
        "{body}"
    );
    wait_for(
        Duration::from_secs(20),
        "describe-target-health to say healthy",
        || {
            let health = elb(&["describe-target-health", "--target-group-arn", &blue]);
            let t = &health["TargetHealthDescriptions"][0];
            assert_eq!(t["Target"]["Id"], "127.0.0.1", "{health}");
            (t["TargetHealth"]["State"] == "healthy").then_some(())
        },
    );

    // PROXY protocol on the way in: behind another load balancer, the client it names is the one
    // the target sees.
    let behind = free_port();
    let l2 = elb(&[
        "create-listener",
        "--load-balancer-arn",
        &lb_arn,
        "--protocol",
        "HTTP",
        "--port",
        &behind.to_string(),
        "--default-actions",
        &format!("Type=forward,TargetGroupArn={blue}"),
    ]);
    let l2 = l2["Listeners"][0]["ListenerArn"]
        .as_str()
        .unwrap()
        .to_string();
    let attrs = elb(&[
        "modify-listener-attributes",
        "--listener-arn",
        &l2,
        "--attributes",
        "Key=berth.proxy_protocol.inbound.enabled,Value=true",
    ]);
    assert_eq!(
        attribute(&attrs, "berth.proxy_protocol.inbound.enabled"),
        "true"
    );
    let body = wait_for(
        Duration::from_secs(20),
        "the PROXY listener to answer",
        || {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", behind)).ok()?;
            s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
            let request = format!(
            "PROXY TCP4 198.51.100.9 127.0.0.1 51000 {behind}\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        );
            s.write_all(request.as_bytes()).ok()?;
            let mut out = String::new();
            s.read_to_string(&mut out).ok()?;
            out.starts_with("HTTP/1.1 200").then_some(out)
        },
    );
    assert!(body.contains("x-forwarded-for: 198.51.100.9\r\n"), "{body}");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", behind)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(
        out.is_empty(),
        "a connection without the header is closed: {out}"
    );

    // Stickiness by load balancer cookie: a second green target, then the AWSALB cookie keeps
    // a client on one of them.
    let b2 = backend("green2");
    elb(&[
        "register-targets",
        "--target-group-arn",
        &green,
        "--targets",
        &format!("Id=127.0.0.1,Port={b2}"),
    ]);
    elb(&[
        "modify-target-group-attributes",
        "--target-group-arn",
        &green,
        "--attributes",
        "Key=stickiness.enabled,Value=true",
        "Key=stickiness.type,Value=lb_cookie",
        "Key=stickiness.lb_cookie.duration_seconds,Value=600",
    ]);
    let mut names = std::collections::BTreeSet::new();
    let mut cookie = String::new();
    wait_for(
        Duration::from_secs(30),
        "both green targets to answer",
        || {
            let (_, head, body) = curl(&format!("{url}/"), &["X-Version: beta"])?;
            names.insert(body.lines().next().unwrap_or_default().to_string());
            if let Some(c) = header(&head, "set-cookie") {
                cookie = c.split(';').next().unwrap_or_default().to_string();
            }
            (names.len() == 2).then_some(())
        },
    );
    assert!(cookie.starts_with("AWSALB="), "{cookie}");
    let pinned: std::collections::BTreeSet<String> = (0..6)
        .map(|_| {
            let cookie_header = format!("Cookie: {cookie}");
            let (_, _, body) =
                curl(&format!("{url}/"), &["X-Version: beta", &cookie_header]).unwrap();
            body.lines().next().unwrap_or_default().to_string()
        })
        .collect();
    assert_eq!(
        pinned.len(),
        1,
        "one target for a client with the cookie: {pinned:?}"
    );

    // Tags: given on create, added, described.
    elb(&[
        "add-tags",
        "--resource-arns",
        &lb_arn,
        &blue,
        "--tags",
        "Key=env,Value=dev",
    ]);
    let tags = elb(&["describe-tags", "--resource-arns", &lb_arn, &blue]);
    let of = |i: usize| tags["TagDescriptions"][i]["Tags"].to_string();
    assert!(
        of(0).contains(r#""Key":"env""#) && of(0).contains(r#""Value":"dev""#),
        "{tags}"
    );
    assert!(of(1).contains("made-by") && of(1).contains("env"), "{tags}");
    let bad = elbv2(
        http,
        &c,
        &[
            "add-tags",
            "--resource-arns",
            &blue,
            "--tags",
            "Key=aws:x,Value=1",
        ],
    );
    assert!(bad.stderr.contains("Tags.member.1.Key"), "{}", bad.stderr);

    // Attributes: the table's defaults, then the deregistration delay and slow start set.
    let attrs = elb(&[
        "describe-target-group-attributes",
        "--target-group-arn",
        &blue,
    ]);
    assert_eq!(
        attribute(&attrs, "deregistration_delay.timeout_seconds"),
        "30"
    );
    let attrs = elb(&[
        "modify-target-group-attributes",
        "--target-group-arn",
        &blue,
        "--attributes",
        "Key=deregistration_delay.timeout_seconds,Value=3",
        "Key=slow_start.duration_seconds,Value=30",
    ]);
    assert_eq!(
        attribute(&attrs, "deregistration_delay.timeout_seconds"),
        "3"
    );
    assert_eq!(attribute(&attrs, "slow_start.duration_seconds"), "30");
    let bad = elbv2(
        http,
        &c,
        &[
            "modify-target-group-attributes",
            "--target-group-arn",
            &blue,
            "--attributes",
            "Key=slow_start.duration_seconds,Value=5",
        ],
    );
    assert!(
        bad.stderr.contains("Attributes.member.1.Value"),
        "{}",
        bad.stderr
    );
    let lb_attrs = elb(&[
        "describe-load-balancer-attributes",
        "--load-balancer-arn",
        &lb_arn,
    ]);
    assert_eq!(
        attribute(&lb_attrs, "routing.http.xff_header_processing.mode"),
        "append"
    );
    let limits = elb(&["describe-account-limits"]);
    assert!(
        limits["Limits"]
            .to_string()
            .contains("rules-per-application-load-balancer"),
        "{limits}"
    );

    // The drain takes the new delay: the target drains for 3 s (not the 30 s default), then goes.
    let started = Instant::now();
    elb(&[
        "deregister-targets",
        "--target-group-arn",
        &blue,
        "--targets",
        &format!("Id=127.0.0.1,Port={a}"),
    ]);
    let health = elb(&["describe-target-health", "--target-group-arn", &blue]);
    assert_eq!(
        health["TargetHealthDescriptions"][0]["TargetHealth"]["State"], "draining",
        "{health}"
    );
    wait_for(
        Duration::from_secs(20),
        "the drained target to leave",
        || {
            let h = elb(&["describe-target-health", "--target-group-arn", &blue]);
            h["TargetHealthDescriptions"]
                .as_array()
                .unwrap()
                .is_empty()
                .then_some(())
        },
    );
    let took = started.elapsed();
    eprintln!("drain with deregistration_delay.timeout_seconds=3 took {took:?}");
    assert!(
        took >= Duration::from_secs(3),
        "left before its delay: {took:?}"
    );
    assert!(
        took < Duration::from_secs(10),
        "took far longer than its delay: {took:?}"
    );
    wait_for(
        Duration::from_secs(10),
        "the proxy to stop sending to it",
        || curl(&format!("{url}/"), &[]).filter(|(s, _, _)| *s == 503),
    );
}
