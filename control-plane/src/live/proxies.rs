//! What proxies tell the control plane: which proxies are watching, each target's health as
//! they see it, and which draining targets they have finished with. In memory only: proxies
//! re-report on reconnect, and health is re-learned within a few checks.

use crate::time;
use berth_proto::v1::{
    ConnectCount, RevisionCount, RevisionFigures, ServiceRequestCount, TargetHealth,
};

/// One caller of a service through Service Connect, as the node proxies counted it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallRate {
    pub caller: String,
    pub requests_per_second: f64,
    pub errors_per_second: f64,
    /// Since the proxies started.
    pub requests_total: u64,
    pub errors_total: u64,
}
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Inner {
    /// proxy id → number of open watch streams.
    watching: HashMap<String, usize>,
    /// (proxy id, task ARN) → last health report.
    health: HashMap<(String, String), (TargetHealth, i64)>,
    /// Tasks some proxy has seen HEALTHY at least once.
    ever_healthy: std::collections::HashSet<String>,
    /// (proxy id, service ARN) → (received at ms, requests total) samples, oldest first.
    requests: HashMap<(String, String), VecDeque<(i64, u64)>>,
    /// Proxies watching through other replicas, and when those last said so.
    remote: HashMap<String, i64>,
    /// (proxy id, service ARN, revision) → that proxy's latest counters of the revision.
    revisions: HashMap<(String, String, String), (RevisionCount, i64)>,
    /// The nodes' Service Connect proxies watching here: their health checks (a TCP connect on
    /// the alias's port) do not judge a load balancer's targets.
    connect: std::collections::HashSet<String>,
    /// (proxy id, callee service ARN, caller) → samples of its counters, oldest first.
    calls: HashMap<(String, String, String), VecDeque<CallSample>>,
}

/// A proxy's counters of one caller's calls: (received at ms, requests, errors).
type CallSample = (i64, u64, u64);

/// Proxies watching here, and those another replica refreshed lately.
fn watchers(s: &Inner) -> Vec<String> {
    let now = time::now_millis();
    let mut out: Vec<String> = s.watching.keys().cloned().collect();
    out.extend(
        s.remote
            .iter()
            .filter(|(p, at)| {
                now - **at < crate::live::sessions::PRESENCE_FRESH_MS
                    && !s.watching.contains_key(*p)
            })
            .map(|(p, _)| p.clone()),
    );
    out
}

/// Request counters older than this are forgotten (longer than any rate window asked for).
const REQUEST_HISTORY_MS: i64 = 15 * 60 * 1000;

/// Shared registry of proxies and their target observations.
#[derive(Default)]
pub struct Proxies {
    inner: Mutex<Inner>,
}

impl Proxies {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `connect`: a node's Service Connect proxy.
    pub fn watch_started(&self, proxy: &str, connect: bool) {
        let mut s = self.lock();
        *s.watching.entry(proxy.to_string()).or_default() += 1;
        if connect {
            s.connect.insert(proxy.to_string());
        }
    }

    pub fn watch_ended(&self, proxy: &str) {
        let mut s = self.lock();
        if let Some(n) = s.watching.get_mut(proxy) {
            *n -= 1;
            if *n == 0 {
                s.watching.remove(proxy);
                s.connect.remove(proxy);
                s.health.retain(|(p, _), _| p != proxy);
            }
        }
    }

    /// Proxies watching here, or (several servers) through another replica lately.
    pub fn watching(&self) -> Vec<String> {
        watchers(&self.lock())
    }

    /// The proxies watching through this replica, each with what it last reported.
    pub fn local_reports(&self) -> Vec<(String, Vec<(TargetHealth, i64)>)> {
        let s = self.lock();
        s.watching
            .keys()
            .map(|p| {
                let targets = s
                    .health
                    .iter()
                    .filter(|((proxy, _), _)| proxy == p)
                    .map(|(_, (h, at))| (h.clone(), *at))
                    .collect();
                (p.clone(), targets)
            })
            .collect()
    }

    /// The revision counters of a proxy watching through this replica, as it last reported them.
    pub fn local_revisions(&self, proxy: &str) -> Vec<RevisionCount> {
        self.lock()
            .revisions
            .iter()
            .filter(|((p, _, _), _)| p == proxy)
            .map(|(_, (c, _))| c.clone())
            .collect()
    }

    /// Takes in the revision counters of a proxy watching through another replica.
    pub fn absorb_remote_revisions(&self, proxy: &str, at_ms: i64, counts: Vec<RevisionCount>) {
        let mut s = self.lock();
        if s.watching.contains_key(proxy) {
            return;
        }
        for c in counts {
            let key = (proxy.to_string(), c.service_arn.clone(), c.revision.clone());
            s.revisions.insert(key, (c, at_ms));
        }
    }

    /// Takes in what a proxy watching through another replica reported (`at_ms`: when that
    /// replica last refreshed it).
    pub fn absorb_remote(&self, proxy: &str, at_ms: i64, targets: Vec<(TargetHealth, i64)>) {
        let mut s = self.lock();
        if s.watching.contains_key(proxy) {
            return;
        }
        s.remote.insert(proxy.to_string(), at_ms);
        for (t, at) in targets {
            if t.state == "HEALTHY" {
                s.ever_healthy.insert(t.task_arn.clone());
            }
            s.health
                .insert((proxy.to_string(), t.task_arn.clone()), (t, at));
        }
    }

    pub fn report(&self, proxy: &str, targets: Vec<TargetHealth>) {
        let now = time::now_millis();
        let mut s = self.lock();
        for t in targets {
            s.health
                .insert((proxy.to_string(), t.task_arn.clone()), (t, now));
        }
    }

    /// The health of a task's target as the watching proxies see it: HEALTHY if any says so and
    /// none says UNHEALTHY; UNHEALTHY (with the reason) if any says so; None with no report.
    pub fn target_state(&self, task_arn: &str) -> Option<(String, String)> {
        let s = self.lock();
        let mut seen: Option<(String, String)> = None;
        for proxy in watchers(&s).iter().filter(|p| !s.connect.contains(*p)) {
            let Some((h, _)) = s.health.get(&(proxy.clone(), task_arn.to_string())) else {
                continue;
            };
            match h.state.as_str() {
                "UNHEALTHY" => return Some((h.state.clone(), h.reason.clone())),
                "HEALTHY" => seen = Some((h.state.clone(), String::new())),
                other if seen.is_none() => seen = Some((other.to_string(), h.reason.clone())),
                _ => {}
            }
        }
        seen
    }

    /// Whether any proxy has ever seen the task's target healthy: until then an UNHEALTHY
    /// report may only mean its server is still starting.
    pub fn ever_healthy(&self, task_arn: &str) -> bool {
        self.lock().ever_healthy.contains(task_arn)
    }

    /// Records each service's request counter as one proxy reports it.
    pub fn record_requests(&self, proxy: &str, counts: Vec<ServiceRequestCount>, now_ms: i64) {
        let mut s = self.lock();
        for c in counts {
            let samples = s
                .requests
                .entry((proxy.to_string(), c.service_arn))
                .or_default();
            samples.push_back((now_ms, c.requests_total));
            while samples
                .front()
                .is_some_and(|(t, _)| now_ms - t > REQUEST_HISTORY_MS)
            {
                samples.pop_front();
            }
        }
        s.requests.retain(|_, v| {
            v.back()
                .is_some_and(|(t, _)| now_ms - t <= REQUEST_HISTORY_MS)
        });
    }

    /// Records the revision counters one proxy reports (its latest totals replace the last).
    pub fn record_revisions(&self, proxy: &str, counts: Vec<RevisionCount>, now_ms: i64) {
        let mut s = self.lock();
        for c in counts {
            let key = (proxy.to_string(), c.service_arn.clone(), c.revision.clone());
            s.revisions.insert(key, (c, now_ms));
        }
        s.revisions
            .retain(|_, (_, at)| now_ms - *at <= REQUEST_HISTORY_MS);
    }

    /// A revision's (deployment's) answers summed over the proxies that routed to it and the
    /// routes it had (its service's listener, or the target groups it is attached to): requests,
    /// 5xx, and the p99 latency (the upper bound of the bucket the 99th percentile falls in).
    pub fn revision_figures(&self, revision: &str) -> RevisionFigures {
        let s = self.lock();
        let mut buckets: Vec<u64> = Vec::new();
        let mut bounds: Vec<u64> = Vec::new();
        let mut out = RevisionFigures::default();
        for ((_, _, rev), (c, _)) in &s.revisions {
            if rev != revision {
                continue;
            }
            out.requests += c.requests_total;
            out.errors_5xx += c.errors_5xx_total;
            if bounds.is_empty() {
                bounds = c.latency_bounds_us.clone();
            }
            if c.latency_bounds_us == bounds {
                buckets.resize(buckets.len().max(c.latency_buckets.len()), 0);
                for (sum, n) in buckets.iter_mut().zip(&c.latency_buckets) {
                    *sum += n;
                }
            }
        }
        out.p99_ms = p99_ms(&buckets, &bounds);
        out
    }

    /// Requests a second to a service over the last `window_ms`, summed over the proxies that
    /// reported it; None until some proxy has reported twice within the window. A counter that
    /// went down (the proxy restarted) counts from zero again.
    pub fn request_rate(&self, service_arn: &str, window_ms: i64, now_ms: i64) -> Option<f64> {
        let s = self.lock();
        let mut rate = None;
        for ((_, svc), samples) in &s.requests {
            if svc != service_arn {
                continue;
            }
            let recent: Vec<&(i64, u64)> = samples
                .iter()
                .filter(|(t, _)| now_ms - t <= window_ms)
                .collect();
            let (Some(first), Some(last)) = (recent.first(), recent.last()) else {
                continue;
            };
            if last.0 <= first.0 {
                continue;
            }
            let count: u64 = recent
                .windows(2)
                .map(|w| {
                    if w[1].1 >= w[0].1 {
                        w[1].1 - w[0].1
                    } else {
                        w[1].1
                    }
                })
                .sum();
            *rate.get_or_insert(0.0) += count as f64 * 1000.0 / (last.0 - first.0) as f64;
        }
        rate
    }

    /// Forgets tasks that no longer exist.
    pub fn retain_tasks(&self, keep: &dyn Fn(&str) -> bool) {
        let mut s = self.lock();
        s.ever_healthy.retain(|t| keep(t));
        s.health.retain(|(_, t), _| keep(t));
    }

    /// True when every watching proxy that routes to the target has reported it DRAINED since
    /// `since_ms`. A proxy that never reported the target never had it (a target reports
    /// INITIAL as soon as a proxy takes it in): the load balancer proxies have no Service
    /// Connect target, and the Service Connect proxies no load balancer target.
    pub fn drained_everywhere(&self, task_arn: &str, since_ms: i64) -> bool {
        let s = self.lock();
        watchers(&s).iter().all(|p| {
            s.health
                .get(&(p.clone(), task_arn.to_string()))
                .is_none_or(|(h, at)| h.state == "DRAINED" && *at >= since_ms)
        })
    }

    /// Records a Service Connect proxy's call counters (its latest totals).
    pub fn record_connect_calls(&self, proxy: &str, counts: Vec<ConnectCount>, now_ms: i64) {
        let mut s = self.lock();
        for c in counts {
            let samples = s
                .calls
                .entry((proxy.to_string(), c.service_arn, c.caller))
                .or_default();
            samples.push_back((now_ms, c.requests_total, c.errors_total));
            while samples
                .front()
                .is_some_and(|(t, _, _)| now_ms - t > REQUEST_HISTORY_MS)
            {
                samples.pop_front();
            }
        }
        s.calls.retain(|_, v| {
            v.back()
                .is_some_and(|(t, _, _)| now_ms - t <= REQUEST_HISTORY_MS)
        });
    }

    /// Who calls `service_arn` through Service Connect over the last `window_ms`: each caller
    /// with its requests and errors a second, summed over the proxies (a counter that went
    /// down, a restarted proxy, counts from zero again).
    pub fn callers_of(&self, service_arn: &str, window_ms: i64, now_ms: i64) -> Vec<CallRate> {
        let s = self.lock();
        let mut by: std::collections::BTreeMap<String, CallRate> = Default::default();
        for ((_, callee, caller), samples) in &s.calls {
            if callee != service_arn {
                continue;
            }
            let recent: Vec<&(i64, u64, u64)> = samples
                .iter()
                .filter(|(t, _, _)| now_ms - t <= window_ms)
                .collect();
            let (Some(first), Some(last)) = (recent.first(), recent.last()) else {
                continue;
            };
            let grew = |a: u64, b: u64| if b >= a { b - a } else { b };
            let (mut requests, mut errors) = (0, 0);
            for w in recent.windows(2) {
                requests += grew(w[0].1, w[1].1);
                errors += grew(w[0].2, w[1].2);
            }
            let secs = ((last.0 - first.0) as f64 / 1000.0).max(f64::EPSILON);
            let e = by.entry(caller.clone()).or_insert_with(|| CallRate {
                caller: caller.clone(),
                ..Default::default()
            });
            e.requests_total += last.1;
            e.errors_total += last.2;
            if last.0 > first.0 {
                e.requests_per_second += requests as f64 / secs;
                e.errors_per_second += errors as f64 / secs;
            }
        }
        by.into_values().collect()
    }
}

/// The upper bound (ms) of the bucket holding the 99th percentile; the unbounded bucket counts
/// as twice the last bound. 0 with no answers.
fn p99_ms(buckets: &[u64], bounds_us: &[u64]) -> f64 {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let rank = total - total / 100;
    let mut seen = 0;
    for (i, n) in buckets.iter().enumerate() {
        seen += n;
        if seen >= rank {
            let us = bounds_us
                .get(i)
                .copied()
                .unwrap_or_else(|| bounds_us.last().copied().unwrap_or(0) * 2);
            return us as f64 / 1000.0;
        }
    }
    0.0
}

impl crate::model::elb::TargetStates for Proxies {
    fn target_state(&self, task_arn: &str) -> Option<(String, String)> {
        Proxies::target_state(self, task_arn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_figures_sum_over_proxies_with_the_p99_bucket() {
        let p = Proxies::default();
        let count = |requests, errors, buckets: Vec<u64>| RevisionCount {
            service_arn: "web".into(),
            revision: "new".into(),
            requests_total: requests,
            errors_5xx_total: errors,
            latency_buckets: buckets,
            latency_bounds_us: vec![1_000, 10_000, 100_000],
        };
        p.record_revisions("a", vec![count(100, 5, vec![90, 10, 0, 0])], 0);
        p.record_revisions("b", vec![count(100, 15, vec![100, 0, 0, 0])], 0);
        // a's later report replaces its earlier one.
        p.record_revisions("a", vec![count(100, 5, vec![95, 3, 2, 0])], 10);
        let f = p.revision_figures("new");
        assert_eq!((f.requests, f.errors_5xx), (200, 20));
        // 195 of 200 within 1 ms, 198 within 10 ms: the 198th answer sets the p99.
        assert_eq!(f.p99_ms, 10.0);
        assert_eq!(p.revision_figures("old"), RevisionFigures::default());
        // A proxy watching through another server counts too (its replica shares it), unless
        // it watches here.
        p.absorb_remote_revisions("c", 10, vec![count(50, 50, vec![0, 0, 0, 50])]);
        assert_eq!(p.revision_figures("new").requests, 250);
        p.watch_started("a", false);
        p.absorb_remote_revisions("a", 20, vec![count(999, 0, vec![999, 0, 0, 0])]);
        assert_eq!(
            p.revision_figures("new").requests,
            250,
            "a's own report stands"
        );
        assert_eq!(p.local_revisions("a").len(), 1);
    }

    fn count(service: &str, total: u64) -> Vec<ServiceRequestCount> {
        vec![ServiceRequestCount {
            service_arn: service.into(),
            requests_total: total,
        }]
    }

    #[test]
    fn request_rates_sum_over_proxies_and_survive_a_counter_reset() {
        let p = Proxies::default();
        assert_eq!(p.request_rate("web", 4_000, 0), None);
        // Proxy a: 100 a second. Proxy b: restarted between its samples (counter went down).
        for (t, total) in [(0, 1_000), (1_000, 1_100), (2_000, 1_200)] {
            p.record_requests("a", count("web", total), t);
        }
        p.record_requests("b", count("web", 500), 0);
        p.record_requests("b", count("web", 50), 1_000);
        p.record_requests("b", count("web", 150), 2_000);
        let rate = p.request_rate("web", 4_000, 2_000).unwrap();
        // a: 200 in 2 s; b: 50 since its restart, then 100, in 2 s.
        assert!((rate - 175.0).abs() < 1e-9, "{rate}");
        // Samples outside the window do not count.
        p.record_requests("a", count("web", 1_200), 10_000);
        p.record_requests("a", count("web", 1_200), 11_000);
        assert_eq!(p.request_rate("web", 2_000, 11_000), Some(0.0));
        assert_eq!(p.request_rate("api", 2_000, 11_000), None);
    }
}
