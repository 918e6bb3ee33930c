//! Applying what agents observe, in batches: reports from every agent stream go into one queue,
//! and each batch is one optimistic transaction (every task it reads is compared at commit), so
//! the store flushes once per batch rather than once per report. Observed fields only: status
//! forward, health, containers, timestamps, and the stop code when nobody asked for the stop. A
//! report from a node the task is not placed on, or one that would move status backwards,
//! changes nothing. A task that reaches STOPPED releases its claim on the node.

use crate::model::placement::apply;
use crate::model::tasks::{cluster_of_arn, task_id};
use crate::state::error::Result;
use crate::state::{keys, put, State, Tx};
use crate::store::Op;
use crate::time;
use berth_core::arn;
use berth_core::status::{self as st, TaskState, TaskStatus};
use berth_proto::agent::v1::TaskReport;
use berth_proto::v1::Task;
use std::collections::HashMap;
use tokio::sync::mpsc;

/// The most reports one transaction applies.
pub const MAX_BATCH: usize = 2_000;

/// One report, and the node whose agent sent it.
pub type Report = (String, TaskReport);

/// Applies one report on its own (tests and the wake-up bench).
pub fn apply_report(state: &State, node_id: &str, r: &TaskReport) -> Result<bool> {
    Ok(apply_reports(state, &[(node_id.to_string(), r.clone())])? > 0)
}

/// Applies a batch in one transaction; returns how many tasks changed. Reports of one task apply
/// in the order they came.
pub fn apply_reports(state: &State, batch: &[Report]) -> Result<usize> {
    let limit = state.store().max_txn_ops().max(2) / 2;
    let mut changed = 0;
    for part in batch.chunks(limit.min(MAX_BATCH)) {
        changed += state.update(|tx| {
            let mut tasks: HashMap<String, (Task, bool)> = HashMap::new();
            let mut order = Vec::new();
            let mut ops = Vec::new();
            for (node_id, r) in part {
                let Some(cluster) = cluster_of_arn(&r.task_arn) else {
                    continue;
                };
                let key = keys::task(cluster, task_id(&r.task_arn));
                if !tasks.contains_key(&key) {
                    let Some(t) = tx.get::<Task>(&key)? else {
                        continue;
                    };
                    tasks.insert(key.clone(), (t, false));
                    order.push(key.clone());
                }
                let (t, dirty) = tasks.get_mut(&key).expect("read above");
                if observe(tx, t, node_id, r, &mut ops)? {
                    *dirty = true;
                }
            }
            let mut n = 0;
            for key in order {
                if let Some((mut t, true)) = tasks.remove(&key) {
                    t.version += 1;
                    ops.push(put(key, &t));
                    n += 1;
                }
            }
            Ok((n, ops))
        })?;
    }
    Ok(changed)
}

/// Applies one report to the task as read in this transaction; `true` when it changed.
fn observe(
    tx: &mut Tx<'_>,
    t: &mut Task,
    node_id: &str,
    r: &TaskReport,
    ops: &mut Vec<Op>,
) -> Result<bool> {
    if t.container_instance_arn != arn::container_instance(node_id) || t.is_stopped() {
        return Ok(false);
    }
    let before = t.clone();
    if let Some(next) = TaskStatus::parse(&r.last_status) {
        st::advance(t, next);
    }
    if !r.health_status.is_empty() {
        t.health_status = r.health_status.clone();
    }
    if !r.containers.is_empty() {
        t.containers = r.containers.clone();
    }
    if t.started_at.is_empty() && !r.started_at.is_empty() {
        t.started_at = r.started_at.clone();
    }
    if t.last() >= TaskStatus::Stopping && t.stopping_at.is_empty() {
        t.stopping_at = time::now();
    }
    if t.is_stopped() {
        t.stopped_at = if r.stopped_at.is_empty() {
            time::now()
        } else {
            r.stopped_at.clone()
        };
        if t.stop_code.is_empty() {
            t.stop_code = r.stop_code.clone();
        }
        if t.stopped_reason.is_empty() {
            t.stopped_reason = r.stopped_reason.clone();
        }
        ops.extend(apply::release_ops(tx, t)?);
    }
    Ok(*t != before)
}

/// The queue every agent stream puts its reports on. One consumer applies them in batches,
/// one batch at a time, so a burst of reports costs a few flushes, not one each.
/// A full queue holds the agent streams back (their reports wait in the agents) rather than
/// growing without bound.
#[derive(Clone)]
pub struct Reports {
    tx: mpsc::Sender<Report>,
}

/// Reports queued before agent streams wait.
const QUEUE: usize = 4 * MAX_BATCH;

impl Reports {
    /// Starts the consumer; it ends when every `Reports` handle is gone.
    pub fn spawn(state: State) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(consume(state, rx));
        Self { tx }
    }

    pub async fn send(&self, node_id: &str, r: TaskReport) {
        let _ = self.tx.send((node_id.to_string(), r)).await;
    }
}

async fn consume(state: State, mut rx: mpsc::Receiver<Report>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let s = state.clone();
        let work = std::mem::take(&mut batch);
        let n = work.len();
        let res = tokio::task::spawn_blocking(move || {
            apply_reports(&s, &work).or_else(|e| {
                // A batch that kept conflicting goes one report at a time.
                tracing::debug!(error = %e, "report batch conflicted; applying one by one");
                work.iter().try_fold(0, |n, (node, r)| {
                    apply_report(&s, node, r).map(|c| n + usize::from(c))
                })
            })
        })
        .await;
        match res {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(reports = n, error = %e, "task reports not applied"),
            // The runtime is shutting down: the reports are sent again on reconnect.
            Err(e) if e.is_cancelled() => return,
            Err(e) => tracing::error!(error = %e, "applying task reports panicked"),
        }
    }
}
