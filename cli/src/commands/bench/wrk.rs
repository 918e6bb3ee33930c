//! Running `wrk` against one proxy and reading its report.

use super::cpu::{cpu_time, Counted, CpuTime};
use super::BenchProxyArgs;
use anyhow::{bail, Context};
use std::path::Path;
use std::time::Duration;

/// How wrk loads a proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// Plain HTTP, keep-alive.
    Http,
    /// HTTPS, keep-alive: one handshake per connection, then requests.
    HttpsKeepAlive,
    /// HTTPS with `Connection: close`: a new TCP connection and full TLS handshake per request.
    HttpsNewHandshake,
}

impl Load {
    /// The report's key (JSON) for this load.
    pub fn key(self) -> &'static str {
        match self {
            Load::Http => "http",
            Load::HttpsKeepAlive => "keepAlive",
            Load::HttpsNewHandshake => "newHandshake",
        }
    }

    /// The report's title for this load.
    pub fn title(self) -> &'static str {
        match self {
            Load::Http => "HTTP, keep-alive",
            Load::HttpsKeepAlive => "HTTPS, keep-alive (one handshake per connection)",
            Load::HttpsNewHandshake => {
                "HTTPS, a new connection and full handshake per request (-H 'Connection: close')"
            }
        }
    }

    fn https(self) -> bool {
        self != Load::Http
    }
}

/// What wrk reports for one run.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct WrkResult {
    pub requests_per_sec: f64,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub non_2xx_3xx: u64,
    pub socket_errors: u64,
    /// The proxy's CPU time per request (user, system), where `/proc` shows it.
    pub cpu_per_request: Option<CpuTime>,
}

impl WrkResult {
    /// The median of each figure on its own (the upper middle one for an even count); errors are
    /// summed, so none is hidden.
    pub fn median<'a>(runs: impl Iterator<Item = &'a WrkResult> + Clone) -> WrkResult {
        fn mid<T: PartialOrd + Copy>(mut v: Vec<T>) -> T {
            v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
            v[v.len() / 2]
        }
        let runs: Vec<&WrkResult> = runs.collect();
        if runs.is_empty() {
            return WrkResult::default();
        }
        WrkResult {
            requests_per_sec: mid(runs.iter().map(|r| r.requests_per_sec).collect()),
            p50: mid(runs.iter().map(|r| r.p50).collect()),
            p90: mid(runs.iter().map(|r| r.p90).collect()),
            p99: mid(runs.iter().map(|r| r.p99).collect()),
            non_2xx_3xx: runs.iter().map(|r| r.non_2xx_3xx).sum(),
            socket_errors: runs.iter().map(|r| r.socket_errors).sum(),
            cpu_per_request: runs
                .iter()
                .map(|r| r.cpu_per_request)
                .collect::<Option<Vec<_>>>()
                .map(|cpu| CpuTime {
                    user: mid(cpu.iter().map(|c| c.user).collect()),
                    system: mid(cpu.iter().map(|c| c.system).collect()),
                }),
        }
    }
}

/// A warm-up run, then the measured one, with the CPU time `counted` used meanwhile.
pub async fn measure(
    wrk: &Path,
    args: &BenchProxyArgs,
    load: Load,
    port: u16,
    counted: Counted,
) -> anyhow::Result<WrkResult> {
    if !args.warmup.is_zero() {
        run_wrk(wrk, args, load, args.warmup, port).await?;
    }
    let before = cpu_time(counted);
    let mut result = run_wrk(wrk, args, load, args.duration, port).await?;
    let requests = result.requests_per_sec * args.duration.as_secs().max(1) as f64;
    if let (Some(before), Some(after)) = (before, cpu_time(counted)) {
        if requests >= 1.0 {
            let used = after.since(before);
            result.cpu_per_request = Some(CpuTime {
                user: used.user.div_f64(requests),
                system: used.system.div_f64(requests),
            });
        }
    }
    Ok(result)
}

async fn run_wrk(
    wrk: &Path,
    args: &BenchProxyArgs,
    load: Load,
    duration: Duration,
    port: u16,
) -> anyhow::Result<WrkResult> {
    let secs = duration.as_secs().max(1);
    let mut command = tokio::process::Command::new(wrk);
    command
        .arg(format!("-t{}", args.threads))
        .arg(format!("-c{}", args.connections))
        .arg(format!("-d{secs}s"))
        .arg("--latency");
    if load == Load::HttpsNewHandshake {
        command.args(["-H", "Connection: close"]);
    }
    let scheme = if load.https() { "https" } else { "http" };
    let out = command
        .arg(format!("{scheme}://127.0.0.1:{port}/"))
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .context("running wrk")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "wrk failed ({}): {}{}",
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse_wrk(&stdout).with_context(|| format!("unexpected wrk output:\n{stdout}"))
}

fn parse_wrk(out: &str) -> anyhow::Result<WrkResult> {
    let mut r = WrkResult::default();
    let mut seen_rps = false;
    for line in out.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            r.requests_per_sec = v.trim().parse().context("Requests/sec")?;
            seen_rps = true;
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            r.non_2xx_3xx = v.trim().parse().context("Non-2xx or 3xx responses")?;
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            r.socket_errors = v
                .split(',')
                .filter_map(|part| part.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum();
        } else if let Some((pct, value)) = line.split_once('%') {
            let slot = match pct.trim() {
                "50" => &mut r.p50,
                "90" => &mut r.p90,
                "99" => &mut r.p99,
                _ => continue,
            };
            *slot = parse_latency(value.trim())
                .with_context(|| format!("latency {:?}", value.trim()))?;
        }
    }
    if !seen_rps {
        bail!("no Requests/sec line");
    }
    Ok(r)
}

/// wrk's latency format: `850.00us`, `1.10ms`, `1.02s`, `2.00m`.
fn parse_latency(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = s.split_at(split);
    let n: f64 = n.parse().ok()?;
    let nanos_per_unit = match unit {
        "us" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        _ => return None,
    };
    let nanos = (n * nanos_per_unit).round();
    (nanos >= 0.0 && nanos < u64::MAX as f64).then(|| Duration::from_nanos(nanos as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Running 10s test @ http://127.0.0.1:8080/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.23ms  456.78us  12.34ms   78.90%
    Req/Sec    25.67k     1.23k   28.90k    70.00%
  Latency Distribution
     50%  850.00us
     75%    1.40ms
     90%    1.80ms
     99%    3.20ms
  511234 requests in 10.00s, 60.12MB read
  Non-2xx or 3xx responses: 12
  Socket errors: connect 0, read 3, write 0, timeout 1
Requests/sec:  51100.12
Transfer/sec:      6.01MB
";

    #[test]
    fn wrk_output_parses() {
        let r = parse_wrk(SAMPLE).unwrap();
        assert_eq!(r.requests_per_sec, 51100.12);
        assert_eq!(r.p50, Duration::from_micros(850));
        assert_eq!(r.p90, Duration::from_micros(1800));
        assert_eq!(r.p99, Duration::from_micros(3200));
        assert_eq!(r.non_2xx_3xx, 12);
        assert_eq!(r.socket_errors, 4);
    }

    #[test]
    fn the_median_takes_each_figure_on_its_own() {
        let run = |rps: f64, p50: u64| WrkResult {
            requests_per_sec: rps,
            p50: Duration::from_micros(p50),
            socket_errors: 1,
            ..Default::default()
        };
        let runs = [run(3.0, 100), run(1.0, 300), run(2.0, 200)];
        let m = WrkResult::median(runs.iter());
        assert_eq!(m.requests_per_sec, 2.0);
        assert_eq!(m.p50, Duration::from_micros(200));
        assert_eq!(m.socket_errors, 3);
    }

    #[test]
    fn output_without_a_rate_is_an_error() {
        assert!(parse_wrk("unable to connect to 127.0.0.1:1 Connection refused").is_err());
    }
}
