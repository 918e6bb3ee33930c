//! DescribeServiceRevisions: a service revision is what one deployment runs (its task
//! definition, with the service's load balancers and the images of its containers), named
//! `service-revision/CLUSTER/SERVICE/ID` with the deployment's ID, so every revision ARN that
//! ListServiceDeployments and DescribeServiceDeployments give resolves here.

use super::error::{EcsError, EcsResult};
use super::input::Input;
use super::services::revision_arn;
use super::{shapes, Ctx};
use crate::model::{clusters, services, taskdef};
use crate::state::error::Error;
use berth_core::arn;
use berth_proto::v1::{Deployment, Service};
use serde_json::{json, Value};

/// ECS's limit on the ARNs of one DescribeServiceRevisions.
const MAX_DESCRIBED: usize = 20;

pub fn describe(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let arns = input.required_strings("serviceRevisionArns")?;
    if arns.is_empty() || arns.len() > MAX_DESCRIBED {
        return Err(EcsError::invalid(
            "serviceRevisionArns",
            format!("{} ARNs; give 1 to {MAX_DESCRIBED}", arns.len()),
        ));
    }
    let mut out = Vec::new();
    let mut failures = Vec::new();
    for a in &arns {
        let parts: Vec<&str> = arn::resource(a)
            .and_then(|r| r.strip_prefix("service-revision/"))
            .map(|r| r.split('/').collect())
            .unwrap_or_default();
        let [cluster, service, id] = parts[..] else {
            return Err(EcsError::invalid(
                "serviceRevisionArns",
                format!("{a:?} is not a service revision ARN (arn:aws:ecs:REGION:ACCOUNT:service-revision/CLUSTER/SERVICE/ID)"),
            ));
        };
        // The cluster first, as ECS checks it.
        clusters::describe(ctx.state, cluster)?;
        let found = match services::find(ctx.state, cluster, service) {
            Ok(s) => s
                .deployments
                .iter()
                .find(|d| d.id.strip_prefix("ecs-svc/").unwrap_or(&d.id) == id)
                .map(|d| revision(ctx, &s, d))
                .transpose()?,
            Err(Error::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        match found {
            Some(v) => out.push(v),
            None => failures.push(shapes::failure(a, "MISSING", "")),
        }
    }
    Ok(json!({ "serviceRevisions": out, "failures": failures }))
}

fn revision(ctx: &Ctx<'_>, s: &Service, d: &Deployment) -> EcsResult<Value> {
    let images: Vec<Value> = match taskdef::describe(ctx.state, &d.task_definition) {
        Ok(td) => td
            .container_definitions
            .iter()
            .map(|c| json!({"containerName": c.name, "image": c.image}))
            .collect(),
        Err(Error::NotFound { .. }) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let lbs: Vec<Value> = s
        .load_balancers
        .iter()
        .map(|l| {
            shapes::prune(json!({"targetGroupArn": l.target_group_arn,
                "containerName": l.container_name, "containerPort": l.container_port}))
        })
        .collect();
    Ok(json!({
        "serviceRevisionArn": revision_arn(s, d),
        "serviceArn": s.service_arn,
        "clusterArn": s.cluster_arn,
        "taskDefinition": d.task_definition,
        "launchType": "EC2",
        "loadBalancers": lbs,
        "serviceRegistries": [],
        "containerImages": images,
        "guardDutyEnabled": false,
        "createdAt": shapes::epoch(&d.created_at),
    }))
}
