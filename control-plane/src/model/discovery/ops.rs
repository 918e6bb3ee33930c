//! The Cloud Map operations Berth answers, input and output in the shapes of botocore's
//! servicediscovery model (the transport turns them into JSON 1.1 or RPC v2 CBOR).

use super::namespaces::{self, NewNamespace};
use super::services::{self, NewService};
use super::{instances, load, CmError, CmResult, DService, Namespace, Operation, Tag, OPERATIONS};
use crate::state::State;
use serde_json::{json, Map, Value};

/// Every operation Berth answers.
pub const NAMES: &[&str] = &[
    "CreateHttpNamespace",
    "CreatePrivateDnsNamespace",
    "GetNamespace",
    "ListNamespaces",
    "DeleteNamespace",
    "CreateService",
    "GetService",
    "ListServices",
    "DeleteService",
    "RegisterInstance",
    "DeregisterInstance",
    "ListInstances",
    "GetInstancesHealthStatus",
    "DiscoverInstances",
    "GetOperation",
];

/// Answers `op`; None for an operation Berth does not answer.
pub fn call(state: &State, op: &str, input: &Value) -> Option<CmResult<Value>> {
    NAMES.contains(&op).then(|| answer(state, op, input))
}

fn answer(state: &State, op: &str, input: &Value) -> CmResult<Value> {
    match op {
        "CreateHttpNamespace" => create_namespace(state, input, "HTTP"),
        "CreatePrivateDnsNamespace" => create_namespace(state, input, "DNS_PRIVATE"),
        "GetNamespace" => {
            let ns = namespaces::get(state, &must(input, "Id")?)?;
            Ok(json!({"Namespace": namespace(state, &ns, true)?}))
        }
        "ListNamespaces" => list_namespaces(state, input),
        "DeleteNamespace" => {
            namespaces::delete(state, &must(input, "Id")?).map(|id| json!({"OperationId": id}))
        }
        "CreateService" => create_service(state, input),
        "GetService" => {
            let s = services::get(state, &must(input, "Id")?)?;
            Ok(json!({"Service": service(state, &s, true)?}))
        }
        "ListServices" => list_services(state, input),
        "DeleteService" => services::delete(state, &must(input, "Id")?).map(|_| json!({})),
        "RegisterInstance" => register(state, input),
        "DeregisterInstance" => instances::deregister(
            state,
            &must(input, "ServiceId")?,
            &must(input, "InstanceId")?,
        )
        .map(|id| json!({"OperationId": id})),
        "ListInstances" => list_instances(state, input),
        "GetInstancesHealthStatus" => health(state, input),
        "DiscoverInstances" => discover(state, input),
        _ => get_operation(state, input),
    }
}

fn text(input: &Value, field: &str) -> String {
    input
        .get(field)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// A string field that must be there and not blank.
fn must(input: &Value, field: &str) -> CmResult<String> {
    let v = text(input, field);
    if v.trim().is_empty() {
        return Err(CmError::invalid(field, "is required"));
    }
    Ok(v)
}

fn tags(input: &Value) -> CmResult<Vec<Tag>> {
    match input.get("Tags") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(t) => serde_json::from_value(t.clone())
            .map_err(|e| CmError::invalid("Tags", format!("must be [{{Key, Value}}]: {e}"))),
    }
}

fn create_namespace(state: &State, input: &Value, kind: &str) -> CmResult<Value> {
    let name = must(input, "Name")?;
    let vpc = text(input, "Vpc");
    if kind == "DNS_PRIVATE" && vpc.trim().is_empty() {
        return Err(CmError::invalid(
            "Vpc",
            "is required for a private DNS namespace (Berth keeps it; any id such as vpc-berth)",
        ));
    }
    let soa_ttl = input
        .pointer("/Properties/DnsProperties/SOA/TTL")
        .and_then(Value::as_i64)
        .unwrap_or(15);
    let id = namespaces::create(
        state,
        NewNamespace {
            name,
            kind: kind.to_string(),
            description: text(input, "Description"),
            creator_request_id: text(input, "CreatorRequestId"),
            vpc,
            soa_ttl,
            tags: tags(input)?,
        },
    )?;
    Ok(json!({"OperationId": id}))
}

fn namespace(state: &State, ns: &Namespace, full: bool) -> CmResult<Value> {
    let properties = if ns.is_dns() {
        json!({"DnsProperties": {"HostedZoneId": format!("Z{}", ns.id.trim_start_matches("ns-").to_ascii_uppercase()), "SOA": {"TTL": ns.soa_ttl}},
               "HttpProperties": {"HttpName": ns.name}})
    } else {
        json!({"DnsProperties": {}, "HttpProperties": {"HttpName": ns.name}})
    };
    let mut v = json!({
        "Id": ns.id, "Arn": ns.arn, "Name": ns.name, "Type": ns.kind,
        "ServiceCount": services::list(state)?.iter().filter(|s| s.namespace_id == ns.id).count(),
        "Properties": properties, "CreateDate": ns.created,
    });
    if !ns.description.is_empty() {
        v["Description"] = json!(ns.description);
    }
    if full && !ns.creator_request_id.is_empty() {
        v["CreatorRequestId"] = json!(ns.creator_request_id);
    }
    Ok(v)
}

/// Filters [{Name, Values, Condition}]: whether `value_of(name)` passes them all.
fn passes(input: &Value, value_of: impl Fn(&str) -> Option<String>) -> CmResult<bool> {
    let Some(filters) = input.get("Filters").and_then(Value::as_array) else {
        return Ok(true);
    };
    for (i, f) in filters.iter().enumerate() {
        let name = f.get("Name").and_then(Value::as_str).unwrap_or("");
        let Some(have) = value_of(name) else {
            return Err(CmError::invalid(
                &format!("Filters[{i}].Name"),
                format!("{name:?} is not a filter of this operation"),
            ));
        };
        let values: Vec<&str> = f
            .get("Values")
            .and_then(Value::as_array)
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if values.is_empty() {
            return Err(CmError::invalid(
                &format!("Filters[{i}].Values"),
                "is required",
            ));
        }
        let ok = match f.get("Condition").and_then(Value::as_str).unwrap_or("EQ") {
            "EQ" | "IN" => values.contains(&have.as_str()),
            "BEGINS_WITH" => values.iter().any(|v| have.starts_with(v)),
            other => {
                return Err(CmError::invalid(
                    &format!("Filters[{i}].Condition"),
                    format!("{other:?}: Berth filters with EQ, IN and BEGINS_WITH"),
                ))
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// One page of `items`: NextToken is the index to go on from.
fn page(input: &Value, items: Vec<Value>) -> CmResult<(Vec<Value>, Option<String>)> {
    let max = input
        .get("MaxResults")
        .and_then(Value::as_i64)
        .unwrap_or(100);
    if !(1..=100).contains(&max) {
        return Err(CmError::invalid("MaxResults", "must be 1-100"));
    }
    let start = match input.get("NextToken").and_then(Value::as_str) {
        None | Some("") => 0,
        Some(t) => t
            .parse::<usize>()
            .map_err(|_| CmError::invalid("NextToken", "is not a token this API gave"))?,
    };
    let end = (start + max as usize).min(items.len());
    let next = (end < items.len()).then(|| end.to_string());
    Ok((
        items
            .into_iter()
            .skip(start)
            .take(end - start.min(end))
            .collect(),
        next,
    ))
}

fn with_token(mut v: Value, next: Option<String>) -> Value {
    if let Some(t) = next {
        v["NextToken"] = json!(t);
    }
    v
}

fn list_namespaces(state: &State, input: &Value) -> CmResult<Value> {
    let mut out = Vec::new();
    let none = Namespace::default();
    for ns in std::iter::once(None).chain(namespaces::list(state)?.into_iter().map(Some)) {
        // The first pass, over no namespace, checks the filters when there is none.
        let ns_ref = ns.as_ref().unwrap_or(&none);
        let keep = passes(input, |f| match f {
            "TYPE" => Some(ns_ref.kind.clone()),
            "NAME" | "HTTP_NAME" => Some(ns_ref.name.clone()),
            "RESOURCE_OWNER" => Some("SELF".into()),
            _ => None,
        })?;
        if let (true, Some(ns)) = (keep, &ns) {
            out.push(namespace(state, ns, false)?);
        }
    }
    let (items, next) = page(input, out)?;
    Ok(with_token(json!({"Namespaces": items}), next))
}

fn create_service(state: &State, input: &Value) -> CmResult<Value> {
    let field = |k: &str| input.get(k).filter(|v| !v.is_null()).cloned();
    if let Some(t) = input.get("Type").and_then(Value::as_str) {
        if t != "HTTP" {
            return Err(CmError::invalid("Type", format!("{t:?} must be HTTP")));
        }
    }
    let s = services::create(
        state,
        NewService {
            name: must(input, "Name")?,
            namespace: text(input, "NamespaceId"),
            description: text(input, "Description"),
            creator_request_id: text(input, "CreatorRequestId"),
            dns_config: field("DnsConfig"),
            health_check_config: field("HealthCheckConfig"),
            health_check_custom_config: field("HealthCheckCustomConfig"),
            tags: tags(input)?,
        },
    )?;
    Ok(json!({"Service": service(state, &s, true)?}))
}

fn service(state: &State, s: &DService, full: bool) -> CmResult<Value> {
    let mut v = json!({
        "Id": s.id, "Arn": s.arn, "Name": s.name, "NamespaceId": s.namespace_id,
        "InstanceCount": instances::list(state, s)?.len(),
        "Type": if s.dns_config.is_some() { "DNS_HTTP" } else { "HTTP" },
        "CreateDate": s.created,
    });
    if !s.description.is_empty() {
        v["Description"] = json!(s.description);
    }
    for (k, f) in [
        ("DnsConfig", &s.dns_config),
        ("HealthCheckConfig", &s.health_check_config),
        ("HealthCheckCustomConfig", &s.health_check_custom_config),
    ] {
        if let Some(c) = f {
            v[k] = c.clone();
        }
    }
    if full && !s.creator_request_id.is_empty() {
        v["CreatorRequestId"] = json!(s.creator_request_id);
    }
    Ok(v)
}

fn list_services(state: &State, input: &Value) -> CmResult<Value> {
    let mut out = Vec::new();
    let none = DService::default();
    for s in std::iter::once(None).chain(services::list(state)?.into_iter().map(Some)) {
        // The first pass, over no service, checks the filters when there is none.
        let s_ref = s.as_ref().unwrap_or(&none);
        let keep = passes(input, |f| match f {
            "NAMESPACE_ID" => Some(s_ref.namespace_id.clone()),
            "RESOURCE_OWNER" => Some("SELF".into()),
            _ => None,
        })?;
        if let (true, Some(s)) = (keep, &s) {
            out.push(service(state, s, false)?);
        }
    }
    let (items, next) = page(input, out)?;
    Ok(with_token(json!({"Services": items}), next))
}

fn register(state: &State, input: &Value) -> CmResult<Value> {
    let attributes = match input.get("Attributes") {
        Some(Value::Object(m)) => m.clone(),
        None | Some(Value::Null) => Map::new(),
        Some(_) => return Err(CmError::invalid("Attributes", "must be a map of strings")),
    };
    let id = instances::register(
        state,
        &must(input, "ServiceId")?,
        &must(input, "InstanceId")?,
        attributes,
        &text(input, "CreatorRequestId"),
    )?;
    Ok(json!({"OperationId": id}))
}

fn list_instances(state: &State, input: &Value) -> CmResult<Value> {
    let s = services::get(state, &must(input, "ServiceId")?)?;
    let all: Vec<Value> = instances::list(state, &s)?
        .into_iter()
        .map(|i| json!({"Id": i.id, "Attributes": i.attributes}))
        .collect();
    let (items, next) = page(input, all)?;
    Ok(with_token(
        json!({"ResourceOwner": "SELF", "Instances": items}),
        next,
    ))
}

fn health(state: &State, input: &Value) -> CmResult<Value> {
    let s = services::get(state, &must(input, "ServiceId")?)?;
    let all = instances::list(state, &s)?;
    let asked: Vec<String> = input
        .get("Instances")
        .and_then(Value::as_array)
        .map(|v| {
            v.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let mut status = Map::new();
    for id in &asked {
        if !all.iter().any(|i| &i.id == id) {
            return Err(CmError::new(
                "InstanceNotFound",
                format!("Instance {id} not found in service {}", s.name),
            ));
        }
    }
    for i in all
        .iter()
        .filter(|i| asked.is_empty() || asked.contains(&i.id))
    {
        status.insert(i.id.clone(), json!("HEALTHY"));
    }
    Ok(json!({"Status": status}))
}

fn discover(state: &State, input: &Value) -> CmResult<Value> {
    let ns_name = must(input, "NamespaceName")?;
    let svc_name = must(input, "ServiceName")?;
    match input.get("HealthStatus").and_then(Value::as_str) {
        None | Some("HEALTHY" | "ALL" | "HEALTHY_OR_ELSE_ALL" | "UNHEALTHY") => {}
        Some(other) => {
            return Err(CmError::invalid(
                "HealthStatus",
                format!("{other:?} must be HEALTHY, UNHEALTHY, ALL or HEALTHY_OR_ELSE_ALL"),
            ))
        }
    }
    // Every instance Berth lists serves: none is UNHEALTHY.
    let unhealthy_only = input.get("HealthStatus").and_then(Value::as_str) == Some("UNHEALTHY");
    let (ns, s) = services::by_names(state, &ns_name, &svc_name)?;
    let query = input
        .get("QueryParameters")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let max = input
        .get("MaxResults")
        .and_then(Value::as_i64)
        .unwrap_or(100)
        .clamp(1, 1000) as usize;
    let all = instances::list(state, &s)?;
    let revision = all.iter().fold(0i64, |h, i| {
        i.id.bytes()
            .fold(h, |h, b| h.wrapping_mul(31).wrapping_add(i64::from(b)))
    });
    let found: Vec<Value> = all
        .into_iter()
        .filter(|_| !unhealthy_only)
        .filter(|i| query.iter().all(|(k, v)| i.attributes.get(k) == Some(v)))
        .take(max)
        .map(|i| {
            json!({"InstanceId": i.id, "NamespaceName": ns.name, "ServiceName": s.name,
                   "HealthStatus": "HEALTHY", "Attributes": i.attributes})
        })
        .collect();
    Ok(json!({"Instances": found, "InstancesRevision": revision.abs()}))
}

fn get_operation(state: &State, input: &Value) -> CmResult<Value> {
    let id = must(input, "OperationId")?;
    let op = load::<Operation>(state, &format!("{OPERATIONS}{id}"))?.ok_or_else(|| {
        CmError::new(
            "OperationNotFound",
            format!("Operation {id} not found: use an OperationId a create, delete or register call gave"),
        )
    })?;
    Ok(json!({"Operation": {
        "Id": op.id, "Type": op.kind, "Status": op.status,
        "CreateDate": op.created, "UpdateDate": op.created, "Targets": op.targets,
    }}))
}
