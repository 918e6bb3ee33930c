//! What every node has room for, kept in memory and brought up to date from the store's change
//! history on each read (re-reading only the node and claim keys that changed), so a plan's
//! snapshot of ten thousand nodes does not re-read a million claims. A hint, never a guarantee:
//! the applier re-reads each node it places on and commits under compares.

use crate::controller::apply::{Room, Usage};
use crate::controller::view::placement_snapshot;
use crate::error::Result;
use crate::scheduler::NodeSnapshot;
use crate::state::{keys, State};
use berth_proto::v1::{ContainerInstance, NodeClaim};
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Default)]
struct Node {
    record: ContainerInstance,
    /// The claim key past the node's prefix (`CLUSTER/ID`) → claim, unreleased ones only, held
    /// without its task ARN (room needs only what it takes): a fleet's million claims would
    /// otherwise hold every key and ARN again.
    claims: HashMap<Box<str>, NodeClaim>,
    /// The room those leave, and the node as placement sees it, computed again only after a
    /// change.
    room: Option<Room>,
    snapshot: Option<NodeSnapshot>,
    /// What the claims add up to, computed again only after a change.
    usage: Option<Usage>,
}

impl Node {
    fn snapshot(&mut self) -> NodeSnapshot {
        let (record, claims) = (&self.record, &self.claims);
        let used = self.usage.get_or_insert_with(|| Usage::of(claims.values()));
        let room = self.room.get_or_insert_with(|| Room::left(record, used));
        self.snapshot
            .get_or_insert_with(|| placement_snapshot(record.clone(), room.clone()))
            .clone()
    }
}

/// The cache; `Sessions` holds one behind a mutex.
#[derive(Debug, Default)]
pub struct Rooms {
    /// The revision the cache reflects (0: never read).
    revision: u64,
    nodes: BTreeMap<String, Node>,
}

impl Rooms {
    /// Every node as placement sees it (`connected` unset), as of the store's current revision.
    pub fn snapshots(&mut self, state: &State) -> Result<Vec<NodeSnapshot>> {
        self.catch_up(state)?;
        Ok(self.nodes.values_mut().map(Node::snapshot).collect())
    }

    /// These nodes (those that exist) as placement sees them, as of the store's current
    /// revision: what a pass judges its tasks' nodes by without reading each node record.
    pub fn snapshots_of<'a>(
        &mut self,
        state: &State,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<NodeSnapshot>> {
        self.catch_up(state)?;
        Ok(ids
            .into_iter()
            .filter_map(|id| self.nodes.get_mut(id).map(Node::snapshot))
            .collect())
    }

    /// What the unreleased claims of these nodes add up to, and the revision that is as of.
    pub fn usage_of<'a>(
        &mut self,
        state: &State,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<(HashMap<String, Usage>, u64)> {
        self.catch_up(state)?;
        let out = ids
            .into_iter()
            .filter_map(|id| {
                let n = self.nodes.get_mut(id)?;
                let claims = &n.claims;
                let used = n.usage.get_or_insert_with(|| Usage::of(claims.values()));
                Some((id.to_string(), used.clone()))
            })
            .collect();
        Ok((out, self.revision))
    }

    fn catch_up(&mut self, state: &State) -> Result<()> {
        if self.revision == 0 {
            return self.rebuild(state);
        }
        let changes = match state.store().changes_since(self.revision) {
            Ok(c) => c,
            Err(_) => return self.rebuild(state),
        };
        for c in changes {
            if c.resync {
                return self.rebuild(state);
            }
            for k in &c.keys {
                self.refresh(state, k)?;
            }
            self.revision = self.revision.max(c.revision);
        }
        Ok(())
    }

    fn rebuild(&mut self, state: &State) -> Result<()> {
        let revision = state.store().revision()?;
        self.nodes.clear();
        for n in state.scan::<ContainerInstance>(keys::NODES)? {
            self.nodes.insert(
                n.ec2_instance_id.clone(),
                Node {
                    record: n,
                    ..Default::default()
                },
            );
        }
        state.store().scan_each(keys::NODE_INDEX, &mut |k, v| {
            if let Ok(c) = <NodeClaim as prost::Message>::decode(v) {
                self.put_claim(k, Some(c));
            }
            true
        })?;
        self.revision = revision.max(1);
        Ok(())
    }

    fn refresh(&mut self, state: &State, key: &str) -> Result<()> {
        if let Some(id) = key.strip_prefix(keys::NODES) {
            match state.get::<ContainerInstance>(key)? {
                Some(n) => {
                    let node = self.nodes.entry(id.to_string()).or_default();
                    node.record = n;
                    node.room = None;
                    node.snapshot = None;
                }
                None => {
                    self.nodes.remove(id);
                }
            }
        } else if key.starts_with(keys::NODE_INDEX) {
            let c = state.get::<NodeClaim>(key)?;
            self.put_claim(key, c);
        }
        Ok(())
    }

    fn put_claim(&mut self, key: &str, claim: Option<NodeClaim>) {
        let Some((node_id, task)) = key
            .strip_prefix(keys::NODE_INDEX)
            .and_then(|r| r.split_once('/'))
        else {
            return;
        };
        let Some(node) = self.nodes.get_mut(node_id) else {
            return;
        };
        node.room = None;
        node.snapshot = None;
        node.usage = None;
        match claim.filter(|c| !c.released) {
            Some(c) => {
                let held = NodeClaim {
                    task_arn: String::new(),
                    ..c
                };
                node.claims.insert(task.into(), held);
            }
            None => {
                node.claims.remove(task);
            }
        }
    }
}
