//! Deleting a stack: its services first (they drain), then its task definitions, then the
//! cluster if the stack created it and nothing else uses it.

use super::{change, key};
use crate::state::error::{Error, Result};
use crate::state::{keys, put, State};
use crate::store::Op;
use crate::{model::clusters, model::services, model::taskdef, time};
use berth_proto::v1::*;

/// Deletes (drains) a stack's service if it is still ACTIVE and still the stack's. True if it
/// was asked to go now.
pub(super) fn delete_service(
    state: &State,
    cluster: &str,
    name: &str,
    stack: &str,
) -> Result<bool> {
    let Some(svc) = state.get::<Service>(&services::key(cluster, name))? else {
        return Ok(false);
    };
    if svc.status != "ACTIVE" || svc.stack != stack {
        return Ok(false);
    }
    services::delete(state, cluster, name, true)?;
    Ok(true)
}

/// Deletes a stack: first its services (DRAINING until their tasks stop); once they are all
/// INACTIVE, a further call deregisters its task definitions, deletes the cluster it created
/// (or says why it kept it) and forgets the stack.
pub fn delete(state: &State, req: DeleteStackRequest) -> Result<StackReply> {
    let cluster = services::cluster_name(&req.cluster).to_string();
    let record_key = key(&cluster, &req.stack_name);
    let Some(mut record) = state.get::<Stack>(&record_key)? else {
        return Err(Error::not_found(
            "Stack",
            &req.stack_name,
            format!(
                "no stack of that name in cluster {cluster}; create it with `berth apply -f FILE`"
            ),
        ));
    };
    let mut changes = Vec::new();
    let draining = drain_services(state, &cluster, &record, &mut changes)?;
    if draining {
        record.status = "DELETING".into();
        record.updated_at = time::now();
        state.commit(vec![put(record_key, &record)])?;
    } else {
        for r in &record.task_definitions {
            if let Ok(td) = taskdef::deregister(state, r) {
                changes.push(change("taskDefinition", r, "deregistered", td.status));
            }
        }
        if record.owns_cluster {
            changes.push(release_cluster(state, &cluster)?);
        }
        record.status = "DELETED".into();
        state.commit(vec![Op::Delete(record_key)])?;
    }
    Ok(StackReply {
        stack: Some(record),
        changes,
        ..Default::default()
    })
}

/// Asks each of the stack's services to go; true while any is still draining.
fn drain_services(
    state: &State,
    cluster: &str,
    record: &Stack,
    changes: &mut Vec<StackChange>,
) -> Result<bool> {
    let mut draining = false;
    for name in &record.services {
        if delete_service(state, cluster, name, &record.name)? {
            changes.push(change("service", name, "deleting", "draining"));
        }
        let status = state
            .get::<Service>(&services::key(cluster, name))?
            .filter(|s| s.stack == record.name)
            .map_or_else(|| "INACTIVE".to_string(), |s| s.status);
        if status != "INACTIVE" {
            draining = true;
        } else if !changes.iter().any(|c| &c.name == name) {
            changes.push(change("service", name, "deleted", "INACTIVE"));
        }
    }
    Ok(draining)
}

/// Deletes the cluster the stack created, with ClusterDelete's own guards: kept, and why, while
/// services or tasks from elsewhere still use it.
fn release_cluster(state: &State, cluster: &str) -> Result<StackChange> {
    match clusters::delete(state, cluster) {
        Ok(_) => Ok(change(
            "cluster",
            cluster,
            "deleted",
            "INACTIVE (the stack created it)",
        )),
        Err(Error::ClusterContainsServices(..) | Error::ClusterContainsTasks(..)) => Ok(change(
            "cluster",
            cluster,
            "kept",
            why_kept(state, cluster)?,
        )),
        Err(Error::NotFound { .. }) => Ok(change(
            "cluster",
            cluster,
            "deleted",
            "already gone (deleted outside the stack)",
        )),
        Err(e) => Err(e),
    }
}

/// What still uses a cluster the stack created, and how to delete it by hand.
fn why_kept(state: &State, cluster: &str) -> Result<String> {
    let services: Vec<String> = services::list(state, cluster)?
        .into_iter()
        .map(|s| s.service_name)
        .collect();
    let tasks: Vec<String> = state
        .scan::<Task>(&keys::tasks_of(cluster))?
        .into_iter()
        .filter(|t| t.last_status != "STOPPED")
        .map(|t| {
            berth_core::arn::last_segment(&t.task_arn)
                .chars()
                .take(8)
                .collect()
        })
        .collect();
    let mut uses = Vec::new();
    if !services.is_empty() {
        uses.push(format!(
            "{} from outside the stack ({})",
            count(services.len(), "service"),
            services.join(", ")
        ));
    }
    if !tasks.is_empty() {
        uses.push(format!(
            "{} not yet stopped ({})",
            count(tasks.len(), "task"),
            tasks.join(", ")
        ));
    }
    Ok(format!(
        "the stack created it, but it still has {}; `berth cluster delete {cluster}` once they are gone",
        uses.join(" and ")
    ))
}

/// "1 service", "2 services".
pub(super) fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}
