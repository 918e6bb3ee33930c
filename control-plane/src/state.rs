//! Typed state over the `Store`: the key layout, and the single writer path.
//!
//! Every read-check-write runs under `write_lock`, so checks (revision numbers, "cluster still has
//! services") and the batch that follows them see the same state. Each batch is durable before
//! the call returns.

use crate::error::{Error, Result};
use crate::store::{Op, Store, StoreError};
use prost::Message;
use std::sync::{Arc, Mutex, MutexGuard};

/// Key prefixes, one per kind of object.
pub mod keys {
    pub fn cluster(name: &str) -> String {
        format!("cluster/{name}")
    }
    pub const CLUSTERS: &str = "cluster/";
    pub fn family_counter(family: &str) -> String {
        format!("family/{family}")
    }
    pub fn task_definition(family: &str, revision: i32) -> String {
        format!("taskdef/{family}/{revision:010}")
    }
    pub fn task_definitions_of(family: &str) -> String {
        format!("taskdef/{family}/")
    }
    pub const TASK_DEFINITIONS: &str = "taskdef/";
    pub fn services_of(cluster: &str) -> String {
        format!("service/{cluster}/")
    }
    pub fn tasks_of(cluster: &str) -> String {
        format!("task/{cluster}/")
    }
    pub fn task(cluster: &str, id: &str) -> String {
        format!("task/{cluster}/{id}")
    }
    pub const TASKS: &str = "task/";
    pub fn node(id: &str) -> String {
        format!("node/{id}")
    }
    pub const NODES: &str = "node/";
}

/// Shared handle to the control plane's state.
#[derive(Clone)]
pub struct State {
    store: Arc<dyn Store>,
    write: Arc<Mutex<()>>,
    metrics: Arc<crate::metrics::Metrics>,
    limits: crate::limits::Limits,
}

impl State {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            write: Arc::new(Mutex::new(())),
            metrics: Arc::default(),
            limits: crate::limits::Limits::default(),
        }
    }

    /// The same state with other request bounds (`--max-desired-count`).
    pub fn with_limits(mut self, limits: crate::limits::Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The bounds every transport's validation checks against.
    pub fn limits(&self) -> &crate::limits::Limits {
        &self.limits
    }

    /// The control plane's counters (placements, reconcile latency, deployments).
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Serialises writers. Held across a read-check-commit sequence.
    pub fn write_lock(&self) -> MutexGuard<'_, ()> {
        // A poisoned lock only means another writer panicked; the store itself is consistent.
        self.write.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get<T: Message + Default>(&self, key: &str) -> Result<Option<T>> {
        match self.store.get(key)? {
            None => Ok(None),
            Some(bytes) => T::decode(bytes.as_slice()).map(Some).map_err(|source| {
                Error::Store(StoreError::Decode {
                    key: key.to_string(),
                    source,
                })
            }),
        }
    }

    pub fn scan<T: Message + Default>(&self, prefix: &str) -> Result<Vec<T>> {
        self.store
            .scan(prefix)?
            .into_iter()
            .map(|(key, bytes)| {
                T::decode(bytes.as_slice())
                    .map_err(|source| Error::Store(StoreError::Decode { key, source }))
            })
            .collect()
    }

    pub fn get_raw(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.store.get(key)?)
    }

    pub fn commit(&self, ops: Vec<Op>) -> Result<()> {
        Ok(self.store.commit(ops)?)
    }
}

/// A put of an encoded message.
pub fn put<T: Message>(key: String, value: &T) -> Op {
    Op::Put(key, value.encode_to_vec())
}
