//! What ECS clients send that Berth keeps but does not act on: each object's tags, and the
//! AWS-only fields of a request (`executionRoleArn`, `launchType`, `networkConfiguration`, …),
//! stored beside the object as `ecs/<object key>` so the ECS API can echo them where ECS does.
//! Resolving an ECS ARN to the object it names lives here too, for the tag operations.

use crate::state::error::{Error, FieldError, Result};
use crate::state::{keys, State};
use crate::store::Op;
use berth_core::arn;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

const PREFIX: &str = "ecs/";
/// ECS's limit of user tags on one resource.
pub const MAX_TAGS: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Extras {
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// Accepted ECS request fields Berth does not use, as the client sent them.
    #[serde(default)]
    pub fields: Map<String, Value>,
}

impl Extras {
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty() && self.fields.is_empty()
    }
}

fn key_of(object_key: &str) -> String {
    format!("{PREFIX}{object_key}")
}

/// The extras of the object stored at `object_key` (empty when it has none).
pub fn get(state: &State, object_key: &str) -> Result<Extras> {
    Ok(state
        .get_raw(&key_of(object_key))?
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default())
}

/// The write that stores `extras` beside the object (or removes them when empty).
pub fn put_op(object_key: &str, extras: &Extras) -> Op {
    if extras.is_empty() {
        Op::Delete(key_of(object_key))
    } else {
        Op::Put(
            key_of(object_key),
            serde_json::to_vec(extras).unwrap_or_default(),
        )
    }
}

/// Stores `extras` for an object just made, replacing any an earlier object of the same name
/// left (a service created again after it went INACTIVE starts with no tags).
pub fn store(state: &State, object_key: &str, extras: &Extras) -> Result<()> {
    if extras.is_empty() && state.get_raw(&key_of(object_key))?.is_none() {
        return Ok(());
    }
    state.commit(vec![put_op(object_key, extras)])
}

/// Adds to the extras of an existing object: tags merged, fields given again replaced.
pub fn merge(state: &State, object_key: &str, add: Extras) -> Result<()> {
    state.update(|tx| {
        // Compared at commit: a concurrent tag change makes this merge again on it.
        tx.get_raw(&key_of(object_key))?;
        let op = merge_op(tx.state(), object_key, add.clone())?;
        Ok(((), vec![op]))
    })
}

/// The write `merge` makes, for a caller inside a transaction that read the extras' key.
pub fn merge_op(state: &State, object_key: &str, add: Extras) -> Result<Op> {
    let mut extras = get(state, object_key)?;
    merge_tags(&mut extras.tags, &add.tags);
    let errs = check_tags("tags", &extras.tags);
    if !errs.is_empty() {
        return Err(Error::Invalid(errs));
    }
    extras.fields.extend(add.fields);
    Ok(put_op(object_key, &extras))
}

/// ECS's rules for user tags: 1-128 character keys, values up to 256, at most 50, and the
/// `aws:` prefix reserved.
pub fn check_tags(path: &str, tags: &[Tag]) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if tags.len() > MAX_TAGS {
        errs.push(FieldError::new(
            path,
            format!("{} tags; a resource takes at most {MAX_TAGS}", tags.len()),
        ));
    }
    for (i, t) in tags.iter().enumerate() {
        if t.key.is_empty() || t.key.chars().count() > 128 {
            errs.push(FieldError::new(
                format!("{path}[{i}].key"),
                "must be 1-128 characters",
            ));
        } else if t.key.to_ascii_lowercase().starts_with("aws:") {
            errs.push(FieldError::new(
                format!("{path}[{i}].key"),
                format!("{:?}: the aws: prefix is reserved", t.key),
            ));
        }
        if t.value.chars().count() > 256 {
            errs.push(FieldError::new(
                format!("{path}[{i}].value"),
                "must be at most 256 characters",
            ));
        }
    }
    errs
}

/// Tags merged the ECS way: a key given again takes the new value.
pub fn merge_tags(into: &mut Vec<Tag>, add: &[Tag]) {
    for t in add {
        match into.iter_mut().find(|x| x.key == t.key) {
            Some(x) => x.value = t.value.clone(),
            None => into.push(t.clone()),
        }
    }
}

/// The store key of the object an ECS ARN names, if that object exists: clusters, task
/// definitions, services, tasks and container instances.
pub fn object_of_arn(state: &State, resource_arn: &str) -> Result<String> {
    let not_found = || {
        Error::not_found(
            "Resource",
            resource_arn,
            "tag clusters, task definitions, services, tasks or container instances by their ARN",
        )
    };
    let bad = || {
        Error::invalid(
            "resourceArn",
            format!(
                "{resource_arn:?} is not an ECS ARN (arn:aws:ecs:REGION:ACCOUNT:cluster/NAME, …)"
            ),
        )
    };
    let rest = arn::resource(resource_arn).ok_or_else(bad)?;
    let (kind, path) = rest.split_once('/').ok_or_else(bad)?;
    let key = match kind {
        "cluster" => keys::cluster(path),
        "task-definition" => match berth_core::taskdef::parse_reference(path) {
            Some((family, Some(rev))) => keys::task_definition(&family, rev),
            _ => return Err(bad()),
        },
        "service" => {
            let (cluster, name) = path.split_once('/').ok_or_else(bad)?;
            keys::service(cluster, name)
        }
        "task" => {
            let (cluster, id) = path.split_once('/').ok_or_else(bad)?;
            keys::task(cluster, id)
        }
        "container-instance" => keys::node(arn::last_segment(resource_arn)),
        _ => return Err(bad()),
    };
    match state.get_raw(&key)? {
        Some(_) => Ok(key),
        None => Err(not_found()),
    }
}

/// Adds (or re-values) tags on an existing object.
pub fn tag(state: &State, object_key: &str, tags: &[Tag]) -> Result<()> {
    let errs = check_tags("tags", tags);
    if !errs.is_empty() {
        return Err(Error::Invalid(errs));
    }
    state.update(|tx| {
        tx.get_raw(&key_of(object_key))?;
        let mut extras = get(tx.state(), object_key)?;
        merge_tags(&mut extras.tags, tags);
        let errs = check_tags("tags", &extras.tags);
        if !errs.is_empty() {
            return Err(Error::Invalid(errs));
        }
        Ok(((), vec![put_op(object_key, &extras)]))
    })
}

/// Removes the tags with these keys (keys it does not have are no error, as in ECS).
pub fn untag(state: &State, object_key: &str, tag_keys: &[String]) -> Result<()> {
    state.update(|tx| {
        tx.get_raw(&key_of(object_key))?;
        let mut extras = get(tx.state(), object_key)?;
        extras.tags.retain(|t| !tag_keys.contains(&t.key));
        Ok(((), vec![put_op(object_key, &extras)]))
    })
}

/// Forgets the extras of objects that are gone (forgotten tasks), so they do not pile up.
pub fn forget_orphans(state: &State, kind_prefix: &str) -> Result<usize> {
    state.update(|tx| {
        let mut ops = Vec::new();
        for (k, _) in tx.state().store().scan(&key_of(kind_prefix))? {
            let Some(object) = k.strip_prefix(PREFIX).map(String::from) else {
                continue;
            };
            // Compared at commit: an object made again meanwhile keeps its extras.
            if tx.get_raw(&object)?.is_none() {
                ops.push(Op::Delete(k));
            }
        }
        Ok((ops.len(), ops))
    })
}

/// The attributes a node registers with: what its agent reports, plus those set through the
/// ECS API (PutAttributes), which outlive the agent's reconnects.
pub fn with_custom_attributes(
    state: &State,
    node_id: &str,
    mut reported: Vec<berth_proto::v1::Attribute>,
) -> Result<Vec<berth_proto::v1::Attribute>> {
    let extras = get(state, &keys::node(node_id))?;
    for a in custom_attributes(&extras) {
        reported.retain(|r| r.name != a.name);
        reported.push(a);
    }
    Ok(reported)
}

fn custom_attributes(extras: &Extras) -> Vec<berth_proto::v1::Attribute> {
    extras
        .fields
        .get("attributes")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

/// Sets (`Some(value)`) or removes (`None`) custom attributes on a node, in its record (so
/// placement constraints see them) and beside it (so they survive its agent's next hello).
pub fn set_attributes(
    state: &State,
    node_id: &str,
    changes: &[(String, Option<String>)],
) -> Result<berth_proto::v1::ContainerInstance> {
    use berth_proto::v1::{Attribute, ContainerInstance};
    let key = keys::node(node_id);
    state.update(|tx| {
        let mut node = tx.get::<ContainerInstance>(&key)?.ok_or_else(|| {
            Error::not_found("Target", node_id, "see `aws ecs list-container-instances`")
        })?;
        tx.get_raw(&key_of(&key))?;
        let mut extras = get(tx.state(), &key)?;
        let mut custom = custom_attributes(&extras);
        for (name, value) in changes {
            custom.retain(|a| &a.name != name);
            node.attributes.retain(|a| &a.name != name);
            if let Some(v) = value {
                let a = Attribute {
                    name: name.clone(),
                    value: v.clone(),
                };
                custom.push(a.clone());
                node.attributes.push(a);
            }
        }
        if custom.is_empty() {
            extras.fields.remove("attributes");
        } else {
            extras.fields.insert(
                "attributes".into(),
                serde_json::to_value(&custom).unwrap_or_default(),
            );
        }
        let ops = vec![crate::state::put(key.clone(), &node), put_op(&key, &extras)];
        Ok((node, ops))
    })
}
