//! The agent's counters and their Prometheus text: tasks by state on this node (as the runners
//! last published them), container starts and failures, and the stream's reconnects.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// Shared by the session and its runners; read when `/metrics` is scraped.
#[derive(Debug, Default)]
pub struct AgentMetrics {
    /// Task ARN → its last published status, while the session keeps its runner.
    tasks: Mutex<HashMap<String, String>>,
    container_starts: AtomicU64,
    /// By the ECS error name (CannotPullContainerError, CannotCreateContainerError, ...).
    container_failures: Mutex<BTreeMap<String, u64>>,
    reconnects: AtomicU64,
    connected: AtomicBool,
}

impl AgentMetrics {
    pub fn task_state(&self, task_arn: &str, status: &str) {
        let mut t = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        t.insert(task_arn.to_string(), status.to_string());
    }

    pub fn forget_task(&self, task_arn: &str) {
        let mut t = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        t.remove(task_arn);
    }

    pub fn container_started(&self) {
        self.container_starts.fetch_add(1, Relaxed);
    }

    /// A task failed to start; `reason` is its stopped reason ("CannotPullContainerError: ...").
    pub fn container_failed(&self, reason: &str) {
        let kind = reason
            .split_once(':')
            .map_or("Other", |(k, _)| k)
            .trim()
            .to_string();
        let mut f = self
            .container_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *f.entry(kind).or_default() += 1;
    }

    /// The stream to the control plane was lost; the session will connect again.
    pub fn disconnected(&self) {
        self.connected.store(false, Relaxed);
        self.reconnects.fetch_add(1, Relaxed);
    }

    pub fn welcomed(&self) {
        self.connected.store(true, Relaxed);
    }

    /// Prometheus text; every name starts with `berth_agent_`, so it joins a server's
    /// `/metrics` without clashing.
    pub fn render(&self, node: &str) -> String {
        let mut out = String::new();
        let node = label(node);
        let mut by_state: BTreeMap<String, u64> = BTreeMap::new();
        for s in self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            *by_state.entry(s.clone()).or_default() += 1;
        }
        header(
            &mut out,
            "berth_agent_tasks",
            "gauge",
            "Tasks this agent runs, by their last published status.",
        );
        for (state, n) in by_state {
            let _ = writeln!(
                out,
                "berth_agent_tasks{{node=\"{node}\",state=\"{}\"}} {n}",
                label(&state)
            );
        }
        header(
            &mut out,
            "berth_agent_container_starts_total",
            "counter",
            "Containers this agent started.",
        );
        let _ = writeln!(
            out,
            "berth_agent_container_starts_total{{node=\"{node}\"}} {}",
            self.container_starts.load(Relaxed)
        );
        header(
            &mut out,
            "berth_agent_container_failures_total",
            "counter",
            "Tasks that failed to start, by error.",
        );
        for (kind, n) in self
            .container_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "berth_agent_container_failures_total{{node=\"{node}\",error=\"{}\"}} {n}",
                label(kind)
            );
        }
        header(
            &mut out,
            "berth_agent_session_reconnects_total",
            "counter",
            "Times the stream to the control plane was lost and tried again.",
        );
        let _ = writeln!(
            out,
            "berth_agent_session_reconnects_total{{node=\"{node}\"}} {}",
            self.reconnects.load(Relaxed)
        );
        header(
            &mut out,
            "berth_agent_connected",
            "gauge",
            "1 while the stream to the control plane is up.",
        );
        let _ = writeln!(
            out,
            "berth_agent_connected{{node=\"{node}\"}} {}",
            u8::from(self.connected.load(Relaxed))
        );
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_are_counted_by_their_latest_state_until_forgotten() {
        let m = AgentMetrics::default();
        m.task_state("t1", "PENDING");
        m.task_state("t1", "RUNNING");
        m.task_state("t2", "RUNNING");
        m.task_state("t3", "STOPPED");
        m.container_failed("CannotPullContainerError: no such image");
        let text = m.render("n1");
        assert!(
            text.contains("berth_agent_tasks{node=\"n1\",state=\"RUNNING\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("berth_agent_tasks{node=\"n1\",state=\"STOPPED\"} 1\n"),
            "{text}"
        );
        assert!(!text.contains("state=\"PENDING\""), "{text}");
        assert!(
            text.contains("error=\"CannotPullContainerError\"} 1\n"),
            "{text}"
        );
        m.forget_task("t3");
        assert!(!m.render("n1").contains("state=\"STOPPED\""));
    }
}
