//! Task scale-in protection, as ECS's GetTaskProtection and UpdateTaskProtection (and the
//! agent's `/task-protection/v1/state` endpoint) keep it: a service's task protected until a
//! time, at most 48 hours ahead, 2 hours when none is given. The planner reads it
//! (`berth_core::plan::stop`): neither scale-in nor a deployment stops the task until then.

use super::{find, key_of};
use crate::state::error::{Error, Result};
use crate::state::{put, State};
use berth_proto::v1::Task;

/// ECS's default protection when `expiresInMinutes` is absent: 2 hours.
pub const DEFAULT_MINUTES: i64 = 120;
/// ECS's longest protection: 48 hours.
pub const MAX_MINUTES: i64 = 2_880;

/// One task's protection as ECS reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protection {
    pub task_arn: String,
    pub enabled: bool,
    /// Unix milliseconds; None when not protected.
    pub expires_ms: Option<i64>,
}

/// Why a task named in the request has no protection to read or set: ECS's failure reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub name: String,
    /// MISSING or TASK_NOT_VALID.
    pub reason: &'static str,
    pub detail: String,
}

fn of(t: &Task, now: i64) -> Protection {
    let on = t.protected_until_ms > now;
    Protection {
        task_arn: t.task_arn.clone(),
        enabled: on,
        expires_ms: on.then_some(t.protected_until_ms),
    }
}

/// `expiresInMinutes` checked against ECS's bounds (1 to 2,880), or the default.
pub fn minutes(given: Option<i64>) -> Result<i64> {
    match given {
        None => Ok(DEFAULT_MINUTES),
        Some(m) if (1..=MAX_MINUTES).contains(&m) => Ok(m),
        Some(m) => Err(Error::invalid(
            "expiresInMinutes",
            format!("must be 1-{MAX_MINUTES} (48 hours), got {m}"),
        )),
    }
}

/// A task of the cluster that a service runs (ECS protects only those), or why not.
fn service_task(
    state: &State,
    cluster: &str,
    name: &str,
) -> Result<std::result::Result<Task, Refused>> {
    let t = match find(state, cluster, name) {
        Ok(t) => t,
        Err(Error::NotFound { .. }) => {
            return Ok(Err(Refused {
                name: name.to_string(),
                reason: "MISSING",
                detail: String::new(),
            }))
        }
        Err(e) => return Err(e),
    };
    if !t.group.starts_with("service:") {
        return Ok(Err(Refused {
            name: t.task_arn,
            reason: "TASK_NOT_VALID",
            detail:
                "The task is not part of a service; only a service's tasks take scale-in protection"
                    .into(),
        }));
    }
    Ok(Ok(t))
}

fn check_names(tasks: &[String]) -> Result<()> {
    if tasks.is_empty() || tasks.len() > 10 {
        return Err(Error::invalid(
            "tasks",
            format!("name 1-10 tasks (ids or ARNs), got {}", tasks.len()),
        ));
    }
    Ok(())
}

/// GetTaskProtection: each task's protection at `now`.
pub fn get(
    state: &State,
    cluster: &str,
    tasks: &[String],
    now: i64,
) -> Result<(Vec<Protection>, Vec<Refused>)> {
    crate::model::clusters::get_active(state, cluster)?;
    check_names(tasks)?;
    let (mut found, mut refused) = (Vec::new(), Vec::new());
    for name in tasks {
        match service_task(state, cluster, name)? {
            Ok(t) => found.push(of(&t, now)),
            Err(r) => refused.push(r),
        }
    }
    Ok((found, refused))
}

/// UpdateTaskProtection: protects each task for `minutes` from `now` (each call starts the
/// time afresh, as ECS's does), or ends its protection. Tasks that cannot take it are
/// reported, and the others still change.
pub fn update(
    state: &State,
    cluster: &str,
    tasks: &[String],
    enabled: bool,
    minutes: i64,
    now: i64,
) -> Result<(Vec<Protection>, Vec<Refused>)> {
    crate::model::clusters::get_active(state, cluster)?;
    check_names(tasks)?;
    let until = if enabled { now + minutes * 60_000 } else { 0 };
    let (mut done, mut refused) = (Vec::new(), Vec::new());
    for name in tasks {
        let t = match service_task(state, cluster, name)? {
            Ok(t) => t,
            Err(r) => {
                refused.push(r);
                continue;
            }
        };
        let key = key_of(&t);
        let changed = state.update(|tx| {
            let Some(mut t) = tx.get::<Task>(&key)? else {
                return Ok((None, Vec::new()));
            };
            t.protected_until_ms = until;
            Ok((Some(t.clone()), vec![put(key.clone(), &t)]))
        })?;
        match changed {
            Some(t) => done.push(of(&t, now)),
            None => refused.push(Refused {
                name: name.clone(),
                reason: "MISSING",
                detail: String::new(),
            }),
        }
    }
    Ok((done, refused))
}

/// What a task asks of its own protection through its agent's endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnRequest {
    Get,
    /// ProtectionEnabled, and ExpiresInMinutes when given.
    Set(bool, Option<i64>),
}

/// A task's own request, relayed by the agent of `node_id`: the same checks and writes as
/// Get/UpdateTaskProtection, for that one task, and only when it runs on that node (an agent
/// speaks for its own tasks only).
pub fn own(
    state: &State,
    node_id: &str,
    task_arn: &str,
    req: OwnRequest,
    now: i64,
) -> Result<(Vec<Protection>, Vec<Refused>)> {
    let Some(cluster) = super::cluster_of_arn(task_arn) else {
        return Err(Error::invalid("taskArn", "must be a task ARN"));
    };
    let t = find(state, cluster, task_arn)?;
    if berth_core::arn::last_segment(&t.container_instance_arn) != node_id {
        return Err(Error::not_found(
            "Task",
            task_arn,
            "a task's protection is asked for through the agent of its own node",
        ));
    }
    let tasks = [t.task_arn];
    match req {
        OwnRequest::Get => get(state, cluster, &tasks, now),
        OwnRequest::Set(enabled, given) => {
            update(state, cluster, &tasks, enabled, minutes(given)?, now)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LogStore;
    use berth_core::arn;
    use std::sync::Arc;

    #[test]
    fn a_task_reaches_its_own_protection_only_through_its_nodes_agent() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::new(Arc::new(LogStore::open(dir.path()).unwrap()));
        crate::model::clusters::create(&state, "demo").unwrap();
        let t = Task {
            task_arn: arn::task("demo", "abc"),
            cluster_arn: arn::cluster("demo"),
            container_instance_arn: arn::container_instance("n1"),
            group: "service:web".into(),
            ..Default::default()
        };
        state.commit(vec![put(key_of(&t), &t)]).unwrap();
        let now = 1_000_000;
        let set = OwnRequest::Set(true, Some(5));
        let e = own(&state, "n2", &t.task_arn, set, now).unwrap_err();
        assert!(matches!(e, Error::NotFound { .. }), "{e}");
        let (found, _) = own(&state, "n1", &t.task_arn, OwnRequest::Get, now).unwrap();
        assert!(!found[0].enabled, "another node's agent changed nothing");
        let (done, _) = own(&state, "n1", &t.task_arn, set, now).unwrap();
        assert_eq!(done[0].expires_ms, Some(now + 5 * 60_000));
        let e = own(
            &state,
            "n1",
            &t.task_arn,
            OwnRequest::Set(true, Some(2881)),
            now,
        );
        assert!(e.unwrap_err().to_string().contains("expiresInMinutes"));
        let (found, _) = own(&state, "n1", &t.task_arn, OwnRequest::Get, now).unwrap();
        assert!(found[0].enabled, "a refused change leaves it as it was");
    }
}
