//! Whether the store can write: degraded while appends fail (a full disk), stopped after a
//! failed sync; and its metrics for `/metrics`.

use super::StoreError;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// What the store says of itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreHealth {
    /// Why writes fail now (the last failed append, until one succeeds).
    pub degraded: Option<String>,
    /// Appends that failed since the store opened.
    pub failed_writes: u64,
}

/// The log store's record of its failures (shared by the committer and the syncer).
#[derive(Debug, Default)]
pub(super) struct Health {
    degraded: Mutex<Option<String>>,
    failed_writes: AtomicU64,
    /// A sync failed: no write is taken again in this process.
    stopped: AtomicBool,
}

impl Health {
    /// An error when a failed sync stopped the store.
    pub fn usable(&self) -> Result<(), StoreError> {
        if self.stopped.load(Ordering::Acquire) {
            return Err(StoreError::Io(
                "a sync of the store's log failed; the store takes no writes until the server restarts and replays it".into(),
            ));
        }
        Ok(())
    }

    /// An append failed at `path`: the store is degraded, and the caller is told why.
    pub fn write_failed(&self, path: &Path, e: &std::io::Error) -> StoreError {
        self.failed_writes.fetch_add(1, Ordering::Relaxed);
        let dir = path.parent().unwrap_or(path).display();
        let msg = if is_full(e) {
            format!("the disk holding the store ({dir}) is full ({e}): the write was not made; free space and it succeeds again, no restart needed")
        } else {
            format!(
                "the store could not write to {} ({e}): the write was not made",
                path.display()
            )
        };
        if let Ok(mut d) = self.degraded.lock() {
            if d.is_none() {
                tracing::warn!(error = %msg, "the store is degraded: writes fail");
            }
            *d = Some(msg.clone());
        }
        StoreError::Io(msg)
    }

    /// An append succeeded: not degraded (any more).
    pub fn wrote(&self) {
        if let Ok(mut d) = self.degraded.lock() {
            if d.take().is_some() {
                tracing::info!("the store writes again");
            }
        }
    }

    pub fn sync_failed(&self, msg: &str) {
        self.stopped.store(true, Ordering::Release);
        if let Ok(mut d) = self.degraded.lock() {
            *d = Some(format!("{msg}: the store is stopped until a restart"));
        }
    }

    pub fn report(&self) -> StoreHealth {
        StoreHealth {
            degraded: self.degraded.lock().ok().and_then(|d| d.clone()),
            failed_writes: self.failed_writes.load(Ordering::Relaxed),
        }
    }
}

/// ENOSPC, or EDQUOT (a quota is a full disk to the writer).
fn is_full(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull || matches!(e.raw_os_error(), Some(28 | 122))
}

/// `berth_store_degraded` (1 while writes fail) and `berth_store_failed_writes_total`.
#[derive(Clone)]
pub struct HealthMetrics(pub Arc<dyn super::Store>);

impl std::fmt::Debug for HealthMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HealthMetrics")
    }
}

impl Collector for HealthMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let h = self.0.health();
        let degraded = ConstGauge::new(i64::from(h.degraded.is_some()));
        degraded.encode(encoder.encode_descriptor(
            "berth_store_degraded",
            "1 while the store's writes fail (a full disk); the reason is on /healthz",
            None,
            degraded.metric_type(),
        )?)?;
        let failed = ConstCounter::new(h.failed_writes);
        failed.encode(encoder.encode_descriptor(
            "berth_store_failed_writes",
            "Appends to the store's log that failed since it opened",
            None,
            failed.metric_type(),
        )?)
    }
}

/// Adds the store's health metrics to the registry.
pub fn register_metrics(
    registry: &mut prometheus_client::registry::Registry,
    store: Arc<dyn super::Store>,
) {
    registry.register_collector(Box::new(HealthMetrics(store)));
}
