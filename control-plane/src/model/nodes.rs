//! Nodes (ECS container instances): registration from an agent's hello, status and
//! deregistration, and the views `node list` / `node describe` show. Whether a node's agent is
//! connected comes from the live sessions (`Presence`), never from the store.

use crate::state::error::{Error, Result};
use crate::state::{keys, put, State};
use crate::time;
use berth_core::arn;
use berth_core::capacity::{reserved_ports, resource};
use berth_core::ids::new_id;
use berth_core::status::TaskState;
use berth_proto::agent::v1::Hello;
use berth_proto::v1::{ContainerInstance, NodeClaim, Resource, Task, TaskHeader};
use std::collections::HashMap;

/// What the node views need of the live sessions (`live::sessions::Sessions` provides it).
pub trait Presence {
    /// Whether the node's agent holds a stream to this server (or, on etcd, to any).
    fn is_connected(&self, node_id: &str) -> bool;
    /// When the node's agent was last heard, in milliseconds.
    fn last_heartbeat(&self, node_id: &str) -> Option<i64>;
}

impl<T: Presence + ?Sized> Presence for std::sync::Arc<T> {
    fn is_connected(&self, node_id: &str) -> bool {
        (**self).is_connected(node_id)
    }

    fn last_heartbeat(&self, node_id: &str) -> Option<i64> {
        (**self).last_heartbeat(node_id)
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
            allowed_host_paths: hello.allow_host_paths.clone(),
            ..Default::default()
        };
        // An agent reconnecting unchanged (every agent, after a restart) writes nothing: ten
        // thousand identical writes would each wake every controller and pusher.
        if existing.as_ref() == Some(&node) {
            return Ok((node, Vec::new()));
        }
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
    sessions: &dyn Presence,
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

/// The node records of the tasks not yet stopped, by container instance ARN: each node read
/// once, however many tasks it runs (a node since deregistered is left out).
pub fn of_live_tasks(state: &State, tasks: &[Task]) -> Result<HashMap<String, ContainerInstance>> {
    let mut nodes = HashMap::new();
    for t in tasks.iter().filter(|t| t.last_status != "STOPPED") {
        if !nodes.contains_key(&t.container_instance_arn) {
            let id = arn::last_segment(&t.container_instance_arn);
            if let Some(n) = state.get::<ContainerInstance>(&keys::node(id))? {
                nodes.insert(t.container_instance_arn.clone(), n);
            }
        }
    }
    Ok(nodes)
}

pub fn list(state: &State, sessions: &dyn Presence) -> Result<Vec<ContainerInstance>> {
    state
        .scan::<ContainerInstance>(keys::NODES)?
        .into_iter()
        .map(|n| with_live_view(state, n, sessions))
        .collect()
}

/// A node by id, name or ARN.
pub fn describe(state: &State, sessions: &dyn Presence, node: &str) -> Result<ContainerInstance> {
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
    sessions: &dyn Presence,
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
    sessions: &dyn Presence,
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
