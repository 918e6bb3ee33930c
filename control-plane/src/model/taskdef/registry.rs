//! Task definitions: register (revisions per family that only grow), describe, list, deregister.

use crate::model::taskdef::{self, parse_reference};
use crate::state::error::{Error, FieldError, Result};
use crate::state::{keys, put, State};
use crate::time;
use berth_core::arn;
use berth_proto::v1::TaskDefinition;

/// A registration's outcome: the stored definition and what was accepted but not used.
#[derive(Debug)]
pub struct Registered {
    pub task_definition: TaskDefinition,
    pub ignored_fields: Vec<String>,
    pub warnings: Vec<String>,
}

/// Registers from ECS JSON text: decode, validate, then store as the family's next revision.
pub fn register_json(state: &State, text: &str) -> Result<Registered> {
    register_json_with(state, text, |_| Ok(Vec::new()))
}

/// `register_json`, committing `also(definition)`'s writes in the same batch.
pub fn register_json_with(
    state: &State,
    text: &str,
    also: impl FnMut(&TaskDefinition) -> Result<Vec<crate::store::Op>>,
) -> Result<Registered> {
    let decoded = taskdef::decode(text).map_err(Error::Invalid)?;
    let mut reg = register_with(state, decoded.task_definition, also)?;
    reg.ignored_fields = decoded.ignored;
    Ok(reg)
}

/// Registers a definition message as the family's next revision. Server-set fields
/// (ARN, revision, status, timestamps) are overwritten.
pub fn register(state: &State, td: TaskDefinition) -> Result<Registered> {
    register_with(state, td, |_| Ok(Vec::new()))
}

/// `register`, committing `also(definition)`'s writes in the same batch.
pub fn register_with(
    state: &State,
    mut td: TaskDefinition,
    mut also: impl FnMut(&TaskDefinition) -> Result<Vec<crate::store::Op>>,
) -> Result<Registered> {
    taskdef::unmodeled::check(&td.unmodeled_json).map_err(Error::Invalid)?;
    let warnings = taskdef::normalize(&mut td).map_err(Error::Invalid)?;
    let counter_key = keys::family_counter(&td.family);
    let td = state.update(|tx| {
        let last = match tx.get_raw(&counter_key)? {
            Some(b) => String::from_utf8_lossy(&b).parse::<i32>().unwrap_or(0),
            None => 0,
        };
        let revision = last + 1;
        let mut td = td.clone();
        td.revision = revision;
        td.task_definition_arn = arn::task_definition(&td.family, revision);
        td.status = "ACTIVE".into();
        td.registered_at = time::now();
        td.deregistered_at.clear();
        td.events = taskdef::unmodeled::event(&td.unmodeled_json, &td.registered_at)
            .into_iter()
            .collect();
        let mut ops = vec![
            put(keys::task_definition(&td.family, revision), &td),
            crate::store::Op::Put(counter_key.clone(), revision.to_string().into_bytes()),
        ];
        ops.extend(also(&td)?);
        Ok((td, ops))
    })?;
    Ok(Registered {
        task_definition: td,
        ignored_fields: Vec::new(),
        warnings,
    })
}

fn bad_reference(s: &str) -> Error {
    Error::Invalid(vec![FieldError::new(
        "taskDefinition",
        format!(
            "{} is not FAMILY, FAMILY:REVISION or a task definition ARN",
            crate::state::error::quote(s)
        ),
    )])
}

/// `FAMILY` is the latest ACTIVE revision; `FAMILY:REV` (or an ARN) that revision, in any status.
pub fn describe(state: &State, reference: &str) -> Result<TaskDefinition> {
    let (family, revision) = parse_reference(reference).ok_or_else(|| bad_reference(reference))?;
    let found = match revision {
        Some(r) => state.get::<TaskDefinition>(&keys::task_definition(&family, r))?,
        None => state
            .scan::<TaskDefinition>(&keys::task_definitions_of(&family))?
            .into_iter()
            .rev()
            .find(|t| t.status == "ACTIVE"),
    };
    found.ok_or_else(|| {
        Error::not_found(
            "TaskDefinition",
            reference,
            "register it with `berth taskdef register -f FILE`, or see `berth taskdef list`",
        )
    })
}

/// Definitions of `family` (exactly) or whose family starts with `family_prefix`, filtered by status
/// (ACTIVE by default, INACTIVE, or ALL), ordered by family then revision.
pub fn list(
    state: &State,
    family: &str,
    family_prefix: &str,
    status: &str,
) -> Result<Vec<TaskDefinition>> {
    let status = if status.is_empty() {
        "ACTIVE".to_string()
    } else {
        status.to_ascii_uppercase()
    };
    if !matches!(
        status.as_str(),
        "ACTIVE" | "INACTIVE" | "DELETE_IN_PROGRESS" | "ALL"
    ) {
        return Err(Error::invalid(
            "status",
            format!(
                "{} must be ACTIVE, INACTIVE, DELETE_IN_PROGRESS or ALL",
                crate::state::error::quote(&status)
            ),
        ));
    }
    let prefix = if family.is_empty() {
        format!("{}{family_prefix}", keys::TASK_DEFINITIONS)
    } else {
        keys::task_definitions_of(family)
    };
    Ok(state
        .scan::<TaskDefinition>(&prefix)?
        .into_iter()
        .filter(|t| status == "ALL" || t.status == status)
        .collect())
}

/// Marks `FAMILY:REV` INACTIVE: no new tasks or services from it; running ones keep running.
pub fn deregister(state: &State, reference: &str) -> Result<TaskDefinition> {
    let (family, revision) = parse_reference(reference).ok_or_else(|| bad_reference(reference))?;
    let Some(revision) = revision else {
        return Err(Error::invalid(
            "taskDefinition",
            format!(
                "{} needs a revision: deregister FAMILY:REVISION, e.g. {}:1",
                crate::state::error::quote(reference),
                crate::state::error::cut(&family)
            ),
        ));
    };
    let key = keys::task_definition(&family, revision);
    state.update(|tx| {
        let mut td = tx.get::<TaskDefinition>(&key)?.ok_or_else(|| {
            Error::not_found(
                "TaskDefinition",
                reference,
                "see `berth taskdef list --status ALL`",
            )
        })?;
        if td.status == "INACTIVE" {
            return Ok((td, Vec::new()));
        }
        td.status = "INACTIVE".into();
        td.deregistered_at = time::now();
        let ops = vec![put(key.clone(), &td)];
        Ok((td, ops))
    })
}

/// ECS's DeleteTaskDefinitions: an INACTIVE revision becomes DELETE_IN_PROGRESS, and is removed
/// by `sweep_deleted` once no task or service uses it.
pub fn delete(state: &State, reference: &str) -> Result<TaskDefinition> {
    let (family, revision) = parse_reference(reference).ok_or_else(|| bad_reference(reference))?;
    let Some(revision) = revision else {
        return Err(Error::invalid(
            "taskDefinitions",
            format!("{reference:?} needs a revision: FAMILY:REVISION, e.g. {family}:1"),
        ));
    };
    let key = keys::task_definition(&family, revision);
    state.update(|tx| {
        let mut td = tx.get::<TaskDefinition>(&key)?.ok_or_else(|| {
            Error::not_found(
                "TaskDefinition",
                reference,
                "see `berth taskdef list --status ALL`",
            )
        })?;
        match td.status.as_str() {
            "ACTIVE" => Err(Error::Client(format!(
                "task definition {family}:{revision} is ACTIVE; deregister it first (aws ecs deregister-task-definition)"
            ))),
            "DELETE_IN_PROGRESS" => Ok((td, Vec::new())),
            _ => {
                td.status = "DELETE_IN_PROGRESS".into();
                let ops = vec![put(key.clone(), &td)];
                Ok((td, ops))
            }
        }
    })
}

/// Removes DELETE_IN_PROGRESS revisions that no unstopped task and no live service uses.
pub fn sweep_deleted(state: &State) -> Result<usize> {
    state.update(sweep_in)
}

fn sweep_in(tx: &mut crate::state::Tx<'_>) -> Result<(usize, Vec<crate::store::Op>)> {
    use berth_core::status::TaskState;
    use berth_proto::v1::{Service, TaskHeader};
    let state = tx.state().clone();
    let state = &state;
    // Compared at commit: a revision or task written meanwhile makes the sweep look again.
    let doomed: Vec<TaskDefinition> = tx
        .scan::<TaskDefinition>(keys::TASK_DEFINITIONS)?
        .into_iter()
        .filter(|t| t.status == "DELETE_IN_PROGRESS")
        .collect();
    if doomed.is_empty() {
        return Ok((0, Vec::new()));
    }
    let mut used = std::collections::HashSet::new();
    state.scan_each::<TaskHeader>(keys::TASKS, |t| {
        if !t.is_stopped() {
            used.insert(t.task_definition_arn);
        }
        true
    })?;
    for s in state.scan::<Service>("service/")? {
        if s.status != "INACTIVE" {
            used.insert(s.task_definition.clone());
            used.extend(s.deployments.into_iter().map(|d| d.task_definition));
        }
    }
    let ops: Vec<_> = doomed
        .iter()
        .filter(|t| !used.contains(&t.task_definition_arn))
        .flat_map(|t| {
            let key = keys::task_definition(&t.family, t.revision);
            [
                crate::model::ecs_extras::put_op(
                    &key,
                    &crate::model::ecs_extras::Extras::default(),
                ),
                crate::store::Op::Delete(key),
            ]
        })
        .collect();
    let n = ops.len() / 2;
    Ok((n, ops))
}
