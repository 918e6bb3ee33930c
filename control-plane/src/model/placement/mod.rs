//! Placement: the one way tasks come into being (`apply`) and the reads a decision is made
//! from (`view`). What placement needs of the nodes' live capacity it names here, in
//! `Capacity`, as Nomad's scheduler names the `State` it reads; the live layer (the sessions
//! and their rooms cache) provides it.

pub mod apply;
pub mod view;

use crate::state::error::Result;
use crate::state::State;
use berth_core::capacity::Usage;
use berth_core::scheduler::{AttributeValues, NodeSnapshot};
use std::collections::HashMap;

/// How current a read of the rooms cache must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// As of the store's revision at the read: a controller placing a thousand tasks, whose
    /// commit would otherwise conflict on every node that changed.
    Now,
    /// As the follower last left it, if that was within `RECENT`: a request placing a task or
    /// two, which must not wait on the store reads of a catch-up (the applier's compares catch
    /// a node that changed since).
    Recent,
}

/// The nodes' capacity as this process knows it: their rooms (kept up to date from the change
/// history) and whether their agents are connected.
pub trait Capacity {
    /// Every node as placement sees it, as fresh as asked (`connected` unset).
    fn snapshots(&self, state: &State, fresh: Freshness) -> Result<Vec<NodeSnapshot>>;
    /// As `snapshots`, with every value each of `attributes` takes over those nodes, where
    /// it is known without looking at each (read together, so the two agree).
    fn snapshots_with_values(
        &self,
        state: &State,
        fresh: Freshness,
        _attributes: &[String],
    ) -> Result<(Vec<NodeSnapshot>, AttributeValues)> {
        Ok((self.snapshots(state, fresh)?, AttributeValues::new()))
    }
    /// What the named nodes' claims add up to, and the revision they are as of.
    fn usage_of(
        &self,
        state: &State,
        ids: &[&str],
        fresh: Freshness,
    ) -> Result<(HashMap<String, Usage>, u64)>;
    /// Sets `connected` on each node whose agent has a live session.
    fn mark_connected(&self, nodes: &mut [NodeSnapshot]);
}

impl<T: Capacity + ?Sized> Capacity for std::sync::Arc<T> {
    fn snapshots(&self, state: &State, fresh: Freshness) -> Result<Vec<NodeSnapshot>> {
        (**self).snapshots(state, fresh)
    }

    fn snapshots_with_values(
        &self,
        state: &State,
        fresh: Freshness,
        attributes: &[String],
    ) -> Result<(Vec<NodeSnapshot>, AttributeValues)> {
        (**self).snapshots_with_values(state, fresh, attributes)
    }

    fn usage_of(
        &self,
        state: &State,
        ids: &[&str],
        fresh: Freshness,
    ) -> Result<(HashMap<String, Usage>, u64)> {
        (**self).usage_of(state, ids, fresh)
    }

    fn mark_connected(&self, nodes: &mut [NodeSnapshot]) {
        (**self).mark_connected(nodes)
    }
}
