//! Services stored out of today's bounds (by an older version, or under a higher
//! `--max-desired-count`): named once at start, in the log and the service's events, and left
//! alone by the controller until an update brings them back in bounds.

use super::{key, push_event};
use crate::state::error::{FieldError, Result};
use crate::state::{put, State};
use berth_core::limits::check_desired_count;
use berth_proto::v1::Service;

/// What makes a stored service one the controller must not act on: a value out of today's bounds
/// (written by an older version, or under a higher `--max-desired-count`), in the service or in
/// the task definition it runs.
pub fn stored_problems(state: &State, svc: &Service) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if svc.scheduling_strategy != "DAEMON" {
        if let Err(e) = check_desired_count(state.limits(), svc.desired_count) {
            errs.push(FieldError::new("desiredCount", e));
        }
    }
    if let Ok(td) = crate::model::taskdef::describe(state, &svc.task_definition) {
        let at = format!("taskDefinition {}:{}", td.family, td.revision);
        errs.extend(
            crate::model::taskdef::bounds_problems(&td)
                .into_iter()
                .map(|e| {
                    let sep = if e.path.is_empty() { "" } else { "." };
                    FieldError::new(format!("{at}{sep}{}", e.path), e.message)
                }),
        );
    }
    errs
}

/// Logs each stored service that `stored_problems` rejects, and says so in its events once, so
/// `service describe` shows why it is left alone and how to fix it. Returns how many there are.
pub fn report_invalid(state: &State) -> Result<usize> {
    state.update(report_in)
}

fn report_in(tx: &mut crate::state::Tx<'_>) -> Result<(usize, Vec<crate::store::Op>)> {
    let state = tx.state().clone();
    let state = &state;
    let mut ops = Vec::new();
    let mut n = 0;
    for mut svc in tx.scan::<Service>(crate::state::keys::SERVICES)? {
        let errs = stored_problems(state, &svc);
        if svc.status == "INACTIVE" || errs.is_empty() {
            continue;
        }
        n += 1;
        let why = errs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        let cluster = berth_core::arn::cluster_name(&svc.cluster_arn).to_string();
        tracing::error!(service = %svc.service_arn, problem = %why, "stored service is invalid; it is not reconciled until it is fixed");
        let fix = if errs.iter().any(|e| e.path == "desiredCount") {
            "--desired N"
        } else {
            "--taskdef FAMILY:REVISION (a revision within the bounds)"
        };
        let message = format!(
            "(service {}) is invalid and is left as it is: {why}; fix it with `berth service update {} --cluster {cluster} {fix}`.",
            svc.service_name, svc.service_name
        );
        if svc.events.first().map(|e| &e.message) != Some(&message) {
            push_event(&mut svc, message);
            ops.push(put(key(&cluster, &svc.service_name), &svc));
        }
    }
    Ok((n, ops))
}
