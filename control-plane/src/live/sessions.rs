//! The agents' live sessions: each node's stream and its generation, when it was last heard,
//! its tasks' CPU samples, log waiters and execs, and (built on first use) the report queue,
//! the pushers and the rooms cache. Whether a node is connected is derived from here, never
//! stored, so it cannot go stale across a control-plane restart.

use crate::state::error::Result;
use crate::state::State;
use crate::time;
use berth_proto::agent::v1::{LogChunk, ServerMessage, TaskUsage};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// The sending half of one agent's stream.
pub type AgentTx = mpsc::Sender<Result<ServerMessage, tonic::Status>>;

struct Session {
    generation: u64,
    tx: AgentTx,
    last_heartbeat_ms: i64,
}

/// Live agent sessions and in-flight log requests. Shared by the API handlers.
#[derive(Default)]
pub struct Sessions {
    inner: Mutex<SessionsInner>,
    /// The queue agent reports are applied from, started with the first stream.
    reports: std::sync::OnceLock<crate::live::reports::Reports>,
    /// Which nodes' desired sets a store change touches, started with the first stream.
    push: std::sync::OnceLock<super::push::Push>,
    /// Every node's room, for placement (a cache the applier never relies on).
    rooms: super::rooms::Shared,
    /// Execs asked of agents that have not dialled back yet.
    execs: super::exec::Execs,
}

#[derive(Default)]
struct SessionsInner {
    next_generation: u64,
    /// Hashed fast: a plan that places asks it of every node (ten thousand lookups a pass).
    by_node: HashMap<String, Session, foldhash::fast::RandomState>,
    /// When each node was last heard from (kept after it disconnects).
    last_seen: HashMap<String, i64>,
    logs: HashMap<String, mpsc::Sender<LogChunk>>,
    /// Node id → the CPU its tasks used at its last heartbeat: one entry a node, replaced
    /// whole (a million tasks' samples kept one map entry each cost a lock-held hash insert per
    /// task per heartbeat, and 150 bytes a task).
    node_cpu: HashMap<String, NodeCpu>,
    usage_pruned_ms: i64,
    /// Nodes whose agents other replicas hold, and when they last said so (several servers).
    remote: HashMap<String, i64>,
    /// Nodes whose last stream here ended with its connection (no goodbye, no missed
    /// heartbeats: the agent's process or host went away), and when. Cleared when it returns.
    crashed: HashMap<String, i64>,
}

/// How an agent's stream ended, which decides how soon its node counts as lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The connection closed or reset without a goodbye: a SIGKILLed or crashed agent, whose
    /// kernel closes its socket at once. A paused or cut-off agent never ends this way (its
    /// connection stays open), so this is the strong signal a short grace can act on.
    Crashed,
    /// Heartbeats stopped on an open connection (a pause, a partition): the server ends the
    /// stream after its heartbeat timeout, and only the lost-node timeout after that marks the
    /// node lost.
    Silent,
    /// The agent said goodbye (a planned stop), its certificate was revoked, or this control
    /// plane is stopping.
    Left,
}

/// A node's CPU samples: its tasks' ARNs hashed (sorted), with the cores each used.
struct NodeCpu {
    at_ms: i64,
    cores: Vec<(u64, f64)>,
}

/// A stable 64-bit hash of a task ARN (one node's few hundred tasks never collide in practice).
fn arn_hash(task_arn: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    task_arn.hash(&mut h);
    h.finish()
}

/// How often an agent's heartbeats carry its tasks' CPU usage (ECS's agent publishes its
/// metrics every 20 s). Liveness stays on every heartbeat; the samples, one per running task,
/// were most of a full fleet's stream traffic at every 2 s: at 100 tasks a node, 10,000 nodes
/// sent half a million samples a second, a third of the control plane's CPU.
pub const USAGE_INTERVAL: Duration = Duration::from_secs(10);

/// A presence older than this is not believed (three refreshes missed).
pub const PRESENCE_FRESH_MS: i64 = 6_000;

/// The hello capability of an agent that applies `DesiredTasksChange` onto its last set.
pub const DESIRED_TASKS_CHANGE: &str = "desired-tasks-change";

impl Sessions {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The report queue (started on first use, inside the runtime).
    pub fn reports(&self, state: &State) -> &crate::live::reports::Reports {
        self.reports
            .get_or_init(|| crate::live::reports::Reports::spawn(state.clone()))
    }

    /// The fan-out of store changes to node pushers (started on first use).
    pub fn push(&self, state: &State) -> &super::push::Push {
        self.push
            .get_or_init(|| super::push::Push::spawn(state.clone()))
    }

    /// What the unreleased claims of these nodes add up to as the rooms cache holds them, and
    /// the revision it holds them as of (the applier's first try decides on these).
    pub fn rooms_of<'a>(
        &self,
        state: &State,
        ids: impl IntoIterator<Item = &'a str>,
        fresh: crate::model::placement::Freshness,
    ) -> Result<(HashMap<String, berth_core::capacity::Usage>, u64)> {
        Ok(self.rooms.read(state, fresh)?.usage_of(ids))
    }

    /// Every node as placement sees it, as fresh as asked (`connected` unset).
    pub fn snapshots(
        &self,
        state: &State,
        fresh: crate::model::placement::Freshness,
    ) -> Result<Vec<berth_core::scheduler::NodeSnapshot>> {
        Ok(self.rooms.read(state, fresh)?.snapshots())
    }

    /// These nodes as placement sees them, as of now (`connected` unset).
    pub fn snapshots_of<'a>(
        &self,
        state: &State,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<berth_core::scheduler::NodeSnapshot>> {
        Ok(self
            .rooms
            .read(state, crate::model::placement::Freshness::Now)?
            .snapshots_of(ids))
    }

    /// Waits for `node_id`'s agent to dial back with `exec_id`.
    pub fn expect_exec(
        &self,
        exec_id: &str,
        node_id: &str,
    ) -> tokio::sync::oneshot::Receiver<super::exec::AgentExec> {
        self.execs.expect(exec_id, node_id)
    }

    /// The exec waiting under `exec_id`, taken (an id is good once).
    pub fn take_exec(&self, exec_id: &str) -> Option<super::exec::PendingExec> {
        self.execs.take(exec_id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SessionsInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a node's new stream, replacing any older one. Returns its generation.
    pub fn attach(&self, node_id: &str, tx: AgentTx) -> u64 {
        let mut s = self.lock();
        s.next_generation += 1;
        let generation = s.next_generation;
        s.crashed.remove(node_id);
        s.last_seen.insert(node_id.to_string(), time::now_millis());
        s.by_node.insert(
            node_id.to_string(),
            Session {
                generation,
                tx,
                last_heartbeat_ms: time::now_millis(),
            },
        );
        generation
    }

    /// Removes the session if it is still the given generation, noting how it ended.
    pub fn detach(&self, node_id: &str, generation: u64, how: Ended) {
        let mut s = self.lock();
        if s.by_node.get(node_id).map(|x| x.generation) == Some(generation) {
            let now = time::now_millis();
            if how == Ended::Crashed {
                s.crashed.insert(node_id.to_string(), now);
            }
            s.by_node.remove(node_id);
            s.last_seen.insert(node_id.to_string(), now);
        }
    }

    /// When the node's last stream here ended by its connection closing (no goodbye), if it
    /// has not reconnected since.
    pub fn crashed_at(&self, node_id: &str) -> Option<i64> {
        self.lock().crashed.get(node_id).copied()
    }

    /// The first moment after `now` at which a crashed node's grace runs out, if any does.
    pub fn next_crash_deadline(&self, grace_ms: i64, now: i64) -> Option<i64> {
        let s = self.lock();
        s.crashed
            .values()
            .map(|at| at + grace_ms)
            .filter(|due| *due > now)
            .min()
    }

    /// Ends the node's live stream on this replica with `status` (its certificate was
    /// revoked): the agent is told why, and its session is gone at once.
    pub fn end(&self, node_id: &str, status: tonic::Status) -> bool {
        let session = {
            let mut s = self.lock();
            let Some(session) = s.by_node.remove(node_id) else {
                return false;
            };
            s.last_seen.insert(node_id.to_string(), time::now_millis());
            session
        };
        // The stream's own task sends it: a full queue must not block the caller.
        tokio::spawn(async move {
            let _ = session.tx.send(Err(status)).await;
        });
        true
    }

    pub fn heartbeat(&self, node_id: &str) {
        let now = time::now_millis();
        let mut s = self.lock();
        if let Some(x) = s.by_node.get_mut(node_id) {
            x.last_heartbeat_ms = now;
        }
        s.last_seen.insert(node_id.to_string(), now);
    }

    /// When the node was last heard from since this control plane started.
    pub fn last_seen(&self, node_id: &str) -> Option<i64> {
        self.lock().last_seen.get(node_id).copied()
    }

    /// How many agents have a live session.
    pub fn connected_count(&self) -> usize {
        self.lock().by_node.len()
    }

    /// Connected here, or (with several servers) to another replica lately.
    pub fn is_connected(&self, node_id: &str) -> bool {
        let s = self.lock();
        s.by_node.contains_key(node_id)
            || s.remote
                .get(node_id)
                .is_some_and(|at| time::now_millis() - at < PRESENCE_FRESH_MS)
    }

    /// Sets each snapshot's `connected` under one hold of the lock (a plan's ten thousand nodes
    /// asked one by one contend with every agent's heartbeat ten thousand times).
    pub fn mark_connected(&self, nodes: &mut [berth_core::scheduler::NodeSnapshot]) {
        let s = self.lock();
        let now = time::now_millis();
        for n in nodes {
            n.connected = s.by_node.contains_key(&*n.id)
                || s.remote
                    .get(&*n.id)
                    .is_some_and(|at| now - at < PRESENCE_FRESH_MS);
        }
    }

    /// The nodes whose agents this replica holds.
    pub fn local_nodes(&self) -> Vec<String> {
        self.lock().by_node.keys().cloned().collect()
    }

    /// What the other replicas say they hold: node → when they said it.
    pub fn set_remote(&self, remote: HashMap<String, i64>) {
        let mut s = self.lock();
        for (node, at) in &remote {
            let seen = s.last_seen.entry(node.clone()).or_insert(*at);
            *seen = (*seen).max(*at);
        }
        s.remote = remote;
    }

    pub fn last_heartbeat(&self, node_id: &str) -> Option<i64> {
        self.lock()
            .by_node
            .get(node_id)
            .map(|x| x.last_heartbeat_ms)
    }

    pub fn sender(&self, node_id: &str) -> Option<AgentTx> {
        self.lock().by_node.get(node_id).map(|x| x.tx.clone())
    }

    /// Keeps the latest CPU samples a node's agent reports; forgets silent nodes. A sample
    /// covers every task the agent could read, so it replaces the node's last one; heartbeats
    /// between samples carry none and change nothing.
    pub fn record_usage(&self, node_id: &str, usage: Vec<TaskUsage>, now_ms: i64) {
        if usage.is_empty() {
            return;
        }
        let mut cores: Vec<(u64, f64)> = usage
            .iter()
            .map(|u| (arn_hash(&u.task_arn), u.cpu_cores))
            .collect();
        cores.sort_by_key(|(h, _)| *h);
        let mut s = self.lock();
        match s.node_cpu.get_mut(node_id) {
            Some(n) => {
                *n = NodeCpu {
                    at_ms: now_ms,
                    cores,
                }
            }
            None => {
                s.node_cpu.insert(
                    node_id.to_string(),
                    NodeCpu {
                        at_ms: now_ms,
                        cores,
                    },
                );
            }
        }
        if now_ms - s.usage_pruned_ms > 60_000 {
            s.node_cpu.retain(|_, n| now_ms - n.at_ms < 300_000);
            s.usage_pruned_ms = now_ms;
        }
    }

    /// The CPU in cores of a task on `node_id`, if its agent sampled it since `since_ms`.
    pub fn task_cpu_cores(&self, node_id: &str, task_arn: &str, since_ms: i64) -> Option<f64> {
        let h = arn_hash(task_arn);
        let s = self.lock();
        let n = s.node_cpu.get(node_id).filter(|n| n.at_ms >= since_ms)?;
        let i = n.cores.binary_search_by_key(&h, |(k, _)| *k).ok()?;
        Some(n.cores[i].1)
    }

    pub fn add_log_waiter(&self, request_id: &str, tx: mpsc::Sender<LogChunk>) {
        self.lock().logs.insert(request_id.to_string(), tx);
    }

    pub fn remove_log_waiter(&self, request_id: &str) {
        self.lock().logs.remove(request_id);
    }

    pub fn log_waiter(&self, request_id: &str) -> Option<mpsc::Sender<LogChunk>> {
        self.lock().logs.get(request_id).cloned()
    }
}

impl crate::model::placement::Capacity for Sessions {
    fn snapshots(
        &self,
        state: &State,
        fresh: crate::model::placement::Freshness,
    ) -> Result<Vec<berth_core::scheduler::NodeSnapshot>> {
        Sessions::snapshots(self, state, fresh)
    }

    fn snapshots_with_values(
        &self,
        state: &State,
        fresh: crate::model::placement::Freshness,
        attributes: &[String],
    ) -> Result<(
        Vec<berth_core::scheduler::NodeSnapshot>,
        berth_core::scheduler::AttributeValues,
    )> {
        let mut rooms = self.rooms.read(state, fresh)?;
        let values = attributes
            .iter()
            .map(|a| (a.clone(), rooms.values_of(a)))
            .collect();
        Ok((rooms.snapshots(), values))
    }

    fn usage_of(
        &self,
        state: &State,
        ids: &[&str],
        fresh: crate::model::placement::Freshness,
    ) -> Result<(HashMap<String, berth_core::capacity::Usage>, u64)> {
        self.rooms_of(state, ids.iter().copied(), fresh)
    }

    fn mark_connected(&self, nodes: &mut [berth_core::scheduler::NodeSnapshot]) {
        Sessions::mark_connected(self, nodes)
    }
}

impl crate::model::nodes::Presence for Sessions {
    fn is_connected(&self, node_id: &str) -> bool {
        Sessions::is_connected(self, node_id)
    }

    fn last_heartbeat(&self, node_id: &str) -> Option<i64> {
        Sessions::last_heartbeat(self, node_id)
    }
}
