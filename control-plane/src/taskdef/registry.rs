//! Task definitions: register (revisions per family that only grow), describe, list, deregister.

use crate::error::{Error, FieldError, Result};
use crate::state::{keys, put, State};
use crate::taskdef::{self, parse_reference};
use crate::{arn, time};
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
    let decoded = taskdef::decode(text).map_err(Error::Invalid)?;
    let mut reg = register(state, decoded.task_definition)?;
    reg.ignored_fields = decoded.ignored;
    Ok(reg)
}

/// Registers a definition message as the family's next revision. Server-set fields
/// (ARN, revision, status, timestamps) are overwritten.
pub fn register(state: &State, mut td: TaskDefinition) -> Result<Registered> {
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
        let ops = vec![
            put(keys::task_definition(&td.family, revision), &td),
            crate::store::Op::Put(counter_key.clone(), revision.to_string().into_bytes()),
        ];
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
            crate::error::quote(s)
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
    if !matches!(status.as_str(), "ACTIVE" | "INACTIVE" | "ALL") {
        return Err(Error::invalid(
            "status",
            format!(
                "{} must be ACTIVE, INACTIVE or ALL",
                crate::error::quote(&status)
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
                crate::error::quote(reference),
                crate::error::cut(&family)
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
