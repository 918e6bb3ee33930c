//! Clusters: create (idempotent), describe with live counts, list, delete with ECS's guards.

use crate::state::error::{Error, Result};
use crate::state::{keys, put, State};
use crate::store::Op;
use crate::time;
use berth_core::arn;
use berth_core::status::{DesiredStatus, TaskState};
use berth_proto::v1::{Cluster, Service, TaskHeader};

pub const DEFAULT_CLUSTER: &str = "default";

fn check_cluster_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 255
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(Error::invalid(
            "clusterName",
            format!(
                "{} must be 1-255 letters, digits, hyphens or underscores",
                crate::state::error::quote(name)
            ),
        ));
    }
    Ok(())
}

/// Creates the cluster, or returns it when it already exists (as ECS does).
pub fn create(state: &State, name: &str) -> Result<Cluster> {
    create_with(state, name, |_, _| Ok(Vec::new()))
}

/// `create`, committing `also(cluster, existed)`'s writes in the same batch (data another
/// transport keeps beside the cluster), so both land or neither.
pub fn create_with(
    state: &State,
    name: &str,
    mut also: impl FnMut(&Cluster, bool) -> Result<Vec<Op>>,
) -> Result<Cluster> {
    check_cluster_name(name)?;
    let (cluster, existed) = state.update(|tx| {
        if let Some(c) = tx.get::<Cluster>(&keys::cluster(name))? {
            if c.status == "ACTIVE" {
                let ops = also(&c, true)?;
                return Ok(((c, true), ops));
            }
        }
        let cluster = Cluster {
            cluster_arn: arn::cluster(name),
            cluster_name: name.to_string(),
            status: "ACTIVE".into(),
            created_at: time::now(),
            ..Default::default()
        };
        let mut ops = vec![put(keys::cluster(name), &cluster)];
        ops.extend(also(&cluster, false)?);
        Ok(((cluster, false), ops))
    })?;
    if existed {
        return with_counts(state, cluster);
    }
    Ok(cluster)
}

/// Makes sure the `default` cluster exists; called once when the store opens.
pub fn ensure_default(state: &State) -> Result<()> {
    if state
        .get::<Cluster>(&keys::cluster(DEFAULT_CLUSTER))?
        .is_none()
    {
        create(state, DEFAULT_CLUSTER)?;
    }
    Ok(())
}

/// An ACTIVE cluster by name or ARN, or ClusterNotFound.
pub fn get_active(state: &State, name_or_arn: &str) -> Result<Cluster> {
    let name = arn::cluster_name(name_or_arn);
    match state.get::<Cluster>(&keys::cluster(name))? {
        Some(c) if c.status == "ACTIVE" => Ok(c),
        _ => Err(Error::not_found(
            "Cluster",
            name,
            format!("create it with `berth cluster create {name}`"),
        )),
    }
}

pub fn describe(state: &State, name_or_arn: &str) -> Result<Cluster> {
    let name = arn::cluster_name(name_or_arn);
    match state.get::<Cluster>(&keys::cluster(name))? {
        Some(c) => with_counts(state, c),
        None => Err(Error::not_found(
            "Cluster",
            name,
            format!("create it with `berth cluster create {name}`"),
        )),
    }
}

pub fn list(state: &State) -> Result<Vec<Cluster>> {
    state
        .scan::<Cluster>(keys::CLUSTERS)?
        .into_iter()
        .filter(|c| c.status == "ACTIVE")
        .map(|c| with_counts(state, c))
        .collect()
}

/// Marks the cluster INACTIVE; refused while it has services or unstopped tasks.
pub fn delete(state: &State, name_or_arn: &str) -> Result<Cluster> {
    state.update(|tx| {
        let mut cluster = get_active(tx.state(), name_or_arn)?;
        let name = cluster.cluster_name.clone();
        // Compared at commit: a service created or a task placed meanwhile refuses the delete.
        tx.get::<Cluster>(&keys::cluster(&name))?;
        tx.scan_keys(&keys::services_of(&name))?;
        tx.scan_keys(&keys::tasks_of(&name))?;
        let cluster = {
            let c = with_counts(state, cluster.clone())?;
            if c.active_services_count > 0 {
                return Err(Error::ClusterContainsServices(
                    c.cluster_name,
                    c.active_services_count as usize,
                ));
            }
            let live = c.running_tasks_count + c.pending_tasks_count;
            if live > 0 {
                return Err(Error::ClusterContainsTasks(c.cluster_name, live as usize));
            }
            cluster.status = "INACTIVE".into();
            cluster
        };
        let ops = vec![put(keys::cluster(&cluster.cluster_name), &cluster)];
        Ok((cluster, ops))
    })
}

/// Counts are derived from the tasks, services and nodes stored, never kept by hand.
fn with_counts(state: &State, mut c: Cluster) -> Result<Cluster> {
    let name = c.cluster_name.clone();
    // Headers one at a time: a cluster of a million tasks is counted in one task's memory.
    let (mut running, mut pending) = (0, 0);
    state.scan_each::<TaskHeader>(&keys::tasks_of(&name), |t| {
        if t.is_running() {
            running += 1;
        } else if !t.is_stopped() && t.desired() != DesiredStatus::Stopped {
            pending += 1;
        }
        true
    })?;
    c.running_tasks_count = running;
    c.pending_tasks_count = pending;
    c.active_services_count = state
        .scan::<Service>(&keys::services_of(&name))?
        .iter()
        .filter(|s| s.status == "ACTIVE" || s.status == "DRAINING")
        .count() as i32;
    c.registered_container_instances_count = state.scan_keys(keys::NODES)?.len() as i32;
    Ok(c)
}
