//! The proxy's `/metrics` families and the totals it reports to the control plane: a
//! `prometheus-client` collector that reads the counters of the current routing table's services
//! and targets and of the listeners when scraped, for the process's one registry.

use crate::counters::{family, ListenerStats, BUCKETS_US};
use crate::table::Service;
use crate::target::Target;
use crate::Shared;
use berth_proto::v1::{RevisionCount, ServiceRequestCount};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// The proxy's families for the registry, read from the current routing table and the listener
/// list when scraped.
pub(crate) struct ProxyMetrics(pub Arc<Shared>);

impl std::fmt::Debug for ProxyMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProxyMetrics")
    }
}

/// `cluster`, `service` and `listener_port` of one service's listener, and during a traffic
/// shift its `revision` (and `route="test"` for the test route).
type ServiceLabels<'a> = Vec<(&'static str, &'a str)>;
/// A service's labels, then `target` and `task`.
type TargetLabels<'a> = (&'a [(&'static str, &'a str)], [(&'static str, &'a str); 2]);

impl Collector for ProxyMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let snapshot = self.0.snapshot.load_full();
        let mut seen = HashSet::new();
        let services: Vec<&Arc<Service>> = snapshot
            .services()
            .filter(|s| seen.insert(Arc::as_ptr(s)))
            .collect();
        let ports: Vec<String> = services.iter().map(|s| s.port.to_string()).collect();
        let labels: Vec<ServiceLabels> = services
            .iter()
            .zip(&ports)
            .map(|(s, port)| {
                let mut l = vec![
                    ("cluster", s.cluster.as_str()),
                    ("service", s.name.as_str()),
                    ("listener_port", port.as_str()),
                ];
                if !s.revision.is_empty() {
                    l.push(("revision", s.revision.as_str()));
                }
                if s.header.is_some() {
                    l.push(("route", "test"));
                }
                l
            })
            .collect();
        let mut requests = family(
            &mut encoder,
            "berth_proxy_requests",
            "Requests answered per service, by status class (the proxy's own 502/503/504 included).",
            MetricType::Counter,
        )?;
        for (s, l) in services.iter().zip(&labels) {
            s.stats.responses.encode(&mut requests, l.as_slice())?;
        }
        encode_targets(&mut encoder, &services, &labels)?;
        encode_listeners(&self.0, &mut encoder)
    }
}

/// Each target with its service's labels.
fn targets<'a>(
    services: &'a [&'a Arc<Service>],
    labels: &'a [ServiceLabels<'a>],
) -> impl Iterator<Item = (&'a Target, TargetLabels<'a>)> {
    services.iter().zip(labels).flat_map(|(s, l)| {
        s.targets.targets.iter().map(move |t| {
            let own = [
                ("target", t.authority.as_str()),
                ("task", t.key.task_arn.as_str()),
            ];
            (t.as_ref(), (l.as_slice(), own))
        })
    })
}

fn encode_targets(
    encoder: &mut DescriptorEncoder,
    services: &[&Arc<Service>],
    labels: &[ServiceLabels],
) -> std::fmt::Result {
    let mut f = family(
        encoder,
        "berth_proxy_target_requests",
        "Requests sent to each target, by the status class of the answer.",
        MetricType::Counter,
    )?;
    for (t, l) in targets(services, labels) {
        t.metrics.responses.encode(&mut f, l)?;
    }
    let mut f = family(
        encoder,
        "berth_proxy_target_response_seconds",
        "Time from forwarding a request to the target's response headers.",
        MetricType::Histogram,
    )?;
    for (t, l) in targets(services, labels) {
        t.metrics.latency.encode(&mut f, l)?;
    }
    let mut f = family(
        encoder,
        "berth_proxy_target_in_flight",
        "Requests (and upgraded connections) in flight to each target.",
        MetricType::Gauge,
    )?;
    for (t, l) in targets(services, labels) {
        f.encode_family(&l)?.encode_gauge(&(t.in_flight() as i64))?;
    }
    let mut f = family(
        encoder,
        "berth_proxy_target_state",
        "1 for each target's current state (INITIAL, HEALTHY, UNHEALTHY, DRAINING).",
        MetricType::Gauge,
    )?;
    for (t, l) in targets(services, labels) {
        let state = if t.is_draining() {
            "DRAINING"
        } else {
            t.health().as_str()
        };
        f.encode_family(&(l, [("state", state)]))?
            .encode_gauge(&1i64)?;
    }
    Ok(())
}

/// Requests answered per service since start, for the control plane's auto scaling: the same
/// counters `/metrics` shows, summed over the service's listener ports.
pub(crate) fn request_totals(shared: &Shared) -> Vec<ServiceRequestCount> {
    let snapshot = shared.snapshot.load_full();
    let mut seen = HashSet::new();
    let mut totals: Vec<ServiceRequestCount> = Vec::new();
    for s in snapshot.services() {
        if !seen.insert(Arc::as_ptr(&s.stats)) {
            continue;
        }
        let n = s.stats.responses.total();
        match totals.iter_mut().find(|t| t.service_arn == s.arn) {
            Some(t) => t.requests_total += n,
            None => totals.push(ServiceRequestCount {
                service_arn: s.arn.clone(),
                requests_total: n,
            }),
        }
    }
    totals
}

/// The answers of each revision a traffic shift routes to, since its route appeared: summed over
/// its listener ports and over its test and production routes.
pub(crate) fn revision_totals(shared: &Shared) -> Vec<RevisionCount> {
    let snapshot = shared.snapshot.load_full();
    let mut seen = HashSet::new();
    let mut out: Vec<RevisionCount> = Vec::new();
    for s in snapshot.services().filter(|s| !s.revision.is_empty()) {
        if !seen.insert(Arc::as_ptr(&s.stats)) {
            continue;
        }
        let i = match out
            .iter()
            .position(|r| r.service_arn == s.arn && r.revision == s.revision)
        {
            Some(i) => i,
            None => {
                out.push(RevisionCount {
                    service_arn: s.arn.clone(),
                    revision: s.revision.clone(),
                    latency_buckets: vec![0; BUCKETS_US.len() + 1],
                    latency_bounds_us: BUCKETS_US.to_vec(),
                    ..Default::default()
                });
                out.len() - 1
            }
        };
        let r = &mut out[i];
        r.requests_total += s.stats.responses.total();
        r.errors_5xx_total += s.stats.responses.of_class(5);
        for (sum, n) in r.latency_buckets.iter_mut().zip(s.stats.latency.counts()) {
            *sum += n;
        }
    }
    out
}

/// A per-listener counter: its name, help, and how to read it from the listener's stats.
type ListenerCounter = (&'static str, &'static str, fn(&ListenerStats) -> u64);

/// Per listener port: open and accepted connections, those shed, and requests no rule matched.
fn encode_listeners(shared: &Shared, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
    let listeners: Vec<(String, Arc<ListenerStats>)> = match shared.listeners.lock() {
        Ok(l) => l.iter().map(|(p, s)| (p.to_string(), s.clone())).collect(),
        Err(_) => return Ok(()),
    };
    let port = |p: &String| [("listener_port", p.clone())];
    let mut f = family(
        encoder,
        "berth_proxy_active_connections",
        "Open client connections per listener port.",
        MetricType::Gauge,
    )?;
    for (p, stats) in &listeners {
        f.encode_family(&port(p))?
            .encode_gauge(&stats.active.load(Relaxed))?;
    }
    let counters: [ListenerCounter; 3] = [
        (
            "berth_proxy_connections",
            "Client connections accepted per listener port.",
            |s| s.accepted.load(Relaxed),
        ),
        (
            "berth_proxy_shed_connections",
            "Client connections closed on accept, over --lb-max-connections, per listener port.",
            |s| s.shed.load(Relaxed),
        ),
        (
            "berth_proxy_unmatched_requests",
            "Requests no rule matched (answered 404), per listener port.",
            |s| s.unmatched.load(Relaxed),
        ),
    ];
    for (name, help, read) in counters {
        let mut f = family(encoder, name, help, MetricType::Counter)?;
        for (p, stats) in &listeners {
            f.encode_family(&port(p))?
                .encode_counter::<NoLabelSet, _, u64>(&read(stats), None)?;
        }
    }
    Ok(())
}
