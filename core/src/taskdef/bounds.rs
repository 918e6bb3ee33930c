//! The size bounds of a task definition (part of `normalize`, the one validation): how many port
//! mappings, environment entries and arguments it may have, and ECS's 64 KiB for its JSON.

use crate::error::FieldError;
use crate::limits::{
    MAX_ARG_BYTES, MAX_COMMAND_ARGS, MAX_ENVIRONMENT, MAX_PORTS_PER_CONTAINER, MAX_PORTS_PER_TASK,
    MAX_TASK_DEFINITION_BYTES,
};
use berth_proto::v1::TaskDefinition;

/// Counts bytes written, so the JSON size is known without building the JSON.
struct Count(usize);

impl std::io::Write for Count {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The JSON size of `td` as the API would write it.
pub fn json_size(td: &TaskDefinition) -> usize {
    let mut n = Count(0);
    let _ = serde_json::to_writer(&mut n, td);
    n.0
}

/// The bounds `td` breaks, for a definition stored before they existed (its size without the
/// fields the server filled in, as it was checked at registration).
pub fn bounds_problems(td: &TaskDefinition) -> Vec<FieldError> {
    let as_registered = TaskDefinition {
        task_definition_arn: String::new(),
        revision: 0,
        status: String::new(),
        registered_at: String::new(),
        deregistered_at: String::new(),
        ..td.clone()
    };
    let mut errs = Vec::new();
    check_bounds(&as_registered, &mut errs);
    errs
}

pub(super) fn check_bounds(td: &TaskDefinition, errs: &mut Vec<FieldError>) {
    let size = json_size(td);
    if size > MAX_TASK_DEFINITION_BYTES {
        errs.push(FieldError::new(
            "",
            format!("the task definition is {size} bytes of JSON, more than ECS's limit of {MAX_TASK_DEFINITION_BYTES} (64 KiB); move large values out of it"),
        ));
    }
    let mut task_ports = 0;
    for (i, c) in td.container_definitions.iter().enumerate() {
        let p = format!("containerDefinitions[{i}]");
        task_ports += c.port_mappings.len();
        if c.port_mappings.len() > MAX_PORTS_PER_CONTAINER {
            errs.push(FieldError::new(
                format!("{p}.portMappings"),
                format!(
                    "{} port mappings; at most {MAX_PORTS_PER_CONTAINER} per container (each published port costs the host a process)",
                    c.port_mappings.len()
                ),
            ));
        }
        if c.environment.len() > MAX_ENVIRONMENT {
            errs.push(FieldError::new(
                format!("{p}.environment"),
                format!(
                    "{} entries; at most {MAX_ENVIRONMENT} per container",
                    c.environment.len()
                ),
            ));
        }
        for (field, args) in [("command", &c.command), ("entryPoint", &c.entry_point)] {
            if args.len() > MAX_COMMAND_ARGS {
                errs.push(FieldError::new(
                    format!("{p}.{field}"),
                    format!("{} arguments; at most {MAX_COMMAND_ARGS}", args.len()),
                ));
            }
            if let Some(j) = args.iter().position(|a| a.len() > MAX_ARG_BYTES) {
                errs.push(FieldError::new(
                    format!("{p}.{field}[{j}]"),
                    format!(
                        "{} bytes; at most {MAX_ARG_BYTES} an argument",
                        args[j].len()
                    ),
                ));
            }
        }
    }
    if task_ports > MAX_PORTS_PER_TASK {
        errs.push(FieldError::new(
            "containerDefinitions",
            format!("the containers map {task_ports} ports; at most {MAX_PORTS_PER_TASK} per task"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::v1::{ContainerDefinition, KeyValuePair, PortMapping};

    fn paths(td: &TaskDefinition) -> Vec<String> {
        let mut errs = Vec::new();
        check_bounds(td, &mut errs);
        errs.into_iter().map(|e| format!("{e}")).collect()
    }

    #[test]
    fn a_task_of_thousands_of_ports_and_variables_is_refused_naming_each_limit() {
        let c = ContainerDefinition {
            name: "web".into(),
            image: "berth-demo:latest".into(),
            port_mappings: (0..300)
                .map(|p| PortMapping {
                    container_port: 1000 + p,
                    ..Default::default()
                })
                .collect(),
            environment: (0..1001)
                .map(|i| KeyValuePair {
                    name: format!("V{i}"),
                    value: String::new(),
                })
                .collect(),
            command: vec!["x".repeat(MAX_ARG_BYTES + 1)],
            ..Default::default()
        };
        let td = TaskDefinition {
            family: "web".into(),
            container_definitions: vec![c],
            ..Default::default()
        };
        let errs = paths(&td);
        let want = [
            "containerDefinitions[0].portMappings: 300 port mappings; at most 100 per container",
            "containerDefinitions[0].environment: 1001 entries; at most 1000 per container",
            "containerDefinitions[0].command[0]: 8193 bytes; at most 8192 an argument",
            "containerDefinitions: the containers map 300 ports; at most 100 per task",
        ];
        for w in want {
            assert!(errs.iter().any(|e| e.starts_with(w)), "{w} in {errs:?}");
        }
    }

    #[test]
    fn a_definition_registered_just_under_64_kib_is_still_in_bounds_once_stored() {
        let mut td = TaskDefinition {
            family: "web".into(),
            container_definitions: vec![ContainerDefinition {
                name: "web".into(),
                image: "berth-demo:latest".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let room = MAX_TASK_DEFINITION_BYTES - json_size(&td) - 40;
        td.container_definitions[0].environment = vec![KeyValuePair {
            name: "PAD".into(),
            value: "v".repeat(room),
        }];
        assert!(paths(&td).is_empty(), "{:?}", paths(&td));
        td.task_definition_arn = "arn:berth:ecs:local:000000000000:task-definition/web:1".into();
        td.registered_at = "2026-12-01T09:00:00.000Z".into();
        td.status = "ACTIVE".into();
        td.revision = 1;
        assert!(bounds_problems(&td).is_empty());
    }

    #[test]
    fn more_than_64_kib_of_json_is_refused_with_its_size() {
        let c = ContainerDefinition {
            name: "web".into(),
            image: "berth-demo:latest".into(),
            environment: vec![KeyValuePair {
                name: "BIG".into(),
                value: "v".repeat(70_000),
            }],
            ..Default::default()
        };
        let td = TaskDefinition {
            family: "web".into(),
            container_definitions: vec![c],
            ..Default::default()
        };
        let errs = paths(&td);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].contains("more than ECS's limit of 65536 (64 KiB)"),
            "{errs:?}"
        );
    }
}
