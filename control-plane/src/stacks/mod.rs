//! Stacks: a file of task definitions and services applied as one, the way a CloudFormation
//! stack holds an ECS service. The stack record (`stack/CLUSTER/NAME`, in the store like
//! everything else, so it survives restarts) remembers which services and families the stack
//! owns: what the file no longer declares is deleted on the next apply. Services carry their
//! stack's name too, so no other stack (or file) takes them over.
//!
//! Apply validates the whole file against the store before its first write; then it registers
//! only task definitions that differ from their family's latest ACTIVE revision (server-filled
//! fields aside), and updates only services whose settings differ, so applying the same file
//! again changes nothing.

mod delete;
pub mod parse;

pub use delete::{delete, describe};

use crate::error::{Error, FieldError, Result};
use crate::state::{put, State};
use crate::{clusters, services, taskdef, time};
use berth_proto::v1::*;
use parse::{service_path, StackSpec};

pub fn key(cluster: &str, name: &str) -> String {
    format!("stack/{cluster}/{name}")
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

/// What an existing service would need to become the declared one: None when it already is.
/// Settings an update cannot change are errors naming the field.
fn service_update(
    i: usize,
    existing: &Service,
    wanted: &Service,
    td_arn: &str,
    errs: &mut Vec<FieldError>,
) -> Option<(UpdateServiceRequest, Vec<&'static str>)> {
    let fixed = [
        (
            "loadBalancer",
            existing.load_balancers != wanted.load_balancers,
        ),
        (
            "placementStrategy",
            existing.placement_strategy != wanted.placement_strategy,
        ),
        (
            "placementConstraints",
            existing.placement_constraints != wanted.placement_constraints,
        ),
        (
            "schedulingStrategy",
            existing.scheduling_strategy != wanted.scheduling_strategy,
        ),
    ];
    for (field, differs) in fixed {
        if differs {
            errs.push(FieldError::new(
                format!("services[{i}].{field}"),
                format!(
                    "cannot change on the existing service {}; rename the service in the file (the old one is deleted) to replace it",
                    existing.service_name
                ),
            ));
        }
    }
    let mut req = UpdateServiceRequest {
        cluster: crate::arn::cluster_name(&existing.cluster_arn).to_string(),
        service: existing.service_name.clone(),
        ..Default::default()
    };
    let mut what = Vec::new();
    if existing.task_definition != td_arn {
        req.task_definition = td_arn.to_string();
        what.push("taskDefinition");
    }
    // With auto scaling on, the policy owns the desired count.
    if existing.desired_count != wanted.desired_count && existing.scaling_policy.is_none() {
        req.desired_count = Some(wanted.desired_count);
        what.push("desiredCount");
    }
    if existing.deployment_configuration != wanted.deployment_configuration {
        req.deployment_configuration = wanted.deployment_configuration;
        what.push("deploymentConfiguration");
    }
    if existing.health_check_grace_period_seconds != wanted.health_check_grace_period_seconds {
        req.health_check_grace_period_seconds = Some(wanted.health_check_grace_period_seconds);
        what.push("healthCheckGracePeriodSeconds");
    }
    (!what.is_empty()).then_some((req, what))
}

enum ServicePlan {
    Create,
    Update(UpdateServiceRequest, Vec<&'static str>),
    Unchanged,
}

/// Applies a stack file: validate everything, then write what differs.
pub fn apply(state: &State, req: ApplyStackRequest) -> Result<StackReply> {
    let spec: StackSpec =
        parse::decode(&req.stack_json, &req.stack_name).map_err(Error::Invalid)?;
    let cluster = services::cluster_name(&spec.cluster).to_string();
    clusters::get_active(state, &cluster)?;
    let record_key = key(&cluster, &spec.name);
    let record = state.get::<Stack>(&record_key)?;
    if record.as_ref().is_some_and(|r| r.status == "DELETING") {
        return Err(Error::Client(format!(
            "stack {} is being deleted; run `berth delete -f` again once its services have drained",
            spec.name
        )));
    }
    let mut errs: Vec<FieldError> = Vec::new();

    // Task definitions: unchanged when equal to the family's latest ACTIVE revision.
    let mut td_arns: Vec<(String, Option<String>)> = Vec::new();
    for td in &spec.task_definitions {
        let latest = taskdef::describe(state, &td.family).ok();
        let same = latest
            .as_ref()
            .filter(|l| comparable(l) == comparable(td))
            .map(|l| l.task_definition_arn.clone());
        td_arns.push((td.family.clone(), same));
    }

    // Services: each checked as a create would check it, and against what exists.
    let mut plans = Vec::new();
    for (i, s) in spec.services.iter().enumerate() {
        let (wanted, found) = services::new_service(&cluster, &s.request, state.limits());
        errs.extend(
            found
                .into_iter()
                .map(|e| FieldError::new(service_path(i, &e.path), e.message)),
        );
        if spec.services[..i]
            .iter()
            .any(|o| o.request.service_name == s.request.service_name)
        {
            errs.push(FieldError::new(
                format!("services[{i}].name"),
                format!(
                    "{} appears twice",
                    crate::error::quote(&s.request.service_name)
                ),
            ));
        }
        let Some(td) = spec.task_definitions.iter().find(|t| t.family == s.family) else {
            errs.push(FieldError::new(
                format!("services[{i}].taskDefinition"),
                format!(
                    "{} is not a family of this stack's taskDefinitions",
                    crate::error::quote(&s.family)
                ),
            ));
            plans.push(ServicePlan::Unchanged);
            continue;
        };
        let mut lb_errs = Vec::new();
        services::check_load_balancers(&mut lb_errs, &wanted.load_balancers, td);
        errs.extend(
            lb_errs
                .into_iter()
                .map(|e| FieldError::new(service_path(i, &e.path), e.message)),
        );
        let port = wanted.load_balancers.first().map(|l| l.listener_port);
        if port.is_some()
            && spec.services[..i]
                .iter()
                .any(|o| o.request.load_balancers.first().map(|l| l.listener_port) == port)
        {
            errs.push(FieldError::new(
                format!("services[{i}].loadBalancer.port"),
                "another service of this stack already listens on this port",
            ));
        }
        let existing = state
            .get::<Service>(&services::key(&cluster, &s.request.service_name))?
            .filter(|e| e.status != "INACTIVE");
        match existing {
            Some(e) if e.stack != spec.name => {
                let owner = if e.stack.is_empty() {
                    "was created outside any stack".to_string()
                } else {
                    format!("belongs to stack {}", e.stack)
                };
                errs.push(FieldError::new(
                    format!("services[{i}].name"),
                    format!(
                        "service {} {owner} ({}); pick another name",
                        e.service_name, e.status
                    ),
                ));
                plans.push(ServicePlan::Unchanged);
            }
            Some(e) if e.status != "ACTIVE" => {
                errs.push(FieldError::new(
                    format!("services[{i}].name"),
                    format!(
                        "service {} is still {}; apply again once it is INACTIVE",
                        e.service_name, e.status
                    ),
                ));
                plans.push(ServicePlan::Unchanged);
            }
            Some(e) => {
                // The revision it should run: the unchanged one, or the one about to be registered.
                let td_arn = td_arns
                    .iter()
                    .find(|(f, _)| f == &s.family)
                    .and_then(|(_, a)| a.clone())
                    .unwrap_or_default();
                match service_update(i, &e, &wanted, &td_arn, &mut errs) {
                    Some((u, what)) => plans.push(ServicePlan::Update(u, what)),
                    None => plans.push(ServicePlan::Unchanged),
                }
            }
            None => {
                services::check_listener_conflicts(state, &wanted)?;
                plans.push(ServicePlan::Create);
            }
        }
    }
    if !errs.is_empty() {
        return Err(Error::Invalid(errs));
    }

    let mut changes = Vec::new();
    let mut record = record.unwrap_or_else(|| Stack {
        name: spec.name.clone(),
        cluster_arn: crate::arn::cluster(&cluster),
        status: "ACTIVE".into(),
        created_at: time::now(),
        ..Default::default()
    });
    let declared_services: Vec<&str> = spec
        .services
        .iter()
        .map(|s| s.request.service_name.as_str())
        .collect();
    let declared_families: Vec<&str> = spec
        .task_definitions
        .iter()
        .map(|t| t.family.as_str())
        .collect();
    if req.dry_run {
        return Ok(dry_run(
            &spec,
            &td_arns,
            &plans,
            &record,
            &declared_services,
            &declared_families,
        ));
    }

    // Writes: definitions, then services, then what the file no longer has.
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
    let arn_of = |family: &str| {
        td_arns
            .iter()
            .find(|(f, _)| f == family)
            .and_then(|(_, a)| a.clone())
            .unwrap_or_default()
    };
    for (s, plan) in spec.services.iter().zip(plans) {
        let name = &s.request.service_name;
        match plan {
            ServicePlan::Create => {
                let mut r = s.request.clone();
                r.cluster = cluster.clone();
                r.task_definition = arn_of(&s.family);
                let svc = services::create_in_stack(state, r, &spec.name)?;
                changes.push(change(
                    "service",
                    name,
                    "created",
                    format!(
                        "{} desired, {}",
                        svc.desired_count,
                        short(&svc.task_definition)
                    ),
                ));
            }
            ServicePlan::Update(mut u, what) => {
                if what.contains(&"taskDefinition") {
                    u.task_definition = arn_of(&s.family);
                }
                let svc = services::update(state, u)?;
                changes.push(change(
                    "service",
                    name,
                    "updated",
                    format!(
                        "{} ({} desired, {})",
                        what.join(", "),
                        svc.desired_count,
                        short(&svc.task_definition)
                    ),
                ));
            }
            ServicePlan::Unchanged => changes.push(change("service", name, "unchanged", "")),
        }
    }
    for gone in record
        .services
        .iter()
        .filter(|s| !declared_services.contains(&s.as_str()))
    {
        if delete::delete_service(state, &cluster, gone, &spec.name)? {
            changes.push(change(
                "service",
                gone,
                "deleting",
                "no longer in the file; draining",
            ));
        }
    }
    let mut kept = Vec::new();
    for r in std::mem::take(&mut record.task_definitions) {
        let family = r.split(':').next().unwrap_or_default();
        if declared_families.contains(&family) {
            kept.push(r);
        } else if let Ok(td) = taskdef::deregister(state, &r) {
            changes.push(change("taskDefinition", &r, "deregistered", td.status));
        }
    }
    record.task_definitions = kept;
    record.services = declared_services.iter().map(|s| s.to_string()).collect();
    record.families = declared_families.iter().map(|s| s.to_string()).collect();
    record.updated_at = time::now();
    {
        state.commit(vec![put(record_key, &record)])?;
    }
    let mut warnings = spec.warnings;
    if !spec.ignored.is_empty() {
        warnings.push(format!(
            "Berth does not use, and ignored: {}",
            spec.ignored.join(", ")
        ));
    }
    Ok(StackReply {
        stack: Some(record),
        changes,
        warnings,
    })
}

fn dry_run(
    spec: &StackSpec,
    td_arns: &[(String, Option<String>)],
    plans: &[ServicePlan],
    record: &Stack,
    declared_services: &[&str],
    declared_families: &[&str],
) -> StackReply {
    let mut changes = Vec::new();
    for (family, same) in td_arns {
        let action = if same.is_some() {
            "unchanged"
        } else {
            "would create"
        };
        changes.push(change("taskDefinition", family, action, ""));
    }
    for (s, p) in spec.services.iter().zip(plans) {
        let (action, detail) = match p {
            ServicePlan::Create => ("would create", String::new()),
            ServicePlan::Update(_, what) => ("would update", what.join(", ")),
            ServicePlan::Unchanged => ("unchanged", String::new()),
        };
        changes.push(change("service", &s.request.service_name, action, detail));
    }
    for gone in record
        .services
        .iter()
        .filter(|s| !declared_services.contains(&s.as_str()))
    {
        changes.push(change("service", gone, "would delete", ""));
    }
    for r in &record.task_definitions {
        if !declared_families.contains(&r.split(':').next().unwrap_or_default()) {
            changes.push(change("taskDefinition", r, "would deregister", ""));
        }
    }
    StackReply {
        stack: Some(record.clone()),
        changes,
        warnings: spec.warnings.clone(),
    }
}

fn short(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}
