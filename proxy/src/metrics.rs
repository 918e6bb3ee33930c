//! The proxy's counters and their Prometheus text: lock-free atomics bumped on the hot path, read
//! only when `/metrics` is scraped. Per-request counters are sharded by worker thread, each shard
//! on its own cache lines, so workers counting the same target never contend; a scrape sums them.

use crate::table::Service;
use crate::Shared;
use berth_proto::v1::ServiceRequestCount;
use std::cell::Cell;
use std::collections::HashSet;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// Upper bounds of the latency buckets, in microseconds (0.5 ms … 60 s).
const BUCKETS_US: [u64; 16] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000, 30_000_000, 60_000_000,
];

/// Shards per counter: worker threads beyond this many share shards (still correct, just
/// contended).
const SHARDS: usize = 8;

thread_local! {
    /// This thread's shard; set once by each worker thread, 0 elsewhere.
    static SHARD: Cell<usize> = const { Cell::new(0) };
}

/// Makes the calling thread count into shard `worker` (modulo the shard count).
pub(crate) fn use_shard(worker: usize) {
    SHARD.set(worker % SHARDS);
}

/// Keeps each shard on its own cache lines.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

/// One copy of `T` per shard; each worker thread uses its own.
#[derive(Debug)]
pub(crate) struct Sharded<T>([Padded<T>; SHARDS]);

impl<T: Default> Default for Sharded<T> {
    fn default() -> Self {
        Self(std::array::from_fn(|_| Padded::default()))
    }
}

impl<T> Sharded<T> {
    pub fn from_fn(mut f: impl FnMut(usize) -> T) -> Self {
        Self(std::array::from_fn(|i| Padded(f(i))))
    }

    /// This thread's copy.
    pub fn local(&self) -> &T {
        &self.0[SHARD.get()].0
    }

    pub fn get(&self, shard: usize) -> &T {
        &self.0[shard % SHARDS].0
    }

    fn sum(&self, f: impl Fn(&T) -> u64) -> u64 {
        self.0.iter().map(|p| f(&p.0)).sum()
    }
}

/// Responses by status class: index 0 is 1xx … 4 is 5xx.
#[derive(Debug, Default)]
pub(crate) struct ByClass(Sharded<[AtomicU64; 5]>);

impl ByClass {
    pub fn record(&self, status: u16) {
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.0.local()[class].fetch_add(1, Relaxed);
    }

    /// Every response, whatever its class.
    pub fn total(&self) -> u64 {
        self.0.sum(|c| c.iter().map(|n| n.load(Relaxed)).sum())
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        for i in 0..5 {
            let n = self.0.sum(|c| c[i].load(Relaxed));
            if n > 0 {
                let _ = writeln!(out, "{name}{{{labels},code=\"{}xx\"}} {n}", i + 1);
            }
        }
    }
}

/// A latency histogram with fixed buckets (non-cumulative here, cumulative when written).
#[derive(Debug, Default)]
pub(crate) struct Histogram(Sharded<HistogramShard>);

#[derive(Debug, Default)]
struct HistogramShard {
    buckets: [AtomicU64; BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn record(&self, elapsed: Duration) {
        let us = elapsed.as_micros().min(u64::MAX as u128) as u64;
        let i = BUCKETS_US.partition_point(|&b| b < us);
        let shard = self.0.local();
        shard.buckets[i].fetch_add(1, Relaxed);
        shard.sum_us.fetch_add(us, Relaxed);
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for i in 0..=BUCKETS_US.len() {
            cumulative += self.0.sum(|h| h.buckets[i].load(Relaxed));
            match BUCKETS_US.get(i) {
                Some(&le) => {
                    let le = le as f64 / 1e6;
                    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
                }
                None => {
                    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {cumulative}");
                }
            }
        }
        let sum = self.0.sum(|h| h.sum_us.load(Relaxed)) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
    }
}

/// What one target has answered.
#[derive(Debug, Default)]
pub(crate) struct TargetMetrics {
    pub responses: ByClass,
    pub latency: Histogram,
}

impl TargetMetrics {
    pub fn record(&self, status: u16, elapsed: Duration) {
        self.responses.record(status);
        self.latency.record(elapsed);
    }
}

/// Every answer given for one service, the proxy's own 502/503/504 included. Kept across tables
/// while the service exists.
#[derive(Debug, Default)]
pub(crate) struct ServiceStats {
    pub responses: ByClass,
}

/// One listener port's client connections and the requests no rule matched.
#[derive(Debug, Default)]
pub(crate) struct ListenerStats {
    pub active: AtomicI64,
    pub accepted: AtomicU64,
    pub unmatched: AtomicU64,
    /// Connections closed on accept, over `Config::max_connections`.
    pub shed: AtomicU64,
}

/// Escapes a Prometheus label value.
fn label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

pub(crate) fn render(shared: &Shared) -> String {
    let snapshot = shared.snapshot.load_full();
    let mut seen = HashSet::new();
    let services: Vec<&Arc<Service>> = snapshot
        .services()
        .filter(|s| seen.insert(Arc::as_ptr(s)))
        .collect();
    let service_labels: Vec<String> = services
        .iter()
        .map(|s| {
            format!(
                "cluster=\"{}\",service=\"{}\",listener_port=\"{}\"",
                label(&s.cluster),
                label(&s.name),
                s.port
            )
        })
        .collect();
    let target_labels = |s: &Service, labels: &str| -> Vec<String> {
        s.targets
            .targets
            .iter()
            .map(|t| {
                format!(
                    "{labels},target=\"{}\",task=\"{}\"",
                    label(t.authority.as_str()),
                    label(&t.key.task_arn)
                )
            })
            .collect()
    };

    let mut out = String::new();
    header(
        &mut out,
        "berth_proxy_requests_total",
        "counter",
        "Requests answered per service, by status class (the proxy's own 502/503/504 included).",
    );
    for (s, labels) in services.iter().zip(&service_labels) {
        s.stats
            .responses
            .write(&mut out, "berth_proxy_requests_total", labels);
    }
    header(
        &mut out,
        "berth_proxy_target_requests_total",
        "counter",
        "Requests sent to each target, by the status class of the answer.",
    );
    for (s, labels) in services.iter().zip(&service_labels) {
        for (t, tl) in s.targets.targets.iter().zip(target_labels(s, labels)) {
            t.metrics
                .responses
                .write(&mut out, "berth_proxy_target_requests_total", &tl);
        }
    }
    header(
        &mut out,
        "berth_proxy_target_response_seconds",
        "histogram",
        "Time from forwarding a request to the target's response headers.",
    );
    for (s, labels) in services.iter().zip(&service_labels) {
        for (t, tl) in s.targets.targets.iter().zip(target_labels(s, labels)) {
            t.metrics
                .latency
                .write(&mut out, "berth_proxy_target_response_seconds", &tl);
        }
    }
    header(
        &mut out,
        "berth_proxy_target_in_flight",
        "gauge",
        "Requests (and upgraded connections) in flight to each target.",
    );
    for (s, labels) in services.iter().zip(&service_labels) {
        for (t, tl) in s.targets.targets.iter().zip(target_labels(s, labels)) {
            let _ = writeln!(
                out,
                "berth_proxy_target_in_flight{{{tl}}} {}",
                t.in_flight()
            );
        }
    }
    header(
        &mut out,
        "berth_proxy_target_state",
        "gauge",
        "1 for each target's current state (INITIAL, HEALTHY, UNHEALTHY, DRAINING).",
    );
    for (s, labels) in services.iter().zip(&service_labels) {
        for (t, tl) in s.targets.targets.iter().zip(target_labels(s, labels)) {
            let state = if t.is_draining() {
                "DRAINING"
            } else {
                t.health().as_str()
            };
            let _ = writeln!(out, "berth_proxy_target_state{{{tl},state=\"{state}\"}} 1");
        }
    }
    header(
        &mut out,
        "berth_proxy_active_connections",
        "gauge",
        "Open client connections per listener port.",
    );
    write_listeners(shared, &mut out);
    out
}

/// Requests answered per service since start, for the control plane's auto scaling: the same
/// counters `/metrics` shows, summed over the service's listener ports.
pub(crate) fn request_totals(shared: &Shared) -> Vec<ServiceRequestCount> {
    let snapshot = shared.snapshot.load_full();
    let mut seen = HashSet::new();
    let mut totals: Vec<ServiceRequestCount> = Vec::new();
    for s in snapshot.services() {
        if !seen.insert(Arc::as_ptr(&s.stats)) {
            continue;
        }
        let n = s.stats.responses.total();
        match totals.iter_mut().find(|t| t.service_arn == s.arn) {
            Some(t) => t.requests_total += n,
            None => totals.push(ServiceRequestCount {
                service_arn: s.arn.clone(),
                requests_total: n,
            }),
        }
    }
    totals
}

fn write_listeners(shared: &Shared, out: &mut String) {
    let listeners: Vec<(u16, Arc<ListenerStats>)> = match shared.listeners.lock() {
        Ok(l) => l.iter().map(|(p, s)| (*p, s.clone())).collect(),
        Err(_) => return,
    };
    for (port, stats) in &listeners {
        let _ = writeln!(
            out,
            "berth_proxy_active_connections{{listener_port=\"{port}\"}} {}",
            stats.active.load(Relaxed)
        );
    }
    header(
        out,
        "berth_proxy_connections_total",
        "counter",
        "Client connections accepted per listener port.",
    );
    for (port, stats) in &listeners {
        let _ = writeln!(
            out,
            "berth_proxy_connections_total{{listener_port=\"{port}\"}} {}",
            stats.accepted.load(Relaxed)
        );
    }
    header(
        out,
        "berth_proxy_shed_connections_total",
        "counter",
        "Client connections closed on accept, over --lb-max-connections, per listener port.",
    );
    for (port, stats) in &listeners {
        let _ = writeln!(
            out,
            "berth_proxy_shed_connections_total{{listener_port=\"{port}\"}} {}",
            stats.shed.load(Relaxed)
        );
    }
    header(
        out,
        "berth_proxy_unmatched_requests_total",
        "counter",
        "Requests no rule matched (answered 404), per listener port.",
    );
    for (port, stats) in &listeners {
        let _ = writeln!(
            out,
            "berth_proxy_unmatched_requests_total{{listener_port=\"{port}\"}} {}",
            stats.unmatched.load(Relaxed)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        h.record(Duration::from_micros(300));
        h.record(Duration::from_millis(3));
        h.record(Duration::from_secs(100));
        let mut out = String::new();
        h.write(&mut out, "x", "a=\"b\"");
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.0005\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.005\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_count{a=\"b\"} 3\n"), "{out}");
    }

    #[test]
    fn counts_from_every_worker_thread_add_up() {
        let counts = std::sync::Arc::new(ByClass::default());
        let threads: Vec<_> = (0..3)
            .map(|worker| {
                let counts = counts.clone();
                std::thread::spawn(move || {
                    use_shard(worker);
                    for _ in 0..10 {
                        counts.record(200);
                    }
                    counts.record(503);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut out = String::new();
        counts.write(&mut out, "x", "a=\"b\"");
        assert_eq!(
            out,
            "x{a=\"b\",code=\"2xx\"} 30\nx{a=\"b\",code=\"5xx\"} 3\n"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
