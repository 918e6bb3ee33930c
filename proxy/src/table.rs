//! The routing snapshot the hot path reads: per listener port, the rules in evaluation order, each
//! forwarding to one or more weighted target sets (a service of its own, or ELBv2 target groups).
//! The router builds a new one per table and swaps it in whole; a snapshot is never changed once
//! published (targets' atomics aside).

use crate::counters::{ServiceStats, Sharded};
use crate::health::HealthSettings;
use crate::pattern::Pattern;
pub(crate) use crate::rules::Facts;
use crate::target::Target;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
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

/// One load-balanced service (or target group) on one listener port: its rule and its targets.
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
    /// Routes with the same non-empty rule on one port are one rule over several target sets.
    pub rule: String,
    /// This target set's share of its rule's requests (ELBv2 forward weights, 0-999).
    pub weight: u32,
    /// The deployment these targets belong to, during a traffic shift (else empty): its answers
    /// are counted apart and reported.
    pub revision: String,
    /// Matches only requests carrying this header (and value, when given): a shift's test route.
    pub header: Option<HeaderMatch>,
    /// A new healthy target's share ramps up over this long (zero: no slow start).
    pub slow_start: std::time::Duration,
    /// ELBv2 conditions beyond host and path, a local answer, forwarding headers.
    pub edge: crate::rules::Edge,
    /// The route this was built from, to tell whether a new table changed it.
    pub route: berth_proto::v1::Route,
}

/// A header a request must carry, with this value when one is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeaderMatch {
    pub name: http::HeaderName,
    pub value: Option<String>,
}

impl HeaderMatch {
    /// None for an empty or unusable name (a route's absent condition).
    pub fn parse(name: &str, value: &str) -> Option<Self> {
        let name = http::HeaderName::from_bytes(name.trim().as_bytes()).ok()?;
        let value = Some(value.trim().to_string()).filter(|v| !v.is_empty());
        Some(Self { name, value })
    }

    fn matches(&self, headers: &http::HeaderMap) -> bool {
        headers.get_all(&self.name).iter().any(|v| {
            self.value
                .as_deref()
                .is_none_or(|want| v.to_str().is_ok_and(|v| v.trim() == want))
        })
    }
}

impl Service {
    /// A rule with neither hosts nor paths is its listener's default, tried after all others (a
    /// header condition aside: a test route sorts just before the route it tests).
    pub fn is_default(&self) -> bool {
        self.hosts.is_empty()
            && self.paths.is_empty()
            && self.edge.conditions.is_empty()
            && !self.edge.unreadable
    }

    /// Any host pattern matches (or there are none), any path pattern matches (or none), the
    /// header condition holds (or there is none), and so do the ELBv2 conditions.
    pub fn matches(&self, host: &str, path: &str, facts: &Facts<'_>) -> bool {
        (self.hosts.is_empty() || self.hosts.iter().any(|p| p.matches(host)))
            && (self.paths.is_empty() || self.paths.iter().any(|p| p.matches(path)))
            && self
                .header
                .as_ref()
                .is_none_or(|h| h.matches(facts.headers))
            && self.edge.holds(facts)
    }

    fn has_available(&self) -> bool {
        self.targets.targets.iter().any(|t| t.is_available())
    }
}

/// One rule: its conditions (the first member's) and the target sets it forwards to by weight.
pub(crate) struct Rule {
    members: Vec<Arc<Service>>,
    /// Running totals of the members' weights, for picking by weight.
    cumulative: Vec<u64>,
    /// Coprime with the total weight and near its golden section: stepping through a cycle by it
    /// visits every slot once, so each member still gets exactly its share of every cycle, but
    /// spread through the cycle instead of in one block (a 10% canary is every tenth request or
    /// so, not a run of 100 in every 1,000).
    stride: u64,
    /// Position in the weighted cycle, one per worker thread.
    next: Sharded<AtomicUsize>,
}

impl Rule {
    fn new(members: Vec<Arc<Service>>) -> Self {
        let mut total = 0;
        let cumulative = members
            .iter()
            .map(|m| {
                total += u64::from(m.weight);
                total
            })
            .collect();
        Self {
            stride: stride(total),
            members,
            cumulative,
            next: Sharded::default(),
        }
    }

    fn head(&self) -> &Arc<Service> {
        &self.members[0]
    }

    /// The target set for the next request: by weight (each member gets its share of every
    /// cycle of total-weight requests). A member whose targets are all unavailable passes its
    /// turn to the next one that has some, so a weighted rule fails only when all of them do.
    pub fn pick(&self) -> &Arc<Service> {
        let total = self.cumulative.last().copied().unwrap_or(0);
        if self.members.len() == 1 || total == 0 {
            return self.head();
        }
        let k = self.next.local().fetch_add(1, Relaxed) as u64 % total;
        let n = (k as u128 * self.stride as u128 % total as u128) as u64;
        let at = self.cumulative.partition_point(|c| *c <= n);
        let len = self.members.len();
        (0..len)
            .map(|i| &self.members[(at + i) % len])
            .find(|m| m.weight > 0 && m.has_available())
            .unwrap_or(&self.members[at.min(len - 1)])
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The step through a weighted cycle of `total` slots: coprime with it, near 0.618 of it.
fn stride(total: u64) -> u64 {
    if total <= 2 {
        return 1;
    }
    let mut s = (total as f64 * 0.618_034) as u64;
    while gcd(s, total) != 1 {
        s += 1;
    }
    s
}

/// One listener port's rules, in the order they are tried.
#[derive(Default)]
pub(crate) struct PortRules {
    rules: Vec<Rule>,
}

impl PortRules {
    /// The first matching rule's target set, picked by weight. `host` is without its port.
    pub fn select(&self, host: &str, path: &str, facts: &Facts<'_>) -> Option<&Arc<Service>> {
        self.rules
            .iter()
            .find(|r| r.head().matches(host, path, facts))
            .map(Rule::pick)
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
        // A service with no rule of its own is a rule by itself.
        let mut grouped: HashMap<(u16, String), Vec<Arc<Service>>> = HashMap::new();
        for service in services {
            let rule = if service.rule.is_empty() {
                format!("service:{}", service.arn)
            } else {
                service.rule.clone()
            };
            grouped
                .entry((service.port, rule))
                .or_default()
                .push(service);
        }
        let mut ports: HashMap<u16, PortRules> = HashMap::new();
        for ((port, _), mut members) in grouped {
            members.sort_by(|a, b| {
                (&a.name, &a.arn, &a.revision).cmp(&(&b.name, &b.arn, &b.revision))
            });
            ports
                .entry(port)
                .or_default()
                .rules
                .push(Rule::new(members));
        }
        let mut ports: Vec<(u16, PortRules)> = ports.into_iter().collect();
        ports.sort_by_key(|(port, _)| *port);
        for (_, rules) in &mut ports {
            rules.rules.sort_by(|a, b| {
                let (a, b) = (a.head(), b.head());
                let key = |s: &Service| {
                    (
                        s.is_default(),
                        s.priority,
                        s.header.is_none(),
                        s.rule.clone(),
                        s.name.clone(),
                        s.arn.clone(),
                    )
                };
                key(a).cmp(&key(b))
            });
        }
        Self { ports }
    }

    pub fn route(
        &self,
        port: u16,
        host: &str,
        path: &str,
        facts: &Facts<'_>,
    ) -> Option<&Arc<Service>> {
        let (_, rules) = self.ports.iter().find(|(p, _)| *p == port)?;
        rules.select(host, path, facts)
    }

    /// Whether the listener on `port` takes a PROXY protocol header first.
    pub fn proxy_protocol(&self, port: u16) -> bool {
        self.ports
            .iter()
            .filter(|(p, _)| *p == port)
            .flat_map(|(_, r)| r.rules.iter().flat_map(|r| r.members.iter()))
            .any(|s| s.edge.proxy_protocol)
    }

    pub fn ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.ports.iter().map(|(port, _)| *port)
    }

    pub fn services(&self) -> impl Iterator<Item = &Arc<Service>> {
        self.ports
            .iter()
            .flat_map(|(_, p)| p.rules.iter().flat_map(|r| r.members.iter()))
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
            rule: String::new(),
            weight: 1,
            revision: String::new(),
            header: None,
            edge: Default::default(),
            slow_start: Default::default(),
            route: Default::default(),
        })
    }

    pub fn facts(headers: &http::HeaderMap) -> Facts<'_> {
        Facts {
            headers,
            method: &http::Method::GET,
            query: "",
            client: std::net::Ipv4Addr::LOCALHOST.into(),
        }
    }

    fn routed(s: &Snapshot, port: u16, host: &str, path: &str) -> Option<String> {
        s.route(port, host, path, &facts(&http::HeaderMap::new()))
            .map(|s| s.name.clone())
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

    fn weighted(name: &str, weight: u32, healthy: bool) -> Arc<Service> {
        let (reporter, _rx) = crate::report::channel();
        let target = Target::new(
            name,
            &berth_proto::v1::Target {
                task_arn: format!("{name}-task"),
                address: "127.0.0.1".into(),
                port: 9000,
                draining: false,
            },
            reporter,
            crate::target::Health::Initial,
        )
        .unwrap();
        if healthy {
            target.transition(
                crate::target::Health::Initial,
                crate::target::Health::Healthy,
                "",
            );
        }
        let base = Arc::try_unwrap(service(name, 80, 0, &[], &[]))
            .ok()
            .unwrap();
        Arc::new(Service {
            rule: "rule-1".into(),
            weight,
            targets: Arc::new(TargetSet {
                targets: vec![target],
                source: Vec::new(),
                health: Arc::new(HealthSettings::from_proto(None)),
                next: Sharded::default(),
            }),
            ..base
        })
    }

    #[test]
    fn a_weighted_rule_splits_requests_by_weight() {
        let s = Snapshot::build([weighted("blue", 3, true), weighted("green", 1, true)]);
        let picks: Vec<String> = (0..400)
            .map(|_| routed(&s, 80, "any", "/").unwrap())
            .collect();
        let blue = picks.iter().filter(|n| *n == "blue").count();
        assert_eq!((blue, 400 - blue), (300, 100));
    }

    #[test]
    fn a_small_share_is_spread_through_the_cycle_not_sent_in_one_run() {
        let s = Snapshot::build([weighted("blue", 900, true), weighted("green", 100, true)]);
        let picks: Vec<bool> = (0..1000)
            .map(|_| routed(&s, 80, "any", "/").unwrap() == "green")
            .collect();
        assert_eq!(
            picks.iter().filter(|g| **g).count(),
            100,
            "exactly its share"
        );
        let longest_gap = picks.split(|g| *g).map(|run| run.len()).max().unwrap_or(0);
        assert!(
            longest_gap <= 20,
            "green waits at most 20 requests: {longest_gap}"
        );
    }

    #[test]
    fn a_target_group_with_nothing_healthy_passes_its_turn() {
        let s = Snapshot::build([weighted("blue", 1, false), weighted("green", 1, true)]);
        for _ in 0..10 {
            assert_eq!(routed(&s, 80, "any", "/").as_deref(), Some("green"));
        }
        let none = Snapshot::build([weighted("blue", 1, false), weighted("zero", 0, true)]);
        assert_eq!(routed(&none, 80, "any", "/").as_deref(), Some("blue"));
    }
}

#[cfg(test)]
mod header_tests {
    use super::tests::service;
    use super::*;

    #[test]
    fn a_test_route_takes_only_requests_with_its_header_and_goes_first() {
        let mut test = Arc::try_unwrap(service("web", 80, 0, &[], &[]))
            .ok()
            .unwrap();
        test.rule = "test:arn:web".into();
        test.revision = "new".into();
        test.header = HeaderMatch::parse("x-canary", "1");
        let s = Snapshot::build([service("web", 80, 0, &[], &[]), Arc::new(test)]);
        let pick = |headers: &[(&str, &str)]| {
            let mut h = http::HeaderMap::new();
            for (k, v) in headers {
                h.insert(
                    http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                );
            }
            s.route(80, "any", "/", &super::tests::facts(&h))
                .map(|s| s.revision.clone())
        };
        assert_eq!(pick(&[("x-canary", "1")]).as_deref(), Some("new"));
        assert_eq!(pick(&[("X-Canary", " 1 ")]).as_deref(), Some("new"));
        assert_eq!(pick(&[("x-canary", "2")]).as_deref(), Some(""));
        assert_eq!(pick(&[]).as_deref(), Some(""));
    }
}
