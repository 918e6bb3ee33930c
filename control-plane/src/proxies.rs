//! What proxies tell the control plane: which proxies are watching, each target's health as
//! they see it, and which draining targets they have finished with. In memory only: proxies
//! re-report on reconnect, and health is re-learned within a few checks.

use crate::time;
use berth_proto::v1::TargetHealth;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Inner {
    /// proxy id → number of open watch streams.
    watching: HashMap<String, usize>,
    /// (proxy id, task ARN) → last health report.
    health: HashMap<(String, String), (TargetHealth, i64)>,
    /// Tasks some proxy has seen HEALTHY at least once.
    ever_healthy: std::collections::HashSet<String>,
}

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

    pub fn watch_started(&self, proxy: &str) {
        *self.lock().watching.entry(proxy.to_string()).or_default() += 1;
    }

    pub fn watch_ended(&self, proxy: &str) {
        let mut s = self.lock();
        if let Some(n) = s.watching.get_mut(proxy) {
            *n -= 1;
            if *n == 0 {
                s.watching.remove(proxy);
                s.health.retain(|(p, _), _| p != proxy);
            }
        }
    }

    pub fn watching(&self) -> Vec<String> {
        self.lock().watching.keys().cloned().collect()
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
        for proxy in s.watching.keys() {
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

    /// Forgets tasks that no longer exist.
    pub fn retain_tasks(&self, keep: &dyn Fn(&str) -> bool) {
        let mut s = self.lock();
        s.ever_healthy.retain(|t| keep(t));
        s.health.retain(|(_, t), _| keep(t));
    }

    /// True when every watching proxy has reported the draining target DRAINED since `since_ms`.
    pub fn drained_everywhere(&self, task_arn: &str, since_ms: i64) -> bool {
        let s = self.lock();
        s.watching.keys().all(|p| {
            s.health
                .get(&(p.clone(), task_arn.to_string()))
                .is_some_and(|(h, at)| h.state == "DRAINED" && *at >= since_ms)
        })
    }
}
