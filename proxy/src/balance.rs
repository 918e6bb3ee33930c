//! Choosing a target for one request: round robin over the available targets, or the available
//! target with the fewest requests in flight. Available means HEALTHY and not draining.

use crate::table::{Algorithm, Service};
use crate::target::{Target, TargetGuard};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

impl Service {
    /// The target a request's AWSALB cookie names, when stickiness is on and that target is
    /// available; otherwise the caller picks as usual.
    pub fn sticky_pick(&self, headers: &http::HeaderMap) -> Option<TargetGuard> {
        self.edge.sticky?;
        let token = crate::rules::sticky_cookie(headers)?;
        self.targets
            .targets
            .iter()
            .filter(|t| t.is_available())
            .find(|t| crate::rules::sticky_token(&self.arn, &t.key) == token)?
            .acquire()
    }

    /// A target for the next request, counted in flight; never `exclude` (the target a retry is
    /// moving away from). `None` when no target is available.
    pub fn pick(&self, exclude: Option<&Arc<Target>>) -> Option<TargetGuard> {
        let targets = &self.targets.targets;
        let n = targets.len();
        if n == 0 {
            return None;
        }
        let start = self.targets.next.local().fetch_add(1, Relaxed);
        let usable =
            |t: &&Arc<Target>| t.is_available() && exclude.is_none_or(|x| !Arc::ptr_eq(x, t));
        // Slow start: a target still ramping up passes a turn unless its share of this turn's
        // slot (spread by a multiplicative hash of the turn) says otherwise; when every target
        // passes, the ramp is ignored.
        let window = self.slow_start;
        let ramped = |t: &&Arc<Target>| {
            window.is_zero() || {
                let share = t.slow_start_share(window);
                let slot = (start as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54;
                share >= 1.0 || (slot as f64) < share * 1024.0
            }
        };
        let any_ramped = !window.is_zero() && targets.iter().filter(usable).any(|t| ramped(&t));
        let mut candidates = (0..n)
            .map(|i| &targets[(start.wrapping_add(i)) % n])
            .filter(|t| usable(t) && (!any_ramped || ramped(t)));
        match self.algorithm {
            Algorithm::RoundRobin => candidates.find_map(|t| t.acquire()),
            Algorithm::LeastOutstanding => {
                // Ties go to the round-robin order, so idle targets share the load.
                let best = candidates.min_by_key(|t| t.in_flight())?;
                best.acquire()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::health::HealthSettings;
    use crate::table::tests::service;
    use crate::table::{Algorithm, TargetSet};
    use crate::target::{Health, Target};
    use std::sync::Arc;

    fn with_targets(algorithm: Algorithm, n: usize) -> crate::table::Service {
        let (reporter, _rx) = crate::report::channel();
        let targets: Vec<Arc<Target>> = (0..n)
            .map(|i| {
                let t = Target::new(
                    "svc",
                    &berth_proto::v1::Target {
                        task_arn: format!("t{i}"),
                        address: "127.0.0.1".into(),
                        port: 1000 + i as i32,
                        draining: false,
                    },
                    reporter.clone(),
                    Health::Healthy,
                )
                .unwrap();
                t
            })
            .collect();
        let base = Arc::try_unwrap(service("s", 80, 0, &[], &[])).ok().unwrap();
        crate::table::Service {
            algorithm,
            targets: Arc::new(TargetSet {
                targets,
                source: Vec::new(),
                health: Arc::new(HealthSettings::from_proto(None)),
                next: Default::default(),
            }),
            ..base
        }
    }

    fn port_of(g: &crate::target::TargetGuard) -> u16 {
        g.key.port
    }

    #[test]
    fn round_robin_visits_every_available_target() {
        let s = with_targets(Algorithm::RoundRobin, 3);
        let ports: Vec<u16> = (0..6).map(|_| port_of(&s.pick(None).unwrap())).collect();
        assert_eq!(ports, [1000, 1001, 1002, 1000, 1001, 1002]);
        s.targets.targets[1].eject("Connection refused");
        s.targets.targets[2].set_draining(true);
        for _ in 0..4 {
            assert_eq!(port_of(&s.pick(None).unwrap()), 1000);
        }
        let only = s.targets.targets[0].clone();
        assert!(s.pick(Some(&only)).is_none(), "nothing else is available");
    }

    #[test]
    fn a_target_in_slow_start_gets_a_small_share_then_all_of_it() {
        let mut s = with_targets(Algorithm::RoundRobin, 2);
        s.slow_start = std::time::Duration::from_secs(600);
        // Target 1 has just become healthy: a few seconds into 600 its share is about 0.
        let t = &s.targets.targets[1];
        t.transition(Health::Healthy, Health::Unhealthy, "test");
        t.transition(Health::Unhealthy, Health::Healthy, "");
        let to_new = (0..200)
            .filter(|_| port_of(&s.pick(None).unwrap()) == 1001)
            .count();
        assert!(to_new <= 2, "the new target took {to_new} of 200");
        s.slow_start = std::time::Duration::ZERO;
        let to_new = (0..200)
            .filter(|_| port_of(&s.pick(None).unwrap()) == 1001)
            .count();
        assert_eq!(to_new, 100);
    }

    #[test]
    fn an_awsalb_cookie_keeps_a_client_on_its_available_target() {
        let mut s = with_targets(Algorithm::RoundRobin, 3);
        let mut headers = http::HeaderMap::new();
        let token = crate::rules::sticky_token(&s.arn, &s.targets.targets[2].key);
        headers.insert(
            http::header::COOKIE,
            format!("a=b; AWSALB={token}").parse().unwrap(),
        );
        assert!(s.sticky_pick(&headers).is_none(), "stickiness is off");
        s.edge.sticky = Some(std::time::Duration::from_secs(60));
        for _ in 0..5 {
            assert_eq!(port_of(&s.sticky_pick(&headers).unwrap()), 1002);
        }
        s.targets.targets[2].set_draining(true);
        assert!(
            s.sticky_pick(&headers).is_none(),
            "a draining target lets go"
        );
        assert!(s.sticky_pick(&http::HeaderMap::new()).is_none());
    }

    #[test]
    fn least_outstanding_prefers_the_idle_target() {
        let s = with_targets(Algorithm::LeastOutstanding, 2);
        let busy = s.pick(None).unwrap();
        let busy_port = port_of(&busy);
        for _ in 0..3 {
            let g = s.pick(None).unwrap();
            assert_ne!(port_of(&g), busy_port);
        }
    }
}
