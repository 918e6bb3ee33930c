//! What every node has room for, kept in memory and brought up to date from the store's change
//! history (re-reading only the node and claim keys that changed) by a follower of the change
//! feed, and by a read that asks for the state as of now (`Freshness`), so a plan's
//! snapshot of ten thousand nodes does not re-read a million claims. A hint, never a guarantee:
//! the applier re-reads each node it places on and commits under compares.

use crate::model::placement::view::placement_snapshot;
use crate::model::placement::Freshness;
use crate::state::error::Result;
use crate::state::{keys, State};
use berth_core::capacity::{Room, Usage};
use berth_core::scheduler::{AttributeValues, NodeSnapshot};
use berth_proto::v1::{ContainerInstance, NodeClaim};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

/// The log target this module had as `crate::nodes::rooms`, kept so the filters users wrote
/// (`RUST_LOG=berth_control_plane::nodes=info`) still select its lines.
const LOG_TARGET: &str = "berth_control_plane::nodes::rooms";

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
    /// When the cache was last brought up to the store's revision.
    caught_up_at: Option<std::time::Instant>,
    nodes: BTreeMap<String, Node>,
    /// Every value an attribute takes over the nodes, by attribute, as asked since the nodes
    /// last changed (a claim leaves them as they are).
    values: AttributeValues,
}

impl Rooms {
    /// The revision the cache reflects (0: never read).
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Every node as placement sees it (`connected` unset), as the cache holds it.
    pub fn snapshots(&mut self) -> Vec<NodeSnapshot> {
        self.nodes.values_mut().map(Node::snapshot).collect()
    }

    /// Every value `attribute` takes over the nodes (placement's spread counts start from
    /// them), worked out again only after a node changed.
    pub fn values_of(&mut self, attribute: &str) -> Arc<[String]> {
        if let Some(v) = self.values.get(attribute) {
            return v.clone();
        }
        let set: std::collections::BTreeSet<String> = self
            .nodes
            .values_mut()
            .filter_map(|n| n.snapshot().attributes.get(attribute).cloned())
            .collect();
        let values: Arc<[String]> = set.into_iter().collect();
        self.values.insert(attribute.to_string(), values.clone());
        values
    }

    /// These nodes (those that exist) as placement sees them, as the cache holds them: what a
    /// pass judges its tasks' nodes by without reading each node record.
    pub fn snapshots_of<'a>(
        &mut self,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Vec<NodeSnapshot> {
        ids.into_iter()
            .filter_map(|id| self.nodes.get_mut(id).map(Node::snapshot))
            .collect()
    }

    /// What the unreleased claims of these nodes add up to, and the revision that is as of.
    pub fn usage_of<'a>(
        &mut self,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> (HashMap<String, Usage>, u64) {
        let out = ids
            .into_iter()
            .filter_map(|id| {
                let n = self.nodes.get_mut(id)?;
                let claims = &n.claims;
                let used = n.usage.get_or_insert_with(|| Usage::of(claims.values()));
                Some((id.to_string(), used.clone()))
            })
            .collect();
        (out, self.revision)
    }

    /// Brings the cache up to `delta` (read without holding it), or reads everything again
    /// when the cache was never read or the store no longer holds the changes it needs.
    pub fn apply(&mut self, state: &State, delta: Delta) -> Result<()> {
        let Some(entries) = delta.entries.filter(|_| self.revision != 0) else {
            return self.rebuild(state);
        };
        for (revision, key, fresh) in entries {
            // What another catch-up already applied may be newer than what this one read.
            if revision <= self.revision {
                continue;
            }
            match fresh {
                Fresh::Node(id, record) => self.put_node(id, record.map(|r| *r)),
                Fresh::Claim(claim) => self.put_claim(&key, claim),
            }
        }
        self.revision = self.revision.max(delta.to);
        self.caught_up_at = Some(std::time::Instant::now());
        Ok(())
    }

    fn rebuild(&mut self, state: &State) -> Result<()> {
        let revision = state.store().revision()?;
        self.nodes.clear();
        self.values.clear();
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
        self.caught_up_at = Some(std::time::Instant::now());
        Ok(())
    }

    fn put_node(&mut self, id: String, record: Option<ContainerInstance>) {
        self.values.clear();
        match record {
            Some(n) => {
                let node = self.nodes.entry(id).or_default();
                node.record = n;
                node.room = None;
                node.snapshot = None;
            }
            None => {
                self.nodes.remove(&id);
            }
        }
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

/// What changed under the node and claim keys after a revision, with their values as read
/// afterwards: read without holding the cache, so placements that snapshot it never wait on
/// the store reads of another's catch-up.
#[derive(Debug)]
pub struct Delta {
    to: u64,
    /// In revision order; None when the store no longer holds the changes (read everything).
    entries: Option<Vec<(u64, String, Fresh)>>,
}

#[derive(Debug)]
enum Fresh {
    Node(String, Option<Box<ContainerInstance>>),
    Claim(Option<NodeClaim>),
}

impl Delta {
    /// What changed after `from`, read now.
    pub fn read(state: &State, from: u64) -> Result<Self> {
        let mut delta = Delta {
            to: from,
            entries: Some(Vec::new()),
        };
        let changes = match state.store().changes_since(from) {
            Ok(c) => c,
            Err(_) => {
                delta.entries = None;
                return Ok(delta);
            }
        };
        let mut entries = Vec::new();
        for c in changes {
            if c.resync {
                delta.entries = None;
                return Ok(delta);
            }
            for k in &c.keys {
                if let Some(id) = k.strip_prefix(keys::NODES) {
                    let record = state.get::<ContainerInstance>(k)?.map(Box::new);
                    entries.push((c.revision, k.clone(), Fresh::Node(id.to_string(), record)));
                } else if k.starts_with(keys::NODE_INDEX) {
                    entries.push((c.revision, k.clone(), Fresh::Claim(state.get(k)?)));
                }
            }
            delta.to = delta.to.max(c.revision);
        }
        delta.entries = Some(entries);
        Ok(delta)
    }
}

/// The cache as `Sessions` shares it, with a follower of the change feed that keeps it close
/// to the store (started on first use), so a read rarely has more than a few changes to catch
/// up on.
#[derive(Debug, Default)]
pub struct Shared {
    rooms: Arc<Mutex<Rooms>>,
    follower: std::sync::OnceLock<()>,
}

/// How old a cache a `Freshness::Recent` read takes as it is.
const RECENT: std::time::Duration = std::time::Duration::from_millis(500);

impl Shared {
    /// The cache, as fresh as asked. The store reads of a catch-up happen before the lock is
    /// taken; only applying them holds it.
    pub fn read(&self, state: &State, fresh: Freshness) -> Result<MutexGuard<'_, Rooms>> {
        self.follower
            .get_or_init(|| follow(state, Arc::downgrade(&self.rooms)));
        if fresh == Freshness::Recent {
            let held = lock(&self.rooms);
            if held.caught_up_at.is_some_and(|at| at.elapsed() < RECENT) {
                return Ok(held);
            }
        }
        catch_up(&self.rooms, state)
    }
}

fn lock(rooms: &Mutex<Rooms>) -> MutexGuard<'_, Rooms> {
    rooms.lock().unwrap_or_else(|p| p.into_inner())
}

fn catch_up<'a>(rooms: &'a Mutex<Rooms>, state: &State) -> Result<MutexGuard<'a, Rooms>> {
    let from = lock(rooms).revision();
    let delta = match from {
        // Never read: built whole, under the lock (once).
        0 => None,
        from => Some(Delta::read(state, from)?),
    };
    let mut held = lock(rooms);
    match delta {
        Some(d) => held.apply(state, d)?,
        None if held.revision() == 0 => held.rebuild(state)?,
        None => {}
    }
    Ok(held)
}

/// Catches the cache up after each burst of changes, off the placements' path. Holds neither
/// the store nor the cache: it ends when either is gone.
fn follow(state: &State, rooms: std::sync::Weak<Mutex<Rooms>>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let mut changes = state.store().subscribe();
    let state = state.downgrade();
    runtime.spawn(async move {
        loop {
            match changes.recv().await {
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            }
            // A burst of commits is caught up on once.
            tokio::time::sleep(FOLLOW_EVERY).await;
            while let Ok(_) | Err(TryRecvError::Lagged(_)) = changes.try_recv() {}
            let (Some(state), Some(rooms)) = (state.upgrade(), rooms.upgrade()) else {
                return;
            };
            let caught = tokio::task::spawn_blocking(move || catch_up(&rooms, &state).map(drop));
            if let Ok(Err(e)) = caught.await {
                tracing::debug!(target: LOG_TARGET, error = %e, "rooms cache: catching up failed; the next read retries");
            }
        }
    });
}

/// How long the follower lets changes gather before it catches up.
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_millis(20);
