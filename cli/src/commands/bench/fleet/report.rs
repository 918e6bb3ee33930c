//! The bench's figures, as a table for people and as JSON (`-o json`) for programs.

use super::probe::{ApiLatency, Latency};
use super::quality::Quality;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Timings {
    pub agents_connected_s: f64,
    pub services_created_s: f64,
    /// From the first CreateService until every task is reported RUNNING.
    pub all_running_s: f64,
    pub placements_per_s: f64,
    pub lost_nodes: usize,
    /// From dropping 1% of the agents until every service is whole again.
    pub lost_tasks_replaced_s: f64,
    pub rolling_tasks: usize,
    pub rolling_deployment_s: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub nodes: usize,
    pub services: usize,
    pub tasks_per_service: usize,
    pub tasks: usize,
    pub converged: bool,
    pub timings: Timings,
    pub api: ApiLatency,
    /// The control plane process's peak RSS (VmHWM).
    pub peak_rss_mib: f64,
    /// The bench process's peak RSS: the simulated agents and the probes.
    pub simulated_agents_rss_mib: f64,
    pub store_bytes: u64,
    pub quality: Quality,
    pub lost_node_timeout_s: f64,
    /// A dropped stream (no goodbye) is a crashed agent: its node is lost after this grace.
    pub crash_grace_s: f64,
    pub min_healthy_time_s: f64,
    /// With `--restart`.
    pub restart: Option<Restart>,
}

/// A restart of the control plane on the fleet's store, from starting the new process.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Restart {
    /// Until it listens (the store opened and read).
    pub serving_s: f64,
    /// Until a DescribeService answers.
    pub first_api_call_s: f64,
    pub agents: i64,
    /// Until every agent that was connected before is connected again.
    pub agents_reconnected_s: f64,
    /// The new process's peak RSS.
    pub peak_rss_mib: f64,
}

impl Report {
    pub fn print(&self) {
        let t = &self.timings;
        println!(
            "berth bench fleet: {} nodes, {} services × {} tasks = {} tasks (embedded store, gRPC on loopback, the control plane in its own process)",
            self.nodes, self.services, self.tasks_per_service, self.tasks
        );
        println!("{:<44} {:>14}", "figure", "value");
        let row = |k: &str, v: String| println!("{k:<44} {v:>14}");
        row("agents connected", format!("{:.1} s", t.agents_connected_s));
        row("services created", format!("{:.1} s", t.services_created_s));
        row(
            "all tasks RUNNING (from first CreateService)",
            format!("{:.1} s", t.all_running_s),
        );
        row(
            "placements/s end to end",
            format!("{:.0}", t.placements_per_s),
        );
        let lat = |name: &str, l: &Latency| {
            row(
                &format!("{name} p50 / p99 ({} calls)", l.calls),
                format!("{:.1} / {:.1} ms", l.p50_ms, l.p99_ms),
            )
        };
        lat("DescribeServices", &self.api.describe_services);
        lat("ListTasks", &self.api.list_tasks);
        lat("RunTask", &self.api.run_task);
        row(
            "control plane peak RSS",
            format!("{:.0} MiB", self.peak_rss_mib),
        );
        row(
            "simulated agents' peak RSS (bench process)",
            format!("{:.0} MiB", self.simulated_agents_rss_mib),
        );
        row(
            "store on disk",
            format!("{:.0} MiB", self.store_bytes as f64 / (1 << 20) as f64),
        );
        row(
            &format!(
                "{} dropped nodes' tasks replaced (grace {:.0} s)",
                t.lost_nodes, self.crash_grace_s
            ),
            format!("{:.1} s", t.lost_tasks_replaced_s),
        );
        row(
            &format!("rolling deployment of {} tasks", t.rolling_tasks),
            format!("{:.1} s", t.rolling_deployment_s),
        );
        let q = &self.quality;
        row(
            "spread skew over 3 zones (max)",
            format!("{}", q.spread_max_skew),
        );
        row(
            "distinctInstance violations",
            format!("{}", q.distinct_instance_violations),
        );
        row("memberOf violations", format!("{}", q.member_of_violations));
        if let Some(r) = &self.restart {
            row(
                "restart: serving (store opened)",
                format!("{:.1} s", r.serving_s),
            );
            row(
                "restart: first API call answered",
                format!("{:.1} s", r.first_api_call_s),
            );
            row(
                &format!("restart: {} agents reconnected", r.agents),
                format!("{:.1} s", r.agents_reconnected_s),
            );
            row(
                "restart: control plane peak RSS",
                format!("{:.0} MiB", r.peak_rss_mib),
            );
        }
    }
}
