//! The routing snapshot the hot path reads: per listener port, the services' rules in evaluation
//! order, each pointing at its target set. The router builds a new one per table and swaps it in
//! whole; a snapshot is never changed once published (targets' atomics aside).

use crate::health::HealthSettings;
use crate::metrics::{ServiceStats, Sharded};
use crate::pattern::Pattern;
use crate::target::Target;
use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

/// How a service spreads requests over its available targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Algorithm {
    RoundRobin,
    LeastOutstanding,
}

impl Algorithm {
    pub fn parse(s: &str) -> Self {
        match s {
            "least_outstanding" | "least_outstanding_requests" => Algorithm::LeastOutstanding,
            _ => Algorithm::RoundRobin,
        }
    }
}

/// A service's targets, rebuilt only when the table's list or health check for it changes.
pub(crate) struct TargetSet {
    pub targets: Vec<Arc<Target>>,
    /// The table's list, to tell whether a new table changed it.
    pub source: Vec<berth_proto::v1::Target>,
    pub health: Arc<HealthSettings>,
    /// Round-robin position, one per worker thread so workers never contend for it.
    pub next: Sharded<AtomicUsize>,
}

/// One load-balanced service on one listener port: its rule and its targets.
pub(crate) struct Service {
    pub cluster: String,
    pub name: String,
    pub arn: String,
    pub port: u16,
    pub priority: i32,
    pub hosts: Vec<Pattern>,
    pub paths: Vec<Pattern>,
    pub algorithm: Algorithm,
    pub targets: Arc<TargetSet>,
    pub stats: Arc<ServiceStats>,
    /// The route this was built from, to tell whether a new table changed it.
    pub route: berth_proto::v1::Route,
}

impl Service {
    /// A rule with neither hosts nor paths is its listener's default, tried after all others.
    pub fn is_default(&self) -> bool {
        self.hosts.is_empty() && self.paths.is_empty()
    }

    /// Any host pattern matches (or there are none) and any path pattern matches (or none).
    pub fn matches(&self, host: &str, path: &str) -> bool {
        (self.hosts.is_empty() || self.hosts.iter().any(|p| p.matches(host)))
            && (self.paths.is_empty() || self.paths.iter().any(|p| p.matches(path)))
    }
}

/// One listener port's rules, in the order they are tried.
#[derive(Default)]
pub(crate) struct PortRules {
    rules: Vec<Arc<Service>>,
}

impl PortRules {
    /// The first matching rule's service. `host` is without its port.
    pub fn select(&self, host: &str, path: &str) -> Option<&Arc<Service>> {
        self.rules.iter().find(|s| s.matches(host, path))
    }
}

/// Everything the listeners route by: a proxy has a handful of listener ports, so a short list
/// scanned per request beats hashing the port.
#[derive(Default)]
pub(crate) struct Snapshot {
    ports: Vec<(u16, PortRules)>,
}

impl Snapshot {
    /// Groups services by listener port; within a port, rules with hosts or paths come first by
    /// priority (lower first), then defaults by priority. Ties go by name, so the order is stable.
    pub fn build(services: impl IntoIterator<Item = Arc<Service>>) -> Self {
        let mut ports: HashMap<u16, PortRules> = HashMap::new();
        for service in services {
            ports.entry(service.port).or_default().rules.push(service);
        }
        let mut ports: Vec<(u16, PortRules)> = ports.into_iter().collect();
        ports.sort_by_key(|(port, _)| *port);
        for (_, rules) in &mut ports {
            rules.rules.sort_by(|a, b| {
                (a.is_default(), a.priority, &a.name, &a.arn).cmp(&(
                    b.is_default(),
                    b.priority,
                    &b.name,
                    &b.arn,
                ))
            });
        }
        Self { ports }
    }

    pub fn route(&self, port: u16, host: &str, path: &str) -> Option<&Arc<Service>> {
        let (_, rules) = self.ports.iter().find(|(p, _)| *p == port)?;
        rules.select(host, path)
    }

    pub fn ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.ports.iter().map(|(port, _)| *port)
    }

    pub fn services(&self) -> impl Iterator<Item = &Arc<Service>> {
        self.ports.iter().flat_map(|(_, p)| p.rules.iter())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn service(
        name: &str,
        port: u16,
        priority: i32,
        hosts: &[&str],
        paths: &[&str],
    ) -> Arc<Service> {
        Arc::new(Service {
            cluster: "c".into(),
            name: name.into(),
            arn: format!("arn:{name}"),
            port,
            priority,
            hosts: hosts.iter().map(|h| Pattern::host(h)).collect(),
            paths: paths.iter().map(|p| Pattern::path(p)).collect(),
            algorithm: Algorithm::RoundRobin,
            targets: Arc::new(TargetSet {
                targets: Vec::new(),
                source: Vec::new(),
                health: Arc::new(HealthSettings::from_proto(None)),
                next: Sharded::default(),
            }),
            stats: Arc::default(),
            route: Default::default(),
        })
    }

    fn routed(s: &Snapshot, port: u16, host: &str, path: &str) -> Option<String> {
        s.route(port, host, path).map(|s| s.name.clone())
    }

    #[test]
    fn rules_go_by_priority_and_the_default_comes_last() {
        let s = Snapshot::build([
            service("default", 80, 0, &[], &[]),
            service("api", 80, 20, &[], &["/api/*"]),
            service("a", 80, 10, &["a.example"], &[]),
            service("wild", 80, 30, &["*.example"], &[]),
            service("other-port", 81, 0, &[], &[]),
        ]);
        assert_eq!(routed(&s, 80, "a.example", "/api/x").as_deref(), Some("a"));
        assert_eq!(
            routed(&s, 80, "b.example", "/api/x").as_deref(),
            Some("api")
        );
        assert_eq!(routed(&s, 80, "b.example", "/x").as_deref(), Some("wild"));
        assert_eq!(
            routed(&s, 80, "elsewhere", "/x").as_deref(),
            Some("default")
        );
        assert_eq!(
            routed(&s, 81, "a.example", "/").as_deref(),
            Some("other-port")
        );
        assert_eq!(routed(&s, 82, "a.example", "/"), None);
    }

    #[test]
    fn hosts_and_paths_must_both_match() {
        let s = Snapshot::build([service("both", 80, 1, &["a.example"], &["/api/*"])]);
        assert!(routed(&s, 80, "a.example", "/api/1").is_some());
        assert!(routed(&s, 80, "a.example", "/web").is_none());
        assert!(routed(&s, 80, "b.example", "/api/1").is_none());
    }
}
