//! Tasks: run (placed like a service's tasks, through the applier), stop, describe, list, and
//! forgetting stopped ones. Users and the planner write desired state; only agent reports
//! (`live::reports`) write observed state, and observed status only moves forward
//! (`berth_core::status`). The desired set each node is sent is `live::desired`.

pub mod events;
pub mod overrides;
pub mod placement_request;
pub mod protection;
pub mod run_tokens;

#[cfg(test)]
pub(crate) mod data_tests;

use crate::model::placement::apply::{self, NewTask};
use crate::model::placement::view;
use crate::model::placement::{Capacity, Freshness};
use crate::state::error::{Error, Result};
use crate::state::{keys, State};
use crate::{model::clusters, model::taskdef, time};
use berth_core::arn;
use berth_core::capacity::demand;
use berth_core::scheduler::Demand;
use berth_core::status::TaskState;
use berth_proto::v1::*;

use berth_core::limits::RUN_COUNT;

/// `task run`: places `count` tasks; what cannot be placed comes back in `failures`.
pub fn run(state: &State, sessions: &dyn Capacity, req: RunTaskRequest) -> Result<RunTaskReply> {
    run_once(state, sessions, req, None)
}

/// `run`, idempotent under a client token: a retry with the same token and request gets the
/// tasks of the first run back and starts none (the token is recorded in the same commit as
/// the tasks); the same token with another request is refused.
pub fn run_once(
    state: &State,
    sessions: &dyn Capacity,
    req: RunTaskRequest,
    token: Option<&run_tokens::RunToken>,
) -> Result<RunTaskReply> {
    let placement = crate::model::tasks::placement_request::Placement::of(&req)?;
    let count = placement.count(if req.count == 0 { 1 } else { req.count });
    if let Err(e) = RUN_COUNT.check(count.into()) {
        return Err(Error::invalid("count", e));
    }
    if req.task_definition.trim().is_empty() {
        return Err(Error::invalid(
            "taskDefinition",
            "is required (FAMILY or FAMILY:REVISION)",
        ));
    }
    let now_ms = crate::time::now_millis();
    let reply = state.update(|tx| {
        if let Some(t) = token {
            // ECS looks the cluster up first: an unknown one is refused before the token.
            clusters::get_active(tx.state(), cluster_or_default(&req.cluster))?;
            match t.seen(tx, now_ms)? {
                run_tokens::Seen::New => {}
                run_tokens::Seen::Same(keys) => {
                    let mut tasks = Vec::new();
                    for k in keys {
                        tasks.extend(tx.state().get::<Task>(&k)?);
                    }
                    return Ok(((tasks, Vec::new()), Vec::new()));
                }
                run_tokens::Seen::Different => {
                    return Err(Error::Client(format!(
                        "clientToken {:?} was used for a different RunTask request in this cluster within 24 hours; use a new token",
                        t.token
                    )))
                }
            }
        }
        let ((tasks, failures), mut ops) = place_in(tx, sessions, &req, &placement, count)?;
        if let Some(t) = token {
            let keys = tasks.iter().map(key_of).collect();
            ops.extend(t.record_ops(tx.state(), keys, now_ms)?);
        }
        Ok(((tasks, failures), ops))
    })?;
    let (tasks, failures) = reply;
    for _ in &tasks {
        state.metrics().placed();
    }
    let failures = failures
        .into_iter()
        .map(|(r, arn)| {
            state.metrics().placement_failed(r.reason);
            Failure {
                arn,
                reason: r.reason.to_string(),
                detail: r.detail,
            }
        })
        .collect();
    Ok(RunTaskReply { tasks, failures })
}

/// What `place_in` decided: the tasks, and each count it could not place with why.
pub type Placed = (Vec<Task>, Vec<(berth_core::scheduler::Rejection, String)>);

/// RunTask's decision inside a caller's transaction (a schedule's tick commits its own record
/// with it): the cluster and definition are compared at commit, the tasks placed by the applier.
pub fn place_in(
    tx: &mut crate::state::Tx<'_>,
    sessions: &dyn Capacity,
    req: &RunTaskRequest,
    placement: &crate::model::tasks::placement_request::Placement,
    count: i32,
) -> Result<(Placed, Vec<crate::store::Op>)> {
    let cluster = cluster_or_default(&req.cluster);
    // The cluster is compared at commit: a delete in between refuses this run.
    let cluster = clusters::get_active(tx.state(), cluster)?;
    tx.get::<Cluster>(&keys::cluster(&cluster.cluster_name))?;
    let td = taskdef::describe(tx.state(), &req.task_definition)?;
    if td.status != "ACTIVE" {
        return Err(Error::Client(format!(
            "task definition {}:{} is INACTIVE; register a new revision or use an active one",
            td.family, td.revision
        )));
    }
    // Stored before today's bounds: not run until a revision within them is registered.
    let out_of_bounds = crate::model::taskdef::bounds_problems(&td);
    if !out_of_bounds.is_empty() {
        return Err(Error::Invalid(out_of_bounds));
    }
    let (runs_as, overrides) = overrides::effective(&td, req.overrides.as_ref())?;
    let mut demand = demand(&runs_as);
    let placement = placement.requiring(berth_core::powers::constraints(&td));
    // A retry decides on the cache as of now: what made the first try stale may be in it.
    let fresh = match tx.attempt() {
        0 => Freshness::Recent,
        _ => Freshness::Now,
    };
    let mut nodes = view::snapshot(tx.state(), sessions, fresh)?;
    let homes = view::volume_homes(tx.state(), &cluster.cluster_name, [&td])?;
    berth_core::scheduler::locate_volumes(&mut demand, &homes, &nodes);
    // A capacity provider strategy (the request's, else the cluster's default) sends each
    // task to its provider's nodes, split by ECS's base and weight.
    let strategy = crate::model::capacity::resolve(
        tx.state(),
        &cluster.cluster_name,
        "capacityProviderStrategy",
        &req.capacity_provider_strategy,
    )?;
    let pools = pools_of(tx.state(), &strategy, &placement, count as usize)?;
    let mut launches = Vec::new();
    let mut failures = Vec::new();
    for i in 0..count as usize {
        let (pool, placement) = match pools.get(i) {
            Some((name, p)) => (name.clone(), p),
            None => (String::new(), &placement),
        };
        let placed = placement.place(&mut nodes, &demand, i);
        if let Some(n) = placed
            .as_ref()
            .ok()
            .and_then(|id| nodes.iter().find(|n| *n.id == **id))
        {
            demand.placed_on(n);
        }
        match placed {
            Ok(node_id) => launches.push(NewTask {
                cluster: &cluster.cluster_name,
                definition: &td,
                node_id,
                demand: demand.clone(),
                group: group_of(&td, req),
                started_by: req.started_by.clone(),
                load_balanced: false,
                overrides: overrides.clone(),
                capacity_provider: pool,
            }),
            Err(r) => failures.push((
                berth_core::powers::explain(&td, r),
                td.task_definition_arn.clone(),
            )),
        }
    }
    // The applier re-checks each chosen node on fresh claims; a node filled meanwhile
    // makes this attempt decide again.
    let (tasks, ops) = apply::place(tx, Some((sessions, fresh)), &launches)?;
    Ok(((tasks, failures), ops))
}

/// Per task of a run by `strategy`: its capacity provider and the placement that keeps it on
/// the provider's nodes. Empty when the run names no strategy.
fn pools_of(
    state: &State,
    strategy: &[CapacityProviderStrategyItem],
    placement: &placement_request::Placement,
    count: usize,
) -> Result<Vec<(String, placement_request::Placement)>> {
    if strategy.is_empty() {
        return Ok(Vec::new());
    }
    let selectors = crate::model::capacity::selectors(state, strategy)?;
    let mut per_item = Vec::new();
    for it in strategy {
        let name = &it.capacity_provider;
        let Some(selector) = selectors.get(name) else {
            return Err(Error::Client(format!(
                "The specified capacity provider does not exist: {name}"
            )));
        };
        let c = berth_core::scheduler::parse_constraint("memberOf", selector)
            .map_err(|e| Error::Client(format!("capacity provider {name}: selector: {e}")))?;
        per_item.push((name.clone(), placement.requiring(vec![c])));
    }
    Ok(
        berth_core::scheduler::providers::assign(strategy, &[], count)
            .into_iter()
            .map(|i| per_item[i].clone())
            .collect(),
    )
}

fn group_of(td: &TaskDefinition, req: &RunTaskRequest) -> String {
    if req.group.is_empty() {
        format!("family:{}", td.family)
    } else {
        req.group.clone()
    }
}

pub use crate::model::placement::apply::build_task;
pub use berth_core::arn::{task_cluster as cluster_of_arn, task_id};

fn cluster_or_default(c: &str) -> &str {
    if c.trim().is_empty() {
        clusters::DEFAULT_CLUSTER
    } else {
        c
    }
}

/// Finds a task by ARN, or by id in `cluster` (or, with no cluster given, in any cluster), as
/// users see it.
pub fn find(state: &State, cluster: &str, task: &str) -> Result<Task> {
    find_stored(state, cluster, task).map(present)
}

fn find_stored(state: &State, cluster: &str, task: &str) -> Result<Task> {
    let id = task_id(task.trim());
    let not_found = || Error::not_found("Task", task, "see `berth task list`");
    if id.is_empty() {
        return Err(Error::invalid("task", "is required (a task id or ARN)"));
    }
    if let Some(c) = cluster_of_arn(task) {
        return state.get::<Task>(&keys::task(c, id))?.ok_or_else(not_found);
    }
    if !cluster.trim().is_empty() {
        return state
            .get::<Task>(&keys::task(arn::cluster_name(cluster), id))?
            .ok_or_else(not_found);
    }
    let mut key = None;
    state.scan_each::<TaskHeader>(keys::TASKS, |t| {
        if task_id(&t.task_arn) == id {
            key = cluster_of_arn(&t.task_arn).map(|c| keys::task(c, id));
        }
        key.is_none()
    })?;
    match key {
        Some(k) => state.get::<Task>(&k)?.ok_or_else(not_found),
        None => Err(not_found()),
    }
}

pub fn key_of(t: &Task) -> String {
    keys::task(
        cluster_of_arn(&t.task_arn).unwrap_or_default(),
        task_id(&t.task_arn),
    )
}

/// `task stop`: desired STOPPED with the user's reason; the agent does the stopping.
pub fn stop(state: &State, cluster: &str, task: &str, reason: &str) -> Result<Task> {
    let found = find(state, cluster, task)?;
    let reason = if reason.trim().is_empty() {
        "Task stopped by user"
    } else {
        reason
    };
    let key = key_of(&found);
    state.update(|tx| {
        let ops = apply::stop_ops(
            tx,
            &found.task_arn,
            "UserInitiated",
            reason,
            time::now_millis(),
        )?;
        Ok(((), ops))
    })?;
    Ok(present(state.get::<Task>(&key)?.unwrap_or(found)))
}

/// A task as users see it: a stopped task's desired status is STOPPED, whatever was last asked.
pub fn present(mut t: Task) -> Task {
    t.desired_status = t.desired().as_str().to_string();
    t
}

pub fn list(state: &State, req: &ListTasksRequest) -> Result<Vec<Task>> {
    let prefix = if req.cluster.trim().is_empty() {
        keys::TASKS.to_string()
    } else {
        keys::tasks_of(arn::cluster_name(&req.cluster))
    };
    let want_stopped = match req.desired_status.to_ascii_uppercase().as_str() {
        "" | "RUNNING" => false,
        "STOPPED" => true,
        other => {
            return Err(Error::invalid(
                "desiredStatus",
                format!(
                    "{} must be RUNNING or STOPPED",
                    crate::state::error::quote(other)
                ),
            ))
        }
    };
    let node = arn::last_segment(&req.container_instance).to_string();
    let group = format!("service:{}", req.service_name);
    let keep = |t: &Task| {
        (t.desired_status == "STOPPED") == want_stopped
            && (req.service_name.is_empty() || t.group == group)
            && (req.family.is_empty() || taskdef_family(&t.task_definition_arn) == req.family)
            && (node.is_empty() || arn::last_segment(&t.container_instance_arn) == node)
    };
    // A service's tasks come through its group index; other lists stream the cluster's tasks,
    // holding only the ones kept.
    let mut tasks: Vec<Task> = Vec::new();
    if req.service_name.is_empty() {
        state.scan_each::<Task>(&prefix, |t| {
            let t = present(t);
            if keep(&t) {
                tasks.push(t);
            }
            true
        })?;
    } else {
        let cluster = arn::cluster_name(cluster_or_default(&req.cluster)).to_string();
        tasks = view::group_tasks(state, &cluster, &group)?
            .into_iter()
            .map(present)
            .filter(|t| keep(t))
            .collect();
    }
    tasks.sort_by(|a, b| a.created_at.cmp(&b.created_at));
    Ok(tasks)
}

fn taskdef_family(taskdef_arn: &str) -> &str {
    let s = taskdef_arn
        .rsplit_once("task-definition/")
        .map_or(taskdef_arn, |(_, r)| r);
    s.split_once(':').map_or(s, |(f, _)| f)
}

/// Removes tasks stopped longer ago than `retention_ms` (their record, index entry and claim).
pub fn forget_stopped(state: &State, now_ms: i64, retention_ms: i64) -> Result<usize> {
    let cutoff = time::rfc3339(now_ms - retention_ms);
    // Headers only, one at a time: the sweep runs over every task every few minutes.
    let mut gone: Vec<Task> = Vec::new();
    state.scan_each::<TaskHeader>(keys::TASKS, |t| {
        if t.is_stopped() && !t.stopped_at.is_empty() && t.stopped_at < cutoff {
            gone.push(Task {
                task_arn: t.task_arn,
                group: t.group,
                container_instance_arn: t.container_instance_arn,
                ..Default::default()
            });
        }
        true
    })?;
    // A task's record, index entries and events go in one batch (an etcd transaction is bounded).
    let limit = state.store().max_txn_ops().max(1);
    let mut ops = Vec::new();
    for t in &gone {
        let mut mine = apply::forget_ops(t);
        mine.extend(crate::model::tasks::events::forget_ops(state, &t.task_arn)?);
        if !ops.is_empty() && ops.len() + mine.len() > limit {
            state.commit(std::mem::take(&mut ops))?;
        }
        ops.extend(mine);
    }
    state.commit(ops)?;
    Ok(gone.len())
}

/// Gives tasks stored before the group and node indexes existed their entries (once, at start).
/// The tasks are read one at a time, each looked up in the group index as it comes: a fleet's
/// million tasks are never all held at once (a whole scan held every task's record and every
/// decoded task together, at every start: hundreds of megabytes at fleet size).
pub fn index_existing(state: &State) -> Result<usize> {
    let mut unindexed = Vec::new();
    let mut failed = None;
    state.scan_each::<Task>(keys::TASKS, |t| {
        let cluster = cluster_of_arn(&t.task_arn).unwrap_or_default();
        match state.get_raw(&keys::group_task(cluster, &t.group, task_id(&t.task_arn))) {
            Ok(Some(_)) => true,
            Ok(None) => {
                unindexed.push(t);
                true
            }
            Err(e) => {
                failed = Some(e);
                false
            }
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    let mut ops = Vec::new();
    for t in &unindexed {
        let d = taskdef::describe(state, &t.task_definition_arn)
            .map(|td| demand(&td))
            .unwrap_or_default();
        let d = Demand {
            cpu: i64::from(t.cpu),
            memory: i64::from(t.memory),
            ports: d.ports,
            ..Default::default()
        };
        ops.extend(apply::create_ops(t, &d));
    }
    state.commit(ops)?;
    Ok(unindexed.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::put;
    use crate::store::LogStore;
    use std::sync::Arc;

    #[test]
    fn tasks_stored_before_the_indexes_are_indexed_once() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::new(Arc::new(LogStore::open(dir.path()).unwrap()));
        let old = Task {
            task_arn: arn::task("demo", "abc"),
            group: "service:web".into(),
            cpu: 256,
            memory: 512,
            ..Default::default()
        };
        state
            .commit(vec![put(keys::task("demo", "abc"), &old)])
            .unwrap();
        let group = keys::group_task("demo", "service:web", "abc");
        assert!(state.get_raw(&group).unwrap().is_none());
        assert_eq!(index_existing(&state).unwrap(), 1);
        assert!(
            state.get_raw(&group).unwrap().is_some(),
            "the group index has it"
        );
        assert_eq!(
            index_existing(&state).unwrap(),
            0,
            "a second start adds nothing"
        );
    }
}
