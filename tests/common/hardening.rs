//! Helpers of the hardening tests: a `berth server` on ephemeral ports, the JSON API, and ELBv2
//! Query calls with the load balancers, target groups and listeners they need.

use super::{aws, free_port, http, ServerProcess};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// One JSON API call: (status, body).
pub fn api(addr: &str, method: &str, body: &str) -> (u16, Value) {
    let a = http::exchange(
        addr,
        "POST",
        &format!("/api/v1/{method}"),
        &[("Host", "localhost"), ("Content-Type", "application/json")],
        body.as_bytes(),
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("{method}: {e}"));
    let v = serde_json::from_str(&a.body).unwrap_or_else(|e| panic!("{method}: {e}: {}", a.body));
    (a.status, v)
}

/// One ELBv2 Query call, form-encoded: (status, body XML).
pub fn elb(addr: &str, params: &[(&str, &str)]) -> (u16, String) {
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("Version", "2015-12-01")
        .extend_pairs(params)
        .finish();
    let (status, _, text) = aws::post(
        addr,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    );
    (status, text)
}

/// The text of the first `<tag>…</tag>` in `xml`, unescaped.
pub fn tag(xml: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let start = xml.find(&open).map(|i| i + open.len()).unwrap_or(0);
    let end = xml[start..].find(&format!("</{tag}>")).unwrap_or(0);
    xml[start..start + end]
        .replace("&apos;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The action and the start of each parameter, for failure messages (some are huge).
pub fn brief(params: &[(&str, &str)]) -> String {
    let cut = |s: &str| s.chars().take(80).collect::<String>();
    params
        .iter()
        .map(|(k, v)| format!("{}={} ", cut(k), cut(v)))
        .collect()
}

pub fn elb_ok(addr: &str, params: &[(&str, &str)]) -> String {
    let (status, xml) = elb(addr, params);
    assert_eq!(status, 200, "{}: {xml}", brief(params));
    xml
}

/// Asserts a 400 with AWS's error `code` and a message holding each of `words`.
pub fn elb_refused(addr: &str, params: &[(&str, &str)], code: &str, words: &[&str]) -> String {
    let (status, xml) = elb(addr, params);
    assert_eq!(status, 400, "{}: {xml}", brief(params));
    assert_eq!(tag(&xml, "Code"), code, "{xml}");
    let message = tag(&xml, "Message");
    for w in words {
        assert!(message.contains(w), "{w:?} not in {message}");
    }
    message
}

pub fn server(dir: &Path, extra: &[&str]) -> ServerProcess {
    let flags = [&["--insecure", "--resync", "100ms"], extra].concat();
    ServerProcess::start_with("server", &dir.join("data"), &flags)
}

/// A load balancer and a target group of `name` (and `name-tg`): their ARNs.
pub fn balancer(http: &str, name: &str) -> (String, String) {
    let xml = elb_ok(http, &[("Action", "CreateLoadBalancer"), ("Name", name)]);
    let lb = tag(&xml, "LoadBalancerArn");
    (lb, target_group(http, &format!("{name}-tg")))
}

pub fn target_group(http: &str, name: &str) -> String {
    let params = [
        ("Action", "CreateTargetGroup"),
        ("Name", name),
        ("Port", "80"),
    ];
    tag(&elb_ok(http, &params), "TargetGroupArn")
}

/// CreateListener on `port`, forwarding to `tg`: (status, XML).
pub fn listener(http: &str, lb: &str, port: &str, tg: &str) -> (u16, String) {
    elb(
        http,
        &[
            ("Action", "CreateListener"),
            ("LoadBalancerArn", lb),
            ("Port", port),
            ("DefaultActions.member.1.Type", "forward"),
            ("DefaultActions.member.1.TargetGroupArn", tg),
        ],
    )
}

/// A listener on a free port: its ARN.
pub fn free_listener(http: &str, lb: &str, tg: &str) -> String {
    let (status, xml) = listener(http, lb, &free_port().to_string(), tg);
    assert_eq!(status, 200, "{xml}");
    tag(&xml, "ListenerArn")
}

pub fn healthz(addr: &str) {
    let (status, body) = http::get_addr(addr, "/healthz").expect("/healthz answers");
    assert_eq!((status, body.trim()), (200, "ok"));
}
