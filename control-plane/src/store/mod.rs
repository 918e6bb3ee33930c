//! The `Store` seam: an ordered key-value space with revisions, compare-guarded transactions and
//! a change feed that can be resumed from a revision — etcd's model, so that the one writer is
//! the store's transaction and never a lock in some process.
//!
//! The embedded default is the log store (`LogStore`: a map in memory over a log and
//! snapshots in `DATA/log`); etcd sits behind the same trait for several servers. sled
//! (`SledStore`) is kept only to carry an older data directory over. Values are encoded prost
//! messages; `state` owns the key layout.

pub mod backup;
pub mod check;
mod dirs;
mod etcd_store;
pub mod fs;
mod health;
mod history;
mod log_store;
mod record;
mod records;
mod replay;
mod sled_store;
pub mod snapshot_file;
mod wal;

pub use etcd_store::{EtcdOptions, EtcdStore, DEFAULT_MAX_TXN_OPS};
pub use health::{register_metrics, StoreHealth};
pub use log_store::LogStore;
pub use replay::Damage;
pub use sled_store::SledStore;

use std::sync::Arc;
use tokio::sync::broadcast;

/// A store failure: the disk, or a value that no longer decodes.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store I/O: {0}")]
    Io(String),
    #[error("stored value at {key} does not decode: {source}")]
    Decode {
        key: String,
        source: prost::DecodeError,
    },
    /// A watcher asked to resume from a revision the store no longer remembers: it must resync.
    #[error("revision {0} is compacted; resync from a full read")]
    Compacted(u64),
    /// The store's files are damaged: it is not opened, and nothing was changed.
    #[error("{0}")]
    Corrupt(String),
}

/// One write in a batch.
#[derive(Debug, Clone)]
pub enum Op {
    Put(String, Vec<u8>),
    Delete(String),
}

/// A value and the revision of the transaction that last wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub value: Vec<u8>,
    pub mod_revision: u64,
}

/// A condition a transaction commits under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compare {
    /// The key was last written at exactly this revision; 0 means the key does not exist.
    ModRevision { key: String, revision: u64 },
    /// No key under the prefix was written after this revision (etcd: a range compare of
    /// `mod_revision < revision + 1`). Deletions are not seen: they only ever free things.
    PrefixUnchangedSince { prefix: String, revision: u64 },
}

/// What a transaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnOutcome {
    /// Every compare held; the ops are durable at this revision.
    Committed(u64),
    /// Some compare failed; nothing was written.
    Conflict,
}

/// The keys one committed transaction changed, and its revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub revision: u64,
    pub keys: Vec<String>,
    /// The feed lost its place (a compaction, a lost watch): anything may have changed up to
    /// `revision`, so watchers read everything again.
    pub resync: bool,
}

impl Change {
    pub fn resync_at(revision: u64) -> Self {
        Self {
            revision,
            keys: Vec::new(),
            resync: true,
        }
    }
}

/// The ordered key-value space the control plane keeps its state in.
///
/// `txn` is atomic (all ops or none) and durable: it returns only once the batch is on disk, so
/// an acknowledged write survives `kill -9`. Every write advances the store's revision by one.
pub trait Store: Send + Sync + 'static {
    fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError>;
    /// Hands `each` the value at `key` and the revision that last wrote it, without copying the
    /// value where the store can lend it (the log store lends its record, so a read that only
    /// decodes the value skips `get`'s copy); false when there is no such key.
    fn get_with(&self, key: &str, each: &mut dyn FnMut(&[u8], u64)) -> Result<bool, StoreError> {
        Ok(match self.get(key)? {
            Some(v) => {
                each(&v.value, v.mod_revision);
                true
            }
            None => false,
        })
    }
    /// Every key starting with `prefix`, in key order.
    fn scan(&self, prefix: &str) -> Result<Vec<(String, Versioned)>, StoreError>;
    /// Every key starting with `prefix`, in key order, handed to `each` with its value one at a
    /// time, so a scan of a million keys never holds them all; `each` returns `false` to stop.
    fn scan_each(
        &self,
        prefix: &str,
        each: &mut dyn FnMut(&str, &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        for (k, v) in self.scan(prefix)? {
            if !each(&k, &v.value) {
                break;
            }
        }
        Ok(())
    }
    /// Commits `ops` only if every compare holds.
    fn txn(&self, compares: &[Compare], ops: Vec<Op>) -> Result<TxnOutcome, StoreError>;
    /// The revision of the last committed transaction (as this process has seen it).
    fn revision(&self) -> Result<u64, StoreError>;
    /// A scan, and a revision that every write it may have missed came after: the scan holds
    /// everything written up to the revision (it may also hold later writes), so a
    /// `PrefixUnchangedSince` at that revision fails on anything it did not see.
    fn scan_with_revision(
        &self,
        prefix: &str,
    ) -> Result<(Vec<(String, Versioned)>, u64), StoreError> {
        let revision = self.revision()?;
        Ok((self.scan(prefix)?, revision))
    }
    /// Every key at one revision, in key order, and that revision: a consistent copy for a
    /// backup. etcd answers one range read at one revision; the log store copies its map under
    /// the committer's lock.
    fn export(&self) -> Result<(Vec<(String, Versioned)>, u64), StoreError> {
        let (keys, revision) = self.scan_with_revision("")?;
        Ok((keys, revision))
    }
    /// The most operations, and the most compares, one transaction may hold.
    fn max_txn_ops(&self) -> usize {
        usize::MAX
    }
    /// Whether every record is held in memory, so a read costs a lookup and a decode: callers
    /// then read afresh what they would otherwise cache (a cache would hold it twice).
    fn in_memory(&self) -> bool {
        false
    }
    /// Whether writes fail now (a full disk), for `/healthz` and `/metrics`.
    fn health(&self) -> StoreHealth {
        StoreHealth::default()
    }
    /// Changes as they commit. A receiver that lags resumes with `changes_since`.
    fn subscribe(&self) -> broadcast::Receiver<Arc<Change>>;
    /// The changes committed after `revision`, oldest first, or `Compacted` when the store no
    /// longer holds them all (the caller then reads everything again).
    fn changes_since(&self, revision: u64) -> Result<Vec<Arc<Change>>, StoreError>;

    /// An unconditional batch.
    fn commit(&self, ops: Vec<Op>) -> Result<u64, StoreError> {
        match self.txn(&[], ops)? {
            TxnOutcome::Committed(r) => Ok(r),
            TxnOutcome::Conflict => Err(StoreError::Io(
                "a transaction without compares conflicted".into(),
            )),
        }
    }
}

#[cfg(test)]
mod damage_tests;
#[cfg(test)]
mod fault_tests;
