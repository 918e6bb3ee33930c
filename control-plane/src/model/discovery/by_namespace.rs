//! ECS's ListServicesByNamespace: which ECS services are in a Cloud Map namespace, through
//! `serviceRegistries` or Service Connect.

use super::derive::{names, registries_in};
use super::{CmResult, DService};
use crate::model::ecs_extras;
use crate::state::{keys, State};
use berth_proto::v1::Service;
use serde_json::Value;

/// The ECS services in namespace `ns`: those whose `serviceRegistries` name one of its services,
/// or whose `serviceConnectConfiguration.namespace` (else their cluster's
/// `serviceConnectDefaults.namespace`, when Service Connect is on) names it. ECS's
/// ListServicesByNamespace.
pub fn ecs_services_in(state: &State, ns: &super::Namespace) -> CmResult<Vec<Service>> {
    let in_ns: Vec<DService> = super::services::list(state)?
        .into_iter()
        .filter(|s| s.namespace_id == ns.id)
        .collect();
    let is_ns = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .is_some_and(|n| n == ns.name || n == ns.arn || n == ns.id)
    };
    let mut out = Vec::new();
    for svc in state.scan::<Service>(keys::SERVICES)? {
        if svc.status == "INACTIVE" {
            continue;
        }
        let extras = ecs_extras::get(state, &crate::model::services::key_of(&svc))?;
        let registered = registries_in(extras.fields.get("serviceRegistries"))
            .iter()
            .any(|(r, _)| in_ns.iter().any(|s| names(r, s)));
        let connect = extras.fields.get("serviceConnectConfiguration");
        let connected = connect.is_some_and(|c| {
            c.get("enabled").and_then(Value::as_bool) == Some(true)
                && match c.get("namespace") {
                    Some(n) => is_ns(Some(n)),
                    None => {
                        let cluster = berth_core::arn::cluster_name(&svc.cluster_arn);
                        ecs_extras::get(state, &keys::cluster(cluster))
                            .ok()
                            .is_some_and(|x| {
                                is_ns(
                                    x.fields
                                        .get("serviceConnectDefaults")
                                        .and_then(|d| d.get("namespace")),
                                )
                            })
                    }
                }
        });
        if registered || connected {
            out.push(svc);
        }
    }
    Ok(out)
}
