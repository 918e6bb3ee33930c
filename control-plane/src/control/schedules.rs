//! The schedules' clock: while this replica leads, every second it finds each enabled
//! schedule's due tick and hands it to `model::schedules::fire`, which starts the tick's tasks
//! and records the tick in one fenced transaction (so a tick runs once, whoever leads).
//!
//! A tick is run if it is found within its window: Scheduler's FlexibleTimeWindow, or
//! `GRACE` for a rule or a schedule whose window is OFF. A tick found later than that (no
//! leader was up) is recorded as missed and starts nothing; only the latest tick is owed.

use crate::live::sessions::Sessions;
use crate::model::placement::Capacity;
use crate::model::schedules::{self, fire, RULE};
use crate::state::error::Result;
use crate::state::State;
use crate::time;
use berth_proto::v1::Schedule;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How late a tick with no flexible window may still run: a leader change takes a few seconds;
/// an outage of minutes means the moment has passed.
pub const GRACE_MS: i64 = 5 * 60_000;
/// How often due ticks are looked for (ticks are whole minutes, run within seconds).
const EVERY: Duration = Duration::from_millis(500);

/// Runs until `stopped` (the end of this replica's term): `state` is the leader's, fenced.
pub async fn run(state: State, sessions: Arc<Sessions>, mut stopped: watch::Receiver<bool>) {
    loop {
        let (s, n) = (state.clone(), sessions.clone());
        let pass =
            tokio::task::spawn_blocking(move || pass(&s, n.as_ref(), time::now_millis())).await;
        match pass {
            Ok(Err(e)) => tracing::warn!(error = %e, "schedules: a pass failed; trying again"),
            Err(e) => tracing::error!(error = %e, "schedules: a pass panicked"),
            Ok(Ok(())) => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
    }
}

/// The window a tick of `s` may run in after its time.
fn window_ms(s: &Schedule) -> i64 {
    if s.kind != RULE && s.flexible_mode == "FLEXIBLE" {
        i64::from(s.flexible_minutes) * 60_000
    } else {
        GRACE_MS
    }
}

/// One look at every schedule: fires what is due.
pub fn pass(state: &State, sessions: &dyn Capacity, now_ms: i64) -> Result<()> {
    for s in schedules::list(state, "")? {
        if s.state != "ENABLED" {
            continue;
        }
        let Ok(timing) = schedules::timing(&s) else {
            continue;
        };
        let Some(tick) = timing.due(s.last_tick_ms, now_ms) else {
            continue;
        };
        let what = if now_ms - tick <= window_ms(&s) {
            fire::Tick::Run
        } else {
            fire::Tick::Missed
        };
        let key = schedules::key(&s);
        match fire::fire(state, sessions, &key, tick, now_ms, what)? {
            Some(run) => tracing::info!(
                schedule = %s.name,
                kind = %s.kind,
                tick = %time::rfc3339(tick),
                tasks = run.task_arns.len(),
                failures = ?run.failures,
                "schedule ticked"
            ),
            None => tracing::debug!(schedule = %s.name, "tick already handled"),
        }
    }
    Ok(())
}
