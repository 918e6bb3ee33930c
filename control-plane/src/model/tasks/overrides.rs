//! RunTask / StartTask overrides checked against the definition they override: the definition
//! as the task will run it (`berth_proto::overrides::apply`) must pass the same validation as a
//! registered one, and each problem is named at its place in the request
//! (`overrides.containerOverrides[0].memory`). Task-level cpu and memory are stored normalised.

use crate::state::error::{Error, FieldError, Result};
use berth_proto::v1::{TaskDefinition, TaskOverride};

/// The definition as the task runs it, and the overrides to store with the task.
pub fn effective(
    td: &TaskDefinition,
    o: Option<&TaskOverride>,
) -> Result<(TaskDefinition, Option<TaskOverride>)> {
    let Some(o) = o else {
        return Ok((td.clone(), None));
    };
    let mut errs = Vec::new();
    for (j, co) in o.container_overrides.iter().enumerate() {
        if !td.container_definitions.iter().any(|c| c.name == co.name) {
            errs.push(FieldError::new(
                format!("overrides.containerOverrides[{j}].name"),
                format!(
                    "{} is not a container of {}:{}",
                    crate::state::error::quote(&co.name),
                    td.family,
                    td.revision
                ),
            ));
        }
    }
    if !errs.is_empty() {
        return Err(Error::Invalid(errs));
    }
    let mut eff = berth_proto::overrides::apply(td.clone(), Some(o));
    if let Err(errs) = crate::model::taskdef::normalize(&mut eff) {
        return Err(Error::Invalid(
            errs.into_iter().map(|e| at_request(td, o, e)).collect(),
        ));
    }
    let mut stored = o.clone();
    if !o.cpu.is_empty() {
        stored.cpu = eff.cpu.clone();
    }
    if !o.memory.is_empty() {
        stored.memory = eff.memory.clone();
    }
    Ok((eff, Some(stored)))
}

/// A definition field's error, moved to where the request set it.
fn at_request(td: &TaskDefinition, o: &TaskOverride, e: FieldError) -> FieldError {
    if e.path == "cpu" || e.path == "memory" {
        return FieldError::new(format!("overrides.{}", e.path), e.message);
    }
    let moved = e
        .path
        .strip_prefix("containerDefinitions[")
        .and_then(|r| r.split_once(']'))
        .and_then(|(i, rest)| {
            let name = &td.container_definitions.get(i.parse::<usize>().ok()?)?.name;
            let j = o.container_overrides.iter().position(|c| &c.name == name)?;
            Some(format!("overrides.containerOverrides[{j}]{rest}"))
        });
    match moved {
        Some(path) => FieldError::new(path, e.message),
        None => FieldError::new(format!("overrides ({})", e.path), e.message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::v1::{ContainerDefinition, ContainerOverride};

    fn td() -> TaskDefinition {
        let mut td = TaskDefinition {
            family: "web".into(),
            revision: 1,
            container_definitions: vec![ContainerDefinition {
                name: "web".into(),
                image: "i".into(),
                memory: 64,
                ..Default::default()
            }],
            ..Default::default()
        };
        crate::model::taskdef::normalize(&mut td).unwrap();
        td
    }

    #[test]
    fn overrides_are_validated_where_the_request_set_them() {
        let o = TaskOverride {
            memory: "1GB".into(),
            container_overrides: vec![ContainerOverride {
                name: "web".into(),
                memory: Some(128),
                memory_reservation: Some(256),
                ..Default::default()
            }],
            ..Default::default()
        };
        let Err(Error::Invalid(errs)) = effective(&td(), Some(&o)) else {
            panic!("accepted");
        };
        assert_eq!(
            errs[0].path, "overrides.containerOverrides[0].memoryReservation",
            "{errs:?}"
        );
        let ok = TaskOverride {
            memory: "1GB".into(),
            ..o.clone()
        };
        let ok = TaskOverride {
            container_overrides: vec![ContainerOverride {
                memory_reservation: Some(32),
                ..ok.container_overrides[0].clone()
            }],
            ..ok
        };
        let (eff, stored) = effective(&td(), Some(&ok)).unwrap();
        assert_eq!(eff.memory, "1024");
        assert_eq!(stored.unwrap().memory, "1024");
        assert_eq!(eff.container_definitions[0].memory, 128);
    }
}
