//! The control plane's gauges read when scraped: tasks by state, connected agents and stored
//! objects, from the store and this process's sessions.

use super::sessions::Sessions;
use crate::state::metrics::{register_with, SharedRegistry};
use crate::state::{keys, State};
use berth_proto::v1::TaskHeader;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What is read from the store and the sessions when scraped (the HTTP handler encodes off the
/// async workers, so the scans may block).
struct Scraped {
    state: State,
    sessions: Arc<Sessions>,
}

impl std::fmt::Debug for Scraped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scraped")
    }
}

/// One gauge family without labels.
fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, n: usize) -> std::fmt::Result {
    encoder
        .encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&(n as i64))
}

impl Collector for Scraped {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let mut by_state: BTreeMap<(String, String), i64> = BTreeMap::new();
        // Headers one at a time: a scrape never holds every task.
        let _ = self.state.scan_each::<TaskHeader>(keys::TASKS, |t| {
            let cluster = berth_core::arn::last_segment(&t.cluster_arn).to_string();
            *by_state.entry((cluster, t.last_status)).or_default() += 1;
            true
        });
        let mut tasks = encoder.encode_descriptor(
            "berth_tasks",
            "Tasks the control plane keeps, by cluster and last status.",
            None,
            MetricType::Gauge,
        )?;
        for ((cluster, status), n) in by_state {
            let labels = [("cluster", cluster.as_str()), ("state", status.as_str())];
            tasks.encode_family(&labels)?.encode_gauge(&n)?;
        }
        let (connected, help) = (
            self.sessions.connected_count(),
            "Agents with a live session.",
        );
        gauge(&mut encoder, "berth_agents_connected", help, connected)?;
        let store = self.state.store();
        let n = |p: &str| store.scan(p).map(|v| v.len()).unwrap_or(0);
        let help = "Clusters stored (any status).";
        gauge(&mut encoder, "berth_clusters", help, n(keys::CLUSTERS))?;
        let help = "Task definition revisions stored.";
        gauge(
            &mut encoder,
            "berth_task_definitions",
            help,
            n(keys::TASK_DEFINITIONS),
        )
    }
}

/// Adds the control plane's metrics to the registry.
pub fn register(registry: &SharedRegistry, state: &State, sessions: &Arc<Sessions>) {
    register_with(registry, |r| {
        state.metrics().register(r);
        r.register_collector(Box::new(Scraped {
            state: state.clone(),
            sessions: sessions.clone(),
        }));
    });
}
