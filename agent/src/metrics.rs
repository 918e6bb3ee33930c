//! The agent's metrics: tasks by state on this node (as the runners last published them),
//! container starts and failures, and the stream's reconnects. Every name starts with
//! `berth_agent_` and carries the node's name, so they join a server's registry without clashing.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabel {
    error: String,
}

/// Shared by the session and its runners; the registry holds clones of the same atomics.
#[derive(Debug, Default)]
pub struct AgentMetrics {
    /// Task ARN → its last published status, while the session keeps its runner.
    tasks: Arc<Mutex<HashMap<String, String>>>,
    container_starts: Counter,
    /// By the ECS error name (CannotPullContainerError, CannotCreateContainerError, ...).
    container_failures: Family<ErrorLabel, Counter>,
    reconnects: Counter,
    connected: Gauge,
}

/// Tasks by their last status, counted when scraped.
#[derive(Debug)]
struct TasksByState(Arc<Mutex<HashMap<String, String>>>);

impl Collector for TasksByState {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let mut by_state: BTreeMap<String, i64> = BTreeMap::new();
        for s in self.0.lock().unwrap_or_else(|p| p.into_inner()).values() {
            *by_state.entry(s.clone()).or_default() += 1;
        }
        let mut family = encoder.encode_descriptor(
            "berth_agent_tasks",
            "Tasks this agent runs, by their last published status.",
            None,
            MetricType::Gauge,
        )?;
        for (state, n) in by_state {
            family
                .encode_family(&[("state", state.as_str())])?
                .encode_gauge(&n)?;
        }
        Ok(())
    }
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
        self.container_starts.inc();
    }

    /// A task failed to start; `reason` is its stopped reason ("CannotPullContainerError: ...").
    pub fn container_failed(&self, reason: &str) {
        let error = reason
            .split_once(':')
            .map_or("Other", |(k, _)| k)
            .trim()
            .to_string();
        self.container_failures
            .get_or_create(&ErrorLabel { error })
            .inc();
    }

    /// The stream to the control plane was lost; the session will connect again.
    pub fn disconnected(&self) {
        self.connected.set(0);
        self.reconnects.inc();
    }

    pub fn welcomed(&self) {
        self.connected.set(1);
    }

    /// Adds this agent's metrics to `registry`, every one labelled `node` (counter names
    /// without `_total`, help without the final period: the encoder adds both).
    pub fn register(&self, registry: &mut Registry, node: &str) {
        let r = registry.sub_registry_with_label(("node".into(), node.to_string().into()));
        r.register_collector(Box::new(TasksByState(self.tasks.clone())));
        r.register(
            "berth_agent_container_starts",
            "Containers this agent started",
            self.container_starts.clone(),
        );
        r.register(
            "berth_agent_container_failures",
            "Tasks that failed to start, by error",
            self.container_failures.clone(),
        );
        r.register(
            "berth_agent_session_reconnects",
            "Times the stream to the control plane was lost and tried again",
            self.reconnects.clone(),
        );
        r.register(
            "berth_agent_connected",
            "1 while the stream to the control plane is up",
            self.connected.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(m: &AgentMetrics, node: &str) -> String {
        let mut registry = Registry::default();
        m.register(&mut registry, node);
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).unwrap();
        out
    }

    #[test]
    fn tasks_are_counted_by_their_latest_state_until_forgotten() {
        let m = AgentMetrics::default();
        m.task_state("t1", "PENDING");
        m.task_state("t1", "RUNNING");
        m.task_state("t2", "RUNNING");
        m.task_state("t3", "STOPPED");
        m.container_failed("CannotPullContainerError: no such image");
        let text = render(&m, "n1");
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
            text.contains(
                "berth_agent_container_failures_total{node=\"n1\",error=\"CannotPullContainerError\"} 1\n"
            ),
            "{text}"
        );
        m.forget_task("t3");
        assert!(!render(&m, "n1").contains("state=\"STOPPED\""));
    }

    #[test]
    fn counters_keep_their_total_names_and_the_connection_shows() {
        let m = AgentMetrics::default();
        m.welcomed();
        m.container_started();
        let text = render(&m, "n1");
        assert!(
            text.contains("# TYPE berth_agent_container_starts_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("berth_agent_container_starts_total{node=\"n1\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("berth_agent_session_reconnects_total{node=\"n1\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("berth_agent_connected{node=\"n1\"} 1\n"),
            "{text}"
        );
        m.disconnected();
        let text = render(&m, "n1");
        assert!(
            text.contains("berth_agent_connected{node=\"n1\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("berth_agent_session_reconnects_total{node=\"n1\"} 1\n"),
            "{text}"
        );
    }
}
