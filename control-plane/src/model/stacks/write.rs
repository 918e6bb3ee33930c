//! The writes of an apply, once its plan is checked: each step through the same service layer
//! the gRPC and ECS APIs use (cluster create, task definition register, CreateService,
//! UpdateService, DeleteService), so a stack changes nothing any other way.

use super::parse::StackSpec;
use super::plan::{undeclared_revisions, undeclared_services, Plan, ServicePlan};
use super::{change, delete, short};
use crate::state::error::Result;
use crate::state::{put, State};
use crate::{model::clusters, model::services, model::taskdef, time};
use berth_proto::v1::*;

/// Creates the stack's missing cluster and records at once that the stack owns it, so an apply
/// that fails later still leaves the cluster to the stack's `berth delete -f`.
pub(super) fn create_cluster(
    state: &State,
    cluster: &str,
    record_key: &str,
    record: &mut Stack,
    changes: &mut Vec<StackChange>,
) -> Result<()> {
    let mut created = false;
    clusters::create_with(state, cluster, |_, existed| {
        created = !existed;
        Ok(Vec::new())
    })?;
    if !created {
        // Created by someone else between the plan and now: theirs, not the stack's.
        return Ok(());
    }
    record.owns_cluster = true;
    record.updated_at = time::now();
    state.commit(vec![put(record_key.to_string(), record)])?;
    changes.push(change("cluster", cluster, "created", "owned by the stack"));
    Ok(())
}

/// Registers the definitions that differ from their family's latest ACTIVE revision, filling
/// in the plan's ARNs.
pub(super) fn register_definitions(
    state: &State,
    spec: &StackSpec,
    td_arns: &mut [(String, Option<String>)],
    record: &mut Stack,
    changes: &mut Vec<StackChange>,
) -> Result<()> {
    for (td, (family, same)) in spec.task_definitions.iter().zip(td_arns.iter_mut()) {
        match same {
            Some(arn) => changes.push(change("taskDefinition", family, "unchanged", short(arn))),
            None => {
                let reg = taskdef::register(state, td.clone())?;
                let arn = reg.task_definition.task_definition_arn;
                record.task_definitions.push(short(&arn).to_string());
                changes.push(change("taskDefinition", family, "created", short(&arn)));
                *same = Some(arn);
            }
        }
    }
    Ok(())
}

/// Creates and updates the declared services as planned.
pub(super) fn write_services(
    state: &State,
    spec: &StackSpec,
    cluster: &str,
    plan: &Plan,
    changes: &mut Vec<StackChange>,
) -> Result<()> {
    for (s, p) in spec.services.iter().zip(&plan.services) {
        let name = &s.request.service_name;
        match p {
            ServicePlan::Create => {
                let mut r = s.request.clone();
                r.cluster = cluster.to_string();
                r.task_definition = plan.arn_of(&s.family);
                let svc = services::create_in_stack(state, r, &spec.name)?;
                let detail = format!(
                    "{} desired, {}",
                    svc.desired_count,
                    short(&svc.task_definition)
                );
                changes.push(change("service", name, "created", detail));
            }
            ServicePlan::Update {
                request,
                what,
                deployment,
            } => {
                let mut u = (**request).clone();
                if what.contains(&"taskDefinition") {
                    u.task_definition = plan.arn_of(&s.family);
                }
                let svc = services::update(state, u)?;
                let primary = svc.deployments.first().map(|d| d.id.as_str());
                let rolled = primary.is_some_and(|id| id != deployment);
                let detail = format!(
                    "{}{} ({} desired, {})",
                    what.join(", "),
                    if rolled { "; new deployment" } else { "" },
                    svc.desired_count,
                    short(&svc.task_definition)
                );
                changes.push(change("service", name, "updated", detail));
            }
            ServicePlan::Unchanged => changes.push(change("service", name, "unchanged", "")),
        }
    }
    Ok(())
}

/// Deletes the services, and deregisters the revisions, the file no longer declares.
pub(super) fn remove_undeclared(
    state: &State,
    spec: &StackSpec,
    cluster: &str,
    record: &mut Stack,
    changes: &mut Vec<StackChange>,
) -> Result<()> {
    for gone in undeclared_services(spec, record) {
        if delete::delete_service(state, cluster, gone, &spec.name)? {
            changes.push(change(
                "service",
                gone,
                "deleting",
                "no longer in the file; draining",
            ));
        }
    }
    let gone: Vec<String> = undeclared_revisions(spec, record).cloned().collect();
    for r in &gone {
        if let Ok(td) = taskdef::deregister(state, r) {
            changes.push(change("taskDefinition", r, "deregistered", td.status));
        }
    }
    record.task_definitions.retain(|r| !gone.contains(r));
    Ok(())
}
