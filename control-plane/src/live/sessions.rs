//! Nodes (ECS container instances): registration from an agent's hello, live sessions, the agent
//! stream (`stream`), lost-node detection (`lost`), and the views `node list` / `node describe`
//! show. Whether a node is connected is derived from the
//! live sessions, never stored, so it cannot go stale across a control-plane restart.

use crate::state::error::{Error, Result};
use crate::state::{keys, put, State};
use crate::time;
use berth_core::arn;
use berth_core::capacity::{reserved_ports, resource};
use berth_core::ids::new_id;
use berth_core::status::TaskState;
use berth_proto::agent::v1::{Hello, LogChunk, ServerMessage, TaskUsage};
use berth_proto::v1::{ContainerInstance, NodeClaim, Resource, TaskHeader};
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
    by_node: HashMap<String, Session>,
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

    /// Removes the session if it is still the given generation.
    pub fn detach(&self, node_id: &str, generation: u64) {
        let mut s = self.lock();
        if s.by_node.get(node_id).map(|x| x.generation) == Some(generation) {
            s.by_node.remove(node_id);
            s.last_seen.insert(node_id.to_string(), time::now_millis());
        }
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
            n.connected = s.by_node.contains_key(&n.id)
                || s.remote
                    .get(&n.id)
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

/// Records (or refreshes) the node an agent says hello as, and returns it.
pub fn register(state: &State, hello: &Hello) -> Result<ContainerInstance> {
    if hello.name.trim().is_empty() {
        return Err(Error::invalid(
            "hello.name",
            "an agent must give its node a name (--name)",
        ));
    }
    if hello.cpu <= 0 || hello.memory_mib <= 0 {
        return Err(Error::invalid(
            "hello",
            "an agent must report its CPU and memory",
        ));
    }
    let id = if hello.node_id.is_empty() {
        new_id(16)
    } else {
        hello.node_id.clone()
    };
    state.update(|tx| {
        let existing = tx.get::<ContainerInstance>(&keys::node(&id))?;
        let node = ContainerInstance {
            container_instance_arn: arn::container_instance(&id),
            ec2_instance_id: id.clone(),
            name: hello.name.clone(),
            status: existing
                .as_ref()
                .map(|n| n.status.clone())
                .unwrap_or_else(|| "ACTIVE".into()),
            address: hello.address.clone(),
            registered_resources: vec![
                int_resource("CPU", hello.cpu),
                int_resource("MEMORY", hello.memory_mib),
                Resource {
                    name: "PORTS".into(),
                    string_set_value: hello.reserved_ports.iter().map(|p| p.to_string()).collect(),
                    ..Default::default()
                },
            ],
            attributes: crate::model::ecs_extras::with_custom_attributes(
                tx.state(),
                &id,
                hello.attributes.clone(),
            )?,
            registered_at: existing
                .as_ref()
                .map(|n| n.registered_at.clone())
                .unwrap_or_else(time::now),
            version: hello.version.clone(),
            ..Default::default()
        };
        let ops = vec![put(keys::node(&id), &node)];
        Ok((node, ops))
    })
}

fn int_resource(name: &str, v: i64) -> Resource {
    Resource {
        name: name.into(),
        integer_value: v,
        ..Default::default()
    }
}

/// What a node's unstopped tasks hold of it: their counts, and the resources their claims take.
#[derive(Debug, Default)]
struct Load {
    running: i32,
    pending: i32,
    cpu: i64,
    mem: i64,
    ports: Vec<String>,
}

impl Load {
    /// Through the node's claims (what the scheduler counts), each task's status read as a
    /// header: never a scan of every task, so a fleet's list costs one read per placed task.
    fn read(state: &State, node_id: &str) -> Result<Load> {
        let mut claims = Vec::new();
        state.scan_each_keyed::<NodeClaim>(&keys::node_claims(node_id), |k, c| {
            if !c.released {
                claims.push((k.to_string(), c));
            }
            true
        })?;
        let mut load = Load::default();
        for (k, c) in claims {
            let Some(task_key) = keys::task_of_index(&k) else {
                continue;
            };
            match state.get::<TaskHeader>(&task_key)? {
                Some(t) if t.is_stopped() => continue,
                Some(t) if t.is_running() => load.running += 1,
                _ => load.pending += 1,
            }
            load.cpu += i64::from(c.cpu);
            load.mem += i64::from(c.memory);
            load.ports
                .extend(c.ports.iter().map(|p| p.port.to_string()));
        }
        Ok(load)
    }
}

/// Fills the derived fields: connected, heartbeat, remaining resources, task counts.
fn with_live_view(
    state: &State,
    mut node: ContainerInstance,
    sessions: &Sessions,
) -> Result<ContainerInstance> {
    let id = node.ec2_instance_id.clone();
    node.agent_connected = sessions.is_connected(&id);
    if let Some(ms) = sessions.last_heartbeat(&id) {
        node.last_heartbeat_at = time::rfc3339(ms);
    }
    let load = Load::read(state, &id)?;
    node.running_tasks_count = load.running;
    node.pending_tasks_count = load.pending;
    let mut ports: Vec<String> = reserved_ports(&node)
        .iter()
        .map(|p| p.to_string())
        .chain(load.ports)
        .collect();
    ports.sort();
    ports.dedup();
    node.remaining_resources = vec![
        int_resource("CPU", resource(&node, "CPU") - load.cpu),
        int_resource("MEMORY", resource(&node, "MEMORY") - load.mem),
        Resource {
            name: "PORTS".into(),
            string_set_value: ports,
            ..Default::default()
        },
    ];
    Ok(node)
}

pub fn list(state: &State, sessions: &Sessions) -> Result<Vec<ContainerInstance>> {
    state
        .scan::<ContainerInstance>(keys::NODES)?
        .into_iter()
        .map(|n| with_live_view(state, n, sessions))
        .collect()
}

/// A node by id, name or ARN.
pub fn describe(state: &State, sessions: &Sessions, node: &str) -> Result<ContainerInstance> {
    let want = arn::last_segment(node);
    let found = match state.get::<ContainerInstance>(&keys::node(want))? {
        Some(n) => Some(n),
        None => state
            .scan::<ContainerInstance>(keys::NODES)?
            .into_iter()
            .find(|n| n.name == node),
    };
    let found = found
        .ok_or_else(|| Error::not_found("ContainerInstance", node, "see `berth node list`"))?;
    with_live_view(state, found, sessions)
}

/// `node drain` / `node activate`: DRAINING takes no new placements and its service tasks are
/// replaced elsewhere; standalone tasks are left alone.
pub fn set_status(
    state: &State,
    sessions: &Sessions,
    node: &str,
    status: &str,
) -> Result<ContainerInstance> {
    let status = status.to_ascii_uppercase();
    if status != "ACTIVE" && status != "DRAINING" {
        return Err(Error::invalid(
            "status",
            format!("{status:?} must be ACTIVE or DRAINING"),
        ));
    }
    let found = describe(state, sessions, node)?;
    let key = keys::node(&found.ec2_instance_id);
    let stored = state.update(|tx| {
        let mut stored = tx
            .get::<ContainerInstance>(&key)?
            .ok_or_else(|| Error::not_found("ContainerInstance", node, "see `berth node list`"))?;
        if stored.status == status {
            return Ok((stored, Vec::new()));
        }
        stored.status = status.clone();
        let ops = vec![put(key.clone(), &stored)];
        Ok((stored, ops))
    })?;
    with_live_view(state, stored, sessions)
}

/// ECS's DeregisterContainerInstance: forgets the node. Refused while tasks that are not stopped
/// are placed on it, unless `force` (service tasks are then replaced elsewhere as for a lost
/// node). An agent that connects again registers anew.
pub fn deregister(
    state: &State,
    sessions: &Sessions,
    node: &str,
    force: bool,
) -> Result<ContainerInstance> {
    state.update(|tx| {
        let mut found = describe(tx.state(), sessions, node)?;
        let key = keys::node(&found.ec2_instance_id);
        // Compared at commit: a task placed on it meanwhile refuses the deregistration.
        tx.get::<ContainerInstance>(&key)?;
        tx.scan_keys(&keys::node_claims(&found.ec2_instance_id))?;
        let live = found.running_tasks_count + found.pending_tasks_count;
        if live > 0 && !force {
            return Err(Error::invalid(
                "containerInstance",
                format!(
                    "{} still has {live} task(s); stop them, drain it first, or pass force",
                    found.name
                ),
            ));
        }
        found.status = "INACTIVE".into();
        Ok((found, vec![crate::store::Op::Delete(key)]))
    })
}

impl crate::model::placement::Capacity for Sessions {
    fn snapshots(
        &self,
        state: &State,
        fresh: crate::model::placement::Freshness,
    ) -> Result<Vec<berth_core::scheduler::NodeSnapshot>> {
        Sessions::snapshots(self, state, fresh)
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
