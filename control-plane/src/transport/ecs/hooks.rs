//! ContinueServiceDeployment, ECS's answer to a PAUSE lifecycle hook, and the
//! `lifecycleHookDetails` DescribeServiceDeployments shows so a caller finds the `hookId`.

use super::error::{EcsError, EcsResult};
use super::input::Input;
use super::{shapes, Ctx};
use crate::model::{clusters, services};
use berth_core::arn;
use berth_core::plan::pause;
use berth_proto::v1::{Deployment, Service};
use serde_json::{json, Value};

pub fn continue_deployment(ctx: &Ctx<'_>, input: &Input) -> EcsResult<Value> {
    let a = input.required("serviceDeploymentArn")?;
    let hook_id = input.required("hookId")?;
    let action = input
        .choice("action", &["CONTINUE", "ROLLBACK"])?
        .unwrap_or_else(|| "CONTINUE".into());
    let parts: Vec<&str> = arn::resource(&a)
        .and_then(|r| r.strip_prefix("service-deployment/"))
        .map(|r| r.split('/').collect())
        .unwrap_or_default();
    let [cluster, service, id] = parts[..] else {
        return Err(EcsError::invalid(
            "serviceDeploymentArn",
            format!("{a:?} is not a service deployment ARN (arn:aws:ecs:REGION:ACCOUNT:service-deployment/CLUSTER/SERVICE/ID)"),
        ));
    };
    clusters::describe(ctx.state, cluster)?;
    services::continue_hook(ctx.state, cluster, service, id, &hook_id, &action)?;
    Ok(json!({ "serviceDeploymentArn": a }))
}

/// ECS's DeploymentLifecycleHookDetail for each hook run of the deployment.
pub fn details(s: &Service, d: &Deployment) -> Vec<Value> {
    let hooks = s
        .deployment_configuration
        .as_ref()
        .map(|c| c.lifecycle_hooks.clone())
        .unwrap_or_default();
    d.hooks
        .iter()
        .map(|r| {
            let hook = hooks
                .iter()
                .enumerate()
                .find(|(i, h)| pause::hook_key(*i, h) == r.url)
                .map(|(_, h)| h.clone())
                .unwrap_or_default();
            let paused = pause::is_pause(&hook);
            let (timeout_ms, continues) = pause::timeout(&hook);
            let status = match r.status.as_str() {
                "PENDING" | "UNREACHABLE" => "IN_PROGRESS",
                other => other,
            };
            let expires = crate::time::parse_rfc3339(&r.called_at)
                .filter(|_| paused)
                .map(|at| shapes::epoch(&crate::time::rfc3339(at + timeout_ms)));
            shapes::prune(json!({
                "hookId": pause::hook_id(r),
                "targetType": if paused { "PAUSE" } else { "AWS_LAMBDA" },
                "targetArn": if paused { "" } else { r.url.as_str() },
                "status": status,
                "expiresAt": expires,
                "timeoutAction": if continues { "CONTINUE" } else { "ROLLBACK" },
            }))
        })
        .collect()
}
