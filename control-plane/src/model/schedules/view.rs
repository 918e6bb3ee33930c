//! Schedules as `berth schedule` and the console show them: the next ticks, and the last runs
//! with their tasks as they stand now.

use super::timing;
use crate::model::tasks;
use crate::state::error::Result;
use crate::state::State;
use crate::time;
use berth_core::arn;
use berth_proto::v1::{ListSchedulesRequest, Schedule, ScheduleRunView, ScheduleView};

/// Next ticks shown per schedule.
const NEXT_SHOWN: usize = 3;

fn runs_in(s: &Schedule, cluster: &str) -> bool {
    cluster.is_empty()
        || s.targets.iter().any(|t| {
            let c = t.run.as_ref().map_or("", |r| r.cluster.as_str());
            arn::cluster_name(c) == arn::cluster_name(cluster)
        })
}

pub fn list(state: &State, req: &ListSchedulesRequest, now_ms: i64) -> Result<Vec<ScheduleView>> {
    let mut out = Vec::new();
    for s in super::list(state, "")? {
        if (!req.name.is_empty() && s.name != req.name) || !runs_in(&s, &req.cluster) {
            continue;
        }
        let next_runs = match (s.state.as_str(), timing(&s)) {
            ("ENABLED", Ok(t)) => t
                .upcoming(now_ms.max(s.last_tick_ms), NEXT_SHOWN)
                .into_iter()
                .map(time::rfc3339)
                .collect(),
            _ => Vec::new(),
        };
        let runs = s
            .runs
            .iter()
            .rev()
            .map(|r| ScheduleRunView {
                tick: time::rfc3339(r.tick_ms),
                fired_at: r.fired_at.clone(),
                // A task forgotten after its retention is left out.
                tasks: r
                    .task_arns
                    .iter()
                    .filter_map(|a| tasks::find(state, "", a).ok())
                    .collect(),
                failures: r.failures.clone(),
            })
            .collect();
        out.push(ScheduleView {
            schedule: Some(s),
            next_runs,
            runs,
        });
    }
    Ok(out)
}
