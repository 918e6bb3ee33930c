//! The proxy's counters: lock-free atomics bumped on the hot path and read only when `/metrics`
//! is scraped (`metrics` reads them there). Per-request counters are sharded by worker thread,
//! each shard on its own cache lines, so workers counting the same target never contend; a
//! scrape sums them. Each counter encodes itself into a `prometheus-client` family.

use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds of the latency buckets, in microseconds (0.5 ms … 60 s).
pub(crate) const BUCKETS_US: [u64; 16] = [
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

    /// Responses of one class (1 … 5).
    pub fn of_class(&self, class: usize) -> u64 {
        self.0.sum(|c| c[class.clamp(1, 5) - 1].load(Relaxed))
    }

    /// Every response, whatever its class.
    pub fn total(&self) -> u64 {
        self.0.sum(|c| c.iter().map(|n| n.load(Relaxed)).sum())
    }

    /// One sample per status class answered at least once, `code="2xx"` after `labels`.
    pub(crate) fn encode(
        &self,
        family: &mut MetricEncoder,
        labels: impl EncodeLabelSet + Copy,
    ) -> std::fmt::Result {
        const CODES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
        for (i, code) in CODES.iter().enumerate() {
            let n = self.0.sum(|c| c[i].load(Relaxed));
            if n > 0 {
                family
                    .encode_family(&(labels, [("code", *code)]))?
                    .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
            }
        }
        Ok(())
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

    /// Answers per bucket (not cumulative), the last one unbounded.
    pub(crate) fn counts(&self) -> Vec<u64> {
        (0..=BUCKETS_US.len())
            .map(|i| self.0.sum(|h| h.buckets[i].load(Relaxed)))
            .collect()
    }

    pub(crate) fn encode(
        &self,
        family: &mut MetricEncoder,
        labels: impl EncodeLabelSet + Copy,
    ) -> std::fmt::Result {
        let buckets: Vec<(f64, u64)> = (0..=BUCKETS_US.len())
            .map(|i| {
                let le = BUCKETS_US
                    .get(i)
                    .map_or(f64::INFINITY, |&us| us as f64 / 1e6);
                (le, self.0.sum(|h| h.buckets[i].load(Relaxed)))
            })
            .collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = self.0.sum(|h| h.sum_us.load(Relaxed)) as f64 / 1e6;
        family
            .encode_family(&labels)?
            .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
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
    /// Time to the response headers (the revision figures a traffic shift is judged by).
    pub latency: Histogram,
}

impl ServiceStats {
    pub fn record(&self, status: u16, elapsed: Duration) {
        self.responses.record(status);
        self.latency.record(elapsed);
    }
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

/// One family's descriptor; counter names without `_total` (the encoder adds it).
pub(crate) fn family<'e>(
    encoder: &'e mut DescriptorEncoder,
    name: &'e str,
    help: &str,
    kind: MetricType,
) -> Result<MetricEncoder<'e>, std::fmt::Error> {
    encoder.encode_descriptor(name, help, None, kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::collector::Collector;
    use std::sync::Arc;

    #[derive(Debug)]
    struct Latency(Histogram);

    impl Collector for Latency {
        fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
            let mut f = family(&mut encoder, "x", "h", MetricType::Histogram)?;
            self.0.encode(&mut f, [("a", "b")])
        }
    }

    #[derive(Debug)]
    struct Responses(Arc<ByClass>);

    impl Collector for Responses {
        fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
            let mut f = family(&mut encoder, "x", "h", MetricType::Counter)?;
            self.0.encode(&mut f, [("a", "b")])
        }
    }

    fn text(c: impl Collector) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(c));
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).unwrap();
        out
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        h.record(Duration::from_micros(300));
        h.record(Duration::from_millis(3));
        h.record(Duration::from_secs(100));
        let out = text(Latency(h));
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.0005\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.005\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"60\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"+Inf\"} 3\n"), "{out}");
        assert_eq!(out.matches("le=\"+Inf\"").count(), 1, "{out}");
        assert!(out.contains("x_count{a=\"b\"} 3\n"), "{out}");
    }

    #[test]
    fn counts_from_every_worker_thread_add_up() {
        let counts = Arc::new(ByClass::default());
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
        let out = text(Responses(counts));
        assert_eq!(
            out,
            "# HELP x_total h\n# TYPE x_total counter\n\
             x_total{a=\"b\",code=\"2xx\"} 30\nx_total{a=\"b\",code=\"5xx\"} 3\n"
        );
    }
}
