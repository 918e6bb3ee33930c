//! The process's one Prometheus registry, and the control plane's metrics in it: placements,
//! reconcile latency and deployment durations are counted where they happen (one-line hooks
//! through `State::metrics`); tasks by state, connected agents and stored objects are read from the
//! store and the sessions when scraped (`live::metrics`). Only `prometheus-client` writes the text.

use berth_proto::v1::Service;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Every metric of this process (control plane, and the proxy and agent run beside it): they
/// register once at start, and `/metrics` encodes the lot.
pub type SharedRegistry = Arc<RwLock<Registry>>;

/// The `Content-Type` of [`encode`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The registry as Prometheus text (format 0.0.4, whose counter families keep their `_total`).
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; a collector that failed leaves what it wrote.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, registry);
    out
}

/// [`encode`] of a shared registry (a poisoned lock still holds every registration).
pub fn encode_shared(registry: &SharedRegistry) -> String {
    encode(&registry.read().unwrap_or_else(|p| p.into_inner()))
}

/// Registers with the shared registry (a poisoned lock still takes registrations).
pub fn register_with(registry: &SharedRegistry, f: impl FnOnce(&mut Registry)) {
    f(&mut registry.write().unwrap_or_else(|p| p.into_inner()))
}

/// Reconcile passes: 1 ms … 10 s.
const RECONCILE_BUCKETS_S: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Deployments: 5 s … 1 h.
const DEPLOYMENT_BUCKETS_S: &[f64] = &[5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0];

fn deployment_histogram() -> Histogram {
    Histogram::new(DEPLOYMENT_BUCKETS_S.iter().copied())
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: String,
}

/// Counters shared by everything holding the `State`; the registry holds clones of the same
/// atomics.
#[derive(Debug)]
pub struct Metrics {
    placements: Counter,
    placement_failures: Family<Reason, Counter>,
    reconcile: Histogram,
    deployments: Family<Outcome, Histogram, fn() -> Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            placements: Counter::default(),
            placement_failures: Family::default(),
            reconcile: Histogram::new(RECONCILE_BUCKETS_S.iter().copied()),
            deployments: Family::new_with_constructor(deployment_histogram),
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
        let pass = self.started.elapsed().as_secs_f64();
        self.metrics.reconcile.observe(pass);
    }
}

impl Metrics {
    /// A task was placed on a node (by a service or `task run`).
    pub fn placed(&self) {
        self.placements.inc();
    }

    /// A task could not be placed; `reason` is the scheduler's (RESOURCE:MEMORY, AGENT, ...).
    pub fn placement_failed(&self, reason: &str) {
        let reason = Reason {
            reason: reason.to_string(),
        };
        self.placement_failures.get_or_create(&reason).inc();
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
            let outcome = Outcome {
                outcome: d.rollout_state.clone(),
            };
            let took = Duration::from_millis((end - start).max(0) as u64);
            self.deployments
                .get_or_create(&outcome)
                .observe(took.as_secs_f64());
        }
    }

    /// Adds the counters to `registry` (counter names without `_total`, help
    /// without the final period: the encoder adds both).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "berth_placements",
            "Tasks placed on a node",
            self.placements.clone(),
        );
        registry.register(
            "berth_placement_failures",
            "Placement attempts that found no node, by the scheduler's reason",
            self.placement_failures.clone(),
        );
        registry.register(
            "berth_reconcile_seconds",
            "Time of one pass of the service controllers",
            self.reconcile.clone(),
        );
        registry.register(
            "berth_deployment_seconds",
            "From a deployment's creation to its end, by outcome (COMPLETED or FAILED)",
            self.deployments.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::v1::Deployment;

    fn text(m: &Metrics) -> String {
        let mut registry = Registry::default();
        m.register(&mut registry);
        encode(&registry)
    }

    #[test]
    fn reconcile_buckets_are_cumulative_and_counters_keep_total() {
        let m = Metrics::default();
        for pass in [Duration::from_micros(500), Duration::from_millis(30)] {
            let mut timer = m.time_reconcile();
            timer.started = Instant::now() - pass;
        }
        m.placed();
        m.placement_failed("RESOURCE:MEMORY");
        let out = text(&m);
        assert!(
            out.contains("berth_reconcile_seconds_bucket{le=\"0.001\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("berth_reconcile_seconds_bucket{le=\"0.05\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("berth_reconcile_seconds_bucket{le=\"10\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("berth_reconcile_seconds_bucket{le=\"+Inf\"} 2\n"),
            "{out}"
        );
        assert!(out.contains("berth_reconcile_seconds_count 2\n"), "{out}");
        assert!(
            out.contains("# TYPE berth_placements_total counter\n"),
            "{out}"
        );
        assert!(out.contains("berth_placements_total 1\n"), "{out}");
        assert!(
            out.contains("berth_placement_failures_total{reason=\"RESOURCE:MEMORY\"} 1\n"),
            "{out}"
        );
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
        let out = text(&m);
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

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::default();
        m.placement_failed("a\"b\\c\nd");
        let out = text(&m);
        assert!(out.contains("{reason=\"a\\\"b\\\\c\\nd\"} 1\n"), "{out}");
    }
}
