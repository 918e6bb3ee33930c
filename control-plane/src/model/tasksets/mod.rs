//! Task sets of services with the EXTERNAL deployment controller (CreateTaskSet,
//! UpdateTaskSet, DeleteTaskSet, UpdateServicePrimaryTaskSet): kept inside the service's
//! record, so a change to one and the service's other task sets commit together. The planner
//! (`berth_core::plan::tasksets`) keeps each at its computed count.

use crate::model::{services, taskdef};
use crate::state::error::{quote, Error, Result};
use crate::state::{put, State};
use crate::time;
use berth_proto::v1::{LoadBalancer, Service, TaskSet};

/// ECS's limit of task sets on one service.
pub const MAX_TASK_SETS: usize = 5;

/// A new task set's request.
#[derive(Debug, Clone, Default)]
pub struct NewTaskSet {
    pub task_definition: String,
    pub external_id: String,
    pub scale_percent: f64,
    pub load_balancers: Vec<LoadBalancer>,
    pub started_by: String,
}

/// ECS's scale: a percent, 0 to 100.
pub fn check_scale(value: f64) -> Result<f64> {
    if !(0.0..=100.0).contains(&value) || value.is_nan() {
        return Err(Error::invalid(
            "scale.value",
            format!("must be a percent of the service's desiredCount, 0-100, got {value}"),
        ));
    }
    Ok(value)
}

fn not_found(id: &str) -> Error {
    Error::not_found("TaskSet", id, "see `aws ecs describe-task-sets`")
}

/// Changes the EXTERNAL service `service` of `cluster` with `f`, committing the result.
fn change<R>(
    state: &State,
    cluster: &str,
    service: &str,
    mut f: impl FnMut(&State, &mut Service) -> Result<R>,
) -> Result<(Service, R)> {
    let cluster = services::cluster_name(cluster).to_string();
    crate::model::clusters::get_active(state, &cluster)?;
    state.update(|tx| {
        let found = services::find(tx.state(), &cluster, service)?;
        let key = services::key(&cluster, &found.service_name);
        let Some(mut svc) = tx.get::<Service>(&key)? else {
            return Err(services::not_found(&cluster, service));
        };
        if svc.status != "ACTIVE" {
            return Err(Error::ServiceNotActive(svc.service_name.clone(), svc.status));
        }
        if svc.deployment_controller != "EXTERNAL" {
            return Err(Error::invalid(
                "service",
                format!(
                    "Amazon ECS only supports task set management on services configured to use external deployment controller; create {} with deploymentController type EXTERNAL",
                    quote(&svc.service_name)
                ),
            ));
        }
        let state = tx.state().clone();
        let r = f(&state, &mut svc)?;
        Ok(((svc.clone(), r), vec![put(key, &svc)]))
    })
}

fn position(svc: &Service, id_or_arn: &str) -> Result<usize> {
    let id = id_or_arn
        .split_once("/ecs-svc/")
        .map_or(id_or_arn.to_string(), |(_, rest)| format!("ecs-svc/{rest}"));
    svc.task_sets
        .iter()
        .position(|ts| (ts.id == id || ts.task_set_arn == id_or_arn) && ts.status != "DRAINING")
        .ok_or_else(|| not_found(id_or_arn))
}

/// CreateTaskSet: ACTIVE, at its scale, its tasks started by its id.
pub fn create(
    state: &State,
    cluster: &str,
    service: &str,
    req: NewTaskSet,
) -> Result<(Service, TaskSet)> {
    check_scale(req.scale_percent)?;
    change(state, cluster, service, |state, svc| {
        let td = taskdef::describe(state, &req.task_definition)?;
        if td.status != "ACTIVE" {
            return Err(Error::Client(format!(
                "task definition {}:{} is INACTIVE; register a new revision",
                td.family, td.revision
            )));
        }
        let live = svc
            .task_sets
            .iter()
            .filter(|t| t.status != "DRAINING")
            .count();
        if live >= MAX_TASK_SETS {
            return Err(Error::Client(format!(
                "service {} already has {live} task sets, the most ECS allows; delete one first",
                svc.service_name
            )));
        }
        let id = format!("ecs-svc/{}", digits(&berth_core::ids::new_id(32)));
        let now = time::now();
        let ts = TaskSet {
            task_set_arn: format!(
                "{}:task-set/{}/{}/{id}",
                berth_core::arn::prefix(),
                berth_core::arn::cluster_name(&svc.cluster_arn),
                svc.service_name
            ),
            id,
            status: "ACTIVE".into(),
            task_definition: td.task_definition_arn.clone(),
            external_id: req.external_id.clone(),
            scale_percent: req.scale_percent,
            load_balancers: req.load_balancers.clone(),
            created_at: now.clone(),
            updated_at: now,
            started_by: req.started_by.clone(),
        };
        svc.task_sets.push(ts.clone());
        Ok(ts)
    })
}

/// ECS's task set ids are `ecs-svc/` and 19 digits.
fn digits(hex: &str) -> String {
    hex.chars()
        .filter_map(|c| c.to_digit(16))
        .map(|d| char::from(b'0' + (d % 10) as u8))
        .take(19)
        .collect()
}

/// UpdateTaskSet: a new scale.
pub fn scale(
    state: &State,
    cluster: &str,
    service: &str,
    id: &str,
    value: f64,
) -> Result<(Service, TaskSet)> {
    check_scale(value)?;
    change(state, cluster, service, |_, svc| {
        let i = position(svc, id)?;
        let ts = &mut svc.task_sets[i];
        ts.scale_percent = value;
        ts.updated_at = time::now();
        Ok(ts.clone())
    })
}

/// UpdateServicePrimaryTaskSet: this one PRIMARY, the one before ACTIVE.
pub fn make_primary(
    state: &State,
    cluster: &str,
    service: &str,
    id: &str,
) -> Result<(Service, TaskSet)> {
    change(state, cluster, service, |_, svc| {
        let i = position(svc, id)?;
        let now = time::now();
        for (j, ts) in svc.task_sets.iter_mut().enumerate() {
            if j == i {
                ts.status = "PRIMARY".into();
                ts.updated_at = now.clone();
            } else if ts.status == "PRIMARY" {
                ts.status = "ACTIVE".into();
                ts.updated_at = now.clone();
            }
        }
        // The service shows the primary's definition, as ECS's does.
        svc.task_definition = svc.task_sets[i].task_definition.clone();
        Ok(svc.task_sets[i].clone())
    })
}

/// DeleteTaskSet: DRAINING, its tasks stop, and it goes once they have. The PRIMARY one only
/// with `force`, as ECS has it.
pub fn delete(
    state: &State,
    cluster: &str,
    service: &str,
    id: &str,
    force: bool,
) -> Result<(Service, TaskSet)> {
    change(state, cluster, service, |_, svc| {
        let i = position(svc, id)?;
        let ts = &mut svc.task_sets[i];
        if ts.status == "PRIMARY" && !force {
            return Err(Error::invalid(
                "taskSet",
                format!(
                    "{} is the service's PRIMARY task set; make another primary first, or pass force",
                    ts.id
                ),
            ));
        }
        ts.status = "DRAINING".into();
        ts.updated_at = time::now();
        Ok(ts.clone())
    })
}
