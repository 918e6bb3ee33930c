//! One service's pass: read its view, plan purely, apply through the applier — all inside one
//! optimistic transaction, so a pass that raced another writer decides again on fresh state
//! instead of committing a stale decision.

use super::headers::Headers;
use super::sources::{self, Sources};
use crate::model::placement::apply::{self, NewTask};
use crate::model::placement::view;
use crate::model::placement::Freshness;
use crate::model::services::push_event;
use crate::state::error::{Error, Result};
use crate::state::{put, State, Tx};
use crate::store::Op;
use crate::time;
use berth_core::plan::{self, Event, ServiceMemory, ServicePlan, STOP_CODE};
use berth_proto::v1::*;

/// What one pass leaves the controller.
pub struct Passed {
    pub memory: ServiceMemory,
    /// How many tasks the pass read.
    pub read: usize,
    /// A deployment replaces another (a rolling update, a traffic shift): it moves on time as
    /// well as on reports.
    pub replacing: bool,
}

/// Runs one pass over the service at `key`.
pub fn reconcile(
    state: &State,
    key: &str,
    src: &Sources<'_>,
    headers: &mut Headers,
    memory: ServiceMemory,
    now: i64,
) -> Result<Passed> {
    let _timer = state.metrics().time_reconcile();
    let outcome = state.update(|tx| {
        let Some(mut view) = sources::read(tx, key, src, headers, memory.clone(), false)? else {
            return Ok((None, Vec::new()));
        };
        // Out of today's bounds (stored by an older version): reported at start, left alone.
        if !crate::model::services::stored_problems(tx.state(), &view.service).is_empty() {
            return Ok((None, Vec::new()));
        }
        let mut p = plan::plan(&view, now);
        if p.needs_all_nodes {
            let spread = sources::spread_attributes(&view.service);
            (view.nodes, view.spread_values) =
                view::snapshot_with_values(tx.state(), src.sessions, Freshness::Now, &spread)?;
            view.all_nodes = true;
            p = plan::plan(&view, now);
        }
        let before = view.service.clone();
        let ops = ops_of(tx, src.sessions, key, &view, &mut p, now)?;
        // A drained service's stopped tasks go after it is INACTIVE, in batches of their own:
        // garbage, not part of the decision (and possibly more than one transaction holds).
        let forget: Vec<Op> = view
            .tasks
            .iter()
            .filter(|t| p.forget.contains(&t.task_arn))
            .flat_map(apply::forget_ops)
            .collect();
        let read = view.tasks.len();
        Ok((Some((before, p, forget, read)), ops))
    })?;
    let Some((before, p, forget, read)) = outcome else {
        return Ok(Passed {
            memory,
            read: 0,
            replacing: false,
        });
    };
    if let Err(e) = state.commit(forget) {
        tracing::warn!(error = %e, "stopped tasks of a deleted service not forgotten yet");
    }
    let metrics = state.metrics();
    for _ in &p.launches {
        metrics.placed();
    }
    for r in &p.rejections {
        metrics.placement_failed(r.reason);
    }
    metrics.deployments_finished(&before, &p.service);
    Ok(Passed {
        replacing: p.service.deployments.len() > 1,
        memory: p.memory,
        read,
    })
}

/// The ops that carry out a plan: new tasks (re-checked on their nodes), stops on the tasks as
/// they are now, deregistrations, and the service record with this pass's events (which this
/// renders into it).
fn ops_of(
    tx: &mut Tx<'_>,
    sessions: &crate::live::sessions::Sessions,
    key: &str,
    view: &plan::ServiceView,
    p: &mut ServicePlan,
    now: i64,
) -> Result<Vec<Op>> {
    let cluster = berth_core::arn::cluster_name(&view.service.cluster_arn).to_string();
    let group = format!("service:{}", view.service.service_name);
    let launches: Vec<NewTask> = p
        .launches
        .iter()
        .map(|l| {
            let definition = view
                .definitions
                .get(&l.task_definition_arn)
                .ok_or_else(|| Error::Conflict(format!("{} vanished", l.task_definition_arn)))?;
            Ok(NewTask {
                cluster: &cluster,
                definition,
                node_id: l.node_id.clone(),
                demand: l.demand(),
                group: group.clone(),
                started_by: l.deployment_id.clone(),
                load_balanced: l.load_balanced,
                overrides: None,
                capacity_provider: l.capacity_provider.clone(),
            })
        })
        .collect::<Result<_>>()?;
    let (created, mut ops) = apply::place(tx, Some((sessions, Freshness::Now)), &launches)?;
    for s in &p.stops {
        ops.extend(apply::stop_ops(tx, &s.task_arn, STOP_CODE, &s.reason, now)?);
    }
    for (task_arn, why) in &p.deregister {
        ops.extend(deregister_ops(tx, task_arn, why, now)?);
    }
    render_events(p, &created);
    if p.service != view.service {
        ops.push(put(key.to_string(), &p.service));
    }
    Ok(ops)
}

/// Pushes the pass's events onto the service, naming the tasks just created.
fn render_events(p: &mut ServicePlan, created: &[Task]) {
    let name = p.service.service_name.clone();
    for e in std::mem::take(&mut p.events) {
        let msg = match e {
            Event::TasksStarted => format!(
                "(service {name}) has started {} tasks: {}.",
                created.len(),
                created
                    .iter()
                    .map(|t| format!("(task {})", plan::short(&t.task_arn)))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            Event::Message(m) => m,
        };
        push_event(&mut p.service, msg);
    }
}

/// Marks a stopping task as out of the load balancer, so its agent may stop it.
fn deregister_ops(tx: &mut Tx<'_>, task_arn: &str, why: &str, now: i64) -> Result<Vec<Op>> {
    let Some(key) = apply::task_key(task_arn) else {
        return Ok(Vec::new());
    };
    let Some(mut t) = tx.get::<Task>(&key)? else {
        return Ok(Vec::new());
    };
    if !t.deregistered_at.is_empty() {
        return Ok(Vec::new());
    }
    tracing::info!(task = %task_arn, %why, "task deregistered from the load balancer");
    t.deregistered_at = time::rfc3339(now);
    t.version += 1;
    Ok(vec![put(key, &t)])
}
