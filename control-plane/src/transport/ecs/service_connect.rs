//! `serviceConnectConfiguration` on CreateService and UpdateService: checked against the task
//! definition (its named port mappings and their `appProtocol`) and against the aliases of the
//! other services of the cluster in the same namespace, before anything is written; it is then
//! kept with the service's other ECS fields and echoed. The namespace is taken as a name or ARN
//! string (the configuration's own, else the cluster's `serviceConnectDefaults.namespace`).
//!
//! The clash check reads the other services outside the write's transaction: two services created
//! at the same instant with clashing aliases could both pass. The proxies' routing would then
//! serve one of them; the next update of either names the clash.

use super::error::EcsResult;
use super::input::Input;
use super::Ctx;
use crate::model::{ecs_extras, services, taskdef};
use crate::state::error::Error;
use crate::state::keys;
use berth_core::arn;
use berth_core::service::connect::{self, Alias};
use berth_core::service::connect_routes;
use berth_proto::v1::ServiceConnect;

const FIELD: &str = "serviceConnectConfiguration";

/// The cluster's default namespace (`serviceConnectDefaults.namespace`), or empty.
fn cluster_namespace(ctx: &Ctx<'_>, cluster: &str) -> EcsResult<String> {
    let extras = ecs_extras::get(ctx.state, &keys::cluster(arn::cluster_name(cluster)))?;
    Ok(extras
        .fields
        .get("serviceConnectDefaults")
        .and_then(|d| d["namespace"].as_str())
        .unwrap_or_default()
        .to_string())
}

/// The namespace's name, when it names one (a name that names none stays as it is: the
/// aliases of services that give the same name still see each other).
fn namespace_name(ctx: &Ctx<'_>, ns: &str) -> String {
    match crate::model::discovery::namespaces::find(ctx.state, ns) {
        Ok(Some(found)) => found.name,
        _ => ns.to_string(),
    }
}

/// Checks the request's configuration, when it has one, and resolves it for the routing: the
/// aliases' containers and ports from the task definition, the namespace by name. `None`: the
/// request says nothing of Service Connect. `task_definition`: the one the service will run
/// (the request's, or on update without one, the service's current).
pub(super) fn check(
    ctx: &Ctx<'_>,
    input: &Input,
    cluster: &str,
    service_name: &str,
    task_definition: &str,
) -> EcsResult<Option<ServiceConnect>> {
    if !input.has(FIELD) {
        return Ok(None);
    }
    let config = input.value()[FIELD].clone();
    resolve(ctx, &config, cluster, service_name, task_definition).map(Some)
}

/// `check` for a configuration as kept (an update that changes the task definition only: the
/// aliases' ports come from the new one).
pub(super) fn resolve(
    ctx: &Ctx<'_>,
    config: &serde_json::Value,
    cluster: &str,
    service_name: &str,
    task_definition: &str,
) -> EcsResult<ServiceConnect> {
    let td = taskdef::describe(ctx.state, task_definition)?;
    let ns = cluster_namespace(ctx, cluster)?;
    let mine = connect::check(config, &td, &ns).map_err(Error::Invalid)?;
    let resolved = connect_routes::resolve(&mine, &td, &namespace_name(ctx, &mine.namespace));
    if mine.aliases.is_empty() {
        return Ok(resolved);
    }
    let mut theirs: Vec<(String, Vec<Alias>)> = Vec::new();
    for s in services::list(ctx.state, cluster)? {
        if s.service_name == service_name || s.status == "INACTIVE" {
            continue;
        }
        let extras = ecs_extras::get(
            ctx.state,
            &services::key(arn::cluster_name(cluster), &s.service_name),
        )?;
        let Some(other) = extras.fields.get(FIELD) else {
            continue;
        };
        let Ok(td) = taskdef::describe(ctx.state, &s.task_definition) else {
            continue;
        };
        if let Ok(c) = connect::check(other, &td, &ns) {
            if namespace_name(ctx, &c.namespace) == resolved.namespace {
                theirs.push((s.service_name.clone(), c.aliases));
            }
        }
    }
    if let Some(e) = connect::port_clash(&mine.aliases, &theirs) {
        return Err(Error::Invalid(vec![e]).into());
    }
    Ok(resolved)
}

/// The service's kept configuration (its ECS extras), if it has one.
pub(super) fn kept(
    ctx: &Ctx<'_>,
    cluster: &str,
    service: &str,
) -> EcsResult<Option<serde_json::Value>> {
    let extras = ecs_extras::get(
        ctx.state,
        &services::key(arn::cluster_name(cluster), arn::last_segment(service)),
    )?;
    Ok(extras.fields.get(FIELD).cloned())
}
