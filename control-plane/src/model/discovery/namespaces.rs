//! Cloud Map namespaces: made (HTTP or private DNS, a name unique among them), found by id,
//! ARN or name, listed, and deleted once no service is left in them.

use super::{
    load, now, operation_op, put_op, random_hex, scan, CmError, CmResult, Namespace, Tag,
    NAMESPACES, SERVICES,
};
use crate::state::State;
use crate::store::Op;

const BY_NAME: &str = "discovery/nsname/";

/// The longest namespace name Cloud Map takes.
const MAX_NAME: usize = 253;

fn key(id: &str) -> String {
    format!("{NAMESPACES}{id}")
}

/// Checks a namespace name: an HTTP namespace's may be any of letters, digits, `-`, `_` and
/// `.`; a DNS namespace's must be a DNS name (labels of letters, digits and `-`).
pub fn check_name(name: &str, dns: bool) -> CmResult<()> {
    if name.trim().is_empty() {
        return Err(CmError::invalid("Name", "is required"));
    }
    if name.len() > MAX_NAME {
        return Err(CmError::invalid(
            "Name",
            format!("must be at most {MAX_NAME} characters"),
        ));
    }
    let ok = if dns {
        name.trim_end_matches('.').split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
    } else {
        name.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    if !ok {
        return Err(CmError::invalid(
            "Name",
            if dns {
                format!("{name:?} is not a DNS name: use labels of letters, digits and '-' joined by '.', such as internal or corp.example")
            } else {
                format!("{name:?}: use letters, digits, '-', '_' and '.'")
            },
        ));
    }
    Ok(())
}

/// What a new namespace is made of.
#[derive(Debug, Clone, Default)]
pub struct NewNamespace {
    pub name: String,
    /// HTTP or DNS_PRIVATE.
    pub kind: String,
    pub description: String,
    pub creator_request_id: String,
    pub vpc: String,
    pub soa_ttl: i64,
    pub tags: Vec<Tag>,
}

/// Makes a namespace; its operation id. A name already taken is `NamespaceAlreadyExists`
/// (unless the same creator request id asks again: then the first one's operation).
pub fn create(state: &State, new: NewNamespace) -> CmResult<String> {
    let dns = new.kind == "DNS_PRIVATE";
    let name = new.name.trim_end_matches('.').to_ascii_lowercase();
    let name = if dns { name } else { new.name.clone() };
    check_name(&name, dns)?;
    let id = format!("ns-{}", random_hex(16));
    let index = format!("{BY_NAME}{name}");
    let made = state.update(|tx| {
        if let Some(existing) = tx.get_raw(&index)? {
            return Ok((Err(String::from_utf8_lossy(&existing).into_owned()), vec![]));
        }
        let ns = Namespace {
            id: id.clone(),
            arn: format!("{}:namespace/{id}", super::arn_prefix()),
            name: name.clone(),
            kind: new.kind.clone(),
            description: new.description.clone(),
            creator_request_id: new.creator_request_id.clone(),
            vpc: new.vpc.clone(),
            soa_ttl: new.soa_ttl,
            created: now(),
            tags: new.tags.clone(),
        };
        let (op_id, op) = operation_op("CREATE_NAMESPACE", ("NAMESPACE", &id));
        Ok((
            Ok(op_id),
            vec![
                put_op(&key(&id), &ns),
                Op::Put(index.clone(), id.as_bytes().to_vec()),
                op,
            ],
        ))
    })?;
    made.map_err(|existing| {
        CmError::new(
            "NamespaceAlreadyExists",
            format!("Namespace {name} already exists (id {existing}); pick another name or delete it first"),
        )
    })
}

/// The namespace an id, an ARN or a name names.
pub fn find(state: &State, id_arn_or_name: &str) -> CmResult<Option<Namespace>> {
    let s = id_arn_or_name.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let id = match s.rsplit_once(":namespace/") {
        Some((_, id)) => id.to_string(),
        None if s.starts_with("ns-") => s.to_string(),
        None => match state.get_raw(&format!("{BY_NAME}{s}"))? {
            Some(id) => String::from_utf8_lossy(&id).into_owned(),
            None => return Ok(None),
        },
    };
    if let Some(ns) = load::<Namespace>(state, &key(&id))? {
        return Ok(Some(ns));
    }
    // A name that looks like an id.
    match state.get_raw(&format!("{BY_NAME}{s}"))? {
        Some(id) => Ok(load(state, &key(&String::from_utf8_lossy(&id)))?),
        None => Ok(None),
    }
}

/// The namespace `id` names, or `NamespaceNotFound`.
pub fn get(state: &State, id: &str) -> CmResult<Namespace> {
    find(state, id)?.ok_or_else(|| not_found(id))
}

pub fn not_found(id: &str) -> CmError {
    CmError::new(
        "NamespaceNotFound",
        format!("Namespace {id} not found: ListNamespaces shows the namespaces there are"),
    )
}

pub fn list(state: &State) -> CmResult<Vec<Namespace>> {
    let mut all: Vec<Namespace> = scan(state, NAMESPACES)?;
    all.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(all)
}

/// Deletes a namespace with no service; its operation id.
pub fn delete(state: &State, id: &str) -> CmResult<String> {
    let ns = get(state, id)?;
    state.update(|tx| {
        if tx.get_raw(&key(&ns.id))?.is_none() {
            return Ok((Err(not_found(id)), vec![]));
        }
        // Compared at commit: a service made meanwhile keeps the namespace.
        for k in tx.scan_keys(SERVICES)? {
            let Some(raw) = tx.get_raw(&k)? else { continue };
            let Ok(s) = serde_json::from_slice::<super::DService>(&raw) else {
                continue;
            };
            if s.namespace_id == ns.id {
                return Ok((
                    Err(CmError::new(
                        "ResourceInUse",
                        format!(
                            "Namespace {} still has service {} ({}): delete its services first",
                            ns.name, s.name, s.id
                        ),
                    )),
                    vec![],
                ));
            }
        }
        let (op_id, op) = operation_op("DELETE_NAMESPACE", ("NAMESPACE", &ns.id));
        Ok((
            Ok(op_id),
            vec![
                Op::Delete(key(&ns.id)),
                Op::Delete(format!("{BY_NAME}{}", ns.name)),
                op,
            ],
        ))
    })?
}

/// The namespace named `name`, made as an HTTP namespace when there is none (what ECS does for
/// a cluster's `serviceConnectDefaults.namespace`); its ARN.
pub fn ensure_http(state: &State, name: &str) -> CmResult<String> {
    if let Some(ns) = find(state, name)? {
        return Ok(ns.arn);
    }
    if name.starts_with("arn:") {
        return Err(not_found(name));
    }
    match create(
        state,
        NewNamespace {
            name: name.to_string(),
            kind: "HTTP".into(),
            ..Default::default()
        },
    ) {
        Ok(_)
        | Err(CmError {
            kind: "NamespaceAlreadyExists",
            ..
        }) => find(state, name)?
            .map(|ns| ns.arn)
            .ok_or_else(|| not_found(name)),
        Err(e) => Err(e),
    }
}
