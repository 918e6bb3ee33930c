//! RunTask / StartTask overrides applied to a task definition: the definition as one task runs
//! it. Shared by the control plane (placement reserves what the task will use) and the agent
//! (which runs it), so both read an override the same way.

use crate::v1::{KeyValuePair, TaskDefinition, TaskOverride};

/// `def` with `o` applied: a container override's command replaces the container's, its
/// environment is added (a name given again takes the new value), and its cpu, memory,
/// memoryReservation and resourceRequirements replace the container's when set; the task-level
/// cpu and memory replace the task's when not empty.
pub fn apply(mut def: TaskDefinition, o: Option<&TaskOverride>) -> TaskDefinition {
    let Some(o) = o else {
        return def;
    };
    if !o.cpu.is_empty() {
        def.cpu = o.cpu.clone();
    }
    if !o.memory.is_empty() {
        def.memory = o.memory.clone();
    }
    for co in &o.container_overrides {
        let Some(c) = def
            .container_definitions
            .iter_mut()
            .find(|c| c.name == co.name)
        else {
            continue;
        };
        if !co.command.is_empty() {
            c.command = co.command.clone();
        }
        for kv in &co.environment {
            c.environment.retain(|e| e.name != kv.name);
            c.environment.push(KeyValuePair {
                name: kv.name.clone(),
                value: kv.value.clone(),
            });
        }
        if let Some(cpu) = co.cpu {
            c.cpu = cpu;
        }
        if let Some(m) = co.memory {
            c.memory = m;
        }
        if let Some(m) = co.memory_reservation {
            c.memory_reservation = m;
        }
        if !co.resource_requirements.is_empty() {
            c.resource_requirements = co.resource_requirements.clone();
        }
    }
    def
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::{ContainerDefinition, ContainerOverride};

    #[test]
    fn every_override_lands_on_its_container_and_the_task() {
        let def = TaskDefinition {
            cpu: "256".into(),
            container_definitions: vec![ContainerDefinition {
                name: "web".into(),
                memory: 64,
                command: vec!["a".into()],
                ..Default::default()
            }],
            ..Default::default()
        };
        let o = TaskOverride {
            memory: "512".into(),
            container_overrides: vec![ContainerOverride {
                name: "web".into(),
                memory: Some(128),
                memory_reservation: Some(32),
                cpu: Some(100),
                ..Default::default()
            }],
            ..Default::default()
        };
        let d = apply(def, Some(&o));
        assert_eq!((d.cpu.as_str(), d.memory.as_str()), ("256", "512"));
        let c = &d.container_definitions[0];
        assert_eq!((c.cpu, c.memory, c.memory_reservation), (100, 128, 32));
        assert_eq!(c.command, vec!["a".to_string()]);
    }
}
