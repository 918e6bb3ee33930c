//! The routing table proxies serve: derived from services' load balancers and their tasks'
//! bindings, never stored. A target is a task's node address and bound host port; a task that
//! is stopping stays in the table as draining until the control plane deregisters it.

mod connect;
mod elb;
pub mod tls;

use crate::state::error::Result;
use crate::state::{keys, State};
use berth_core::plan::drain::drain_timeout_s;
use berth_proto::v1::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};

fn cluster_of(arn: &str) -> &str {
    arn.rsplit_once(":cluster/").map_or("", |(_, c)| c)
}

/// The routing table kept per service, so a change re-derives only the services it touches:
/// a task's change, its service; a service's change, that service; a node's, everything.
#[derive(Debug, Default)]
pub struct Routes {
    by_service: BTreeMap<String, Vec<Route>>,
    /// Task key → service key, for the services with a load balancer.
    owners: HashMap<String, String>,
    /// Service key → what it gives each target group it is attached to.
    attached: BTreeMap<String, Vec<Attachment>>,
    /// The ELBv2 listeners' routes, re-derived when `elbv2/` or an attached service changes.
    elb: Vec<Route>,
    /// Cloud Map's DNS records, derived alongside.
    discovery: crate::model::discovery::records::Records,
    /// Only the DNS records (a node resolver's watch): no route is derived.
    discovery_only: bool,
    /// The Service Connect aliases' routes (a node's Service Connect proxy's watch) instead of
    /// the load balancers'.
    connect: bool,
    /// Service key → the addresses of its tasks, for a Service Connect service.
    callers: BTreeMap<String, Vec<ConnectCaller>>,
    /// HTTPS listeners and ACME challenges, re-derived when `elbv2/` or `acm/` changes.
    tls: Vec<TlsListener>,
    challenges: Vec<AcmeChallenge>,
}

impl Routes {
    /// A table of the DNS records only, for node resolvers: the routes' work is skipped.
    pub fn discovery_only() -> Self {
        Self {
            discovery_only: true,
            ..Self::default()
        }
    }

    /// A table of the Service Connect routes only, for the nodes' Service Connect proxies.
    pub fn service_connect() -> Self {
        Self {
            connect: true,
            ..Self::default()
        }
    }

    pub fn refresh_all(&mut self, state: &State) -> Result<()> {
        if self.discovery_only {
            return self.discovery.refresh_all(state);
        }
        self.by_service.clear();
        self.owners.clear();
        self.attached.clear();
        self.callers.clear();
        for svc in state.scan::<Service>(keys::SERVICES)? {
            self.refresh_service(state, &crate::model::services::key_of(&svc), Some(svc))?;
        }
        if self.connect {
            return Ok(());
        }
        self.elb = elb::routes(state, &self.attached)?;
        self.refresh_tls(state)?;
        self.discovery.refresh_all(state)
    }

    fn refresh_tls(&mut self, state: &State) -> Result<()> {
        self.tls = tls::listeners(state)?;
        self.challenges = tls::challenges(state)?;
        Ok(())
    }

    /// Re-derives what `keys` touch; true when the table may have changed.
    pub fn refresh(&mut self, state: &State, changed: &[String]) -> Result<bool> {
        if self.discovery_only {
            return self.discovery.refresh(state, changed);
        }
        if changed.iter().any(|k| k.starts_with(keys::NODES)) {
            self.refresh_all(state)?;
            return Ok(true);
        }
        let discovery_moved = !self.connect && self.discovery.refresh(state, changed)?;
        let mut services = BTreeSet::new();
        for k in changed {
            if k.starts_with(keys::SERVICES) {
                services.insert(k.clone());
            } else if let Some(rest) = k.strip_prefix(keys::GROUP_INDEX) {
                let mut parts = rest.splitn(2, '/');
                let cluster = parts.next().unwrap_or_default();
                let group = parts.next().and_then(|g| g.rsplit_once('/')).map(|g| g.0);
                if let Some(name) = group.and_then(|g| g.strip_prefix("service:")) {
                    services.insert(crate::model::services::key(cluster, name));
                }
            } else if let Some(svc) = self.owners.get(k) {
                services.insert(svc.clone());
            }
        }
        let mut elb_changed = changed
            .iter()
            .any(|k| k.starts_with(crate::model::elb::keys::ALL));
        for key in &services {
            let svc = state.get::<Service>(key)?;
            let was = self.attached.contains_key(key);
            self.refresh_service(state, key, svc)?;
            elb_changed |= was || self.attached.contains_key(key);
        }
        if self.connect {
            return Ok(!services.is_empty());
        }
        if elb_changed {
            self.elb = elb::routes(state, &self.attached)?;
        }
        let tls_changed = changed.iter().any(|k| {
            k.starts_with(crate::model::elb::keys::LISTENERS)
                || k.starts_with(crate::model::certificates::PREFIX)
                || k.starts_with(tls::CHALLENGES)
        });
        if tls_changed {
            self.refresh_tls(state)?;
        }
        Ok(!services.is_empty() || elb_changed || tls_changed || discovery_moved)
    }

    fn refresh_service(&mut self, state: &State, key: &str, svc: Option<Service>) -> Result<()> {
        self.owners.retain(|_, s| s != key);
        self.attached.remove(key);
        if self.connect {
            return self.refresh_connect(state, key, svc);
        }
        let svc = svc.filter(|s| {
            s.status != "INACTIVE"
                && (!s.load_balancers.is_empty()
                    || s.task_sets.iter().any(|ts| !ts.load_balancers.is_empty()))
        });
        let Some(svc) = svc else {
            self.by_service.remove(key);
            return Ok(());
        };
        let tasks = crate::model::placement::view::service_tasks(state, &svc)?;
        for t in &tasks {
            if let Some(k) = crate::model::placement::apply::task_key(&t.task_arn) {
                self.owners.insert(k, key.to_string());
            }
        }
        let nodes = crate::model::nodes::of_live_tasks(state, &tasks)?;
        let split = shares(&svc, &tasks);
        let mut attached: Vec<Attachment> = svc
            .load_balancers
            .iter()
            .filter(|lb| !lb.target_group_arn.is_empty())
            .map(|lb| Attachment::of(&svc, lb, split.as_deref(), &tasks, &nodes))
            .collect();
        // A task set's tasks join its own target groups, as ECS registers them.
        for ts in &svc.task_sets {
            let mine: Vec<Task> = tasks
                .iter()
                .filter(|t| t.started_by == ts.id)
                .cloned()
                .collect();
            for lb in ts
                .load_balancers
                .iter()
                .filter(|lb| !lb.target_group_arn.is_empty())
            {
                attached.push(Attachment {
                    target_group: lb.target_group_arn.clone(),
                    groups: vec![(
                        String::new(),
                        1000,
                        berth_core::lb::lb_targets(lb, &mine, &nodes),
                    )],
                    test: None,
                });
            }
        }
        if !attached.is_empty() {
            self.attached.insert(key.to_string(), attached);
        }
        let routes = service_routes(&svc, &tasks, &nodes);
        if routes.is_empty() {
            self.by_service.remove(key);
        } else {
            self.by_service.insert(key.to_string(), routes);
        }
        Ok(())
    }

    /// A Service Connect service's alias routes and its tasks' addresses; a service without
    /// Service Connect has neither.
    fn refresh_connect(&mut self, state: &State, key: &str, svc: Option<Service>) -> Result<()> {
        self.by_service.remove(key);
        self.callers.remove(key);
        let Some(svc) = svc.filter(|s| {
            s.status != "INACTIVE" && s.service_connect.as_ref().is_some_and(|c| c.enabled)
        }) else {
            return Ok(());
        };
        let tasks = crate::model::placement::view::service_tasks(state, &svc)?;
        for t in &tasks {
            if let Some(k) = crate::model::placement::apply::task_key(&t.task_arn) {
                self.owners.insert(k, key.to_string());
            }
        }
        let nodes = crate::model::nodes::of_live_tasks(state, &tasks)?;
        let routes = connect::routes(state, &svc, &tasks, shares(&svc, &tasks), &nodes)?;
        if !routes.is_empty() {
            self.by_service.insert(key.to_string(), routes);
        }
        let callers = connect::callers(&svc, &tasks);
        if !callers.is_empty() {
            self.callers.insert(key.to_string(), callers);
        }
        Ok(())
    }

    /// The table, in a stable order so that an unchanged table encodes identically.
    pub fn table(&self) -> RoutingTable {
        let mut routes: Vec<Route> = self.by_service.values().flatten().cloned().collect();
        routes.extend(self.elb.iter().cloned());
        routes.sort_by(|a, b| {
            (a.listener_port, a.priority, &a.service_arn, &a.rule).cmp(&(
                b.listener_port,
                b.priority,
                &b.service_arn,
                &b.rule,
            ))
        });
        if self.connect {
            return RoutingTable {
                routes,
                connect_callers: self.callers.values().flatten().cloned().collect(),
                ..Default::default()
            };
        }
        RoutingTable {
            routes,
            discovery: self.discovery.records(),
            tls_listeners: self.tls.clone(),
            acme_challenges: self.challenges.clone(),
            connect_callers: Vec::new(),
        }
    }
}

/// What one service gives a target group it is attached to: its targets, split by deployment
/// during a traffic shift.
#[derive(Debug, Clone)]
pub(crate) struct Attachment {
    pub target_group: String,
    /// (deployment id, share in tenths of a percent, its targets); one group with no id when
    /// no shift is under way.
    pub groups: Vec<(String, i32, Vec<Target>)>,
    /// While the new revision takes test traffic: the route's header (name, value), the
    /// service's ARN, the deployment id and its targets.
    pub test: Option<(String, String, String, String, Vec<Target>)>,
}

impl Attachment {
    fn of(
        svc: &Service,
        lb: &LoadBalancer,
        split: Option<&[(String, i32)]>,
        tasks: &[Task],
        nodes: &HashMap<String, ContainerInstance>,
    ) -> Self {
        let Some(split) = split else {
            return Attachment {
                target_group: lb.target_group_arn.clone(),
                groups: vec![(
                    String::new(),
                    1000,
                    berth_core::lb::lb_targets(lb, tasks, nodes),
                )],
                test: None,
            };
        };
        let routes = split_routes(svc, lb, &Route::default(), split, tasks, nodes);
        let (tests, groups): (Vec<Route>, Vec<Route>) =
            routes.into_iter().partition(|r| !r.header_name.is_empty());
        Attachment {
            target_group: lb.target_group_arn.clone(),
            groups: groups
                .into_iter()
                .map(|r| (r.revision, r.weight, r.targets))
                .collect(),
            test: tests.into_iter().next().map(|r| {
                (
                    r.header_name,
                    r.header_value,
                    svc.service_arn.clone(),
                    r.revision,
                    r.targets,
                )
            }),
        }
    }
}

/// One service's routes: a route per load balancer with a listener port of its own (the
/// `--lb-port` shorthand), its targets the running tasks' bindings.
fn service_routes(
    svc: &Service,
    tasks: &[Task],
    nodes: &HashMap<String, ContainerInstance>,
) -> Vec<Route> {
    let split = shares(svc, tasks);
    svc.load_balancers
        .iter()
        .filter(|lb| lb.target_group_arn.is_empty() && lb.listener_port > 0)
        .flat_map(|lb| lb_routes(svc, lb, "", split.as_deref(), tasks, nodes))
        .collect()
}

/// The routes of one load balancer (or Service Connect alias, as one) of a service: one, or one
/// per deployment during a shift (`split`). `protocol`: the route's, empty for HTTP.
pub(super) fn lb_routes(
    svc: &Service,
    lb: &LoadBalancer,
    protocol: &str,
    split: Option<&[(String, i32)]>,
    tasks: &[Task],
    nodes: &HashMap<String, ContainerInstance>,
) -> Vec<Route> {
    let route = Route {
        cluster: cluster_of(&svc.cluster_arn).to_string(),
        service_name: svc.service_name.clone(),
        service_arn: svc.service_arn.clone(),
        listener_port: lb.listener_port,
        host_patterns: lb.host_patterns.clone(),
        path_patterns: lb.path_patterns.clone(),
        priority: lb.priority,
        health_check: Some(berth_core::lb::health_check_with_defaults(
            lb.health_check.as_ref(),
        )),
        drain_timeout_seconds: drain_timeout_s(lb),
        algorithm: if lb.algorithm.is_empty() {
            "round_robin".into()
        } else {
            lb.algorithm.clone()
        },
        targets: berth_core::lb::lb_targets(lb, tasks, nodes),
        protocol: protocol.to_string(),
        ..Default::default()
    };
    match split {
        None => vec![route],
        Some(split) => split_routes(svc, lb, &route, split, tasks, nodes),
    }
}

/// During a traffic shift (a shifting strategy with live tasks of more than one deployment),
/// each deployment's weight in its service's rule: its share of production traffic, in tenths of
/// a percent. None otherwise: one route takes every task.
fn shares(svc: &Service, tasks: &[Task]) -> Option<Vec<(String, i32)>> {
    use berth_core::plan::shift::Strategy;
    if !Strategy::of(svc.deployment_configuration.as_ref()).shifts() {
        return None;
    }
    let live = |id: &str| {
        tasks
            .iter()
            .any(|t| t.started_by == id && t.last_status != "STOPPED")
    };
    let split: Vec<(String, i32)> = svc
        .deployments
        .iter()
        .filter(|d| live(&d.id))
        .map(|d| {
            let w = (d.traffic_percent.clamp(0.0, 100.0) * 10.0).round() as i32;
            (d.id.clone(), w)
        })
        .collect();
    if split.len() < 2 {
        return None;
    }
    Some(split)
}

/// One route per deployment (its targets and weight), and while the new revision takes test
/// traffic, the test route: its header, the primary deployment's targets only.
fn split_routes(
    svc: &Service,
    lb: &LoadBalancer,
    route: &Route,
    split: &[(String, i32)],
    tasks: &[Task],
    nodes: &HashMap<String, ContainerInstance>,
) -> Vec<Route> {
    let of = |id: &str| -> Vec<Task> {
        tasks
            .iter()
            .filter(|t| t.started_by == id)
            .cloned()
            .collect()
    };
    let total: i32 = split.iter().map(|(_, w)| w).sum();
    let mut out: Vec<Route> = split
        .iter()
        .enumerate()
        .map(|(i, (id, w))| Route {
            revision: id.clone(),
            // Nothing weighed (a record from before shares were kept): the primary takes it all.
            weight: if total == 0 { i32::from(i == 0) } else { *w },
            targets: berth_core::lb::lb_targets(lb, &of(id), nodes),
            ..route.clone()
        })
        .collect();
    let header = svc
        .deployment_configuration
        .as_ref()
        .map_or("", |d| d.test_traffic_header.trim());
    // An EXTERNAL service may have no deployment at all: its task sets run its tasks.
    let Some(primary) = svc.deployments.first().map(|d| &d.id) else {
        return out;
    };
    if !header.is_empty()
        && berth_core::plan::shift::takes_test_traffic(svc)
        && split.iter().any(|(id, _)| id == primary)
    {
        let (name, value) = header.split_once(':').unwrap_or((header, ""));
        out.push(Route {
            revision: primary.clone(),
            rule: format!("test:{}", svc.service_arn),
            header_name: name.trim().to_string(),
            header_value: value.trim().to_string(),
            weight: 1,
            targets: berth_core::lb::lb_targets(lb, &of(primary), nodes),
            ..route.clone()
        });
    }
    out
}
