//! Services: create, update (new deployments), describe, list, delete. These write only what the
//! user wants (desired count, task definition, deployment settings); the service controller
//! turns that into tasks, and writes deployments' progress and events.

use crate::state::error::{quote, Error, FieldError, Result};
use crate::state::{keys, put, State};
use crate::{model::clusters, model::taskdef, time};
use berth_core::ids::new_id;
use berth_core::limits::{
    check_desired_count, Limits, GRACE_PERIOD, MAX_PERCENT, MIN_HEALTHY_PERCENT,
};
use berth_core::{arn, scheduler};
use berth_proto::v1::*;

mod continue_hook;
mod controller;
#[cfg(test)]
mod limits_tests;
mod stop_deployment;
mod stored;
pub(crate) use berth_core::service::check_load_balancers;
use berth_core::service::{check_strategy, keep_unset_shift_settings};
pub use continue_hook::continue_hook;
pub use stop_deployment::stop_deployment;
pub use stored::{report_invalid, stored_problems};

/// ECS's defaults.
pub const DEFAULT_MIN_HEALTHY: i32 = 100;
pub const DEFAULT_MAX_PERCENT: i32 = 200;
const MAX_EVENTS: usize = 100;

pub fn key(cluster: &str, name: &str) -> String {
    keys::service(cluster, name)
}

/// The store key of a service record.
pub fn key_of(svc: &Service) -> String {
    key(arn::cluster_name(&svc.cluster_arn), &svc.service_name)
}

pub(crate) fn cluster_name(c: &str) -> &str {
    if c.trim().is_empty() {
        clusters::DEFAULT_CLUSTER
    } else {
        arn::cluster_name(c)
    }
}

fn check_name(errs: &mut Vec<FieldError>, name: &str) {
    if name.is_empty()
        || name.len() > 255
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        errs.push(FieldError::new(
            "serviceName",
            format!(
                "{} must be 1-255 letters, digits, hyphens or underscores",
                quote(name)
            ),
        ));
    }
}

/// Checks and fills the deployment configuration (ECS's defaults; DAEMON: 0 / 100).
fn normalize_deployment_config(
    errs: &mut Vec<FieldError>,
    dc: &mut DeploymentConfiguration,
    daemon: bool,
) {
    let min =
        *dc.minimum_healthy_percent
            .get_or_insert(if daemon { 0 } else { DEFAULT_MIN_HEALTHY });
    let max = *dc
        .maximum_percent
        .get_or_insert(if daemon { 100 } else { DEFAULT_MAX_PERCENT });
    MIN_HEALTHY_PERCENT.push(
        errs,
        "deploymentConfiguration.minimumHealthyPercent",
        min.into(),
    );
    MAX_PERCENT.push(errs, "deploymentConfiguration.maximumPercent", max.into());
    if min == 100 && max == 100 {
        errs.push(FieldError::new(
            "deploymentConfiguration",
            "minimumHealthyPercent 100 with maximumPercent 100 leaves no room to deploy; raise maximumPercent or lower minimumHealthyPercent",
        ));
    }
    if let Some(cb) = &dc.deployment_circuit_breaker {
        if cb.threshold < 0 {
            errs.push(FieldError::new(
                "deploymentConfiguration.deploymentCircuitBreaker.threshold",
                "must be 0 (ECS's formula) or more",
            ));
        }
    }
}

fn check_placement(errs: &mut Vec<FieldError>, svc: &Service) {
    for (i, s) in svc.placement_strategy.iter().enumerate() {
        if let Err(e) = scheduler::parse_strategy(&s.r#type, &s.field) {
            errs.push(FieldError::new(format!("placementStrategy[{i}]"), e));
        }
    }
    for (i, c) in svc.placement_constraints.iter().enumerate() {
        if let Err(e) = scheduler::parse_constraint_at(i, &c.r#type, &c.expression) {
            errs.push(e);
        }
    }
}

/// Two services on one listener port must not claim the same rule.
pub(crate) fn check_listener_conflicts(state: &State, svc: &Service) -> Result<()> {
    let others = state.scan::<Service>("service/")?;
    let listeners =
        state.scan::<berth_proto::v1::ElbListener>(crate::model::elb::keys::LISTENERS)?;
    for lb in svc.load_balancers.iter().filter(|l| l.listener_port > 0) {
        if let Some(l) = listeners.iter().find(|l| l.port == lb.listener_port) {
            return Err(Error::Client(format!(
                "listener port {} is load balancer listener {}'s; pick another --lb-port or attach the service to one of its target groups",
                lb.listener_port, l.arn
            )));
        }
        for other in others
            .iter()
            .filter(|o| o.status != "INACTIVE" && o.service_arn != svc.service_arn)
        {
            for olb in other
                .load_balancers
                .iter()
                .filter(|o| o.listener_port == lb.listener_port)
            {
                let same_rule = olb.host_patterns == lb.host_patterns
                    && olb.path_patterns == lb.path_patterns
                    && olb.priority == lb.priority;
                if same_rule {
                    return Err(Error::Client(format!(
                        "listener port {} already has this rule for service {}; give this one another --lb-host, --lb-path or --lb-priority",
                        lb.listener_port, other.service_name
                    )));
                }
            }
        }
    }
    Ok(())
}

fn active_definition(state: &State, reference: &str) -> Result<TaskDefinition> {
    if reference.trim().is_empty() {
        return Err(Error::invalid(
            "taskDefinition",
            "is required (FAMILY or FAMILY:REVISION)",
        ));
    }
    let td = taskdef::describe(state, reference)?;
    if td.status != "ACTIVE" {
        return Err(Error::Client(format!(
            "task definition {}:{} is INACTIVE; use an active revision",
            td.family, td.revision
        )));
    }
    Ok(td)
}

pub fn new_deployment(td: &TaskDefinition, desired: i32) -> Deployment {
    let now = time::now();
    Deployment {
        id: format!("ecs-svc/{}", new_id(16)),
        status: "PRIMARY".into(),
        task_definition: td.task_definition_arn.clone(),
        desired_count: desired,
        created_at: now.clone(),
        updated_at: now,
        rollout_state: "IN_PROGRESS".into(),
        rollout_state_reason: "ECS deployment in progress.".into(),
        ..Default::default()
    }
}

/// Appends an event, newest first, keeping the last hundred.
pub fn push_event(svc: &mut Service, message: String) {
    svc.events.insert(
        0,
        ServiceEvent {
            id: new_id(16),
            created_at: time::now(),
            message,
        },
    );
    svc.events.truncate(MAX_EVENTS);
}

/// A new service from a create request, with every problem found without the store (the load
/// balancer is checked against the task definition with `check_load_balancers`).
pub(crate) fn new_service(
    cluster: &str,
    req: &CreateServiceRequest,
    limits: &Limits,
) -> (Service, Vec<FieldError>) {
    let mut errs = Vec::new();
    check_name(&mut errs, &req.service_name);
    let strategy = match req.scheduling_strategy.to_ascii_uppercase().as_str() {
        "" | "REPLICA" => "REPLICA",
        "DAEMON" => "DAEMON",
        other => {
            errs.push(FieldError::new(
                "schedulingStrategy",
                format!("{} must be REPLICA or DAEMON", quote(other)),
            ));
            "REPLICA"
        }
    };
    let daemon = strategy == "DAEMON";
    if !daemon {
        if let Err(e) = check_desired_count(limits, req.desired_count) {
            errs.push(FieldError::new("desiredCount", e));
        }
    }
    GRACE_PERIOD.push(
        &mut errs,
        "healthCheckGracePeriodSeconds",
        req.health_check_grace_period_seconds.into(),
    );
    let mut dc = req.deployment_configuration.clone().unwrap_or_default();
    normalize_deployment_config(&mut errs, &mut dc, daemon);
    let svc = Service {
        service_arn: arn::service(cluster, &req.service_name),
        service_name: req.service_name.clone(),
        cluster_arn: arn::cluster(cluster),
        status: "ACTIVE".into(),
        desired_count: if daemon { 0 } else { req.desired_count },
        scheduling_strategy: strategy.into(),
        deployment_configuration: Some(dc),
        placement_strategy: req.placement_strategy.clone(),
        placement_constraints: req.placement_constraints.clone(),
        load_balancers: req.load_balancers.clone(),
        health_check_grace_period_seconds: req.health_check_grace_period_seconds,
        created_at: time::now(),
        service_connect: req.service_connect.clone(),
        ..Default::default()
    };
    let mut svc = svc;
    controller::set_controller(&mut errs, &mut svc, &req.deployment_controller);
    check_placement(&mut errs, &svc);
    check_strategy(&mut errs, &svc);
    (svc, errs)
}

pub fn create(state: &State, req: CreateServiceRequest) -> Result<Service> {
    create_in_stack(state, req, "")
}

/// `create`, marking the service as owned by a stack (empty: by no stack).
pub(crate) fn create_in_stack(
    state: &State,
    req: CreateServiceRequest,
    stack: &str,
) -> Result<Service> {
    create_with(state, req, stack, |_| Ok(Vec::new()))
}

/// `create_in_stack`, committing `also(service)`'s writes in the same batch.
pub fn create_with(
    state: &State,
    req: CreateServiceRequest,
    stack: &str,
    mut also: impl FnMut(&Service) -> Result<Vec<crate::store::Op>>,
) -> Result<Service> {
    let cluster = cluster_name(&req.cluster).to_string();
    let (svc0, errs0) = new_service(&cluster, &req, state.limits());
    state.update(|tx| {
    let (mut svc, mut errs) = (svc0.clone(), errs0.clone());
    // The cluster is compared at commit: a delete in between refuses this create.
    clusters::get_active(tx.state(), &cluster)?;
    tx.get::<Cluster>(&keys::cluster(&cluster))?;
    let state = tx.state().clone();
    let state = &state;
    // An EXTERNAL service's task sets bring their own definitions.
    let external = svc.deployment_controller == "EXTERNAL";
    let td = if external && req.task_definition.trim().is_empty() {
        None
    } else {
        Some(active_definition(state, &req.task_definition)?)
    };
    if let Some(td) = &td {
        check_load_balancers(&mut errs, &svc.load_balancers, td);
    }
    if !errs.is_empty() {
        return Err(Error::Invalid(errs));
    }
    if let Some(existing) = tx.get::<Service>(&key(&cluster, &req.service_name))? {
        if existing.status != "INACTIVE" {
            return Err(Error::Client(format!(
                "service {} already exists in cluster {cluster} ({}); change it with `berth service update`",
                req.service_name, existing.status
            )));
        }
    }
    let have = state.scan_keys(&keys::services_of(&cluster))?.len();
    if let Some(why) = berth_core::limits::services_full(&cluster, have) {
        return Err(Error::Client(why));
    }
    check_listener_conflicts(state, &svc)?;
    svc.capacity_provider_strategy = crate::model::capacity::service_strategy(state, &cluster, &svc, &req.capacity_provider_strategy)?;
    crate::model::elb::attach(tx, &mut svc.load_balancers)?;
    crate::model::elb::check_targets(tx, &state.limits().elb, &svc)?;
    svc.stack = stack.to_string();
    if let Some(td) = &td {
        svc.task_definition = td.task_definition_arn.clone();
        if !external {
            svc.deployments = vec![new_deployment(td, svc.desired_count)];
        }
    }
    let mut ops = vec![put(key(&cluster, &svc.service_name), &svc)];
    ops.extend(also(&svc)?);
    Ok((svc, ops))
    })
}

pub fn find(state: &State, cluster: &str, service: &str) -> Result<Service> {
    let name = arn::last_segment(service);
    state
        .get::<Service>(&key(cluster_name(cluster), name))?
        .ok_or_else(|| not_found(cluster, service))
}

/// ServiceNotFoundException, with how to make one.
pub fn not_found(cluster: &str, service: &str) -> Error {
    let cluster = cluster_name(cluster);
    let name = arn::last_segment(service);
    Error::not_found(
        "Service",
        name,
        format!("create it with `berth service create --cluster {cluster} --name {name} …`"),
    )
}

fn active(svc: Service) -> Result<Service> {
    if svc.status != "ACTIVE" {
        return Err(Error::ServiceNotActive(svc.service_name, svc.status));
    }
    Ok(svc)
}

/// A desired count an update may set: none for DAEMON, within the limits and any auto scaling
/// range.
fn check_new_desired_count(errs: &mut Vec<FieldError>, limits: &Limits, svc: &Service, d: i32) {
    if svc.scheduling_strategy == "DAEMON" {
        errs.push(FieldError::new(
            "desiredCount",
            "a DAEMON service runs one task per node; it has no desired count",
        ));
    } else if let Err(e) = check_desired_count(limits, d) {
        errs.push(FieldError::new("desiredCount", e));
    } else if let Some(p) = svc
        .scaling_policy
        .as_ref()
        .filter(|p| !(p.min_capacity..=p.max_capacity).contains(&d))
    {
        errs.push(FieldError::new(
            "desiredCount",
            format!(
                "{d} is outside the auto scaling range {}-{}; change the range with `berth service scaling` or turn it off with --off",
                p.min_capacity, p.max_capacity
            ),
        ));
    }
}

/// The primary deployment steps down (ACTIVE, drained by the controller) for a new one of `td`.
fn start_deployment(svc: &mut Service, td: &TaskDefinition) {
    for dep in svc.deployments.iter_mut() {
        if dep.status == "PRIMARY" {
            dep.status = "ACTIVE".into();
            dep.updated_at = time::now();
        }
    }
    svc.task_definition = td.task_definition_arn.clone();
    svc.deployments
        .insert(0, new_deployment(td, svc.desired_count));
}

pub fn update(state: &State, req: UpdateServiceRequest) -> Result<Service> {
    let cluster = cluster_name(&req.cluster).to_string();
    state.update(|tx| {
        let req = req.clone();
        let found = find(tx.state(), &cluster, &req.service)?;
        let Some(current) = tx.get::<Service>(&key(&cluster, &found.service_name))? else {
            return Err(not_found(&cluster, &req.service));
        };
        let state = tx.state().clone();
        let state = &state;
        let mut svc = active(current)?;
        let daemon = svc.scheduling_strategy == "DAEMON";
        let mut errs = Vec::new();
        if let Some(d) = req.desired_count {
            check_new_desired_count(&mut errs, state.limits(), &svc, d);
        }
        if let Some(g) = req.health_check_grace_period_seconds {
            GRACE_PERIOD.push(&mut errs, "healthCheckGracePeriodSeconds", g.into());
        }
        if let Some(mut dc) = req.deployment_configuration {
            let cur = svc.deployment_configuration.unwrap_or_default();
            if dc.minimum_healthy_percent.is_none() {
                dc.minimum_healthy_percent = cur.minimum_healthy_percent;
            }
            if dc.maximum_percent.is_none() {
                dc.maximum_percent = cur.maximum_percent;
            }
            if dc.deployment_circuit_breaker.is_none() {
                dc.deployment_circuit_breaker = cur.deployment_circuit_breaker;
            }
            keep_unset_shift_settings(&mut dc, &cur);
            normalize_deployment_config(&mut errs, &mut dc, daemon);
            svc.deployment_configuration = Some(dc);
        }
        if req.set_placement {
            svc.placement_strategy = req.placement_strategy.clone();
            svc.placement_constraints = req.placement_constraints.clone();
            check_placement(&mut errs, &svc);
        }
        // ECS's UpdateService: a load balancer change starts a new deployment.
        let lb_changed = req.set_load_balancers && req.load_balancers != svc.load_balancers;
        if req.set_load_balancers {
            svc.load_balancers = req.load_balancers.clone();
        }
        // ECS's UpdateService: a Service Connect change starts a new deployment (the tasks'
        // aliases are set when they start).
        let connect_changed = req.set_service_connect && req.service_connect != svc.service_connect;
        if req.set_service_connect {
            svc.service_connect = req.service_connect.clone();
        }
        check_strategy(&mut errs, &svc);
        // ECS's UpdateService: a new capacity provider strategy starts a new deployment, which
        // moves the tasks to their new pools.
        let mut pools_changed = false;
        if req.set_capacity_provider_strategy {
            let strategy = crate::model::capacity::service_strategy(
                state,
                &cluster,
                &svc,
                &req.capacity_provider_strategy,
            )?;
            pools_changed = strategy != svc.capacity_provider_strategy;
            svc.capacity_provider_strategy = strategy;
        }
        let new_td = if req.task_definition.trim().is_empty() {
            None
        } else {
            Some(active_definition(state, &req.task_definition)?)
        };
        match &new_td {
            Some(td) => check_load_balancers(&mut errs, &svc.load_balancers, td),
            None if lb_changed => {
                let td = taskdef::describe(state, &svc.task_definition)?;
                check_load_balancers(&mut errs, &svc.load_balancers, &td);
            }
            None => {}
        }
        if !errs.is_empty() {
            return Err(Error::Invalid(errs));
        }
        if lb_changed {
            check_listener_conflicts(state, &svc)?;
        }
        if let Some(d) = req.desired_count {
            svc.desired_count = d;
            for dep in svc.deployments.iter_mut().filter(|d| d.status == "PRIMARY") {
                dep.desired_count = d;
            }
        }
        if req.desired_count.is_some() || lb_changed {
            crate::model::elb::check_targets(tx, &state.limits().elb, &svc)?;
        }
        if let Some(g) = req.health_check_grace_period_seconds {
            svc.health_check_grace_period_seconds = g;
        }
        let changes_definition = new_td
            .as_ref()
            .is_some_and(|td| td.task_definition_arn != svc.task_definition);
        if changes_definition
            || req.force_new_deployment
            || lb_changed
            || pools_changed
            || connect_changed
        {
            let td = match new_td {
                Some(td) => td,
                None => taskdef::describe(state, &svc.task_definition)?,
            };
            start_deployment(&mut svc, &td);
        }
        let ops = vec![put(key(&cluster, &svc.service_name), &svc)];
        Ok((svc, ops))
    })
}

pub fn list(state: &State, cluster: &str) -> Result<Vec<Service>> {
    Ok(state
        .scan::<Service>(&keys::services_of(cluster_name(cluster)))?
        .into_iter()
        .filter(|s| s.status != "INACTIVE")
        .collect())
}

/// Marks the service DRAINING (scaled to zero); the controller stops its tasks and then makes it
/// INACTIVE. Without `force`, desiredCount must already be 0.
pub fn delete(state: &State, cluster: &str, service: &str, force: bool) -> Result<Service> {
    let cluster = cluster_name(cluster).to_string();
    state.update(|tx| {
    let found = find(tx.state(), &cluster, service)?;
    let Some(mut svc) = tx.get::<Service>(&key(&cluster, &found.service_name))? else {
        return Err(not_found(&cluster, service));
    };
    if svc.status != "ACTIVE" {
        return Ok((svc, Vec::new()));
    }
    if !force && svc.desired_count > 0 && svc.scheduling_strategy == "REPLICA" {
        return Err(Error::Client(format!(
            "service {} still wants {} tasks; scale it to 0 first (berth service update {} --desired 0) or delete with --force",
            svc.service_name, svc.desired_count, svc.service_name
        )));
    }
    svc.status = "DRAINING".into();
    svc.desired_count = 0;
    for dep in svc.deployments.iter_mut() {
        dep.desired_count = 0;
    }
    let ops = vec![put(key(&cluster, &svc.service_name), &svc)];
    Ok((svc, ops))
    })
}
