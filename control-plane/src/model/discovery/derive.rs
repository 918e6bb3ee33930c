//! The instances ECS services give Cloud Map: each `serviceRegistries[]` entry of a service
//! names a Cloud Map service, and every serving task of the ECS service is an instance of it
//! (id = task id), at its binding's address and port. Derived on every read, never stored, so a
//! task that stops or turns unhealthy leaves with no deregistration to miss.

use super::{CmResult, DService};
use crate::model::ecs_extras;
use crate::state::error::Result;
use crate::state::{keys, State};
use berth_core::discovery::{instance_of, Registry};
use berth_proto::v1::{Service, TaskDefinition};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// One instance an ECS task gives a Cloud Map service.
#[derive(Debug, Clone, PartialEq)]
pub struct Derived {
    pub id: String,
    pub address: String,
    pub port: i32,
    /// Cloud Map's attributes, as ECS registers them (AWS_INSTANCE_IPV4, ECS_SERVICE_NAME…).
    pub attributes: Map<String, Value>,
}

/// An ECS service's `serviceRegistries`: (registryArn, where in its tasks).
pub fn registries(state: &State, svc: &Service) -> Result<Vec<(String, Registry)>> {
    let extras = ecs_extras::get(state, &crate::model::services::key_of(svc))?;
    Ok(registries_in(extras.fields.get("serviceRegistries")))
}

/// The entries of a `serviceRegistries` value that name a registry.
pub fn registries_in(v: Option<&Value>) -> Vec<(String, Registry)> {
    let Some(Value::Array(items)) = v else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|r| {
            let arn = r.get("registryArn")?.as_str()?.to_string();
            let port = |k: &str| r.get(k).and_then(Value::as_i64).unwrap_or(0) as i32;
            Some((
                arn,
                Registry {
                    container_name: r
                        .get("containerName")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    container_port: port("containerPort"),
                },
            ))
        })
        .collect()
}

/// Whether a task of `definition` must be HEALTHY to serve: one of its containers has a health
/// check. Definitions are read once per call.
pub(crate) fn checked(state: &State, arn: &str, seen: &mut HashMap<String, bool>) -> Result<bool> {
    if let Some(c) = seen.get(arn) {
        return Ok(*c);
    }
    let td = crate::model::taskdef::describe(state, arn).ok();
    let c = td.is_some_and(|td: TaskDefinition| {
        td.container_definitions.iter().any(|c| {
            c.health_check
                .as_ref()
                .is_some_and(|h| !h.command.is_empty())
        })
    });
    seen.insert(arn.to_string(), c);
    Ok(c)
}

/// (registry ARN, instance) pairs, and the store keys of the service's tasks.
pub type OfService = (Vec<(String, Derived)>, Vec<String>);

/// Every instance an ECS service gives, with the registry (a Cloud Map service ARN) each is in;
/// also the store keys of its tasks, so a task's change finds the service again.
pub fn of_service(state: &State, svc: &Service) -> Result<OfService> {
    if svc.status == "INACTIVE" {
        return Ok((Vec::new(), Vec::new()));
    }
    let regs = registries(state, svc)?;
    if regs.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let tasks = crate::model::placement::view::service_tasks(state, svc)?;
    let task_keys = tasks
        .iter()
        .filter_map(|t| crate::model::placement::apply::task_key(&t.task_arn))
        .collect();
    let nodes = crate::model::nodes::of_live_tasks(state, &tasks)?;
    let cluster = berth_core::arn::cluster_name(&svc.cluster_arn);
    let mut seen = HashMap::new();
    let mut out = Vec::new();
    for t in &tasks {
        let health_checked = checked(state, &t.task_definition_arn, &mut seen)?;
        for (arn, reg) in &regs {
            let node = nodes.get(&t.container_instance_arn);
            let Some((address, port)) = instance_of(t, reg, node, health_checked) else {
                continue;
            };
            let id = berth_core::arn::last_segment(&t.task_arn).to_string();
            let family = t
                .task_definition_arn
                .rsplit_once(":task-definition/")
                .map_or("", |(_, f)| f)
                .split(':')
                .next()
                .unwrap_or("");
            let mut attributes = Map::new();
            attributes.insert("AWS_INSTANCE_IPV4".into(), json!(address));
            if port > 0 {
                attributes.insert("AWS_INSTANCE_PORT".into(), json!(port.to_string()));
            }
            attributes.insert("AVAILABILITY_ZONE".into(), json!("berth"));
            attributes.insert("AWS_INIT_HEALTH_STATUS".into(), json!("HEALTHY"));
            attributes.insert("ECS_CLUSTER_NAME".into(), json!(cluster));
            attributes.insert("ECS_SERVICE_NAME".into(), json!(svc.service_name));
            attributes.insert("ECS_TASK_DEFINITION_FAMILY".into(), json!(family));
            out.push((
                arn.clone(),
                Derived {
                    id,
                    address,
                    port,
                    attributes,
                },
            ));
        }
    }
    Ok((out, task_keys))
}

/// Whether `registry` (an ARN, or an id) names the Cloud Map service `s`.
pub fn names(registry: &str, s: &DService) -> bool {
    registry == s.arn
        || registry
            .rsplit_once(":service/")
            .map_or(registry, |(_, id)| id)
            == s.id
}

/// The instances ECS services give the Cloud Map service `s` now.
pub fn service_instances(state: &State, s: &DService) -> CmResult<Vec<Derived>> {
    let mut out = Vec::new();
    for svc in state.scan::<Service>(keys::SERVICES)? {
        if svc.status == "INACTIVE" {
            continue;
        }
        if !registries(state, &svc)?.iter().any(|(r, _)| names(r, s)) {
            continue;
        }
        let (found, _) = of_service(state, &svc)?;
        out.extend(
            found
                .into_iter()
                .filter(|(r, _)| names(r, s))
                .map(|(_, d)| d),
        );
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// The ECS services (cluster/name) whose `serviceRegistries` name `s`.
pub fn ecs_services_of(state: &State, s: &DService) -> CmResult<Vec<Service>> {
    let mut out = Vec::new();
    for svc in state.scan::<Service>(keys::SERVICES)? {
        if svc.status != "INACTIVE" && registries(state, &svc)?.iter().any(|(r, _)| names(r, s)) {
            out.push(svc);
        }
    }
    Ok(out)
}
