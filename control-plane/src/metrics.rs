//! The control plane's own counters and their Prometheus text: placements, reconcile latency and
//! deployment durations are counted where they happen (one-line hooks through `State::metrics`);
//! tasks by state and connected agents are read from the store and the sessions when scraped.

use crate::http::{ExtraMetrics, MetricsSource};
use crate::nodes::Sessions;
use crate::state::{keys, State};
use berth_proto::v1::{Service, Task};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Reconcile passes: 1 ms … 10 s.
const RECONCILE_BUCKETS_S: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Deployments: 5 s … 1 h.
const DEPLOYMENT_BUCKETS_S: &[f64] = &[5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0];

/// A histogram with fixed upper bounds in seconds; counts are per bucket here, cumulative when
/// written.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_us: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        let i = self.bounds.partition_point(|&b| b < s);
        self.counts[i].fetch_add(1, Relaxed);
        self.sum_us
            .fetch_add(d.as_micros().min(u64::MAX as u128) as u64, Relaxed);
    }

    /// `NAME_bucket{LABELS,le=..}`, `NAME_sum`, `NAME_count`; `labels` may be empty.
    pub fn write(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut total = 0;
        for (i, c) in self.counts.iter().enumerate() {
            total += c.load(Relaxed);
            let le = self
                .bounds
                .get(i)
                .map_or("+Inf".to_string(), f64::to_string);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {total}");
        }
        let sum = self.sum_us.load(Relaxed) as f64 / 1e6;
        let braced = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braced} {sum}");
        let _ = writeln!(out, "{name}_count{braced} {total}");
    }
}

/// Counters shared by everything holding the `State`.
#[derive(Debug)]
pub struct Metrics {
    placements: AtomicU64,
    placement_failures: Mutex<BTreeMap<String, u64>>,
    reconcile: Histogram,
    deployments: Mutex<BTreeMap<String, Arc<Histogram>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            placements: AtomicU64::new(0),
            placement_failures: Mutex::default(),
            reconcile: Histogram::new(RECONCILE_BUCKETS_S),
            deployments: Mutex::default(),
        }
    }
}

/// Records the time from its creation to its drop as one reconcile pass.
pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    started: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics.reconcile.observe(self.started.elapsed());
    }
}

impl Metrics {
    /// A task was placed on a node (by a service or `task run`).
    pub fn placed(&self) {
        self.placements.fetch_add(1, Relaxed);
    }

    /// A task could not be placed; `reason` is the scheduler's (RESOURCE:MEMORY, AGENT, ...).
    pub fn placement_failed(&self, reason: &str) {
        let mut m = self
            .placement_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *m.entry(reason.to_string()).or_default() += 1;
    }

    /// Times one pass of the controllers: hold the guard for the pass.
    pub fn time_reconcile(&self) -> ReconcileTimer<'_> {
        ReconcileTimer {
            metrics: self,
            started: Instant::now(),
        }
    }

    /// Records the duration of every deployment that finished (COMPLETED or FAILED) between the
    /// two versions of a service.
    pub fn deployments_finished(&self, before: &Service, after: &Service) {
        for d in &after.deployments {
            let was = before.deployments.iter().find(|b| b.id == d.id);
            let finished = matches!(d.rollout_state.as_str(), "COMPLETED" | "FAILED");
            if !finished || was.is_some_and(|b| b.rollout_state == d.rollout_state) {
                continue;
            }
            let (Some(start), Some(end)) = (
                crate::time::parse_rfc3339(&d.created_at),
                crate::time::parse_rfc3339(&d.updated_at),
            ) else {
                continue;
            };
            let h = self
                .deployments
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(d.rollout_state.clone())
                .or_insert_with(|| Arc::new(Histogram::new(DEPLOYMENT_BUCKETS_S)))
                .clone();
            h.observe(Duration::from_millis((end - start).max(0) as u64));
        }
    }

    /// The counters as Prometheus text.
    pub fn render(&self, out: &mut String) {
        header(
            out,
            "berth_placements_total",
            "counter",
            "Tasks placed on a node.",
        );
        let _ = writeln!(
            out,
            "berth_placements_total {}",
            self.placements.load(Relaxed)
        );
        header(
            out,
            "berth_placement_failures_total",
            "counter",
            "Placement attempts that found no node, by the scheduler's reason.",
        );
        for (reason, n) in self
            .placement_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "berth_placement_failures_total{{reason=\"{}\"}} {n}",
                label(reason)
            );
        }
        header(
            out,
            "berth_reconcile_seconds",
            "histogram",
            "Time of one pass of the service controllers.",
        );
        self.reconcile.write(out, "berth_reconcile_seconds", "");
        header(
            out,
            "berth_deployment_seconds",
            "histogram",
            "From a deployment's creation to its end, by outcome (COMPLETED or FAILED).",
        );
        let deployments: Vec<(String, Arc<Histogram>)> = self
            .deployments
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (outcome, h) in deployments {
            let labels = format!("outcome=\"{}\"", label(&outcome));
            h.write(out, "berth_deployment_seconds", &labels);
        }
    }
}

pub(crate) fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escapes a Prometheus label value.
pub(crate) fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Tasks by cluster and last status, and connected agents, read now; then the counters.
pub fn render(state: &State, sessions: &Sessions) -> String {
    let mut out = String::new();
    let mut by_state: BTreeMap<(String, String), u64> = BTreeMap::new();
    for t in state.scan::<Task>(keys::TASKS).unwrap_or_default() {
        let cluster = crate::arn::last_segment(&t.cluster_arn).to_string();
        *by_state.entry((cluster, t.last_status)).or_default() += 1;
    }
    header(
        &mut out,
        "berth_tasks",
        "gauge",
        "Tasks the control plane keeps, by cluster and last status.",
    );
    for ((cluster, status), n) in by_state {
        let _ = writeln!(
            out,
            "berth_tasks{{cluster=\"{}\",state=\"{}\"}} {n}",
            label(&cluster),
            label(&status)
        );
    }
    header(
        &mut out,
        "berth_agents_connected",
        "gauge",
        "Agents with a live session.",
    );
    let _ = writeln!(out, "berth_agents_connected {}", sessions.connected_count());
    state.metrics().render(&mut out);
    out
}

/// Adds the control plane's metrics to `/metrics`.
pub fn register(extra: &ExtraMetrics, state: &State, sessions: &Arc<Sessions>) {
    let (state, sessions) = (state.clone(), sessions.clone());
    let source: MetricsSource = Arc::new(move || render(&state, &sessions));
    if let Ok(mut v) = extra.lock() {
        v.push(source);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::v1::Deployment;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::new(RECONCILE_BUCKETS_S);
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(30));
        h.observe(Duration::from_secs(60));
        let mut out = String::new();
        h.write(&mut out, "x", "");
        assert!(out.contains("x_bucket{le=\"0.001\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.05\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"10\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_count 3\n"), "{out}");
    }

    #[test]
    fn a_deployment_is_timed_once_when_it_completes() {
        let m = Metrics::default();
        let dep = |state: &str| Deployment {
            id: "d1".into(),
            rollout_state: state.into(),
            created_at: "2026-11-24T09:00:00Z".into(),
            updated_at: "2026-11-24T09:00:42Z".into(),
            ..Default::default()
        };
        let svc = |state: &str| Service {
            deployments: vec![dep(state)],
            ..Default::default()
        };
        m.deployments_finished(&svc("IN_PROGRESS"), &svc("COMPLETED"));
        m.deployments_finished(&svc("COMPLETED"), &svc("COMPLETED"));
        let mut out = String::new();
        m.render(&mut out);
        assert!(
            out.contains("berth_deployment_seconds_count{outcome=\"COMPLETED\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("berth_deployment_seconds_bucket{outcome=\"COMPLETED\",le=\"30\"} 0\n"),
            "{out}"
        );
        assert!(
            out.contains("berth_deployment_seconds_bucket{outcome=\"COMPLETED\",le=\"60\"} 1\n"),
            "{out}"
        );
    }
}
