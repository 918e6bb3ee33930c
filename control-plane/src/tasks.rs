//! Tasks: run (placement committed under the writer lock), stop, describe, list, the desired set
//! each node is sent, and applying what agents observe. Users and the planner write desired
//! state; only agent reports write observed state, and observed status only moves forward.

use crate::error::{Error, Result};
use crate::nodes::{self, Sessions};
use crate::scheduler::{Demand, NodeSnapshot};
use crate::state::{keys, put, State};
use crate::{arn, clusters, taskdefs, time};
use berth_proto::agent::v1::{AssignedTask, DesiredTasks, TaskReport};
use berth_proto::v1::*;
use std::collections::{HashMap, HashSet};

const MAX_RUN_COUNT: i32 = 10;

/// Where a status sits in the one direction a task moves.
pub fn rank(status: &str) -> u8 {
    match status {
        "PROVISIONING" => 0,
        "PENDING" => 1,
        "ACTIVATING" => 2,
        "RUNNING" => 3,
        "DEACTIVATING" => 4,
        "STOPPING" => 5,
        "STOPPED" => 6,
        _ => 0,
    }
}

/// CPU units and MiB a task reserves: task-level sizes when set, else the containers' sum.
pub fn demand(td: &TaskDefinition) -> Demand {
    let cpu = td.cpu.parse::<i64>().unwrap_or_else(|_| {
        td.container_definitions
            .iter()
            .map(|c| i64::from(c.cpu))
            .sum()
    });
    let memory = td.memory.parse::<i64>().unwrap_or_else(|_| {
        td.container_definitions
            .iter()
            .map(|c| {
                // The soft limit is what a container reserves; the hard limit when there is none.
                let mib = if c.memory_reservation > 0 {
                    c.memory_reservation
                } else {
                    c.memory
                };
                i64::from(mib)
            })
            .sum()
    });
    let mut ports = Vec::new();
    if td.network_mode != "host" {
        for c in &td.container_definitions {
            for p in &c.port_mappings {
                if p.host_port > 0 {
                    ports.push((p.host_port, p.protocol.clone()));
                }
            }
        }
    } else {
        for c in &td.container_definitions {
            for p in &c.port_mappings {
                ports.push((p.container_port, p.protocol.clone()));
            }
        }
    }
    Demand { cpu, memory, ports }
}

/// Builds the planner's view of every node from the store and the live sessions.
pub fn snapshot(state: &State, sessions: &Sessions) -> Result<Vec<NodeSnapshot>> {
    let tasks = state.scan::<Task>(keys::TASKS)?;
    let defs = definitions_of(state, &tasks)?;
    let nodes = state.scan::<ContainerInstance>(keys::NODES)?;
    Ok(nodes
        .into_iter()
        .map(|n| {
            let mine: Vec<&Task> = tasks
                .iter()
                .filter(|t| {
                    t.container_instance_arn == n.container_instance_arn
                        && t.last_status != "STOPPED"
                })
                .collect();
            let mut ports_used: HashSet<(i32, String)> = nodes::reserved_ports(&n)
                .into_iter()
                .flat_map(|p| [(p, "tcp".to_string()), (p, "udp".to_string())])
                .collect();
            for t in &mine {
                if let Some(td) = defs.get(&t.task_definition_arn) {
                    ports_used.extend(demand(td).ports);
                }
            }
            let mut attributes: HashMap<String, String> = n
                .attributes
                .iter()
                .map(|a| (a.name.clone(), a.value.clone()))
                .collect();
            attributes.insert("ecs.instance-id".into(), n.ec2_instance_id.clone());
            attributes.insert("berth.node-name".into(), n.name.clone());
            NodeSnapshot {
                connected: sessions.is_connected(&n.ec2_instance_id),
                active: n.status == "ACTIVE",
                cpu_free: nodes::resource(&n, "CPU")
                    - mine.iter().map(|t| i64::from(t.cpu)).sum::<i64>(),
                memory_free: nodes::resource(&n, "MEMORY")
                    - mine.iter().map(|t| i64::from(t.memory)).sum::<i64>(),
                ports_used,
                tasks: mine.len(),
                attributes,
                service_tasks: 0,
                name: n.name,
                id: n.ec2_instance_id,
            }
        })
        .collect())
}

fn definitions_of(state: &State, tasks: &[Task]) -> Result<HashMap<String, TaskDefinition>> {
    let mut defs = HashMap::new();
    for t in tasks {
        if t.last_status == "STOPPED" || defs.contains_key(&t.task_definition_arn) {
            continue;
        }
        if let Ok(td) = taskdefs::describe(state, &t.task_definition_arn) {
            defs.insert(t.task_definition_arn.clone(), td);
        }
    }
    Ok(defs)
}

/// `task run`: places `count` tasks; what cannot be placed comes back in `failures`.
pub fn run(state: &State, sessions: &Sessions, req: RunTaskRequest) -> Result<RunTaskReply> {
    let placement = crate::task_placement::Placement::of(&req)?;
    let count = placement.count(if req.count == 0 { 1 } else { req.count });
    if !(1..=MAX_RUN_COUNT).contains(&count) {
        return Err(Error::invalid(
            "count",
            format!("{count} must be 1-{MAX_RUN_COUNT}"),
        ));
    }
    if req.task_definition.trim().is_empty() {
        return Err(Error::invalid(
            "taskDefinition",
            "is required (FAMILY or FAMILY:REVISION)",
        ));
    }
    let cluster = cluster_or_default(&req.cluster);
    let _w = state.write_lock();
    let cluster = clusters::get_active(state, cluster)?;
    let td = taskdefs::describe(state, &req.task_definition)?;
    if td.status != "ACTIVE" {
        return Err(Error::Client(format!(
            "task definition {}:{} is INACTIVE; register a new revision or use an active one",
            td.family, td.revision
        )));
    }
    let demand = demand(&td);
    let mut nodes = snapshot(state, sessions)?;
    let mut reply = RunTaskReply::default();
    let mut ops = Vec::new();
    for i in 0..count as usize {
        match placement.place(&mut nodes, &demand, i) {
            Ok(node_id) => {
                state.metrics().placed();
                let task = new_task(&cluster.cluster_name, &td, &node_id, &demand, &req);
                ops.push(put(
                    keys::task(&cluster.cluster_name, task_id(&task.task_arn)),
                    &task,
                ));
                reply.tasks.push(task);
            }
            Err(r) => {
                state.metrics().placement_failed(r.reason);
                reply.failures.push(Failure {
                    arn: td.task_definition_arn.clone(),
                    reason: r.reason.to_string(),
                    detail: r.detail,
                })
            }
        }
    }
    state.commit(ops)?;
    Ok(reply)
}

fn new_task(
    cluster: &str,
    td: &TaskDefinition,
    node_id: &str,
    d: &Demand,
    req: &RunTaskRequest,
) -> Task {
    let group = if req.group.is_empty() {
        format!("family:{}", td.family)
    } else {
        req.group.clone()
    };
    let mut task = build_task(cluster, td, node_id, d, group, req.started_by.clone());
    task.overrides = req.overrides.clone();
    task
}

/// A new task record, PROVISIONING on `node_id`, wanting to run.
pub fn build_task(
    cluster: &str,
    td: &TaskDefinition,
    node_id: &str,
    d: &Demand,
    group: String,
    started_by: String,
) -> Task {
    let id = nodes::new_id(32);
    let task_arn = arn::task(cluster, &id);
    Task {
        cluster_arn: arn::cluster(cluster),
        task_definition_arn: td.task_definition_arn.clone(),
        container_instance_arn: arn::container_instance(node_id),
        last_status: "PROVISIONING".into(),
        desired_status: "RUNNING".into(),
        health_status: "UNKNOWN".into(),
        created_at: time::now(),
        group,
        started_by,
        containers: td
            .container_definitions
            .iter()
            .map(|c| Container {
                container_arn: format!("{task_arn}/{}", c.name),
                task_arn: task_arn.clone(),
                name: c.name.clone(),
                image: c.image.clone(),
                last_status: "PENDING".into(),
                health_status: "UNKNOWN".into(),
                essential: c.essential.unwrap_or(true),
                ..Default::default()
            })
            .collect(),
        cpu: d.cpu as i32,
        memory: d.memory as i32,
        task_arn,
        ..Default::default()
    }
}

fn cluster_or_default(c: &str) -> &str {
    if c.trim().is_empty() {
        clusters::DEFAULT_CLUSTER
    } else {
        c
    }
}

/// The id at the end of a task ARN (or the id itself).
pub fn task_id(task: &str) -> &str {
    arn::last_segment(task)
}

/// The cluster named in a task ARN `…:task/CLUSTER/ID`.
pub fn cluster_of_arn(task_arn: &str) -> Option<&str> {
    let rest = task_arn.rsplit_once(":task/")?.1;
    Some(rest.split_once('/')?.0)
}

/// Finds a task by ARN, or by id in `cluster` (or, with no cluster given, in any cluster).
pub fn find(state: &State, cluster: &str, task: &str) -> Result<Task> {
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
    state
        .scan::<Task>(keys::TASKS)?
        .into_iter()
        .find(|t| task_id(&t.task_arn) == id)
        .ok_or_else(not_found)
}

pub fn key_of(t: &Task) -> String {
    keys::task(
        cluster_of_arn(&t.task_arn).unwrap_or_default(),
        task_id(&t.task_arn),
    )
}

/// `task stop`: desired STOPPED with the user's reason; the agent does the stopping.
pub fn stop(state: &State, cluster: &str, task: &str, reason: &str) -> Result<Task> {
    let _w = state.write_lock();
    let mut t = find(state, cluster, task)?;
    if t.desired_status == "STOPPED" || t.last_status == "STOPPED" {
        return Ok(t);
    }
    t.desired_status = "STOPPED".into();
    t.stop_code = "UserInitiated".into();
    t.stopped_reason = if reason.trim().is_empty() {
        "Task stopped by user".into()
    } else {
        reason.to_string()
    };
    t.stopping_at = time::now();
    t.version += 1;
    state.commit(vec![put(key_of(&t), &t)])?;
    Ok(t)
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
                format!("{other:?} must be RUNNING or STOPPED"),
            ))
        }
    };
    let node = arn::last_segment(&req.container_instance).to_string();
    let mut tasks: Vec<Task> = state
        .scan::<Task>(&prefix)?
        .into_iter()
        .filter(|t| (t.desired_status == "STOPPED") == want_stopped)
        .filter(|t| {
            req.service_name.is_empty() || t.group == format!("service:{}", req.service_name)
        })
        .filter(|t| req.family.is_empty() || taskdef_family(&t.task_definition_arn) == req.family)
        .filter(|t| node.is_empty() || arn::last_segment(&t.container_instance_arn) == node)
        .collect();
    tasks.sort_by(|a, b| a.created_at.cmp(&b.created_at));
    Ok(tasks)
}

fn taskdef_family(taskdef_arn: &str) -> &str {
    let s = taskdef_arn
        .rsplit_once("task-definition/")
        .map_or(taskdef_arn, |(_, r)| r);
    s.split_once(':').map_or(s, |(f, _)| f)
}

/// Every unstopped task placed on the node, with its definition: what the agent must run; and
/// the node's stopped tasks still retained, whose containers it keeps.
pub fn desired_for_node(state: &State, node_id: &str) -> Result<DesiredTasks> {
    let node_arn = arn::container_instance(node_id);
    let (tasks, stopped): (Vec<Task>, Vec<Task>) = state
        .scan::<Task>(keys::TASKS)?
        .into_iter()
        .filter(|t| t.container_instance_arn == node_arn)
        .partition(|t| t.last_status != "STOPPED");
    let mut retained_task_arns: Vec<String> = stopped.into_iter().map(|t| t.task_arn).collect();
    retained_task_arns.sort();
    let mut defs: HashMap<String, TaskDefinition> = HashMap::new();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        if !defs.contains_key(&t.task_definition_arn) {
            let td = taskdefs::describe(state, &t.task_definition_arn)?;
            defs.insert(t.task_definition_arn.clone(), td);
        }
        out.push(AssignedTask {
            task_definition: defs.get(&t.task_definition_arn).cloned(),
            task: Some(t),
        });
    }
    out.sort_by(|a, b| {
        let ka = a.task.as_ref().map(|t| t.task_arn.as_str());
        let kb = b.task.as_ref().map(|t| t.task_arn.as_str());
        ka.cmp(&kb)
    });
    Ok(DesiredTasks {
        tasks: out,
        retained_task_arns,
    })
}

/// Applies an agent's observation of a task it runs. Reports from a node the task is not placed
/// on, or that would move status backwards, change nothing.
pub fn apply_report(state: &State, node_id: &str, r: &TaskReport) -> Result<bool> {
    let _w = state.write_lock();
    let Some(cluster) = cluster_of_arn(&r.task_arn) else {
        return Ok(false);
    };
    let key = keys::task(cluster, task_id(&r.task_arn));
    let Some(mut t) = state.get::<Task>(&key)? else {
        return Ok(false);
    };
    if t.container_instance_arn != arn::container_instance(node_id) || t.last_status == "STOPPED" {
        return Ok(false);
    }
    let before = t.clone();
    if rank(&r.last_status) >= rank(&t.last_status) {
        t.last_status = r.last_status.clone();
    }
    if !r.health_status.is_empty() {
        t.health_status = r.health_status.clone();
    }
    if !r.containers.is_empty() {
        t.containers = r.containers.clone();
    }
    if t.started_at.is_empty() && !r.started_at.is_empty() {
        t.started_at = r.started_at.clone();
    }
    if rank(&t.last_status) >= rank("STOPPING") && t.stopping_at.is_empty() {
        t.stopping_at = time::now();
    }
    if t.last_status == "STOPPED" {
        // A stopped task never runs again: its desired status follows.
        t.desired_status = "STOPPED".into();
        t.stopped_at = if r.stopped_at.is_empty() {
            time::now()
        } else {
            r.stopped_at.clone()
        };
        if t.stop_code.is_empty() {
            t.stop_code = r.stop_code.clone();
        }
        if t.stopped_reason.is_empty() {
            t.stopped_reason = r.stopped_reason.clone();
        }
    }
    if t == before {
        return Ok(false);
    }
    t.version += 1;
    state.commit(vec![put(key, &t)])?;
    Ok(true)
}

/// Removes tasks stopped longer ago than `retention_ms` (their record, not just their containers).
pub fn forget_stopped(state: &State, now_ms: i64, retention_ms: i64) -> Result<usize> {
    let _w = state.write_lock();
    let cutoff = time::rfc3339(now_ms - retention_ms);
    let ops: Vec<_> = state
        .scan::<Task>(keys::TASKS)?
        .into_iter()
        .filter(|t| t.last_status == "STOPPED" && !t.stopped_at.is_empty() && t.stopped_at < cutoff)
        .map(|t| crate::store::Op::Delete(key_of(&t)))
        .collect();
    let n = ops.len();
    state.commit(ops)?;
    Ok(n)
}
