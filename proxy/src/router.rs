//! The single writer of the routing state. For each table from the control plane it reuses the
//! services and targets that did not change (so targets keep their health), starts and stops health
//! checkers, swaps the new snapshot in, then opens and closes listeners. Only the watch task owns
//! the `Router`; requests never wait on it.

use crate::counters::Sharded;
use crate::health::{self, CheckClient, HealthSettings};
use crate::listener::Listener;
use crate::pattern::Pattern;
use crate::report::Reporter;
use crate::table::{Algorithm, Service, Snapshot, TargetSet};
use crate::target::{Health, Target, TargetKey};
use crate::Shared;
use berth_proto::v1::{Route, RoutingTable};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use tokio::task::JoinHandle;

/// A service (or target group) is identified by its ARN, listener port and rule (one target
/// group may serve several rules of a port), and during a traffic shift by its revision and
/// header condition (one route per deployment, and a test route).
type ServiceKey = (String, u16, String, String, String);

/// A running health checker and what it was started for.
struct Checker {
    target: Arc<Target>,
    settings: Arc<HealthSettings>,
    task: JoinHandle<()>,
}

pub(crate) struct Router {
    shared: Arc<Shared>,
    reporter: Reporter,
    check_client: CheckClient,
    services: HashMap<ServiceKey, Arc<Service>>,
    /// One checker per target of a service ARN, however many of its routes hold the target.
    checkers: HashMap<(String, TargetKey), Checker>,
    listeners: HashMap<u16, Listener>,
    /// TCP listener ports (network load balancers), apart: they bind and close by themselves.
    tcp: HashMap<u16, crate::tcp::Listener>,
    /// Listeners that were closed and may still be finishing requests.
    closing: Vec<JoinHandle<()>>,
    /// Ports that could not be bound (warned about once each).
    bind_failures: HashSet<u16>,
    /// Health handed over by the previous proxy process: new targets of the first table start
    /// from it rather than INITIAL, so a restart does not take them out of rotation.
    inherited_health: HashMap<(String, TargetKey), Health>,
}

impl Router {
    pub fn new(shared: Arc<Shared>, reporter: Reporter) -> Self {
        Self {
            reporter,
            check_client: health::check_client(),
            services: HashMap::new(),
            checkers: HashMap::new(),
            listeners: HashMap::new(),
            tcp: HashMap::new(),
            closing: Vec::new(),
            bind_failures: HashSet::new(),
            inherited_health: shared
                .inherited
                .as_ref()
                .map(|i| i.health.clone())
                .unwrap_or_default(),
            shared,
        }
    }

    /// Makes `table` the routing state. `full_report` (the first table of a new stream) reports
    /// every target's state, so a restarted control plane learns them all.
    pub async fn apply(&mut self, table: RoutingTable, full_report: bool) {
        // A service with one listener before and after whose port changed keeps its targets
        // (and their health): the listener moved, the tasks did not.
        let listeners = |arns: &mut dyn Iterator<Item = &str>| {
            let mut n: HashMap<String, usize> = HashMap::new();
            arns.for_each(|a| *n.entry(a.to_string()).or_default() += 1);
            n
        };
        let before = listeners(&mut self.services.keys().map(|k| k.0.as_str()));
        let after = listeners(&mut table.routes.iter().map(|r| r.service_arn.as_str()));
        // A target keeps its health, counters and in-flight count when it moves between the
        // routes of its service (a traffic shift splits one route into one per revision).
        let mut known: HashMap<(String, TargetKey), Arc<Target>> = self
            .services
            .values()
            .flat_map(|s| {
                s.targets
                    .targets
                    .iter()
                    .map(|t| ((s.arn.clone(), t.key.clone()), t.clone()))
            })
            .collect();
        // Before any listener opens: a TLS port never accepts without its certificates.
        crate::tls::apply(
            &self.shared,
            &table.tls_listeners,
            &table.acme_challenges,
            self.shared.config.http2,
        );
        if let Some(calls) = &self.shared.calls {
            calls.set_callers(&table.connect_callers);
        }
        let mut services = HashMap::new();
        for route in table.routes {
            let Some(port) = u16::try_from(route.listener_port).ok().filter(|p| *p > 0) else {
                tracing::warn!(service = %route.service_arn, port = route.listener_port, "route with an invalid listener port ignored");
                continue;
            };
            let key = (
                route.service_arn.clone(),
                port,
                route.rule.clone(),
                route.revision.clone(),
                route.header_name.clone(),
            );
            if services.contains_key(&key) {
                tracing::warn!(service = %route.service_arn, port, "duplicate route ignored");
                continue;
            }
            let moved = || {
                let single = |n: &HashMap<String, usize>| n.get(&route.service_arn) == Some(&1);
                (single(&before) && single(&after))
                    .then(|| self.services.iter().find(|(k, _)| k.0 == route.service_arn))
                    .flatten()
                    .map(|(_, s)| s)
            };
            let service = match self.services.get(&key).or_else(moved) {
                Some(prev) if prev.route == route => prev.clone(),
                prev => Arc::new(self.build_service(route, port, prev, &known)),
            };
            // A target group behind two listeners (HTTP and HTTPS) is one set of targets: the
            // second route takes the first's, so one checker's health reaches both.
            for t in &service.targets.targets {
                known
                    .entry((service.arn.clone(), t.key.clone()))
                    .or_insert_with(|| t.clone());
            }
            services.insert(key, service);
        }
        self.services = services;
        self.sync_checkers();

        let snapshot = Snapshot::build(self.services.values().cloned());
        let ports: BTreeSet<u16> = snapshot.ports().collect();
        self.shared.snapshot.store(Arc::new(snapshot));
        self.sync_listeners(&ports).await;
        if let Some(inherited) = &self.shared.inherited {
            inherited.drop_rest();
        }
        self.inherited_health.clear();

        // A draining target says DRAINED on every table while it is idle, so a control plane that
        // restarted mid-drain still learns it.
        for service in self.services.values() {
            for target in &service.targets.targets {
                if full_report || target.is_draining() {
                    target.report_current();
                }
            }
        }
        self.shared.tables.send_modify(|n| *n += 1);
    }

    fn build_service(
        &self,
        route: Route,
        port: u16,
        prev: Option<&Arc<Service>>,
        known: &HashMap<(String, TargetKey), Arc<Target>>,
    ) -> Service {
        let health = Arc::new(HealthSettings::from_proto(route.health_check.as_ref()));
        let targets = match prev {
            Some(p) if p.targets.source == route.targets && *p.targets.health == *health => {
                p.targets.clone()
            }
            _ => Arc::new(self.build_targets(&route, prev, health, known)),
        };
        Service {
            cluster: route.cluster.clone(),
            name: route.service_name.clone(),
            arn: route.service_arn.clone(),
            port,
            priority: route.priority,
            hosts: route
                .host_patterns
                .iter()
                .map(|h| Pattern::host(h))
                .collect(),
            paths: route
                .path_patterns
                .iter()
                .map(|p| Pattern::path(p))
                .collect(),
            algorithm: Algorithm::parse(&route.algorithm),
            targets,
            stats: prev.map(|p| p.stats.clone()).unwrap_or_default(),
            rule: route.rule.clone(),
            weight: u32::try_from(route.weight).unwrap_or(0),
            revision: route.revision.clone(),
            header: crate::table::HeaderMatch::parse(&route.header_name, &route.header_value),
            edge: crate::rules::Edge::from_route(&route),
            slow_start: std::time::Duration::from_secs(
                u64::try_from(route.slow_start_seconds).unwrap_or(0),
            ),
            route,
        }
    }

    /// The route's targets, reusing the previous `Target` for every task address and port that
    /// persists, so health, in-flight counts and counters carry over.
    fn build_targets(
        &self,
        route: &Route,
        prev: Option<&Arc<Service>>,
        health: Arc<HealthSettings>,
        known: &HashMap<(String, TargetKey), Arc<Target>>,
    ) -> TargetSet {
        let old: HashMap<&TargetKey, &Arc<Target>> = prev
            .map(|p| p.targets.targets.iter().map(|t| (&t.key, t)).collect())
            .unwrap_or_default();
        let mut seen = HashSet::new();
        let mut targets = Vec::with_capacity(route.targets.len());
        for t in &route.targets {
            let Some(port) = u16::try_from(t.port).ok().filter(|p| *p > 0) else {
                tracing::warn!(task = %t.task_arn, port = t.port, "target with an invalid port ignored");
                continue;
            };
            let key = TargetKey {
                task_arn: t.task_arn.clone(),
                address: t.address.clone(),
                port,
            };
            if !seen.insert(key.clone()) {
                continue;
            }
            let moved = || known.get(&(route.service_arn.clone(), key.clone()));
            match old.get(&key).copied().or_else(moved) {
                Some(existing) => {
                    existing.set_draining(t.draining);
                    targets.push(existing.clone());
                }
                None => match Target::new(
                    &route.service_arn,
                    t,
                    self.reporter.clone(),
                    self.inherited_health(&route.service_arn, key),
                ) {
                    Some(new) => targets.push(new),
                    None => {
                        tracing::warn!(task = %t.task_arn, address = %t.address, "target with an unusable address ignored")
                    }
                },
            }
        }
        TargetSet {
            targets,
            source: route.targets.clone(),
            health,
            next: Sharded::from_fn(|i| {
                AtomicUsize::new(prev.map_or(0, |p| p.targets.next.get(i).load(Relaxed)))
            }),
        }
    }

    /// How a new target starts: as the previous proxy process last saw it, else INITIAL.
    fn inherited_health(&self, service_arn: &str, key: TargetKey) -> Health {
        self.inherited_health
            .get(&(service_arn.to_string(), key))
            .copied()
            .unwrap_or(Health::Initial)
    }

    /// One checker per non-draining target; restarted when its settings change (state is kept:
    /// it lives on the target).
    fn sync_checkers(&mut self) {
        let mut desired = HashMap::new();
        for service in self.services.values() {
            for target in &service.targets.targets {
                if !target.is_draining() {
                    desired.insert(
                        (service.arn.clone(), target.key.clone()),
                        (target.clone(), service.targets.health.clone()),
                    );
                }
            }
        }
        self.checkers.retain(|key, checker| {
            let keep = desired.get(key).is_some_and(|(target, settings)| {
                Arc::ptr_eq(target, &checker.target) && **settings == *checker.settings
            });
            if !keep {
                checker.task.abort();
            }
            keep
        });
        let client = &self.check_client;
        for (key, (target, settings)) in desired {
            self.checkers.entry(key).or_insert_with(|| Checker {
                task: health::spawn_checker(client.clone(), target.clone(), settings.clone()),
                target,
                settings,
            });
        }
    }

    async fn sync_listeners(&mut self, ports: &BTreeSet<u16>) {
        // A port whose routes are TCP gets a TCP listener; a port that changes kind is reopened.
        let tcp_ports: BTreeSet<u16> = self
            .shared
            .snapshot
            .load()
            .services()
            .filter(|s| s.route.protocol == "TCP")
            .map(|s| s.port)
            .collect();
        let ports: &BTreeSet<u16> = &ports.difference(&tcp_ports).copied().collect();
        let tcp_gone: Vec<u16> = self
            .tcp
            .keys()
            .filter(|p| !tcp_ports.contains(p))
            .copied()
            .collect();
        for port in tcp_gone {
            if let Some(listener) = self.tcp.remove(&port) {
                self.closing.push(listener.close(&self.shared, port));
            }
        }
        let gone: Vec<u16> = self
            .listeners
            .keys()
            .filter(|p| !ports.contains(p))
            .copied()
            .collect();
        for port in gone {
            if let Some(listener) = self.listeners.remove(&port) {
                self.closing.push(listener.close(&self.shared, port));
            }
        }
        self.closing.retain(|task| !task.is_finished());
        for &port in &tcp_ports {
            if !self.tcp.contains_key(&port) {
                let listener = crate::tcp::Listener::open(&self.shared, port);
                self.tcp.insert(port, listener);
            }
        }
        self.bind_failures.retain(|p| ports.contains(p));
        for &port in ports {
            if self.listeners.contains_key(&port) {
                continue;
            }
            match Listener::open(&self.shared, port).await {
                Ok(listener) => {
                    self.bind_failures.remove(&port);
                    self.listeners.insert(port, listener);
                }
                Err(e) => {
                    if self.bind_failures.insert(port) {
                        tracing::warn!("{e}; retrying every few seconds");
                    }
                }
            }
        }
    }

    /// Whether some listener port of the table could not be bound yet.
    pub fn missing_listeners(&self) -> bool {
        !self.bind_failures.is_empty()
    }

    pub async fn retry_listeners(&mut self) {
        let ports: BTreeSet<u16> = self.shared.snapshot.load().ports().collect();
        self.sync_listeners(&ports).await;
    }

    /// Stops health checks, closes every listener and waits for their connections to finish.
    pub async fn shutdown(mut self) {
        for (_, checker) in self.checkers.drain() {
            checker.task.abort();
        }
        let mut closing = std::mem::take(&mut self.closing);
        for (port, listener) in self.listeners.drain() {
            closing.push(listener.close(&self.shared, port));
        }
        for (port, listener) in self.tcp.drain() {
            closing.push(listener.close(&self.shared, port));
        }
        for task in closing {
            let _ = task.await;
        }
    }
}
