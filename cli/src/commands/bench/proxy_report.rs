//! What `berth bench proxy` prints: for each load (HTTP; HTTPS keep-alive; HTTPS with a new
//! handshake per request), each proxy's rounds and medians, and Berth's ratios to each peer, as
//! a table or (`-o json`) one object.

use super::tls::SETTINGS as TLS_SETTINGS;
use super::wrk::{Load, WrkResult};
use crate::output::{self, Format};
use serde::Serialize;
use std::time::Duration;

/// How the proxies were loaded.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub wrk_threads: u32,
    pub wrk_connections: u32,
    pub duration_seconds: f64,
    /// nginx worker processes, HAProxy threads, Berth worker threads.
    pub workers: usize,
    pub cores: usize,
    pub rounds: u32,
}

/// One proxy's runs under one load.
pub struct Measured {
    pub load: Load,
    pub name: &'static str,
    pub rounds: Vec<WrkResult>,
}

impl Measured {
    fn median(&self) -> WrkResult {
        WrkResult::median(self.rounds.iter())
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Figures {
    requests_per_sec: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu_user_us_per_request: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu_system_us_per_request: Option<f64>,
    non_2xx_3xx: u64,
    socket_errors: u64,
}

impl From<&WrkResult> for Figures {
    fn from(r: &WrkResult) -> Self {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        Figures {
            requests_per_sec: r.requests_per_sec,
            p50_ms: ms(r.p50),
            p90_ms: ms(r.p90),
            p99_ms: ms(r.p99),
            cpu_user_us_per_request: r.cpu_per_request.map(|c| us(c.user)),
            cpu_system_us_per_request: r.cpu_per_request.map(|c| us(c.system)),
            non_2xx_3xx: r.non_2xx_3xx,
            socket_errors: r.socket_errors,
        }
    }
}

/// `of`'s figures divided by `to`'s (above 1: more requests, or slower, or more CPU).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Ratio {
    of: &'static str,
    to: &'static str,
    requests_per_sec: Option<f64>,
    p50: Option<f64>,
    p90: Option<f64>,
    p99: Option<f64>,
    cpu_per_request: Option<f64>,
}

fn ratio(of: &'static str, a: &WrkResult, to: &'static str, b: &WrkResult) -> Ratio {
    let div = |x: f64, y: f64| (y > 0.0).then(|| x / y);
    let secs = |d: Duration| d.as_secs_f64();
    let cpu = |r: &WrkResult| r.cpu_per_request.map(|c| secs(c.user + c.system));
    Ratio {
        of,
        to,
        requests_per_sec: div(a.requests_per_sec, b.requests_per_sec),
        p50: div(secs(a.p50), secs(b.p50)),
        p90: div(secs(a.p90), secs(b.p90)),
        p99: div(secs(a.p99), secs(b.p99)),
        cpu_per_request: cpu(a).zip(cpu(b)).and_then(|(x, y)| div(x, y)),
    }
}

/// One load's runs with Berth's ratios to each peer; the last of `measured` is Berth's.
struct Group<'a> {
    load: Load,
    measured: Vec<&'a Measured>,
    ratios: Vec<Ratio>,
}

/// `measured` by load, in the order the loads first appear.
fn groups(measured: &[Measured]) -> Vec<Group<'_>> {
    let mut loads: Vec<Load> = Vec::new();
    for m in measured {
        if !loads.contains(&m.load) {
            loads.push(m.load);
        }
    }
    loads
        .into_iter()
        .map(|load| {
            let measured: Vec<&Measured> = measured.iter().filter(|m| m.load == load).collect();
            let ratios = match measured.split_last() {
                Some((berth, peers)) => {
                    let berth_median = berth.median();
                    peers
                        .iter()
                        .map(|p| ratio(berth.name, &berth_median, p.name, &p.median()))
                        .collect()
                }
                None => Vec::new(),
            };
            Group {
                load,
                measured,
                ratios,
            }
        })
        .collect()
}

/// The report: per load, each proxy's rounds and medians and Berth's ratios to the others.
pub fn print(settings: &Settings, measured: &[Measured], format: Format) -> anyhow::Result<()> {
    let groups = groups(measured);
    if format == Format::Json {
        return output::json(&json(settings, &groups));
    }
    print_table(settings, &groups);
    Ok(())
}

/// HTTP's figures as `proxies` and `ratios` (as before HTTPS was measured), HTTPS's under
/// `https`: its TLS settings, then `keepAlive` and `newHandshake`, each with both.
fn json(settings: &Settings, groups: &[Group<'_>]) -> serde_json::Value {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Proxy {
        name: &'static str,
        median: Figures,
        rounds: Vec<Figures>,
    }
    let figures = |g: &Group<'_>| {
        let proxies: Vec<Proxy> = g
            .measured
            .iter()
            .map(|m| Proxy {
                name: m.name,
                median: Figures::from(&m.median()),
                rounds: m.rounds.iter().map(Figures::from).collect(),
            })
            .collect();
        serde_json::json!({ "proxies": proxies, "ratios": g.ratios })
    };
    let mut report = serde_json::json!({ "settings": settings });
    let mut https = serde_json::Map::new();
    for g in groups {
        let value = figures(g);
        if g.load == Load::Http {
            report["proxies"] = value["proxies"].clone();
            report["ratios"] = value["ratios"].clone();
        } else {
            https.insert(g.load.key().into(), value);
        }
    }
    if !https.is_empty() {
        https.insert("tls".into(), TLS_SETTINGS.into());
        report["https"] = https.into();
    }
    report
}

fn print_table(settings: &Settings, groups: &[Group<'_>]) {
    let names: Vec<&str> = groups
        .first()
        .map(|g| g.measured.iter().map(|m| m.name).collect())
        .unwrap_or_default();
    let loads: Vec<&str> = groups.iter().map(|g| g.load.key()).collect();
    crate::outln!(
        "berth bench proxy: wrk -t{} -c{} -d{}s --latency, two local backends, {w} nginx worker \
         processes / {w} HAProxy threads / {w} Berth worker threads, wrk + proxy + backends on \
         {} cores, {} rounds (each: {} in turn, for {})",
        settings.wrk_threads,
        settings.wrk_connections,
        settings.duration_seconds,
        settings.cores,
        settings.rounds,
        names.join(", "),
        loads.join(", then "),
        w = settings.workers,
    );
    if groups.iter().any(|g| g.load != Load::Http) {
        crate::outln!("HTTPS: {TLS_SETTINGS}");
    }
    crate::outln!(
        "{:<16} {:>11} {:>9} {:>9} {:>9} {:>15} {:>12} {:>14}",
        "proxy",
        "req/s",
        "p50",
        "p90",
        "p99",
        "cpu/req usr+sys",
        "non-2xx/3xx",
        "socket errors"
    );
    let row = |name: &str, r: &WrkResult| {
        let cpu = r.cpu_per_request.map_or("-".into(), |c| {
            let us = |d: Duration| d.as_secs_f64() * 1e6;
            format!("{:.1}+{:.1}us", us(c.user), us(c.system))
        });
        crate::outln!(
            "{:<16} {:>11.1} {:>9} {:>9} {:>9} {:>15} {:>12} {:>14}",
            name,
            r.requests_per_sec,
            ms(r.p50),
            ms(r.p90),
            ms(r.p99),
            cpu,
            r.non_2xx_3xx,
            r.socket_errors
        );
    };
    let several = settings.rounds > 1;
    let x = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}x"));
    for g in groups {
        crate::outln!("{}:", g.load.title());
        if several {
            for m in &g.measured {
                for (i, r) in m.rounds.iter().enumerate() {
                    row(&format!("{} #{}", m.name, i + 1), r);
                }
            }
        }
        for m in &g.measured {
            let label = if several {
                format!("{} median", m.name)
            } else {
                m.name.to_string()
            };
            row(&label, &m.median());
        }
        for r in &g.ratios {
            crate::outln!(
                "{:<16} {:>11} {:>9} {:>9} {:>9} {:>15}",
                format!("{}/{}", r.of, r.to),
                x(r.requests_per_sec),
                x(r.p50),
                x(r.p90),
                x(r.p99),
                x(r.cpu_per_request),
            );
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2}ms", d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_divide_berth_by_the_peer_and_skip_a_zero() {
        let peer = WrkResult {
            requests_per_sec: 100.0,
            p50: Duration::from_millis(2),
            ..Default::default()
        };
        let berth = WrkResult {
            requests_per_sec: 150.0,
            p50: Duration::from_millis(1),
            ..Default::default()
        };
        let r = ratio("berth", &berth, "haproxy", &peer);
        assert_eq!(r.requests_per_sec, Some(1.5));
        assert_eq!(r.p50, Some(0.5));
        assert_eq!(r.p90, None, "a zero latency divides nothing");
        assert_eq!(r.cpu_per_request, None);
    }
}
