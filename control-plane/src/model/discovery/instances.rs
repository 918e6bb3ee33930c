//! A Cloud Map service's instances: those registered through RegisterInstance (stored) and
//! those its ECS services' serving tasks give (`derive`, never stored), read as one list.

use super::{load, now, operation_op, put_op, scan, CmError, CmResult, DService, Instance};
use crate::state::State;
use crate::store::Op;
use serde_json::{Map, Value};

use super::instances_prefix as prefix;

fn key(service_id: &str, id: &str) -> String {
    format!("{}{id}", prefix(service_id))
}

/// One instance as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub id: String,
    pub attributes: Map<String, Value>,
    /// Registered for an ECS task (and so gone when the task stops serving).
    pub ecs: bool,
}

/// Every instance of `s`, ordered by id: the registered ones, then (for ids not taken) those of
/// ECS tasks.
pub fn list(state: &State, s: &DService) -> CmResult<Vec<Listed>> {
    let mut out: Vec<Listed> = scan::<Instance>(state, &prefix(&s.id))?
        .into_iter()
        .map(|i| Listed {
            id: i.id,
            attributes: i.attributes,
            ecs: false,
        })
        .collect();
    for d in super::derive::service_instances(state, s)? {
        if !out.iter().any(|l| l.id == d.id) {
            out.push(Listed {
                id: d.id,
                attributes: d.attributes,
                ecs: true,
            });
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

fn check_attributes(attributes: &Map<String, Value>) -> CmResult<()> {
    if attributes.is_empty() {
        return Err(CmError::invalid(
            "Attributes",
            "is required: give at least AWS_INSTANCE_IPV4 (and AWS_INSTANCE_PORT for SRV records)",
        ));
    }
    if attributes.len() > 30 {
        return Err(CmError::invalid("Attributes", "at most 30 attributes"));
    }
    for (k, v) in attributes {
        let Some(v) = v.as_str() else {
            return Err(CmError::invalid(
                &format!("Attributes.{k}"),
                "must be a string",
            ));
        };
        if k.is_empty() || k.len() > 255 || v.len() > 1024 {
            return Err(CmError::invalid(
                &format!("Attributes.{k}"),
                "keys are 1-255 characters and values at most 1024",
            ));
        }
    }
    if let Some(ip) = attributes.get("AWS_INSTANCE_IPV4").and_then(Value::as_str) {
        if ip.parse::<std::net::Ipv4Addr>().is_err() {
            return Err(CmError::invalid(
                "Attributes.AWS_INSTANCE_IPV4",
                format!("{ip:?} is not an IPv4 address"),
            ));
        }
    }
    if let Some(p) = attributes.get("AWS_INSTANCE_PORT").and_then(Value::as_str) {
        if !p.parse::<u16>().is_ok_and(|p| p > 0) {
            return Err(CmError::invalid(
                "Attributes.AWS_INSTANCE_PORT",
                format!("{p:?} must be a port, 1-65535"),
            ));
        }
    }
    Ok(())
}

/// Registers (or updates) an instance; the operation id.
pub fn register(
    state: &State,
    service: &str,
    id: &str,
    attributes: Map<String, Value>,
    creator_request_id: &str,
) -> CmResult<String> {
    if id.trim().is_empty() {
        return Err(CmError::invalid("InstanceId", "is required"));
    }
    if id.len() > 64 || id.contains('/') {
        return Err(CmError::invalid(
            "InstanceId",
            "at most 64 characters, with no '/'",
        ));
    }
    check_attributes(&attributes)?;
    let s = super::services::get(state, service)?;
    let k = key(&s.id, id);
    state.update(|tx| {
        if tx.get_raw(&super::services_key(&s.id))?.is_none() {
            return Ok((Err(super::services::not_found(service)), vec![]));
        }
        let created = tx
            .get_raw(&k)?
            .and_then(|b| serde_json::from_slice::<Instance>(&b).ok())
            .map_or_else(now, |i| i.created);
        let i = Instance {
            id: id.to_string(),
            service_id: s.id.clone(),
            attributes: attributes.clone(),
            creator_request_id: creator_request_id.to_string(),
            created,
        };
        let (op_id, op) = operation_op("REGISTER_INSTANCE", ("INSTANCE", id));
        Ok((Ok(op_id), vec![put_op(&k, &i), op]))
    })?
}

/// Deregisters an instance registered through the API; the operation id. An ECS task's
/// instance leaves when the task stops serving, not by this call.
pub fn deregister(state: &State, service: &str, id: &str) -> CmResult<String> {
    if id.trim().is_empty() {
        return Err(CmError::invalid("InstanceId", "is required"));
    }
    let s = super::services::get(state, service)?;
    let k = key(&s.id, id);
    if load::<Instance>(state, &k)?.is_none() {
        let ecs = super::derive::service_instances(state, &s)?
            .iter()
            .any(|d| d.id == id);
        return Err(if ecs {
            CmError::new(
                "ResourceInUse",
                format!("Instance {id} is an ECS task of service {}: ECS removes it when the task stops (stop the task or scale the service)", s.name),
            )
        } else {
            CmError::new(
                "InstanceNotFound",
                format!("Instance {id} not found in service {}", s.name),
            )
        });
    }
    state.update(|tx| {
        if tx.get_raw(&k)?.is_none() {
            return Ok((
                Err(CmError::new(
                    "InstanceNotFound",
                    format!("Instance {id} not found in service {}", s.name),
                )),
                vec![],
            ));
        }
        let (op_id, op) = operation_op("DEREGISTER_INSTANCE", ("INSTANCE", id));
        Ok((Ok(op_id), vec![Op::Delete(k.clone()), op]))
    })?
}
