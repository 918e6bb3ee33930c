//! The `Store` seam: an ordered key-value space with atomic, durable batches and a change feed.
//!
//! sled is the embedded default (`SledStore`); a distributed store (etcd) can sit behind the same
//! trait. Values are encoded prost messages; `state` owns the key layout.

mod sled_store;

pub use sled_store::SledStore;

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
}

/// One write in a batch.
#[derive(Debug, Clone)]
pub enum Op {
    Put(String, Vec<u8>),
    Delete(String),
}

/// The ordered key-value space the control plane keeps its state in.
///
/// `commit` is atomic (all ops or none) and durable: it returns only once the batch is on disk,
/// so an acknowledged write survives `kill -9`.
pub trait Store: Send + Sync + 'static {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every key starting with `prefix`, in key order.
    fn scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    fn commit(&self, ops: Vec<Op>) -> Result<(), StoreError>;
    /// Keys changed by each committed batch, for controllers and watch streams.
    fn subscribe(&self) -> broadcast::Receiver<Vec<String>>;
}
