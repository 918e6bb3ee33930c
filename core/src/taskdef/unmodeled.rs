//! The parts of a task definition Berth keeps but does not model (`executionRoleArn`, a
//! container's `logConfiguration`, a port mapping's `appProtocol`, …): stored as sent in the
//! definition's `unmodeledJson`, and merged back wherever the definition is shown as JSON, so
//! that registering a description gives the same definition again (Terraform and Ansible compare
//! the two and would otherwise re-register on every run).
//!
//! The stored text mirrors the definition's shape: an object holds the unmodelled keys and, under
//! a modelled key, the rest of that object; a list of modelled objects holds one entry a item,
//! `{}` where the item has nothing more.

use crate::error::FieldError;
use serde_json::{Map, Value};

/// The field's name in the proto3 JSON mapping.
pub const FIELD: &str = "unmodeledJson";

/// Top-level fields the server sets (or ECS returns beside the definition), never kept as sent:
/// a description registered again must not bring back its old ARN or revision.
const SERVER_SET: &[&str] = &[
    "taskDefinitionArn",
    "revision",
    "status",
    "registeredAt",
    "registeredBy",
    "deregisteredAt",
    "compatibilities",
    "requiresAttributes",
    "tags",
    "events",
    FIELD,
];

/// Whether the unmodelled `key` found at `path` is kept.
pub(super) fn keep(path: &str, key: &str) -> bool {
    !(path.is_empty() && SERVER_SET.contains(&key))
}

/// The stored text of what was left over (empty when nothing was).
pub(super) fn encode(rest: Option<Value>) -> String {
    rest.map(|v| v.to_string()).unwrap_or_default()
}

/// The stored text must be a JSON object, whoever sent it (a gRPC client sets it directly).
pub fn check(text: &str) -> Result<(), Vec<FieldError>> {
    if text.is_empty() || matches!(serde_json::from_str(text), Ok(Value::Object(_))) {
        return Ok(());
    }
    Err(vec![FieldError::new(
        FIELD,
        "must be a JSON object of the task definition's unmodelled fields, or empty; \
         register the ECS JSON instead (taskDefinitionJson) and Berth fills it",
    )])
}

/// The paths of the fields `text` holds (`executionRoleArn`,
/// `containerDefinitions[0].logConfiguration`), for reports of what is kept but not acted on.
pub fn paths(text: &str) -> Vec<String> {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => super::schema::rest_paths(&v),
        Err(_) => Vec::new(),
    }
}

/// The event a registration records when the definition carries fields Berth does not act on.
pub fn event(text: &str, now: &str) -> Option<berth_proto::v1::TaskDefinitionEvent> {
    let paths = paths(text);
    (!paths.is_empty()).then(|| berth_proto::v1::TaskDefinitionEvent {
        created_at: now.to_string(),
        message: format!("Berth stores but does not act on: {}", paths.join(", ")),
    })
}

/// Replaces every `unmodeledJson` within `v` (a reply, a list, one definition) by the fields it
/// holds, merged into the object that carried it.
pub fn merge_into(v: &mut Value) {
    match v {
        Value::Object(m) => {
            let rest = match m.remove(FIELD) {
                Some(Value::String(s)) if !s.is_empty() => serde_json::from_str(&s).ok(),
                _ => None,
            };
            for child in m.values_mut() {
                merge_into(child);
            }
            if let Some(Value::Object(rest)) = rest {
                merge_object(m, rest);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(merge_into),
        _ => {}
    }
}

/// Merges `rest` into `into`: keys `into` lacks are added; objects and lists merge item by item;
/// a value Berth set wins over a stored one.
pub fn merge_object(into: &mut Map<String, Value>, rest: Map<String, Value>) {
    for (k, extra) in rest {
        match into.get_mut(&k) {
            Some(base) => merge_value(base, extra),
            None => {
                into.insert(k, extra);
            }
        }
    }
}

fn merge_value(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => merge_object(b, e),
        (Value::Array(b), Value::Array(e)) => {
            for (i, item) in e.into_iter().enumerate() {
                match b.get_mut(i) {
                    Some(slot) => merge_value(slot, item),
                    None if item.as_object().is_some_and(Map::is_empty) => {}
                    None => b.push(item),
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_rest_merges_back_onto_its_items() {
        let mut v = json!({
            "taskDefinition": {
                "family": "web",
                "containerDefinitions": [
                    {"name": "a", "portMappings": [{"containerPort": 80}, {"containerPort": 81}]},
                    {"name": "b"}
                ],
                "unmodeledJson": json!({
                    "executionRoleArn": "arn:x",
                    "containerDefinitions": [
                        {"portMappings": [{}, {"appProtocol": "http"}]},
                        {"logConfiguration": {"logDriver": "awslogs"}}
                    ],
                    "volumes": [{"name": "data"}]
                }).to_string()
            }
        });
        merge_into(&mut v);
        assert_eq!(
            v,
            json!({"taskDefinition": {
                "family": "web",
                "executionRoleArn": "arn:x",
                "containerDefinitions": [
                    {"name": "a", "portMappings": [{"containerPort": 80},
                        {"containerPort": 81, "appProtocol": "http"}]},
                    {"name": "b", "logConfiguration": {"logDriver": "awslogs"}}
                ],
                "volumes": [{"name": "data"}]
            }})
        );
    }

    #[test]
    fn a_value_berth_set_wins_and_bad_text_is_refused() {
        let mut m = json!({"family": "web"}).as_object().unwrap().clone();
        merge_object(
            &mut m,
            json!({"family": "old"}).as_object().unwrap().clone(),
        );
        assert_eq!(m["family"], "web");
        assert!(check("").is_ok());
        assert!(check("{}").is_ok());
        assert!(check("[1]").unwrap_err()[0].path == FIELD);
    }
}
