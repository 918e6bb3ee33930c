//! Cloud Map services: a name unique in its namespace, its DNS records (A, SRV…) and health
//! settings; deleted once no instance is registered in it and no ECS service points at it.

use super::{load, now, put_op, random_hex, scan, CmError, CmResult, DService, Tag, SERVICES};
use crate::state::State;
use crate::store::Op;
use serde_json::Value;

const BY_NAME: &str = "discovery/svcname/";

fn key(id: &str) -> String {
    format!("{SERVICES}{id}")
}

/// What a new service is made of.
#[derive(Debug, Clone, Default)]
pub struct NewService {
    pub name: String,
    pub namespace: String,
    pub description: String,
    pub creator_request_id: String,
    pub dns_config: Option<Value>,
    pub health_check_config: Option<Value>,
    pub health_check_custom_config: Option<Value>,
    pub tags: Vec<Tag>,
}

const RECORD_TYPES: &[&str] = &["A", "AAAA", "SRV", "CNAME"];

fn check_dns_config(c: &Value) -> CmResult<()> {
    let records = c
        .get("DnsRecords")
        .and_then(Value::as_array)
        .ok_or_else(|| CmError::invalid("DnsConfig.DnsRecords", "is required (a list)"))?;
    if records.is_empty() {
        return Err(CmError::invalid(
            "DnsConfig.DnsRecords",
            "needs at least one record, such as {\"Type\": \"A\", \"TTL\": 5}",
        ));
    }
    for (i, r) in records.iter().enumerate() {
        let t = r.get("Type").and_then(Value::as_str).unwrap_or("");
        if !RECORD_TYPES.contains(&t) {
            return Err(CmError::invalid(
                &format!("DnsConfig.DnsRecords[{i}].Type"),
                format!("{t:?} must be one of {}", RECORD_TYPES.join(", ")),
            ));
        }
        match r.get("TTL").and_then(Value::as_i64) {
            Some(n) if (0..=2_147_483_647).contains(&n) => {}
            _ => {
                return Err(CmError::invalid(
                    &format!("DnsConfig.DnsRecords[{i}].TTL"),
                    "is required: 0-2147483647 seconds",
                ))
            }
        }
    }
    Ok(())
}

/// Makes a service in a namespace; the service.
pub fn create(state: &State, new: NewService) -> CmResult<DService> {
    let name = new.name.trim().to_string();
    if name.is_empty() {
        return Err(CmError::invalid("Name", "is required"));
    }
    if name.len() > 127
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
    {
        return Err(CmError::invalid(
            "Name",
            format!("{name:?}: use 1-127 letters, digits, '-' and '_'"),
        ));
    }
    let ns_ref = if new.namespace.is_empty() {
        new.dns_config
            .as_ref()
            .and_then(|c| c.get("NamespaceId"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    } else {
        new.namespace.clone()
    };
    if ns_ref.is_empty() {
        return Err(CmError::invalid(
            "NamespaceId",
            "is required: the id of the namespace the service goes in",
        ));
    }
    let ns = super::namespaces::get(state, &ns_ref)?;
    match &new.dns_config {
        Some(c) => check_dns_config(c)?,
        None if ns.is_dns() => {
            return Err(CmError::invalid(
                "DnsConfig",
                format!("is required in the DNS namespace {}: give DnsRecords such as [{{\"Type\": \"A\", \"TTL\": 5}}, {{\"Type\": \"SRV\", \"TTL\": 5}}]", ns.name),
            ))
        }
        None => {}
    }
    let id = format!("srv-{}", random_hex(16));
    let index = format!("{BY_NAME}{}/{name}", ns.id);
    state.update(|tx| {
        if tx.get_raw(&super::namespaces_key(&ns.id))?.is_none() {
            return Ok((Err(super::namespaces::not_found(&ns_ref)), vec![]));
        }
        if let Some(existing) = tx.get_raw(&index)? {
            let existing = String::from_utf8_lossy(&existing).into_owned();
            return Ok((
                Err(CmError::new(
                    "ServiceAlreadyExists",
                    format!(
                        "Service {name} already exists in namespace {} (id {existing})",
                        ns.name
                    ),
                )),
                vec![],
            ));
        }
        let mut dns_config = new.dns_config.clone();
        if let Some(Value::Object(c)) = dns_config.as_mut() {
            c.insert("NamespaceId".into(), Value::String(ns.id.clone()));
            c.entry("RoutingPolicy")
                .or_insert_with(|| Value::String("MULTIVALUE".into()));
        }
        let s = DService {
            id: id.clone(),
            arn: format!("{}:service/{id}", super::arn_prefix()),
            name: name.clone(),
            namespace_id: ns.id.clone(),
            description: new.description.clone(),
            creator_request_id: new.creator_request_id.clone(),
            dns_config,
            health_check_config: new.health_check_config.clone(),
            health_check_custom_config: new.health_check_custom_config.clone(),
            created: now(),
            tags: new.tags.clone(),
        };
        Ok((
            Ok(s.clone()),
            vec![
                put_op(&key(&id), &s),
                Op::Put(index.clone(), id.as_bytes().to_vec()),
            ],
        ))
    })?
}

/// The service an id or ARN names.
pub fn find(state: &State, id_or_arn: &str) -> CmResult<Option<DService>> {
    let id = id_or_arn
        .rsplit_once(":service/")
        .map_or(id_or_arn, |(_, id)| id)
        .trim();
    if id.is_empty() || id.contains('/') {
        return Ok(None);
    }
    Ok(load(state, &key(id))?)
}

pub fn not_found(id: &str) -> CmError {
    CmError::new(
        "ServiceNotFound",
        format!("Service {id} not found: ListServices shows the services there are"),
    )
}

pub fn get(state: &State, id: &str) -> CmResult<DService> {
    if id.trim().is_empty() {
        return Err(CmError::invalid("Id", "is required"));
    }
    find(state, id)?.ok_or_else(|| not_found(id))
}

/// The service named `name` in the namespace named `namespace` (DiscoverInstances).
pub fn by_names(
    state: &State,
    namespace: &str,
    name: &str,
) -> CmResult<(super::Namespace, DService)> {
    let ns = super::namespaces::find(state, namespace)?
        .ok_or_else(|| super::namespaces::not_found(namespace))?;
    let id = state
        .get_raw(&format!("{BY_NAME}{}/{name}", ns.id))?
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .ok_or_else(|| {
            CmError::new(
                "ServiceNotFound",
                format!("Service {name} not found in namespace {}", ns.name),
            )
        })?;
    let s = get(state, &id)?;
    Ok((ns, s))
}

pub fn list(state: &State) -> CmResult<Vec<DService>> {
    let mut all: Vec<DService> = scan(state, SERVICES)?;
    all.sort_by(|a, b| (&a.namespace_id, &a.name).cmp(&(&b.namespace_id, &b.name)));
    Ok(all)
}

/// Deletes a service with no instance left.
pub fn delete(state: &State, id: &str) -> CmResult<()> {
    let s = get(state, id)?;
    let derived = super::derive::service_instances(state, &s)?;
    if !derived.is_empty() {
        return Err(CmError::new(
            "ResourceInUse",
            format!(
                "Service {} still has {} instance(s) of ECS tasks: scale the ECS service down or remove its serviceRegistries first",
                s.name,
                derived.len()
            ),
        ));
    }
    let prefix = super::instances_prefix(&s.id);
    state.update(|tx| {
        if tx.get_raw(&key(&s.id))?.is_none() {
            return Ok((Err(not_found(id)), vec![]));
        }
        if let Some(k) = tx.scan_keys(&prefix)?.first() {
            let inst = k.rsplit('/').next().unwrap_or_default().to_string();
            return Ok((
                Err(CmError::new(
                    "ResourceInUse",
                    format!(
                        "Service {} still has instance {inst}: deregister its instances first",
                        s.name
                    ),
                )),
                vec![],
            ));
        }
        Ok((
            Ok(()),
            vec![
                Op::Delete(key(&s.id)),
                Op::Delete(format!("{BY_NAME}{}/{}", s.namespace_id, s.name)),
            ],
        ))
    })?
}
