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

/// Marks the tasks of every lost node STOPPED; returns how many.
pub fn mark_lost_nodes(
    state: &State,
    sessions: &Sessions,
    after: LostAfter,
    started_ms: i64,
    now: i64,
) -> Result<usize> {
    let mut marked = 0;
    for n in state.scan::<ContainerInstance>(keys::NODES)? {
        let id = &n.ec2_instance_id;
        if sessions.is_connected(id) {
            continue;
        }
        let silent_ms = now - sessions.last_seen(id).unwrap_or(started_ms);
        let crashed_ms = sessions.crashed_at(id).map(|at| now - at);
        let why = if crashed_ms.is_some_and(|ms| ms > after.crash_grace.as_millis() as i64) {
            format!(
                "its agent's connection closed without a goodbye and it has not reconnected for {} s",
                after.crash_grace.as_secs()
            )
        } else if silent_ms > after.timeout.as_millis() as i64 {
            format!(
                "its agent has not been heard from for {} s",
                after.timeout.as_secs()
            )
        } else {
            continue;
        };
        let task_keys: Vec<String> = state
            .scan_keys(&keys::node_claims(id))?
            .iter()
            .filter_map(|k| keys::task_of_index(k))
            .collect();
        // One transaction for a batch of the node's tasks, not one flush each.
        for part in task_keys.chunks(LOST_BATCH) {
            marked += mark_lost(state, part, &n, &why, now)?;
        }
    }
    Ok(marked)
}

/// Tasks marked lost in one transaction.
const LOST_BATCH: usize = 500;

fn mark_lost(
    state: &State,
    task_keys: &[String],
    n: &ContainerInstance,
    why: &str,
    now: i64,
) -> Result<usize> {
    state.update(|tx| {
        let mut ops = Vec::new();
        let mut marked = 0;
        for task_key in task_keys {
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
