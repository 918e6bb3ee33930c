//! Active health checks: one task per target GETs the route's health path at the route's interval
//! and moves the target between INITIAL, HEALTHY and UNHEALTHY after the configured number of
//! consecutive results, the way an ALB target group does. Each check opens a fresh connection, so
//! a dead target is seen as dead and not hidden by a pooled socket.

use crate::target::{Health, Target};
use http_body_util::Empty;
use hyper::body::Bytes;
use hyper::header::{HOST, USER_AGENT};
use hyper::{Request, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// A route's health check, with the contract's defaults for anything unset or not positive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HealthSettings {
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    /// Inclusive status ranges that count as healthy.
    pub codes: Vec<(u16, u16)>,
    /// Check by opening a TCP connection (a TCP target group's default) instead of a GET.
    pub tcp: bool,
}

impl HealthSettings {
    pub fn from_proto(check: Option<&berth_proto::v1::TargetHealthCheck>) -> Self {
        let default = berth_proto::v1::TargetHealthCheck::default();
        let check = check.unwrap_or(&default);
        let positive = |v: Option<i32>, d: u32| {
            v.and_then(|v| u32::try_from(v).ok())
                .filter(|v| *v > 0)
                .unwrap_or(d)
        };
        let path = if check.path.is_empty() {
            "/".to_string()
        } else if check.path.starts_with('/') {
            check.path.clone()
        } else {
            format!("/{}", check.path)
        };
        let codes = parse_matcher(&check.matcher).unwrap_or_else(|| {
            if !check.matcher.is_empty() {
                tracing::warn!(matcher = %check.matcher, "unusable health check matcher, using 200-399");
            }
            vec![(200, 399)]
        });
        Self {
            path,
            interval: Duration::from_secs(positive(check.interval_seconds, 5).into()),
            timeout: Duration::from_secs(positive(check.timeout_seconds, 2).into()),
            healthy_threshold: positive(check.healthy_threshold, 2),
            unhealthy_threshold: positive(check.unhealthy_threshold, 2),
            codes,
            tcp: check.protocol == "TCP",
        }
    }

    fn accepts(&self, status: u16) -> bool {
        self.codes
            .iter()
            .any(|(lo, hi)| (*lo..=*hi).contains(&status))
    }
}

/// `"200-399"`, `"200"`, `"200,204"`, `"200-299,304"`; `None` when empty or malformed.
pub(crate) fn parse_matcher(matcher: &str) -> Option<Vec<(u16, u16)>> {
    let mut codes = Vec::new();
    for part in matcher.split(',') {
        let part = part.trim();
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let lo: u16 = lo.trim().parse().ok()?;
        let hi: u16 = hi.trim().parse().ok()?;
        if !(100..=599).contains(&lo) || !(100..=599).contains(&hi) || lo > hi {
            return None;
        }
        codes.push((lo, hi));
    }
    Some(codes)
}

pub(crate) type CheckClient = Client<HttpConnector, Empty<Bytes>>;

pub(crate) fn check_client() -> CheckClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build(connector)
}

/// One check's verdict; a failure carries the reason the control plane shows.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Pass,
    Fail(String),
}

async fn check_once(client: &CheckClient, target: &Target, settings: &HealthSettings) -> Outcome {
    if settings.tcp {
        let dial = tokio::net::TcpStream::connect(target.authority.as_str());
        return match tokio::time::timeout(settings.timeout, dial).await {
            Ok(Ok(_)) => Outcome::Pass,
            Ok(Err(e)) => Outcome::Fail(format!("Connection failed: {e}")),
            Err(_) => Outcome::Fail("Request timed out".into()),
        };
    }
    let uri = format!("http://{}{}", target.authority, settings.path);
    let Ok(uri) = uri.parse::<Uri>() else {
        return Outcome::Fail(format!("Invalid health check path {:?}", settings.path));
    };
    let mut request = Request::new(Empty::new());
    *request.uri_mut() = uri;
    if let Ok(host) = target.authority.as_str().parse() {
        request.headers_mut().insert(HOST, host);
    }
    request.headers_mut().insert(
        USER_AGENT,
        hyper::header::HeaderValue::from_static("berth-health-check/1"),
    );
    match tokio::time::timeout(settings.timeout, client.request(request)).await {
        Err(_) => Outcome::Fail("Request timed out".into()),
        Ok(Err(e)) => Outcome::Fail(crate::error::describe(&e)),
        Ok(Ok(response)) => {
            let status = response.status().as_u16();
            if settings.accepts(status) {
                Outcome::Pass
            } else {
                Outcome::Fail(format!("Health checks failed with these codes: [{status}]"))
            }
        }
    }
}

/// Consecutive results since the last state change.
#[derive(Debug, Default)]
struct Streak {
    passes: u32,
    fails: u32,
}

impl Streak {
    /// Applies one outcome; returns the move to make, if the threshold is reached.
    fn observe(
        &mut self,
        current: Health,
        outcome: &Outcome,
        s: &HealthSettings,
    ) -> Option<Health> {
        match outcome {
            Outcome::Pass => {
                self.fails = 0;
                if current == Health::Healthy {
                    self.passes = 0;
                    return None;
                }
                self.passes += 1;
                (self.passes >= s.healthy_threshold).then(|| {
                    self.passes = 0;
                    Health::Healthy
                })
            }
            Outcome::Fail(_) => {
                self.passes = 0;
                if current == Health::Unhealthy {
                    self.fails = 0;
                    return None;
                }
                self.fails += 1;
                (self.fails >= s.unhealthy_threshold).then(|| {
                    self.fails = 0;
                    Health::Unhealthy
                })
            }
        }
    }
}

/// Checks `target` now and then every `interval` until the returned task is aborted.
pub(crate) fn spawn_checker(
    client: CheckClient,
    target: Arc<Target>,
    settings: Arc<HealthSettings>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(settings.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut streak = Streak::default();
        loop {
            ticks.tick().await;
            let outcome = check_once(&client, &target, &settings).await;
            let current = target.health();
            if let Some(next) = streak.observe(current, &outcome, &settings) {
                let reason = match &outcome {
                    Outcome::Fail(reason) => reason.as_str(),
                    Outcome::Pass => "",
                };
                target.transition(current, next, reason);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_parse_like_alb() {
        assert_eq!(parse_matcher("200-399"), Some(vec![(200, 399)]));
        assert_eq!(parse_matcher("200,204"), Some(vec![(200, 200), (204, 204)]));
        assert_eq!(
            parse_matcher("200-299, 304"),
            Some(vec![(200, 299), (304, 304)])
        );
        assert_eq!(parse_matcher(""), None);
        assert_eq!(parse_matcher("399-200"), None);
        assert_eq!(parse_matcher("abc"), None);
    }

    #[test]
    fn unset_fields_take_the_defaults() {
        let s = HealthSettings::from_proto(None);
        assert_eq!(s.path, "/");
        assert_eq!(s.interval, Duration::from_secs(5));
        assert_eq!(s.timeout, Duration::from_secs(2));
        assert_eq!((s.healthy_threshold, s.unhealthy_threshold), (2, 2));
        assert!(s.accepts(302) && !s.accepts(500));
    }

    #[test]
    fn thresholds_count_consecutive_results() {
        let s = HealthSettings {
            healthy_threshold: 2,
            unhealthy_threshold: 3,
            ..HealthSettings::from_proto(None)
        };
        let fail = Outcome::Fail("x".into());
        let mut streak = Streak::default();
        assert_eq!(streak.observe(Health::Initial, &Outcome::Pass, &s), None);
        assert_eq!(
            streak.observe(Health::Initial, &fail, &s),
            None,
            "a failure resets the passes"
        );
        assert_eq!(streak.observe(Health::Initial, &Outcome::Pass, &s), None);
        assert_eq!(
            streak.observe(Health::Initial, &Outcome::Pass, &s),
            Some(Health::Healthy)
        );
        assert_eq!(streak.observe(Health::Healthy, &fail, &s), None);
        assert_eq!(streak.observe(Health::Healthy, &fail, &s), None);
        assert_eq!(
            streak.observe(Health::Healthy, &fail, &s),
            Some(Health::Unhealthy)
        );
        // Ejected passively while healthy: the next passes start a fresh count.
        let mut streak = Streak::default();
        assert_eq!(streak.observe(Health::Healthy, &Outcome::Pass, &s), None);
        assert_eq!(streak.observe(Health::Unhealthy, &Outcome::Pass, &s), None);
        assert_eq!(
            streak.observe(Health::Unhealthy, &Outcome::Pass, &s),
            Some(Health::Healthy)
        );
    }
}
