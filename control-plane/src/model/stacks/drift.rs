//! Drift: the live fields of a stack's cluster, task definitions and services that differ from
//! what a stack file declares, compared the way apply compares them (so no drift means applying
//! the file would change nothing), each named by its path as the file spells it.

use super::parse::{file_field, ServiceSpec, StackSpec};
use super::plan::undeclared_services;
use super::{comparable, short};
use crate::state::error::{Error, Result};
use crate::state::{keys, State};
use crate::{model::services, model::taskdef};
use berth_proto::v1::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;

fn drifted(kind: &str, name: &str, field: &str, declared: String, live: String) -> StackDrift {
    StackDrift {
        kind: kind.into(),
        name: name.into(),
        field: field.into(),
        declared,
        live,
    }
}

/// Everything that differs between `spec` and the store, for the stack `record` in `cluster`.
pub(super) fn drift(
    state: &State,
    spec: &StackSpec,
    cluster: &str,
    record: &Stack,
) -> Result<Vec<StackDrift>> {
    let mut out = Vec::new();
    let declared_cluster = services::cluster_name(&spec.cluster);
    if declared_cluster != cluster {
        let (d, l) = (json!(declared_cluster), json!(cluster));
        out.push(drifted(
            "stack",
            &record.name,
            "cluster",
            d.to_string(),
            l.to_string(),
        ));
    }
    let live = state.get::<Cluster>(&keys::cluster(cluster))?;
    if live.as_ref().is_none_or(|c| c.status != "ACTIVE") {
        let status = live.map_or("missing".to_string(), |c| json!(c.status).to_string());
        out.push(drifted(
            "cluster",
            cluster,
            "status",
            "\"ACTIVE\"".into(),
            status,
        ));
    }
    let mut unchanged = Vec::new();
    for td in &spec.task_definitions {
        unchanged.push((td.family.as_str(), definition(state, td, &mut out)?));
    }
    for s in &spec.services {
        let same = unchanged
            .iter()
            .find(|(f, _)| *f == s.family)
            .and_then(|(_, a)| a.as_deref());
        service(state, cluster, s, same, &mut out)?;
    }
    for gone in undeclared_services(spec, record) {
        let svc = state
            .get::<Service>(&services::key(cluster, gone))?
            .filter(|s| s.status == "ACTIVE" && s.stack == record.name);
        if let Some(svc) = svc {
            let live = json!(svc.status).to_string();
            out.push(drifted(
                "service",
                gone,
                "(service)",
                "not declared".into(),
                live,
            ));
        }
    }
    Ok(out)
}

/// A declared definition against its family's latest ACTIVE revision; that revision's ARN when
/// they are equal (what its services should run).
fn definition(
    state: &State,
    td: &TaskDefinition,
    out: &mut Vec<StackDrift>,
) -> Result<Option<String>> {
    let latest = match taskdef::describe(state, &td.family) {
        Ok(l) if l.status == "ACTIVE" => l,
        Ok(_) | Err(Error::NotFound { .. }) => {
            let (d, l) = ("\"ACTIVE\"".to_string(), "missing".to_string());
            out.push(drifted("taskDefinition", &td.family, "status", d, l));
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let mut fields = Vec::new();
    diff(
        "",
        &serde_json::to_value(comparable(td)).unwrap_or_default(),
        &serde_json::to_value(comparable(&latest)).unwrap_or_default(),
        &mut fields,
    );
    let name = short(&latest.task_definition_arn);
    let same = fields.is_empty();
    out.extend(
        fields.into_iter().map(|(path, d, l)| {
            drifted("taskDefinition", name, &path, d.to_string(), l.to_string())
        }),
    );
    Ok(same.then_some(latest.task_definition_arn))
}

/// A declared service against the live one: its revision and the settings apply would update.
fn service(
    state: &State,
    cluster: &str,
    s: &ServiceSpec,
    same_arn: Option<&str>,
    out: &mut Vec<StackDrift>,
) -> Result<()> {
    let name = s.request.service_name.as_str();
    let live = state.get::<Service>(&services::key(cluster, name))?;
    let live = match live {
        Some(l) if l.status == "ACTIVE" => l,
        other => {
            let status = other.map_or("missing".to_string(), |l| json!(l.status).to_string());
            out.push(drifted(
                "service",
                name,
                "status",
                "\"ACTIVE\"".into(),
                status,
            ));
            return Ok(());
        }
    };
    let declared_td = match same_arn {
        Some(arn) => short(arn).to_string(),
        None => format!("a new revision of {}", s.family),
    };
    if short(&live.task_definition) != declared_td {
        let l = short(&live.task_definition).to_string();
        out.push(drifted("service", name, "taskDefinition", declared_td, l));
    }
    let (wanted, _) = services::new_service(cluster, &s.request, state.limits());
    // With auto scaling on, the policy owns the desired count.
    let scaled = live.scaling_policy.is_some();
    let mut fields = Vec::new();
    diff(
        "",
        &settings(&wanted, scaled),
        &settings(&live, scaled),
        &mut fields,
    );
    out.extend(fields.into_iter().map(|(path, d, l)| {
        drifted(
            "service",
            name,
            &file_field(&path),
            d.to_string(),
            l.to_string(),
        )
    }));
    Ok(())
}

/// The service settings a stack declares, as JSON with ECS's field names.
fn settings(s: &Service, scaled: bool) -> Value {
    let mut v = json!({
        "schedulingStrategy": s.scheduling_strategy,
        "deploymentConfiguration": s.deployment_configuration,
        "placementStrategy": s.placement_strategy,
        "placementConstraints": s.placement_constraints,
        "loadBalancers": s.load_balancers,
        "healthCheckGracePeriodSeconds": s.health_check_grace_period_seconds,
    });
    if !scaled {
        v["desiredCount"] = json!(s.desired_count);
    }
    v
}

/// The leaf paths where `declared` and `live` differ; lists of different lengths differ whole.
fn diff(path: &str, declared: &Value, live: &Value, out: &mut Vec<(String, Value, Value)>) {
    match (declared, live) {
        (Value::Object(a), Value::Object(b)) => {
            let fields: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for f in fields {
                let at = if path.is_empty() {
                    f.clone()
                } else {
                    format!("{path}.{f}")
                };
                let (d, l) = (&a.get(f), &b.get(f));
                diff(
                    &at,
                    d.unwrap_or(&Value::Null),
                    l.unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (d, l)) in a.iter().zip(b).enumerate() {
                diff(&format!("{path}[{i}]"), d, l, out);
            }
        }
        _ if declared != live => out.push((path.to_string(), declared.clone(), live.clone())),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_names_each_changed_leaf_by_its_path() {
        let declared = json!({"placementStrategy": [{"type": "binpack", "field": "memory"}],
            "desiredCount": 2, "loadBalancers": []});
        let live = json!({"placementStrategy": [{"type": "spread", "field": "memory"}],
            "desiredCount": 2, "loadBalancers": [{"listenerPort": 80}]});
        let mut out = Vec::new();
        diff("", &declared, &live, &mut out);
        let paths: Vec<&str> = out.iter().map(|(p, _, _)| p.as_str()).collect();
        assert_eq!(paths, ["loadBalancers", "placementStrategy[0].type"]);
        assert_eq!(out[1].1, json!("binpack"));
        assert_eq!(out[1].2, json!("spread"));
    }
}
