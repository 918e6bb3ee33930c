//! Stacks: a file of task definitions and services applied as one, the way a CloudFormation
//! stack holds an ECS service: it creates everything (its cluster too, when missing) and deletes
//! everything. The stack record (`stack/CLUSTER/NAME`, in the store like everything else, so it
//! survives restarts) remembers which services and families the stack owns, whether it created
//! its cluster, and the file it last applied: what the file no longer declares is deleted on the
//! next apply. Services carry their stack's name too, so no other stack (or file) takes them
//! over.
//!
//! Apply validates the whole file against the store before its first write (`plan`); then it
//! writes what differs (`write`): it registers only task definitions that differ from their
//! family's latest ACTIVE revision (server-filled fields aside), and changes a service only
//! through the one UpdateService path, so applying the same file again changes nothing.

mod delete;
mod describe;
mod drift;
pub mod parse;
mod plan;
mod write;

pub use delete::delete;
pub use describe::{describe, list};

use crate::state::error::{Error, Result};
use crate::state::{put, State};
use crate::{model::services, time};
use berth_proto::v1::*;
use parse::StackSpec;

pub fn key(cluster: &str, name: &str) -> String {
    format!("stack/{cluster}/{name}")
}

/// Every stack of one cluster (or of all clusters, for an empty name) is under this prefix.
fn prefix(cluster: &str) -> String {
    if cluster.is_empty() {
        "stack/".into()
    } else {
        format!("stack/{cluster}/")
    }
}

fn change(kind: &str, name: &str, action: &str, detail: impl Into<String>) -> StackChange {
    StackChange {
        kind: kind.into(),
        name: name.into(),
        action: action.into(),
        detail: detail.into(),
    }
}

/// The definition with the fields the server fills cleared, for comparison.
fn comparable(td: &TaskDefinition) -> TaskDefinition {
    TaskDefinition {
        task_definition_arn: String::new(),
        revision: 0,
        status: String::new(),
        registered_at: String::new(),
        deregistered_at: String::new(),
        ..td.clone()
    }
}

fn short(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// Applies a stack file: validate everything, then write what differs, in order: the cluster,
/// task definitions, services, then what the file no longer declares.
pub fn apply(state: &State, req: ApplyStackRequest) -> Result<StackReply> {
    let spec: StackSpec =
        parse::decode(&req.stack_json, &req.stack_name).map_err(Error::Invalid)?;
    let cluster = services::cluster_name(&spec.cluster).to_string();
    let record_key = key(&cluster, &spec.name);
    let record = state.get::<Stack>(&record_key)?;
    refuse_while_deleting(record.as_ref(), &spec.name)?;
    let mut record = record.unwrap_or_else(|| Stack {
        name: spec.name.clone(),
        cluster_arn: berth_core::arn::cluster(&cluster),
        status: "ACTIVE".into(),
        created_at: time::now(),
        ..Default::default()
    });
    let mut plan = plan::plan(state, &spec, &cluster)?;
    if req.dry_run {
        let changes = plan.dry_run(&spec, &cluster, &record);
        return Ok(reply(record, changes, &spec));
    }

    let mut changes = Vec::new();
    if plan.create_cluster {
        write::create_cluster(state, &cluster, &record_key, &mut record, &mut changes)?;
    }
    write::register_definitions(state, &spec, &mut plan.td_arns, &mut record, &mut changes)?;
    write::write_services(state, &spec, &cluster, &plan, &mut changes)?;
    write::remove_undeclared(state, &spec, &cluster, &mut record, &mut changes)?;
    record.services = spec
        .services
        .iter()
        .map(|s| s.request.service_name.clone())
        .collect();
    record.families = spec
        .task_definitions
        .iter()
        .map(|t| t.family.clone())
        .collect();
    record.applied_json = req.stack_json;
    record.last_changes = changes.clone();
    record.updated_at = time::now();
    state.commit(vec![put(record_key, &record)])?;
    Ok(reply(record, changes, &spec))
}

fn refuse_while_deleting(record: Option<&Stack>, name: &str) -> Result<()> {
    if record.is_some_and(|r| r.status == "DELETING") {
        return Err(Error::Client(format!(
            "stack {name} is being deleted; run `berth delete -f` again once its services have drained"
        )));
    }
    Ok(())
}

fn reply(record: Stack, changes: Vec<StackChange>, spec: &StackSpec) -> StackReply {
    let mut warnings = spec.warnings.clone();
    if !spec.ignored.is_empty() {
        warnings.push(format!(
            "Berth does not use, and ignored: {}",
            spec.ignored.join(", ")
        ));
    }
    StackReply {
        stack: Some(record),
        changes,
        warnings,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
