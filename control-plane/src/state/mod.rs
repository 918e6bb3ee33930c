//! Typed state over the `Store`: the one way to change it.
//!
//! Every read-check-write is an optimistic transaction (`State::update`): the closure reads
//! through a `Tx`, which remembers the revision of each key and prefix it read, and its writes
//! commit only if none of those changed meanwhile; otherwise it runs again on fresh state. The
//! store's compare is the guarantee, so the same code is safe across processes (etcd) as in one.

pub mod error;
pub mod metrics;

use crate::state::error::{Error, Result};
use crate::store::{Compare, Op, Store, StoreError, TxnOutcome};
use prost::Message;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Key prefixes, one per kind of object (they live in `berth_core::keys`).
pub use berth_core::keys;

/// Attempts before an update gives up on a key that keeps changing under it.
const MAX_ATTEMPTS: usize = 64;

/// A `State` that does not keep its store open (`State::downgrade`).
pub struct WeakState {
    store: std::sync::Weak<dyn Store>,
    metrics: Arc<crate::state::metrics::Metrics>,
    keys_read: Arc<AtomicU64>,
    fence: Option<Compare>,
    limits: berth_core::limits::Limits,
}

impl WeakState {
    /// The state again, while its store is still open.
    pub fn upgrade(&self) -> Option<State> {
        Some(State {
            store: self.store.upgrade()?,
            metrics: self.metrics.clone(),
            keys_read: self.keys_read.clone(),
            fence: self.fence.clone(),
            limits: self.limits,
        })
    }
}

/// Shared handle to the control plane's state.
#[derive(Clone)]
pub struct State {
    store: Arc<dyn Store>,
    metrics: Arc<crate::state::metrics::Metrics>,
    /// Keys read, for the wake-up benchmark and `/metrics`.
    keys_read: Arc<AtomicU64>,
    /// The leader's fence: every commit through this handle also compares it, so a deposed
    /// leader's writes fail instead of landing.
    fence: Option<Compare>,
    limits: berth_core::limits::Limits,
}

impl State {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            metrics: Arc::default(),
            keys_read: Arc::default(),
            fence: None,
            limits: berth_core::limits::Limits::default(),
        }
    }

    /// This handle, with every commit fenced by `fence` (the leader's controllers use it).
    pub fn fenced(&self, fence: Option<Compare>) -> Self {
        Self {
            fence,
            ..self.clone()
        }
    }

    /// The same state with other request bounds (`--max-desired-count`).
    pub fn with_limits(mut self, limits: berth_core::limits::Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The bounds every transport's validation checks against.
    pub fn limits(&self) -> &berth_core::limits::Limits {
        &self.limits
    }

    /// The control plane's counters (placements, reconcile latency, deployments).
    pub fn metrics(&self) -> &crate::state::metrics::Metrics {
        &self.metrics
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// This handle without keeping its store open: for a follower that must end with it.
    pub fn downgrade(&self) -> WeakState {
        WeakState {
            store: Arc::downgrade(&self.store),
            metrics: self.metrics.clone(),
            keys_read: self.keys_read.clone(),
            fence: self.fence.clone(),
            limits: self.limits,
        }
    }

    /// How many keys have been read since start (a get is one; a scan, what it returned).
    pub fn keys_read(&self) -> u64 {
        self.keys_read.load(Ordering::Relaxed)
    }

    fn count(&self, n: usize) {
        self.keys_read.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn get<T: Message + Default>(&self, key: &str) -> Result<Option<T>> {
        Ok(self.get_versioned(key)?.map(|(v, _)| v))
    }

    /// The value and the revision that last wrote it.
    pub fn get_versioned<T: Message + Default>(&self, key: &str) -> Result<Option<(T, u64)>> {
        self.count(1);
        // Decoded from the store's own bytes where it lends them (no copy of the value first).
        let mut got = None;
        self.store.get_with(key, &mut |value, revision| {
            got = Some(decode(key, value).map(|v| (v, revision)));
        })?;
        got.transpose()
    }

    pub fn scan<T: Message + Default>(&self, prefix: &str) -> Result<Vec<T>> {
        let raw = self.store.scan(prefix)?;
        self.count(raw.len());
        raw.into_iter().map(|(k, v)| decode(&k, &v.value)).collect()
    }

    /// Every record under `prefix`, decoded and handed to `each` one at a time (nothing else is
    /// held: a scan over a million tasks costs one task's memory); `each` returns `false` to
    /// stop. Decode into a header type (`TaskHeader`) to skip the fields the caller ignores.
    pub fn scan_each<T: Message + Default>(
        &self,
        prefix: &str,
        mut each: impl FnMut(T) -> bool,
    ) -> Result<()> {
        self.scan_each_keyed(prefix, |_, t| each(t))
    }

    /// `scan_each`, with each record's key.
    pub fn scan_each_keyed<T: Message + Default>(
        &self,
        prefix: &str,
        mut each: impl FnMut(&str, T) -> bool,
    ) -> Result<()> {
        let mut failed = None;
        let mut n = 0;
        self.store.scan_each(prefix, &mut |k, v| {
            n += 1;
            match decode::<T>(k, v) {
                Ok(t) => each(k, t),
                Err(e) => {
                    failed = Some(e);
                    false
                }
            }
        })?;
        self.count(n);
        failed.map_or(Ok(()), Err)
    }

    /// The keys under `prefix` (values unread by the caller, but counted).
    pub fn scan_keys(&self, prefix: &str) -> Result<Vec<String>> {
        // The values are never copied out (the store lends them, and they are not wanted).
        let mut keys = Vec::new();
        self.store.scan_each(prefix, &mut |k, _| {
            keys.push(k.to_string());
            true
        })?;
        self.count(keys.len());
        Ok(keys)
    }

    pub fn get_raw(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.count(1);
        Ok(self.store.get(key)?.map(|v| v.value))
    }

    /// An unconditional batch: for writes no read decided (fresh unique keys, counters kept by
    /// the component that owns them).
    pub fn commit(&self, ops: Vec<Op>) -> Result<()> {
        let Some(fence) = &self.fence else {
            self.store.commit(ops)?;
            return Ok(());
        };
        // Fenced: each part carries the compare, so it cannot be split by the store.
        let size = self.store.max_txn_ops().max(2);
        let mut ops = ops;
        while !ops.is_empty() {
            let rest = ops.split_off(ops.len().min(size));
            if !self.txn(std::slice::from_ref(fence), ops)? {
                return Err(Error::Conflict("this replica no longer leads".into()));
            }
            ops = rest;
        }
        Ok(())
    }

    /// A batch under compares; `false` when one failed and nothing was written.
    pub fn txn(&self, compares: &[Compare], ops: Vec<Op>) -> Result<bool> {
        let outcome = match &self.fence {
            None => self.store.txn(compares, ops)?,
            Some(f) => {
                let mut all = Vec::with_capacity(compares.len() + 1);
                all.push(f.clone());
                all.extend_from_slice(compares);
                self.store.txn(&all, ops)?
            }
        };
        Ok(matches!(outcome, TxnOutcome::Committed(_)))
    }

    /// Runs `f` as an optimistic transaction: its reads are compared at commit, and it runs
    /// again on fresh state when any of them changed. `f` returns its result and the ops.
    pub fn update<R>(&self, mut f: impl FnMut(&mut Tx<'_>) -> Result<(R, Vec<Op>)>) -> Result<R> {
        for attempt in 0..MAX_ATTEMPTS {
            let mut tx = Tx {
                state: self,
                compares: Vec::new(),
                attempt,
            };
            match f(&mut tx) {
                Ok((out, ops)) => {
                    if ops.is_empty() || self.txn(&tx.compares, ops)? {
                        return Ok(out);
                    }
                    if let Some(f) = &self.fence {
                        // A deposed leader stops at once rather than retrying.
                        if !matches!(
                            self.store.txn(std::slice::from_ref(f), Vec::new())?,
                            TxnOutcome::Committed(_)
                        ) {
                            return Err(Error::Conflict("this replica no longer leads".into()));
                        }
                    }
                }
                Err(Error::Conflict(why)) => {
                    tracing::debug!(%why, attempt, "decision went stale; deciding again");
                }
                Err(e) => return Err(e),
            }
            if attempt > 4 {
                std::thread::sleep(std::time::Duration::from_millis(attempt as u64));
            }
        }
        Err(Error::Store(StoreError::Io(format!(
            "gave up after {MAX_ATTEMPTS} conflicting attempts; try again"
        ))))
    }
}

/// Reads inside `State::update`: each one becomes a compare of the commit.
pub struct Tx<'a> {
    state: &'a State,
    compares: Vec<Compare>,
    /// 0 on the first try; retries after a conflict count up.
    attempt: usize,
}

impl Tx<'_> {
    pub fn state(&self) -> &State {
        self.state
    }

    /// Reads `key`; the commit requires it unchanged (or still absent).
    pub fn get<T: Message + Default>(&mut self, key: &str) -> Result<Option<T>> {
        let got = self.state.get_versioned::<T>(key)?;
        self.compares.push(Compare::ModRevision {
            key: key.to_string(),
            revision: got.as_ref().map_or(0, |(_, r)| *r),
        });
        Ok(got.map(|(v, _)| v))
    }

    /// Reads raw bytes at `key`; the commit requires them unchanged (or still absent).
    pub fn get_raw(&mut self, key: &str) -> Result<Option<Vec<u8>>> {
        self.state.count(1);
        let got = self.state.store.get(key)?;
        self.compares.push(Compare::ModRevision {
            key: key.to_string(),
            revision: got.as_ref().map_or(0, |v| v.mod_revision),
        });
        Ok(got.map(|v| v.value))
    }

    /// Reads every key under `prefix`; the commit requires that none was written since.
    pub fn scan<T: Message + Default>(&mut self, prefix: &str) -> Result<Vec<T>> {
        let (raw, revision) = self.state.store.scan_with_revision(prefix)?;
        self.state.count(raw.len());
        self.compares.push(Compare::PrefixUnchangedSince {
            prefix: prefix.to_string(),
            revision,
        });
        raw.into_iter().map(|(k, v)| decode(&k, &v.value)).collect()
    }

    /// Which try of the transaction this is (0: the first; retries follow conflicts).
    pub fn attempt(&self) -> usize {
        self.attempt
    }

    /// Requires, at commit, that nothing under `prefix` was written after `revision`: for a
    /// decision taken on what a cache held as of that revision.
    pub fn require_unchanged_since(&mut self, prefix: &str, revision: u64) {
        self.compares.push(Compare::PrefixUnchangedSince {
            prefix: prefix.to_string(),
            revision,
        });
    }

    /// The keys under `prefix`; the commit requires that none was written since.
    pub fn scan_keys(&mut self, prefix: &str) -> Result<Vec<String>> {
        let (raw, revision) = self.state.store.scan_with_revision(prefix)?;
        self.state.count(raw.len());
        self.compares.push(Compare::PrefixUnchangedSince {
            prefix: prefix.to_string(),
            revision,
        });
        Ok(raw.into_iter().map(|(k, _)| k).collect())
    }
}

fn decode<T: Message + Default>(key: &str, bytes: &[u8]) -> Result<T> {
    T::decode(bytes).map_err(|source| {
        Error::Store(StoreError::Decode {
            key: key.to_string(),
            source,
        })
    })
}

/// A put of an encoded message.
pub fn put<T: Message>(key: String, value: &T) -> Op {
    Op::Put(key, value.encode_to_vec())
}

#[cfg(test)]
mod tests {
    use super::keys;

    #[test]
    fn an_index_key_names_its_task() {
        assert_eq!(
            keys::task_of_index("bynode/n1/demo/abc").as_deref(),
            Some("task/demo/abc")
        );
        assert_eq!(
            keys::task_of_index("bygroup/demo/service:web/abc").as_deref(),
            Some("task/demo/abc")
        );
    }
}
