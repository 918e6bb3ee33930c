//! The CPU of this node's running tasks, for auto scaling: sampled from the engine's counters in
//! a task of its own, so a slow engine never delays a heartbeat. Each heartbeat carries what the
//! last finished sample measured.

use crate::runtime::ContainerRuntime;
use berth_proto::agent::v1::TaskUsage;
use futures_util::FutureExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Samples are at least this far apart unless the server says how often it wants them.
const EVERY: Duration = Duration::from_secs(2);

/// Per task: CPU nanoseconds its containers had used, and when that was read.
type Seen = HashMap<String, (u64, Instant)>;

#[derive(Default)]
pub(crate) struct UsageSampler {
    seen: Seen,
    in_flight: Option<JoinHandle<(Vec<TaskUsage>, Seen)>>,
    last_start: Option<Instant>,
    /// The server's `usage_interval_ms`; None: `EVERY`.
    every: Option<Duration>,
}

impl UsageSampler {
    /// How often the server wants samples (its welcome's `usage_interval_ms`; 0: `EVERY`).
    pub fn set_interval(&mut self, ms: i32) {
        self.every = (ms > 0).then(|| Duration::from_millis(ms as u64));
    }

    /// What the sample that finished since the last call measured (empty if none), and starts
    /// the next sample of `running` (task ARN → its running containers' runtime ids) when due.
    pub fn poll<R: ContainerRuntime>(
        &mut self,
        rt: &Arc<R>,
        running: Vec<(String, Vec<String>)>,
    ) -> Vec<TaskUsage> {
        let mut usage = Vec::new();
        if let Some(h) = self.in_flight.take() {
            if !h.is_finished() {
                self.in_flight = Some(h);
                return usage;
            }
            if let Some(Ok((u, seen))) = h.now_or_never() {
                usage = u;
                self.seen = seen;
            }
        }
        if self
            .last_start
            .is_some_and(|t| t.elapsed() < self.every.unwrap_or(EVERY))
        {
            return usage;
        }
        self.last_start = Some(Instant::now());
        let (rt, before) = (rt.clone(), std::mem::take(&mut self.seen));
        self.in_flight = Some(tokio::spawn(sample(rt, running, before)));
        usage
    }
}

/// Reads every running task's CPU counters; a task's first reading only sets its baseline.
async fn sample<R: ContainerRuntime>(
    rt: Arc<R>,
    running: Vec<(String, Vec<String>)>,
    before: Seen,
) -> (Vec<TaskUsage>, Seen) {
    let mut usage = Vec::new();
    let mut seen = Seen::new();
    for (arn, ids) in running {
        let mut total = 0u64;
        for id in &ids {
            let read = tokio::time::timeout(Duration::from_secs(5), rt.cpu_usage_ns(id)).await;
            if let Ok(Ok(Some(ns))) = read {
                total += ns;
            }
        }
        let now = Instant::now();
        if let Some((prev, at)) = before.get(&arn) {
            let wall = now.duration_since(*at).as_nanos() as f64;
            if wall > 0.0 && total >= *prev {
                usage.push(TaskUsage {
                    task_arn: arn.clone(),
                    cpu_cores: (total - prev) as f64 / wall,
                });
            }
        }
        seen.insert(arn, (total, now));
    }
    (usage, seen)
}
