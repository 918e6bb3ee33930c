//! `berth bench fleet`: the real control plane in a child process (its embedded store in a temp dir, gRPC on
//! 127.0.0.1:0) and N simulated agents on real agent streams. It creates S services of T tasks
//! each and measures, end to end, how long until every task is reported RUNNING, what the API
//! answers meanwhile, what the control plane costs, and how fast it heals and rolls.

mod child;
mod phases;
mod probe;
mod quality;
mod report;
mod sim;

use anyhow::{bail, Context};
use clap::Args;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use report::Report;

#[derive(Debug, Args)]
pub struct BenchFleetArgs {
    /// Simulated agents (nodes).
    #[arg(long, default_value_t = 1_000)]
    pub nodes: usize,
    /// Services, created one after another as fast as the API takes them.
    #[arg(long, default_value_t = 100)]
    pub services: usize,
    /// Desired count of each service.
    #[arg(long, default_value_t = 100)]
    pub tasks_per_service: usize,
    /// The service rolled to a new revision once the fleet has converged (0: skip).
    #[arg(long, default_value_t = 1_000)]
    pub rolling_tasks: usize,
    /// Give up on any phase after this long.
    #[arg(long, default_value = "600s", value_parser = super::super::flags::parse_duration)]
    pub timeout: Duration,
    /// At the end, restart the control plane on its store and time it: until it serves, until
    /// its first API call answers, until every agent has reconnected.
    #[arg(long)]
    pub restart: bool,
    /// Internal: run only the control plane, on this data dir, for the bench that started it.
    #[arg(long, hide = true)]
    pub serve_control_plane: Option<std::path::PathBuf>,
    /// Internal: the gRPC port the control plane child listens on (0: any).
    #[arg(long, hide = true, default_value_t = 0)]
    pub serve_port: u16,
}

/// What the bench ran against.
pub struct Bench {
    pub cp: child::ControlPlane,
    pub channel: tonic::transport::Channel,
    pub agents: Vec<sim::Agent>,
    pub counters: Arc<sim::Counters>,
    pub services: Vec<String>,
    pub args: BenchFleetArgs,
    pub started: Instant,
    pub phase: tokio::sync::watch::Sender<&'static str>,
}

/// How long a node may be gone before its tasks are replaced, in the bench.
pub const LOST_NODE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a task must run before it counts as healthy, in the bench.
pub const MIN_HEALTHY_TIME: Duration = Duration::from_secs(2);

pub async fn run(args: BenchFleetArgs, output: crate::output::Format) -> anyhow::Result<()> {
    if let Some(dir) = &args.serve_control_plane {
        return child::serve(dir.clone(), args.serve_port).await;
    }
    let report = bench(args).await?;
    match output {
        crate::output::Format::Json => crate::output::json(&report)?,
        crate::output::Format::Table => report.print(),
    }
    if !report.converged || !report.quality.ok() {
        bail!("the fleet did not converge, or placement broke a bound (see above)");
    }
    Ok(())
}

/// Runs every phase and returns the figures.
pub async fn bench(args: BenchFleetArgs) -> anyhow::Result<Report> {
    berth_core::limits::check_fleet(args.nodes, args.services, args.tasks_per_service)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if args.nodes == 0 || args.services == 0 || args.tasks_per_service == 0 {
        bail!("--nodes, --services and --tasks-per-service must each be at least 1");
    }
    let dir = std::env::temp_dir().join(format!("berth-bench-fleet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cp = child::ControlPlane::start(&dir, 0).context("starting the control plane")?;
    let url = cp.url.clone();
    let counters = Arc::new(sim::Counters::default());
    let (phase, phase_rx) = tokio::sync::watch::channel("connecting agents");
    counters.control_plane_pid.store(cp.pid, Ordering::Relaxed);
    let progress = tokio::spawn(progress(counters.clone(), phase_rx, args.total()));
    let result = async {
        let agents = sim::start(&url, args.nodes, counters.clone()).await?;
        let channel = tonic::transport::Channel::from_shared(url.clone())?
            .connect()
            .await?;
        let mut b = Bench {
            cp,
            channel,
            agents,
            counters,
            services: Vec::new(),
            args,
            started: Instant::now(),
            phase,
        };
        let report = phases::all(&mut b, &dir).await;
        // The agents go first: otherwise each would report the control plane gone.
        b.agents.iter().for_each(sim::Agent::kill);
        b.cp.shutdown();
        report
    }
    .await;
    progress.abort();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

impl BenchFleetArgs {
    pub fn total(&self) -> usize {
        self.services * self.tasks_per_service
    }
}

/// One line to stderr every two seconds.
async fn progress(
    counters: Arc<sim::Counters>,
    phase: tokio::sync::watch::Receiver<&'static str>,
    total: usize,
) {
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tick.tick().await;
        let (_, rss) = probe::rss_mib(counters.control_plane_pid.load(Ordering::Relaxed));
        eprintln!(
            "[{:>6.1}s] {:<28} agents {:>6} · running {:>8}/{total} · reports {:>8} · control plane rss {:>6.0} MiB",
            start.elapsed().as_secs_f64(),
            *phase.borrow(),
            counters.connected.load(Ordering::Relaxed),
            counters.running.load(Ordering::Relaxed),
            counters.reports.load(Ordering::Relaxed),
            rss,
        );
    }
}

/// 0: spread over zones and nodes; 1: binpack; 2: distinctInstance; 3: memberOf.
pub fn kind(i: usize, b: &Bench) -> usize {
    let distinct_fits = b.args.tasks_per_service <= b.args.nodes * 9 / 10;
    match i % 4 {
        2 if !distinct_fits => 0,
        k => k,
    }
}
