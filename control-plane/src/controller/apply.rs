//! The plan applier: the one way tasks come into being and are told to stop. Inside the caller's
//! optimistic transaction it re-reads each node a plan places on (its record and its claims),
//! re-checks free CPU, memory and ports against that fresh state, mints task ids, and writes the
//! task with its indexes and its claim. The node's claims prefix is compared at commit, so two
//! plans can never double-book a node, in one process or across several.

use crate::error::{Error, Result};
use crate::nodes::{self, rooms::Freshness};
use crate::scheduler::Demand;
use crate::state::{keys, put, Tx};
use crate::status::TaskState;
use crate::store::Op;
use crate::{arn, tasks, time};
use berth_proto::v1::*;
use std::collections::{BTreeMap, HashSet};

/// A task to create on a node.
#[derive(Debug, Clone)]
pub struct NewTask<'a> {
    pub cluster: &'a str,
    pub definition: &'a TaskDefinition,
    pub node_id: String,
    pub demand: Demand,
    pub group: String,
    pub started_by: String,
    pub load_balanced: bool,
    /// What RunTask changed for this task only (ECS's overrides).
    pub overrides: Option<TaskOverride>,
}

/// What a node has room for, from its record and its unreleased claims.
#[derive(Debug, Clone, Default)]
pub struct Room {
    pub cpu: i64,
    pub memory: i64,
    pub ports_used: HashSet<(i32, String)>,
    pub tasks: usize,
}

/// What a node's unreleased claims add up to.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub cpu: i64,
    pub memory: i64,
    pub ports: Vec<(i32, String)>,
    pub tasks: usize,
}

impl Usage {
    pub fn of<'a>(claims: impl IntoIterator<Item = &'a NodeClaim>) -> Self {
        let mut u = Usage::default();
        for c in claims.into_iter().filter(|c| !c.released) {
            u.cpu += i64::from(c.cpu);
            u.memory += i64::from(c.memory);
            u.ports
                .extend(c.ports.iter().map(|p| (p.port, p.protocol.clone())));
            u.tasks += 1;
        }
        u
    }
}

impl Room {
    /// A node's room given its claims.
    pub fn of(node: &ContainerInstance, claims: &[NodeClaim]) -> Self {
        Self::left(node, &Usage::of(claims))
    }

    /// A node's room given what its claims add up to.
    pub fn left(node: &ContainerInstance, used: &Usage) -> Self {
        let mut ports_used: HashSet<(i32, String)> = nodes::reserved_ports(node)
            .into_iter()
            .flat_map(|p| [(p, "tcp".to_string()), (p, "udp".to_string())])
            .collect();
        ports_used.extend(used.ports.iter().cloned());
        Room {
            cpu: nodes::resource(node, "CPU") - used.cpu,
            memory: nodes::resource(node, "MEMORY") - used.memory,
            ports_used,
            tasks: used.tasks,
        }
    }

    /// Why the demand does not fit, if it does not.
    fn take(&mut self, d: &Demand) -> std::result::Result<(), String> {
        if d.cpu > self.cpu {
            return Err(format!(
                "RESOURCE:CPU ({} wanted, {} free)",
                d.cpu, self.cpu
            ));
        }
        if d.memory > self.memory {
            return Err(format!(
                "RESOURCE:MEMORY ({} MiB wanted, {} free)",
                d.memory, self.memory
            ));
        }
        if let Some(p) = d.ports.iter().find(|p| self.ports_used.contains(*p)) {
            return Err(format!("RESOURCE:PORTS ({}/{} taken)", p.0, p.1));
        }
        self.cpu -= d.cpu;
        self.memory -= d.memory;
        self.ports_used.extend(d.ports.iter().cloned());
        self.tasks += 1;
        Ok(())
    }
}

/// Re-checks every launch against its node's claims and returns the new tasks and the ops that
/// create them. A launch that no longer fits is a conflict: the caller decides again on fresh
/// state. On the first try the claims are those the rooms cache holds as of its revision, and
/// the commit requires that none of the node's claims changed since (so the check is as exact
/// as a fresh read, without decoding a hundred claims a node); a retry reads them afresh.
pub fn place(
    tx: &mut Tx<'_>,
    rooms: Option<(&nodes::Sessions, Freshness)>,
    launches: &[NewTask<'_>],
) -> Result<(Vec<Task>, Vec<Op>)> {
    let mut by_node: BTreeMap<&str, Vec<&NewTask>> = BTreeMap::new();
    for l in launches {
        by_node.entry(l.node_id.as_str()).or_default().push(l);
    }
    let cached = match rooms.filter(|_| tx.attempt() == 0) {
        Some((s, fresh)) => Some(s.rooms_of(tx.state(), by_node.keys().copied(), fresh)?),
        None => None,
    };
    let mut created = Vec::with_capacity(launches.len());
    let mut ops = Vec::with_capacity(launches.len() * 3);
    for (node_id, mine) in by_node {
        let Some(node) = tx.get::<ContainerInstance>(&keys::node(node_id))? else {
            return Err(Error::Conflict(format!("node {node_id} is gone")));
        };
        // A snapshot may predate a drain or a deregistration (a request's is up to half a
        // second old): the node as it is now decides.
        if node.status != "ACTIVE" {
            return Err(Error::Conflict(format!(
                "node {node_id} is {}",
                node.status
            )));
        }
        let claims_prefix = keys::node_claims(node_id);
        let mut room = match &cached {
            Some((rooms, revision)) => {
                tx.require_unchanged_since(&claims_prefix, *revision);
                let Some(used) = rooms.get(node_id) else {
                    return Err(Error::Conflict(format!("node {node_id} is not cached yet")));
                };
                Room::left(&node, used)
            }
            None => Room::of(&node, &tx.scan::<NodeClaim>(&claims_prefix)?),
        };
        for l in mine {
            room.take(&l.demand).map_err(|why| {
                Error::Conflict(format!("node {} has no room any more: {why}", node.name))
            })?;
            let task = tasks::build_task(
                l.cluster,
                l.definition,
                node_id,
                &l.demand,
                l.group.clone(),
                l.started_by.clone(),
                l.load_balanced,
            );
            let task = Task {
                overrides: l.overrides.clone(),
                ..task
            };
            ops.extend(create_ops(&task, &l.demand));
            created.push(task);
        }
    }
    Ok((created, ops))
}

/// A new task's record, its group index entry and its claim on the node.
pub fn create_ops(task: &Task, d: &Demand) -> Vec<Op> {
    let (cluster, id) = split(task);
    let node_id = arn::last_segment(&task.container_instance_arn);
    vec![
        put(keys::task(cluster, id), task),
        Op::Put(keys::group_task(cluster, &task.group, id), Vec::new()),
        put(keys::node_claim(node_id, cluster, id), &claim_of(task, d)),
    ]
}

pub fn claim_of(task: &Task, d: &Demand) -> NodeClaim {
    NodeClaim {
        task_arn: task.task_arn.clone(),
        cpu: d.cpu as i32,
        memory: d.memory as i32,
        ports: d
            .ports
            .iter()
            .map(|(port, protocol)| PortClaim {
                port: *port,
                protocol: protocol.clone(),
            })
            .collect(),
        released: task.is_stopped(),
    }
}

/// The ops that remove a task's record, index entry and claim.
pub fn forget_ops(task: &Task) -> Vec<Op> {
    let (cluster, id) = split(task);
    let node_id = arn::last_segment(&task.container_instance_arn);
    vec![
        Op::Delete(keys::task(cluster, id)),
        Op::Delete(keys::group_task(cluster, &task.group, id)),
        Op::Delete(keys::node_claim(node_id, cluster, id)),
    ]
}

/// The claim key of a task, for releasing it when the task stops.
pub fn claim_key(task: &Task) -> String {
    let (cluster, id) = split(task);
    keys::node_claim(arn::last_segment(&task.container_instance_arn), cluster, id)
}

/// Releases a stopped task's claim on its node (read fresh inside the transaction).
pub fn release_ops(tx: &mut Tx<'_>, task: &Task) -> Result<Vec<Op>> {
    let key = claim_key(task);
    Ok(match tx.get::<NodeClaim>(&key)? {
        Some(mut c) if !c.released => {
            c.released = true;
            vec![put(key, &c)]
        }
        _ => Vec::new(),
    })
}

/// Desired STOPPED with a stop code and reason, on the task as it is now; a task already
/// stopping or stopped is left as it is.
pub fn stop_ops(
    tx: &mut Tx<'_>,
    task_arn: &str,
    code: &str,
    reason: &str,
    now: i64,
) -> Result<Vec<Op>> {
    let Some(key) = task_key(task_arn) else {
        return Ok(Vec::new());
    };
    let Some(mut t) = tx.get::<Task>(&key)? else {
        return Ok(Vec::new());
    };
    if t.is_stopped() || t.is_stopping() {
        return Ok(Vec::new());
    }
    t.desired_status = "STOPPED".into();
    t.stop_code = code.to_string();
    t.stopped_reason = reason.to_string();
    t.stopping_at = time::rfc3339(now);
    t.version += 1;
    Ok(vec![put(key, &t)])
}

fn split(task: &Task) -> (&str, &str) {
    (
        tasks::cluster_of_arn(&task.task_arn).unwrap_or_default(),
        tasks::task_id(&task.task_arn),
    )
}

/// The store key of a task ARN.
pub fn task_key(task_arn: &str) -> Option<String> {
    let cluster = tasks::cluster_of_arn(task_arn)?;
    Some(keys::task(cluster, tasks::task_id(task_arn)))
}
