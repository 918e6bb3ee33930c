//! Who calls whom, as a node's Service Connect proxy sees it: each request (or TCP connection)
//! is counted by the service it went to and the caller, named from the client's address by the
//! table's `connect_callers` (the tasks of Service Connect services on a task network), else the
//! address itself. The counters go up with the health reports (`ConnectCount`).

use arc_swap::ArcSwap;
use berth_proto::v1::{ConnectCaller, ConnectCount};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Distinct callers kept per proxy at most: a flood of addresses cannot grow it without bound.
const MAX_PAIRS: usize = 4096;

#[derive(Default)]
pub(crate) struct Calls {
    callers: ArcSwap<HashMap<IpAddr, String>>,
    /// (service ARN, caller) → (requests, errors).
    counts: Mutex<HashMap<(String, String), (u64, u64)>>,
}

impl Calls {
    /// The callers' addresses from a new table.
    pub fn set_callers(&self, callers: &[ConnectCaller]) {
        let map = callers
            .iter()
            .filter_map(|c| Some((c.address.parse().ok()?, c.service_name.clone())))
            .collect();
        self.callers.store(Arc::new(map));
    }

    pub fn record(&self, service_arn: &str, peer: IpAddr, error: bool) {
        let caller = self
            .callers
            .load()
            .get(&peer.to_canonical())
            .cloned()
            .unwrap_or_else(|| peer.to_canonical().to_string());
        let Ok(mut counts) = self.counts.lock() else {
            return;
        };
        let key = (service_arn.to_string(), caller);
        if counts.len() >= MAX_PAIRS && !counts.contains_key(&key) {
            return;
        }
        let c = counts.entry(key).or_default();
        c.0 += 1;
        c.1 += u64::from(error);
    }

    /// Every pair's counters since the proxy started.
    pub fn totals(&self) -> Vec<ConnectCount> {
        let Ok(counts) = self.counts.lock() else {
            return Vec::new();
        };
        let mut out: Vec<ConnectCount> = counts
            .iter()
            .map(|((service_arn, caller), (requests, errors))| ConnectCount {
                service_arn: service_arn.clone(),
                caller: caller.clone(),
                requests_total: *requests,
                errors_total: *errors,
            })
            .collect();
        out.sort_by(|a, b| (&a.service_arn, &a.caller).cmp(&(&b.service_arn, &b.caller)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_by_the_callers_service_else_its_address() {
        let calls = Calls::default();
        calls.set_callers(&[ConnectCaller {
            address: "10.0.0.5".into(),
            service_name: "web".into(),
        }]);
        let web: IpAddr = "10.0.0.5".parse().unwrap();
        let other: IpAddr = "10.0.0.9".parse().unwrap();
        calls.record("api", web, false);
        calls.record("api", web, true);
        calls.record("api", other, false);
        let t = calls.totals();
        assert_eq!(t.len(), 2);
        assert_eq!(
            (t[0].caller.as_str(), t[0].requests_total, t[0].errors_total),
            ("10.0.0.9", 1, 0)
        );
        assert_eq!(
            (t[1].caller.as_str(), t[1].requests_total, t[1].errors_total),
            ("web", 2, 1)
        );
    }
}
