//! The plan applier: the one way tasks come into being and are told to stop. Inside the caller's
//! optimistic transaction it re-reads each node a plan places on (its record and its claims),
//! re-checks free CPU, memory and ports against that fresh state, mints task ids, and writes the
//! task with its indexes and its claim. The node's claims prefix is compared at commit, so two
//! plans can never double-book a node, in one process or across several.

use super::{Capacity, Freshness};
use crate::state::error::{Error, Result};
use crate::state::{keys, put, Tx};
use crate::store::Op;
use crate::time;
use berth_core::arn;
use berth_core::capacity::Room;
use berth_core::scheduler::Demand;
use berth_core::status::TaskState;
use berth_proto::v1::*;
use std::collections::BTreeMap;

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
    /// The capacity provider whose nodes it was placed on (empty: none was asked for).
    pub capacity_provider: String,
}

/// Re-checks every launch against its node's claims and returns the new tasks and the ops that
/// create them. A launch that no longer fits is a conflict: the caller decides again on fresh
/// state. On the first try the claims are those the rooms cache holds as of its revision, and
/// the commit requires that none of the node's claims changed since (so the check is as exact
/// as a fresh read, without decoding a hundred claims a node); a retry reads them afresh.
pub fn place(
    tx: &mut Tx<'_>,
    rooms: Option<(&dyn Capacity, Freshness)>,
    launches: &[NewTask<'_>],
) -> Result<(Vec<Task>, Vec<Op>)> {
    let mut by_node: BTreeMap<&str, Vec<&NewTask>> = BTreeMap::new();
    for l in launches {
        by_node.entry(l.node_id.as_str()).or_default().push(l);
    }
    let cached = match rooms.filter(|_| tx.attempt() == 0) {
        Some((s, fresh)) => {
            let ids: Vec<&str> = by_node.keys().copied().collect();
            Some(s.usage_of(tx.state(), &ids, fresh)?)
        }
        None => None,
    };
    let mut created = Vec::with_capacity(launches.len());
    let mut ops = Vec::with_capacity(launches.len() * 3);
    // Where each shared volume of these launches now lives (its key → home).
    let mut homes: BTreeMap<String, VolumeHome> = BTreeMap::new();
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
            let task = build_task(
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
                capacity_provider_name: l.capacity_provider.clone(),
                ..task
            };
            ops.extend(create_ops(&task, &l.demand));
            for v in &l.demand.volumes {
                let home = VolumeHome {
                    node_id: node_id.to_string(),
                    task_arn: task.task_arn.clone(),
                };
                homes.insert(keys::volume_home(l.cluster, &v.name), home);
            }
            created.push(task);
        }
    }
    // Written only when the volume moves (or is new), so a service's launches cost no op.
    for (key, home) in homes {
        let known = tx.get::<VolumeHome>(&key)?;
        if known.is_none_or(|k| k.node_id != home.node_id) {
            ops.push(put(key, &home));
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
        arn::task_cluster(&task.task_arn).unwrap_or_default(),
        arn::task_id(&task.task_arn),
    )
}

/// The store key of a task ARN.
pub fn task_key(task_arn: &str) -> Option<String> {
    let cluster = arn::task_cluster(task_arn)?;
    Some(keys::task(cluster, arn::task_id(task_arn)))
}

/// A new task record, PROVISIONING on `node_id`, wanting to run.
pub fn build_task(
    cluster: &str,
    td: &TaskDefinition,
    node_id: &str,
    d: &Demand,
    group: String,
    started_by: String,
    load_balanced: bool,
) -> Task {
    let id = berth_core::ids::new_id(32);
    let task_arn = arn::task(cluster, &id);
    Task {
        cluster_arn: arn::cluster(cluster),
        task_definition_arn: td.task_definition_arn.clone(),
        container_instance_arn: arn::container_instance(node_id),
        last_status: "PROVISIONING".into(),
        desired_status: "RUNNING".into(),
        health_status: "UNKNOWN".into(),
        created_at: time::now(),
        group,
        started_by,
        containers: td
            .container_definitions
            .iter()
            .map(|c| Container {
                container_arn: format!("{task_arn}/{}", c.name),
                task_arn: task_arn.clone(),
                name: c.name.clone(),
                image: c.image.clone(),
                last_status: "PENDING".into(),
                health_status: "UNKNOWN".into(),
                essential: c.essential.unwrap_or(true),
                ..Default::default()
            })
            .collect(),
        cpu: d.cpu as i32,
        memory: d.memory as i32,
        load_balanced,
        task_arn,
        ..Default::default()
    }
}
