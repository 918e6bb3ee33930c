//! The fleet bench's smaller case as a test: `berth bench fleet --nodes 1000 --services 100
//! --tasks-per-service 100` (the real control plane in a child process, its store in a temp dir, 1,000
//! simulated agents on real agent streams) must converge, replace a lost 1% of nodes, finish a
//! rolling deployment, keep placement within its bounds, and come back from a restart of the
//! control plane on its store with every agent reconnected. It asserts no time: the machine is
//! shared; the figures go to the test's output.

mod common;

use common::BERTH;
use serde_json::Value;
use std::process::Command;

#[test]
fn a_thousand_nodes_converge_and_keep_placement_within_bounds() {
    let out = Command::new(BERTH)
        .args([
            "-o",
            "json",
            "bench",
            "fleet",
            "--nodes",
            "1000",
            "--services",
            "100",
        ])
        .args([
            "--tasks-per-service",
            "100",
            "--timeout",
            "240s",
            "--restart",
        ])
        .env("BERTH_LOG", "error")
        .output()
        .expect("run berth bench fleet");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "bench fleet failed: {}\n{stdout}\n{}",
        out.status,
        stderr.lines().rev().take(20).collect::<Vec<_>>().join("\n")
    );
    let r: Value = serde_json::from_str(&stdout).expect("the report is JSON");
    println!("{stdout}");
    let n = |v: &Value| v.as_f64().unwrap_or(0.0);
    assert_eq!(r["converged"], Value::Bool(true), "{r}");
    assert_eq!(n(&r["tasks"]), 10_000.0, "{r}");
    let q = &r["quality"];
    assert_eq!(
        n(&q["servicesChecked"]),
        100.0,
        "every service checked: {q}"
    );
    assert!(n(&q["spreadMaxSkew"]) <= 1.0, "spread within ±1: {q}");
    assert_eq!(n(&q["distinctInstanceViolations"]), 0.0, "{q}");
    assert_eq!(n(&q["memberOfViolations"]), 0.0, "{q}");
    let t = &r["timings"];
    assert_eq!(n(&t["lostNodes"]), 10.0, "1% of nodes lost: {t}");
    assert!(n(&t["lostTasksReplacedS"]) > 0.0, "{t}");
    assert!(n(&t["rollingDeploymentS"]) > 0.0, "{t}");
    let restart = &r["restart"];
    assert_eq!(
        n(&restart["agents"]),
        990.0,
        "the agents not lost: {restart}"
    );
    assert!(
        n(&restart["servingS"]) > 0.0
            && n(&restart["firstApiCallS"]) >= n(&restart["servingS"])
            && n(&restart["agentsReconnectedS"]) >= n(&restart["servingS"]),
        "{restart}"
    );
    let api = &r["api"];
    for name in ["describeServices", "listTasks", "runTask"] {
        assert!(n(&api[name]["calls"]) > 0.0, "{name} probed: {api}");
        assert_eq!(n(&api[name]["errors"]), 0.0, "{name} without errors: {api}");
    }
}
