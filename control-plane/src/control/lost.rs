//! Lost nodes: a node whose agent has been gone longer than the lost-node timeout will never
//! report its tasks stopped, so this is the one place the control plane writes observed status
//! itself — STOPPED, with stop code NodeLost — and releases the tasks' claims, so their services
//! replace them elsewhere. When the node returns, its agent is no longer sent them and stops
//! their containers.

use crate::live::sessions::Sessions;
use crate::model::placement::apply;
use crate::state::error::Result;
use crate::state::{keys, put, State};
use crate::time;
use berth_core::status::{self, TaskState, TaskStatus};
use berth_proto::v1::{ContainerInstance, Task};
use std::time::Duration;

/// The log target this module had as `crate::nodes::lost`, kept so the filters users wrote
/// (`RUST_LOG=berth_control_plane::nodes=info`) still select its lines.
const LOG_TARGET: &str = "berth_control_plane::nodes::lost";

/// When a node counts as lost.
#[derive(Debug, Clone, Copy)]
pub struct LostAfter {
    /// Silent (disconnected for missing heartbeats, or never back since this control plane
    /// started) this long.
    pub timeout: Duration,
    /// Its stream ended with its connection, no goodbye, and it has not reconnected for this
    /// long: a crashed agent. A reconnecting agent (a reset, a restart) is back well within it.
    pub crash_grace: Duration,
}

/// Marks the tasks of every lost node STOPPED; returns how many. The tasks of every node lost
/// at once go together, a few hundred to a transaction (a hundred nodes lost together cost a
/// handful of commits, not one a node), so their services see them all in one wake-up.
pub fn mark_lost_nodes(
    state: &State,
    sessions: &Sessions,
    after: LostAfter,
    started_ms: i64,
    now: i64,
) -> Result<usize> {
    let mut lost: Vec<(ContainerInstance, String)> = Vec::new();
    for n in state.scan::<ContainerInstance>(keys::NODES)? {
        let id = &n.ec2_instance_id;
        if sessions.is_connected(id) {
            continue;
        }
        if let Some(why) = lost_why(sessions, id, after, started_ms, now) {
            lost.push((n, why));
        }
    }
    let mut marked = 0;
    let mut part: Vec<(String, usize)> = Vec::with_capacity(LOST_BATCH);
    for (i, (n, _)) in lost.iter().enumerate() {
        for k in state.scan_keys(&keys::node_claims(&n.ec2_instance_id))? {
            if let Some(task_key) = keys::task_of_index(&k) {
                part.push((task_key, i));
            }
            if part.len() == LOST_BATCH {
                marked += mark_lost(state, &std::mem::take(&mut part), &lost, now)?;
            }
        }
    }
    if !part.is_empty() {
        marked += mark_lost(state, &part, &lost, now)?;
    }
    Ok(marked)
}

/// Why the disconnected node `id` counts as lost by now, if it does.
fn lost_why(
    sessions: &Sessions,
    id: &str,
    after: LostAfter,
    started_ms: i64,
    now: i64,
) -> Option<String> {
    let silent_ms = now - sessions.last_seen(id).unwrap_or(started_ms);
    let crashed_ms = sessions.crashed_at(id).map(|at| now - at);
    if crashed_ms.is_some_and(|ms| ms > after.crash_grace.as_millis() as i64) {
        Some(format!(
            "its agent's connection closed without a goodbye and it has not reconnected for {} s",
            after.crash_grace.as_secs()
        ))
    } else if silent_ms > after.timeout.as_millis() as i64 {
        Some(format!(
            "its agent has not been heard from for {} s",
            after.timeout.as_secs()
        ))
    } else {
        None
    }
}

/// Tasks marked lost in one transaction.
const LOST_BATCH: usize = 500;

/// Marks these tasks (each with the index of its node in `lost`) STOPPED in one transaction.
fn mark_lost(
    state: &State,
    task_keys: &[(String, usize)],
    lost: &[(ContainerInstance, String)],
    now: i64,
) -> Result<usize> {
    state.update(|tx| {
        let mut ops = Vec::new();
        let mut marked = 0;
        for (task_key, i) in task_keys {
            let (n, why) = &lost[*i];
            let Some(mut t) = tx.get::<Task>(task_key)? else {
                continue;
            };
            if t.is_stopped() || t.container_instance_arn != n.container_instance_arn {
                continue;
            }
            status::advance(&mut t, TaskStatus::Stopped);
            t.desired_status = "STOPPED".into();
            t.stop_code = "NodeLost".into();
            t.stopped_reason = format!("node {} was lost: {why}", n.name);
            t.stopped_at = time::rfc3339(now);
            t.version += 1;
            tracing::warn!(target: LOG_TARGET, task = %t.task_arn, node = %n.name, "task lost with its node");
            ops.extend(apply::release_ops(tx, &t)?);
            ops.push(put(task_key.to_string(), &t));
            marked += 1;
        }
        Ok((marked, ops))
    })
}

#[cfg(test)]
#[path = "lost_tests.rs"]
mod tests;
