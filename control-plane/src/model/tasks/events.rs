//! A task's events: what operators did to it from outside its definition (`berth exec`, with
//! who ran what and how it ended). Stored under their own keys, not in the task record, so
//! recording one never rewrites the task nor wakes the node's desired-set pusher.

use crate::model::tasks::{cluster_of_arn, task_id};
use crate::state::error::Result;
use crate::state::{put, State};
use crate::store::Op;
use crate::time;
use berth_proto::v1::TaskEvent;

/// Events kept per task; recording one more drops the oldest.
pub const MAX_EVENTS: usize = 100;

fn prefix(task_arn: &str) -> String {
    format!(
        "taskevent/{}/{}/",
        cluster_of_arn(task_arn).unwrap_or_default(),
        task_id(task_arn)
    )
}

/// Appends an event to the task's (ids sort by time, so the oldest goes first).
pub fn record(state: &State, task_arn: &str, message: &str) -> Result<TaskEvent> {
    let now = time::now_millis();
    let event = TaskEvent {
        id: format!("{now:016}-{}", berth_core::ids::new_id(8)),
        created_at: time::rfc3339(now),
        message: message.to_string(),
    };
    let dir = prefix(task_arn);
    let mut old = state.scan_keys(&dir)?;
    old.sort();
    let mut ops: Vec<Op> = old
        .iter()
        .take((old.len() + 1).saturating_sub(MAX_EVENTS))
        .map(|k| Op::Delete(k.clone()))
        .collect();
    ops.push(put(format!("{dir}{}", event.id), &event));
    state.commit(ops)?;
    Ok(event)
}

/// The task's events, oldest first.
pub fn list(state: &State, task_arn: &str) -> Result<Vec<TaskEvent>> {
    let mut events: Vec<TaskEvent> = state.scan(&prefix(task_arn))?;
    events.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(events)
}

/// Deletes of every event of the task, for when its record goes.
pub fn forget_ops(state: &State, task_arn: &str) -> Result<Vec<Op>> {
    Ok(state
        .scan_keys(&prefix(task_arn))?
        .into_iter()
        .map(Op::Delete)
        .collect())
}
