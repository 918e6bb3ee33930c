//! Deleting a stack (services first, then its task definitions) and describing one.

use super::{change, key};
use crate::error::{Error, Result};
use crate::state::{put, State};
use crate::store::Op;
use crate::{services, taskdef, time};
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
/// INACTIVE, a further call deregisters its task definitions and forgets the stack.
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
    let mut draining = false;
    for name in &record.services {
        if delete_service(state, &cluster, name, &record.name)? {
            changes.push(change("service", name, "deleting", "draining"));
        }
        let status = state
            .get::<Service>(&services::key(&cluster, name))?
            .filter(|s| s.stack == record.name)
            .map_or_else(|| "INACTIVE".to_string(), |s| s.status);
        if status != "INACTIVE" {
            draining = true;
        } else if !changes.iter().any(|c| &c.name == name) {
            changes.push(change("service", name, "deleted", "INACTIVE"));
        }
    }
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
        record.status = "DELETED".into();
        state.commit(vec![Op::Delete(record_key)])?;
    }
    Ok(StackReply {
        stack: Some(record),
        changes,
        warnings: Vec::new(),
    })
}

pub fn describe(state: &State, req: DescribeStackRequest) -> Result<StackReply> {
    let cluster = services::cluster_name(&req.cluster).to_string();
    let record = state
        .get::<Stack>(&key(&cluster, &req.stack_name))?
        .ok_or_else(|| {
            Error::not_found(
                "Stack",
                &req.stack_name,
                format!("no stack of that name in cluster {cluster}"),
            )
        })?;
    Ok(StackReply {
        stack: Some(record),
        changes: Vec::new(),
        warnings: Vec::new(),
    })
}
