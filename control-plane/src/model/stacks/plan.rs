//! What an apply would do, decided from the file and the store before anything is written:
//! every problem in the file is found here, with its path, so a rejected file changes nothing.

use super::parse::{service_path, ServiceSpec, StackSpec};
use super::{change, comparable, short};
use crate::state::error::{quote, Error, FieldError, Result};
use crate::state::{keys, State};
use crate::{model::services, model::taskdef};
use berth_proto::v1::*;

pub(super) enum ServicePlan {
    Create,
    /// The UpdateService request that makes the service the declared one, the fields it
    /// changes, and the service's primary deployment before it (to tell whether it made one).
    Update {
        request: Box<UpdateServiceRequest>,
        what: Vec<&'static str>,
        deployment: String,
    },
    Unchanged,
}

pub(super) struct Plan {
    /// The cluster does not exist (or is INACTIVE): the stack creates it, and owns it.
    pub create_cluster: bool,
    /// Each declared family and its latest ACTIVE revision's ARN when that equals the file's
    /// definition (None: a new revision is registered).
    pub td_arns: Vec<(String, Option<String>)>,
    pub services: Vec<ServicePlan>,
}

impl Plan {
    /// The ARN a family's services run: the unchanged revision, or the one just registered.
    pub fn arn_of(&self, family: &str) -> String {
        self.td_arns
            .iter()
            .find(|(f, _)| f == family)
            .and_then(|(_, a)| a.clone())
            .unwrap_or_default()
    }

    /// What `apply` would change, for `--dry-run`.
    pub fn dry_run(&self, spec: &StackSpec, cluster: &str, record: &Stack) -> Vec<StackChange> {
        let mut changes = Vec::new();
        if self.create_cluster {
            changes.push(change("cluster", cluster, "would create", ""));
        }
        for (family, same) in &self.td_arns {
            let (action, detail) = match same {
                Some(arn) => ("unchanged", short(arn)),
                None => ("would create", ""),
            };
            changes.push(change("taskDefinition", family, action, detail));
        }
        for (s, p) in spec.services.iter().zip(&self.services) {
            let (action, detail) = match p {
                ServicePlan::Create => ("would create", String::new()),
                ServicePlan::Update { what, .. } => ("would update", what.join(", ")),
                ServicePlan::Unchanged => ("unchanged", String::new()),
            };
            changes.push(change("service", &s.request.service_name, action, detail));
        }
        for gone in undeclared_services(spec, record) {
            changes.push(change("service", gone, "would delete", ""));
        }
        for r in undeclared_revisions(spec, record) {
            changes.push(change("taskDefinition", r, "would deregister", ""));
        }
        changes
    }
}

/// The services the stack owns that the file no longer declares.
pub(super) fn undeclared_services<'a>(
    spec: &'a StackSpec,
    record: &'a Stack,
) -> impl Iterator<Item = &'a String> {
    record
        .services
        .iter()
        .filter(|s| !spec.services.iter().any(|d| &d.request.service_name == *s))
}

/// The revisions the stack registered whose family the file no longer declares.
pub(super) fn undeclared_revisions<'a>(
    spec: &'a StackSpec,
    record: &'a Stack,
) -> impl Iterator<Item = &'a String> {
    record.task_definitions.iter().filter(|r| {
        let family = r.split(':').next().unwrap_or_default();
        !spec.task_definitions.iter().any(|t| t.family == family)
    })
}

/// Checks the whole file against the store and decides, per resource, what to do.
pub(super) fn plan(state: &State, spec: &StackSpec, cluster: &str) -> Result<Plan> {
    let create_cluster = state
        .get::<Cluster>(&keys::cluster(cluster))?
        .is_none_or(|c| c.status != "ACTIVE");
    let mut plan = Plan {
        create_cluster,
        td_arns: unchanged_definitions(state, spec),
        services: Vec::new(),
    };
    let mut errs = Vec::new();
    for i in 0..spec.services.len() {
        let p = plan_service(state, spec, cluster, i, &plan, &mut errs)?;
        plan.services.push(p);
    }
    if !errs.is_empty() {
        return Err(Error::Invalid(errs));
    }
    Ok(plan)
}

/// Per family: the latest ACTIVE revision's ARN when it equals the file's definition.
fn unchanged_definitions(state: &State, spec: &StackSpec) -> Vec<(String, Option<String>)> {
    spec.task_definitions
        .iter()
        .map(|td| {
            let same = taskdef::describe(state, &td.family)
                .ok()
                .filter(|l| l.status == "ACTIVE" && comparable(l) == comparable(td))
                .map(|l| l.task_definition_arn);
            (td.family.clone(), same)
        })
        .collect()
}

/// One service: checked as a create would check it, within the file, and against what exists.
fn plan_service(
    state: &State,
    spec: &StackSpec,
    cluster: &str,
    i: usize,
    plan: &Plan,
    errs: &mut Vec<FieldError>,
) -> Result<ServicePlan> {
    let s = &spec.services[i];
    let (wanted, found) = services::new_service(cluster, &s.request, state.limits());
    let at = |e: FieldError| FieldError::new(service_path(i, &e.path), e.message);
    errs.extend(found.into_iter().map(at));
    check_within_file(&spec.services[..i], s, i, errs);
    let Some(td) = spec.task_definitions.iter().find(|t| t.family == s.family) else {
        errs.push(FieldError::new(
            format!("services[{i}].taskDefinition"),
            format!(
                "{} is not a family of this stack's taskDefinitions",
                quote(&s.family)
            ),
        ));
        return Ok(ServicePlan::Unchanged);
    };
    let mut lb_errs = Vec::new();
    services::check_load_balancers(&mut lb_errs, &wanted.load_balancers, td);
    errs.extend(lb_errs.into_iter().map(at));
    let existing = state
        .get::<Service>(&services::key(cluster, &s.request.service_name))?
        .filter(|e| e.status != "INACTIVE");
    let Some(existing) = existing else {
        services::check_listener_conflicts(state, &wanted)?;
        return Ok(ServicePlan::Create);
    };
    if let Some(why) = not_ours(&existing, &spec.name) {
        errs.push(FieldError::new(format!("services[{i}].name"), why));
        return Ok(ServicePlan::Unchanged);
    }
    if existing.load_balancers != wanted.load_balancers {
        services::check_listener_conflicts(state, &wanted)?;
    }
    Ok(service_update(
        i,
        &existing,
        &wanted,
        &plan.arn_of(&s.family),
        errs,
    ))
}

/// What one service may not repeat of the services declared before it.
fn check_within_file(
    earlier: &[ServiceSpec],
    s: &ServiceSpec,
    i: usize,
    errs: &mut Vec<FieldError>,
) {
    let name = &s.request.service_name;
    if earlier.iter().any(|o| &o.request.service_name == name) {
        errs.push(FieldError::new(
            format!("services[{i}].name"),
            format!("{} appears twice", quote(name)),
        ));
    }
    let port = |s: &ServiceSpec| s.request.load_balancers.first().map(|l| l.listener_port);
    if port(s).is_some() && earlier.iter().any(|o| port(o) == port(s)) {
        errs.push(FieldError::new(
            format!("services[{i}].loadBalancer.port"),
            "another service of this stack already listens on this port",
        ));
    }
}

/// Why the stack may not change an existing service: another owner, or it is going away.
fn not_ours(existing: &Service, stack: &str) -> Option<String> {
    if existing.stack != stack {
        let owner = if existing.stack.is_empty() {
            "was created outside any stack".to_string()
        } else {
            format!("belongs to stack {}", existing.stack)
        };
        return Some(format!(
            "service {} {owner} ({}); pick another name",
            existing.service_name, existing.status
        ));
    }
    (existing.status != "ACTIVE").then(|| {
        format!(
            "service {} is still {}; apply again once it is INACTIVE",
            existing.service_name, existing.status
        )
    })
}

/// The UpdateService request that makes an existing service the declared one (Unchanged when it
/// already is). `td_arn` is the revision it should run; empty when one is about to be
/// registered. The scheduling strategy is the one setting ECS cannot change.
fn service_update(
    i: usize,
    existing: &Service,
    wanted: &Service,
    td_arn: &str,
    errs: &mut Vec<FieldError>,
) -> ServicePlan {
    if existing.scheduling_strategy != wanted.scheduling_strategy {
        errs.push(FieldError::new(
            format!("services[{i}].schedulingStrategy"),
            format!(
                "ECS cannot change it on the existing service {} ({}); rename the service in the file (the old one is deleted) to replace it",
                existing.service_name,
                existing.scheduling_strategy
            ),
        ));
    }
    let mut request = UpdateServiceRequest {
        cluster: berth_core::arn::cluster_name(&existing.cluster_arn).to_string(),
        service: existing.service_name.clone(),
        ..Default::default()
    };
    let mut what = Vec::new();
    if existing.task_definition != td_arn {
        request.task_definition = td_arn.to_string();
        what.push("taskDefinition");
    }
    // With auto scaling on, the policy owns the desired count.
    if existing.desired_count != wanted.desired_count && existing.scaling_policy.is_none() {
        request.desired_count = Some(wanted.desired_count);
        what.push("desiredCount");
    }
    if existing.deployment_configuration != wanted.deployment_configuration {
        request.deployment_configuration = wanted.deployment_configuration.clone();
        what.push("deploymentConfiguration");
    }
    if existing.health_check_grace_period_seconds != wanted.health_check_grace_period_seconds {
        request.health_check_grace_period_seconds = Some(wanted.health_check_grace_period_seconds);
        what.push("healthCheckGracePeriodSeconds");
    }
    if existing.load_balancers != wanted.load_balancers {
        request.set_load_balancers = true;
        request.load_balancers = wanted.load_balancers.clone();
        what.push("loadBalancer");
    }
    placement_update(&mut request, &mut what, existing, wanted);
    if what.is_empty() {
        return ServicePlan::Unchanged;
    }
    ServicePlan::Update {
        request: Box::new(request),
        what,
        deployment: existing
            .deployments
            .first()
            .map(|d| d.id.clone())
            .unwrap_or_default(),
    }
}

/// New placement, as UpdateService sets it. UpdateService alone places only later tasks by it;
/// the stack declares where its tasks run, so it also forces a new deployment, which replaces
/// the running tasks under the new placement.
fn placement_update(
    request: &mut UpdateServiceRequest,
    what: &mut Vec<&'static str>,
    existing: &Service,
    wanted: &Service,
) {
    let strategy = existing.placement_strategy != wanted.placement_strategy;
    let constraints = existing.placement_constraints != wanted.placement_constraints;
    if strategy {
        what.push("placementStrategy");
    }
    if constraints {
        what.push("placementConstraints");
    }
    if strategy || constraints {
        request.set_placement = true;
        request.placement_strategy = wanted.placement_strategy.clone();
        request.placement_constraints = wanted.placement_constraints.clone();
        request.force_new_deployment = true;
    }
}
