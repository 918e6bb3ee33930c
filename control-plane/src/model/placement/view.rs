//! The reads placement decides from: a service's or a group's tasks through the group index
//! (never a scan of every task), and node snapshots from the rooms cache and the sessions
//! (through `Capacity`). The controller's whole view of a service is built in
//! `control::controller::sources`.

use super::{Capacity, Freshness};
use crate::state::error::Result;
use crate::state::{keys, State};
use berth_core::arn;
use berth_core::capacity::Room;
use berth_core::scheduler::NodeSnapshot;
use berth_proto::v1::*;
use std::collections::HashMap;

/// A service's tasks, through its group index.
pub fn service_tasks(state: &State, svc: &Service) -> Result<Vec<Task>> {
    let cluster = arn::cluster_name(&svc.cluster_arn);
    group_tasks(state, cluster, &format!("service:{}", svc.service_name))
}

/// A group's tasks, through its index (a group name holding `/` may also list longer ones).
pub fn group_tasks(state: &State, cluster: &str, group: &str) -> Result<Vec<Task>> {
    let tasks = indexed(state, cluster, group, |t: &Task| &t.group)?;
    Ok(tasks.into_iter().map(|(_, t)| t).collect())
}

/// The group's index entries read as `T` with their task keys, keeping those whose group is
/// exactly `group`.
pub(crate) fn indexed<T: prost::Message + Default>(
    state: &State,
    cluster: &str,
    group: &str,
    group_of: fn(&T) -> &str,
) -> Result<Vec<(String, T)>> {
    let mut out = Vec::new();
    for k in state.scan_keys(&keys::group_tasks(cluster, group))? {
        let Some(task_key) = keys::task_of_index(&k) else {
            continue;
        };
        if let Some(t) = state.get::<T>(&task_key)? {
            if group_of(&t) == group {
                out.push((task_key, t));
            }
        }
    }
    Ok(out)
}

/// Every node with its free resources, for placement (from the cache of rooms kept up to date
/// from the change history, not a read of every claim; the snapshots themselves are built once
/// per change of their node and shared).
pub fn snapshot(
    state: &State,
    capacity: &dyn Capacity,
    fresh: Freshness,
) -> Result<Vec<NodeSnapshot>> {
    let mut nodes = capacity.snapshots(state, fresh)?;
    capacity.mark_connected(&mut nodes);
    Ok(nodes)
}

/// As `snapshot`, with every value each of `attributes` takes over the nodes (placement's
/// spread counts start from them instead of looking at every node).
pub fn snapshot_with_values(
    state: &State,
    capacity: &dyn Capacity,
    fresh: Freshness,
    attributes: &[String],
) -> Result<(Vec<NodeSnapshot>, berth_core::scheduler::AttributeValues)> {
    let (mut nodes, values) = capacity.snapshots_with_values(state, fresh, attributes)?;
    capacity.mark_connected(&mut nodes);
    Ok((nodes, values))
}

/// Where the shared volumes of `definitions` live (volume name → node id), as placement
/// recorded them; a volume no task has mounted yet has no home.
pub fn volume_homes<'a>(
    state: &State,
    cluster: &str,
    definitions: impl IntoIterator<Item = &'a TaskDefinition>,
) -> Result<HashMap<String, String>> {
    let mut homes = HashMap::new();
    for td in definitions {
        for v in &berth_core::capacity::demand(td).volumes {
            if homes.contains_key(&v.name) {
                continue;
            }
            if let Some(h) = state.get::<VolumeHome>(&keys::volume_home(cluster, &v.name))? {
                homes.insert(v.name.clone(), h.node_id);
            }
        }
    }
    Ok(homes)
}

/// What placement sees of a node and its room (`connected` is the caller's to set).
pub fn placement_snapshot(n: ContainerInstance, room: Room) -> NodeSnapshot {
    let mut attributes: HashMap<String, String> = n
        .attributes
        .iter()
        .map(|a| (a.name.clone(), a.value.clone()))
        .collect();
    attributes.insert("ecs.instance-id".into(), n.ec2_instance_id.clone());
    attributes.insert("berth.node-name".into(), n.name.clone());
    NodeSnapshot {
        connected: false,
        active: n.status == "ACTIVE",
        cpu_free: room.cpu,
        memory_free: room.memory,
        ports_used: std::sync::Arc::new(room.ports_used),
        tasks: room.tasks,
        attributes: std::sync::Arc::new(attributes),
        service_tasks: 0,
        allowed_host_paths: std::sync::Arc::new(n.allowed_host_paths),
        name: n.name.into(),
        id: n.ec2_instance_id.into(),
    }
}
