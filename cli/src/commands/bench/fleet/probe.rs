//! API latency while the fleet converges: DescribeService, ListTasks (one service's tasks) and
//! RunTask (one standalone task), called one after another over one client connection, as an
//! operator's tooling would while a deployment runs.

use berth_proto::v1::services_client::ServicesClient;
use berth_proto::v1::tasks_client::TasksClient;
use berth_proto::v1::*;
use serde::Serialize;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tonic::transport::Channel;

/// Latencies of one API, in milliseconds.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Latency {
    pub calls: usize,
    pub errors: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    fn of(mut samples: Vec<Duration>, errors: usize) -> Self {
        samples.sort();
        let at = |p: f64| {
            samples
                .get(((samples.len() as f64 * p) as usize).min(samples.len().saturating_sub(1)))
                .map_or(0.0, |d| d.as_secs_f64() * 1e3)
        };
        Self {
            calls: samples.len(),
            errors,
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            max_ms: samples.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
        }
    }
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiLatency {
    pub describe_services: Latency,
    pub list_tasks: Latency,
    pub run_task: Latency,
}

/// Runs `probe` as a separate client would: on a thread and runtime of its own, over a
/// connection of its own. On the bench's runtime a call's reply waited behind the ten thousand
/// simulated agents' tasks before the probe saw it, and the figure measured the simulator.
pub fn apart(
    url: String,
    services: Vec<String>,
    family: String,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<tokio::sync::oneshot::Receiver<anyhow::Result<ApiLatency>>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("berth-bench-probe".into())
        .spawn(move || {
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| {
                    rt.block_on(async {
                        let channel = Channel::from_shared(url)?.connect().await?;
                        Ok(probe(channel, services, family, stop).await)
                    })
                });
            let _ = tx.send(result);
        })?;
    Ok(rx)
}

/// Calls the three APIs in turn until `stop` turns true; RunTask every fourth round.
pub async fn probe(
    channel: Channel,
    services: Vec<String>,
    family: String,
    mut stop: watch::Receiver<bool>,
) -> ApiLatency {
    let mut svc = ServicesClient::new(channel.clone()).max_decoding_message_size(256 << 20);
    let mut tasks = TasksClient::new(channel).max_decoding_message_size(256 << 20);
    let (mut d, mut l, mut r) = (Vec::new(), Vec::new(), Vec::new());
    let (mut de, mut le, mut re) = (0, 0, 0);
    let mut round = 0usize;
    let mut found = false;
    while !*stop.borrow() {
        let name = services[round % services.len()].clone();
        let t = Instant::now();
        let res = svc
            .describe_service(DescribeServiceRequest {
                cluster: String::new(),
                service: name.clone(),
            })
            .await;
        match &res {
            // The probe starts with the first CreateService: a service not made yet is not an
            // error of the API, so calls count once the first one is found.
            Err(e) if e.code() == tonic::Code::NotFound && !found => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            Err(e) => {
                tracing::warn!(service = %name, error = %e.message(), "DescribeServices failed");
                de += 1;
            }
            Ok(_) => found = true,
        }
        d.push(t.elapsed());
        let t = Instant::now();
        let res = tasks
            .list_tasks(ListTasksRequest {
                service_name: name,
                ..Default::default()
            })
            .await;
        l.push(t.elapsed());
        le += usize::from(res.is_err());
        if round.is_multiple_of(4) {
            let t = Instant::now();
            let res = tasks
                .run_task(RunTaskRequest {
                    task_definition: family.clone(),
                    count: 1,
                    group: "bench-probe".into(),
                    ..Default::default()
                })
                .await;
            r.push(t.elapsed());
            re += usize::from(res.map_or(true, |r| !r.get_ref().failures.is_empty()));
        }
        round += 1;
        // Paced, so the probe measures the API rather than becoming the load.
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = stop.changed() => {}
        }
    }
    ApiLatency {
        describe_services: Latency::of(d, de),
        list_tasks: Latency::of(l, le),
        run_task: Latency::of(r, re),
    }
}

/// A process's peak and current resident set, in MiB (Linux `/proc/PID/status`; 0 for this
/// process).
pub fn rss_mib(pid: u32) -> (f64, f64) {
    let path = match pid {
        0 => "/proc/self/status".to_string(),
        pid => format!("/proc/{pid}/status"),
    };
    let status = std::fs::read_to_string(path).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Bytes under `dir`, recursively.
pub fn disk_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
