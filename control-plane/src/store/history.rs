//! The recent changes an embedded store keeps for watchers that resume (`changes_since`).

use super::{Change, StoreError};
use std::collections::VecDeque;
use std::sync::Arc;

/// How many recent changes a watcher can resume across: this many commits, holding at most
/// `HISTORY_KEYS` keys in all (a fleet's batches of thousands of keys each must not keep
/// hundreds of megabytes of key names alive; a watcher further behind resyncs).
const HISTORY: usize = 8192;
const HISTORY_KEYS: usize = 256 * 1024;

#[derive(Debug, Default)]
pub(super) struct History {
    changes: VecDeque<Arc<Change>>,
    /// Keys held in `changes`.
    keys: usize,
}

impl History {
    pub(super) fn push(&mut self, change: Arc<Change>) {
        self.keys += change.keys.len();
        self.changes.push_back(change);
        while self.changes.len() > HISTORY || (self.keys > HISTORY_KEYS && self.changes.len() > 1) {
            if let Some(old) = self.changes.pop_front() {
                self.keys -= old.keys.len();
            }
        }
    }

    /// The changes after `revision` up to `current`, oldest first, or `Compacted` when they are
    /// no longer all held.
    pub(super) fn since(
        &self,
        revision: u64,
        current: u64,
    ) -> Result<Vec<Arc<Change>>, StoreError> {
        if revision >= current {
            return Ok(Vec::new());
        }
        match self.changes.front() {
            Some(first) if first.revision <= revision + 1 => {
                // Oldest first, so the changes wanted are a tail: found by halving, not by
                // walking thousands of entries under the committer's lock on every catch-up.
                let from = self.changes.partition_point(|ch| ch.revision <= revision);
                Ok(self.changes.range(from..).cloned().collect())
            }
            _ => Err(StoreError::Compacted(revision)),
        }
    }
}
