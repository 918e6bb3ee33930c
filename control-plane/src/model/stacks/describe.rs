//! Reading stacks: the list, and one stack with what it owns as it is now and its drift.

use super::delete::count;
use super::{drift, key, parse, prefix, short};
use crate::state::error::{Error, Result};
use crate::state::State;
use crate::{model::clusters, model::services, model::taskdef};
use berth_proto::v1::*;

/// The stacks of a cluster (empty: of every cluster), without the files they applied.
pub fn list(state: &State, req: ListStacksRequest) -> Result<ListStacksReply> {
    let cluster = if req.cluster.trim().is_empty() {
        String::new()
    } else {
        berth_core::arn::cluster_name(&req.cluster).to_string()
    };
    let mut stacks = state.scan::<Stack>(&prefix(&cluster))?;
    for s in &mut stacks {
        s.applied_json.clear();
    }
    Ok(ListStacksReply { stacks })
}

/// One stack: the record, each resource it owns as it is now, and the live fields that differ
/// from the given file, or (without one) from the file it last applied.
pub fn describe(state: &State, req: DescribeStackRequest) -> Result<StackReply> {
    let cluster = services::cluster_name(&req.cluster).to_string();
    let record = state
        .get::<Stack>(&key(&cluster, &req.stack_name))?
        .ok_or_else(|| {
            Error::not_found(
                "Stack",
                &req.stack_name,
                format!(
                    "no stack of that name in cluster {cluster}; `berth stack list` shows them"
                ),
            )
        })?;
    let (text, drift_from) = if req.stack_json.trim().is_empty() {
        (record.applied_json.as_str(), "last apply")
    } else {
        (req.stack_json.as_str(), "file")
    };
    let drift = if text.is_empty() {
        Vec::new()
    } else {
        let spec = parse::decode(text, &record.name).map_err(Error::Invalid)?;
        drift::drift(state, &spec, &cluster, &record)?
    };
    let mut stack = record;
    let resources = resources(state, &cluster, &stack)?;
    stack.applied_json.clear();
    Ok(StackReply {
        stack: Some(stack),
        resources,
        drift,
        drift_from: drift_from.into(),
        ..Default::default()
    })
}

fn resource(kind: &str, name: &str, status: &str, detail: String) -> StackResource {
    StackResource {
        kind: kind.into(),
        name: name.into(),
        status: status.into(),
        detail,
    }
}

/// The cluster, the revisions the stack registered and its services, each as it is now.
fn resources(state: &State, cluster: &str, record: &Stack) -> Result<Vec<StackResource>> {
    let mut out = Vec::new();
    let owner = if record.owns_cluster {
        "created by the stack"
    } else {
        "created outside the stack"
    };
    out.push(match clusters::describe(state, cluster) {
        Ok(c) => resource(
            "cluster",
            cluster,
            &c.status,
            format!(
                "{owner}; {}, {} running",
                count(c.active_services_count as usize, "service"),
                count(c.running_tasks_count as usize, "task")
            ),
        ),
        Err(Error::NotFound { .. }) => resource("cluster", cluster, "MISSING", owner.into()),
        Err(e) => return Err(e),
    });
    for r in &record.task_definitions {
        let status = match taskdef::describe(state, r) {
            Ok(td) => td.status,
            Err(Error::NotFound { .. }) => "MISSING".into(),
            Err(e) => return Err(e),
        };
        out.push(resource("taskDefinition", r, &status, String::new()));
    }
    for name in &record.services {
        let svc = state
            .get::<Service>(&services::key(cluster, name))?
            .filter(|s| s.stack == record.name);
        out.push(match svc {
            Some(s) => service_resource(&s),
            None => resource("service", name, "MISSING", String::new()),
        });
    }
    Ok(out)
}

fn service_resource(s: &Service) -> StackResource {
    let rollout = s
        .deployments
        .first()
        .map_or("", |d| d.rollout_state.as_str());
    let detail = format!(
        "{} running of {} desired, {}, deployment {}",
        s.running_count,
        s.desired_count,
        short(&s.task_definition),
        if rollout.is_empty() { "-" } else { rollout }
    );
    resource("service", &s.service_name, &s.status, detail)
}
