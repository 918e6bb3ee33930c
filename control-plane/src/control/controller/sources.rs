//! What a controller pass reads to plan one service: the service and its tasks (through the
//! task headers cache), their definitions, the nodes as the rooms cache and the sessions see
//! them, and the load balancer's target health as the proxies report it.

use super::Headers;
use crate::live::proxies::Proxies;
use crate::live::sessions::Sessions;
use crate::model::placement::view;
use crate::model::placement::Freshness;
use crate::model::taskdef;
use crate::state::error::Result;
use crate::state::{keys, State, Tx};
use berth_core::arn;
use berth_core::plan::{PlanConfig, ServiceMemory, ServiceView, TargetView};
use berth_core::scheduler::NodeSnapshot;
use berth_proto::v1::*;
use std::collections::{HashMap, HashSet};

/// The live handles a view needs beside the store.
pub struct Sources<'a> {
    pub sessions: &'a Sessions,
    pub proxies: &'a Proxies,
    pub config: PlanConfig,
    /// Nodes already looked up in this controller pass, for judging: a pass over a thousand
    /// services spread over the same nodes asks the rooms cache and the sessions once a node.
    pub seen_nodes: std::cell::RefCell<HashMap<String, Option<NodeSnapshot>>>,
}

impl<'a> Sources<'a> {
    pub fn new(sessions: &'a Sessions, proxies: &'a Proxies, config: PlanConfig) -> Self {
        Sources {
            sessions,
            proxies,
            config,
            seen_nodes: Default::default(),
        }
    }
}

/// Reads the view of one service inside `tx`: the service itself and its task index are compared
/// at commit; tasks, definitions and nodes are read as they are (a stale one only delays a
/// decision to the next pass, and the applier re-checks what placement relies on).
pub fn read(
    tx: &mut Tx<'_>,
    key: &str,
    src: &Sources<'_>,
    headers: &mut Headers,
    memory: ServiceMemory,
    all_nodes: bool,
) -> Result<Option<ServiceView>> {
    let Some(service) = tx.get::<Service>(key)? else {
        return Ok(None);
    };
    let state = tx.state().clone();
    let cluster = arn::cluster_name(&service.cluster_arn).to_string();
    let group = format!("service:{}", service.service_name);
    // The cache is as of `revision`; nothing may have joined the group since.
    let (tasks, revision) = headers.tasks(&state, &cluster, &group)?;
    tx.require_unchanged_since(&keys::group_tasks(&cluster, &group), revision);
    let mut definitions = HashMap::new();
    let wanted = service
        .deployments
        .iter()
        .map(|d| &d.task_definition)
        .chain(service.task_sets.iter().map(|ts| &ts.task_definition))
        .chain(
            tasks
                .iter()
                .filter(|t| t.last_status != "STOPPED")
                .map(|t| &t.task_definition_arn),
        );
    for td_arn in wanted {
        if !definitions.contains_key(td_arn) {
            if let Ok(td) = taskdef::describe(&state, td_arn) {
                definitions.insert(td_arn.clone(), td);
            }
        }
    }
    let daemon = service.scheduling_strategy == "DAEMON";
    let (nodes, spread_values) = if all_nodes || daemon {
        let spread = spread_attributes(&service);
        view::snapshot_with_values(&state, src.sessions, Freshness::Now, &spread)?
    } else {
        let hosting: HashSet<&str> = tasks
            .iter()
            .map(|t| arn::last_segment(&t.container_instance_arn))
            .collect();
        (status_only(&state, src, hosting)?, Default::default())
    };
    let targets = tasks
        .iter()
        .filter_map(|t| {
            let (state, reason) = src.proxies.target_state(&t.task_arn)?;
            Some((
                t.task_arn.clone(),
                TargetView {
                    state,
                    reason,
                    ever_healthy: src.proxies.ever_healthy(&t.task_arn),
                },
            ))
        })
        .collect();
    let drained = tasks
        .iter()
        .filter(|t| t.load_balanced && t.desired_status == "STOPPED" && t.last_status != "STOPPED")
        .filter(|t| {
            let since = crate::time::parse_rfc3339(&t.stopping_at).unwrap_or(i64::MAX);
            src.proxies.drained_everywhere(&t.task_arn, since)
        })
        .map(|t| t.task_arn.clone())
        .collect();
    // A shift is judged by what the proxies measured of its deployments.
    let revisions = if berth_core::plan::shift::Strategy::of(
        service.deployment_configuration.as_ref(),
    )
    .shifts()
    {
        service
            .deployments
            .iter()
            .map(|d| (d.id.clone(), src.proxies.revision_figures(&d.id)))
            .collect()
    } else {
        HashMap::new()
    };
    let volume_homes = view::volume_homes(&state, &cluster, definitions.values())?;
    let capacity_providers =
        crate::model::capacity::selectors(&state, &service.capacity_provider_strategy)?;
    Ok(Some(ServiceView {
        capacity_providers,
        volume_homes,
        drained,
        service,
        tasks,
        definitions,
        nodes,
        spread_values,
        all_nodes: all_nodes || daemon,
        lb_watched: !src.proxies.watching().is_empty(),
        targets,
        memory,
        config: src.config,
        fresh_deployment_id: format!("ecs-svc/{}", berth_core::ids::new_id(16)),
        op_budget: Some(state.store().max_txn_ops()).filter(|m| *m != usize::MAX),
        revisions,
    }))
}

/// The named nodes from the rooms cache, with their connection: enough to judge tasks (the
/// pass plans again with every node before it places).
fn status_only(state: &State, src: &Sources<'_>, ids: HashSet<&str>) -> Result<Vec<NodeSnapshot>> {
    let mut seen = src.seen_nodes.borrow_mut();
    let unseen: Vec<&str> = ids
        .iter()
        .copied()
        .filter(|id| !seen.contains_key(*id))
        .collect();
    if !unseen.is_empty() {
        let mut found: HashMap<std::sync::Arc<str>, NodeSnapshot> = src
            .sessions
            .snapshots_of(state, unseen.iter().copied())?
            .into_iter()
            .map(|n| (n.id.clone(), n))
            .collect();
        for id in unseen {
            let node = found.remove(id).map(|mut n| {
                n.connected = src.sessions.is_connected(&n.id);
                n
            });
            seen.insert(id.to_string(), node);
        }
    }
    Ok(ids
        .iter()
        .filter_map(|id| seen.get(*id).cloned().flatten())
        .collect())
}

/// The node attributes the service's placement spreads over (`spread(attribute:NAME)`).
pub(super) fn spread_attributes(svc: &Service) -> Vec<String> {
    use berth_core::scheduler::{parse_strategy, SpreadField, Strategy};
    svc.placement_strategy
        .iter()
        .filter_map(|s| match parse_strategy(&s.r#type, &s.field) {
            Ok(Strategy::Spread(SpreadField::Attribute(a))) => Some(a),
            _ => None,
        })
        .collect()
}
