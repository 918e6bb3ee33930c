//! One tick of a schedule, exactly once: the record is read inside the transaction (so it is
//! compared at commit), the tick must still be later than its `last_tick_ms`, and the tasks the
//! tick starts commit together with the new `last_tick_ms` — under the leader's fence when the
//! caller's state carries it. A replica deposed in between commits nothing; the next leader
//! reads the tick as done or not done, never half.

use super::{RULE, SCHEDULE};
use crate::model::placement::Capacity;
use crate::model::tasks::{self, placement_request::Placement};
use crate::state::error::{Error, Result};
use crate::state::{put, State};
use crate::store::Op;
use crate::time;
use berth_proto::v1::{Schedule, ScheduleRun};

/// Runs remembered per schedule.
pub const RUNS_KEPT: usize = 10;

/// What ECS writes as a task's `startedBy` for the schedule that started it.
pub fn started_by(s: &Schedule) -> String {
    if s.kind == RULE {
        format!("events-rule/{}", s.name)
    } else {
        format!("chronos-schedule/{}", s.name)
    }
}

/// What to do with a due tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    /// Start its tasks.
    Run,
    /// Record it as missed (later than its window): nothing starts.
    Missed,
}

/// Handles tick `tick_ms` of the schedule at `key`; None when another replica (or an earlier
/// call) already did, or the schedule is gone.
pub fn fire(
    state: &State,
    sessions: &dyn Capacity,
    key: &str,
    tick_ms: i64,
    now_ms: i64,
    what: Tick,
) -> Result<Option<ScheduleRun>> {
    state.update(|tx| {
        let Some(mut s) = tx.get::<Schedule>(key)? else {
            return Ok((None, vec![]));
        };
        if s.last_tick_ms >= tick_ms {
            return Ok((None, vec![]));
        }
        let mut run = ScheduleRun {
            tick_ms,
            fired_at: time::rfc3339(now_ms),
            ..Default::default()
        };
        let mut ops: Vec<Op> = Vec::new();
        if what == Tick::Missed {
            run.failures.push(format!(
                "missed: no leader ran the tick of {} within its window",
                time::rfc3339(tick_ms)
            ));
        } else if s.targets.is_empty() {
            run.failures.push("the schedule has no target".into());
        }
        for t in s.targets.iter().filter(|_| what == Tick::Run) {
            let mut req = t.run.clone().unwrap_or_default();
            req.started_by = started_by(&s);
            let placed = Placement::of(&req).and_then(|p| {
                let count = p.count(req.count.max(1));
                tasks::place_in(tx, sessions, &req, &p, count)
            });
            match placed {
                Ok(((started, failures), more)) => {
                    ops.extend(more);
                    run.task_arns
                        .extend(started.iter().map(|t| t.task_arn.clone()));
                    run.failures.extend(failures.into_iter().map(|(r, _)| {
                        format!("target {}: {} {}", t.id, r.reason, r.detail)
                            .trim()
                            .to_string()
                    }));
                }
                // Stale reads: the whole tick decides again on fresh state.
                Err(e @ Error::Conflict(_)) => return Err(e),
                Err(e) => run.failures.push(format!("target {}: {e}", t.id)),
            }
        }
        s.last_tick_ms = tick_ms;
        s.runs.push(run.clone());
        let drop = s.runs.len().saturating_sub(RUNS_KEPT);
        s.runs.drain(..drop);
        let finished = s.kind == SCHEDULE
            && s.action_after_completion == "DELETE"
            && super::timing(&s).is_ok_and(|t| t.next_after(tick_ms).is_none());
        if finished {
            ops.push(Op::Delete(key.to_string()));
        } else {
            ops.push(put(key.to_string(), &s));
        }
        Ok((Some(run), ops))
    })
}
