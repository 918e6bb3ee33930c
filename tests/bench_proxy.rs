//! `berth bench proxy` in its shortest form (one round of 1 s per proxy and load): it must print
//! HTTPS figures beside HTTP's, keep-alive and new-handshake apart, for Berth's proxy and nginx
//! (and HAProxy), with Berth's ratio to each, in the table and in `-o json`. It asserts no rate
//! beyond "requests were served": the machine is shared; the figures go to the test's output.

mod common;

use common::{setup, BERTH};
use serde_json::Value;
use std::process::Command;

/// Runs the bench for one round of 1 s, with `-o json` or as a table.
fn bench(json: bool) -> String {
    setup::tools();
    let mut command = Command::new(BERTH);
    if json {
        command.args(["-o", "json"]);
    }
    let out = command
        .args(["bench", "proxy", "--rounds", "1", "--duration", "1s"])
        .args(["--warmup", "0s", "--connections", "8", "--workers", "1"])
        .env("BERTH_LOG", "error")
        .output()
        .expect("run berth bench proxy");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "bench proxy failed: {}\n{stdout}\n{stderr}",
        out.status
    );
    println!("{stdout}");
    stdout
}

/// The served requests per second and the failures of each proxy in `section`.
fn served(section: &Value) -> Vec<(String, f64, u64)> {
    section["proxies"]
        .as_array()
        .unwrap_or_else(|| panic!("no proxies in {section}"))
        .iter()
        .map(|p| {
            let m = &p["median"];
            let failures = m["non2xx3xx"].as_u64().unwrap_or(u64::MAX);
            let rps = m["requestsPerSec"].as_f64().unwrap_or(0.0);
            (p["name"].as_str().unwrap_or("").to_string(), rps, failures)
        })
        .collect()
}

#[test]
fn the_json_report_has_https_keep_alive_and_new_handshake_figures_beside_nginx() {
    let r: Value = serde_json::from_str(&bench(true)).expect("the report is JSON");
    let https = &r["https"];
    assert!(
        https["tls"].as_str().unwrap_or("").contains("TLS 1.3"),
        "the TLS settings are named: {https}"
    );
    for (what, section) in [
        ("HTTP", &r),
        ("HTTPS keep-alive", &https["keepAlive"]),
        ("HTTPS new handshake", &https["newHandshake"]),
    ] {
        let proxies = served(section);
        let names: Vec<&str> = proxies.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(names, ["nginx", "haproxy", "berth"], "{what}: {section}");
        for (name, rps, failures) in &proxies {
            assert!(*rps > 0.0, "{what}: {name} served requests: {section}");
            assert_eq!(*failures, 0, "{what}: {name} answered only 2xx/3xx");
        }
        let to_nginx = section["ratios"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["to"] == "nginx"))
            .unwrap_or_else(|| panic!("{what}: no ratio to nginx: {section}"));
        assert_eq!(to_nginx["of"], "berth", "{what}");
        assert!(
            to_nginx["requestsPerSec"].as_f64().unwrap_or(0.0) > 0.0,
            "{what}: Berth's req/s ratio to nginx: {to_nginx}"
        );
    }
}

#[test]
fn the_table_has_https_rows_for_berth_and_nginx_with_the_ratio() {
    let out = bench(false);
    let section = |title: &str| -> Vec<&str> {
        out.lines()
            .skip_while(|l| !l.starts_with(title))
            .skip(1)
            .take_while(|l| !l.ends_with(':') && !l.contains("):"))
            .collect()
    };
    for title in [
        "HTTP, keep-alive",
        "HTTPS, keep-alive",
        "HTTPS, a new connection",
    ] {
        let rows = section(title);
        for name in ["nginx", "berth"] {
            let row = rows
                .iter()
                .find(|l| l.split_whitespace().next() == Some(name))
                .unwrap_or_else(|| panic!("no {name} row under {title:?}:\n{out}"));
            let rps: f64 = row
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            assert!(rps > 0.0, "{title}: {name} served requests: {row}");
        }
        assert!(
            rows.iter().any(|l| l.starts_with("berth/nginx")),
            "{title}: Berth's ratio to nginx:\n{out}"
        );
    }
}
