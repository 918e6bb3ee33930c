//! Capacity: what a task demands of a node (CPU units, MiB, host ports) and what a node has
//! room for, given its record and the claims of the tasks placed on it.

use crate::scheduler::{Demand, VolumeNeed};
use berth_proto::v1::{ContainerInstance, NodeClaim, TaskDefinition};
use std::collections::HashSet;

/// CPU units and MiB a task reserves (task-level sizes when set, else the containers' sum),
/// its static host ports, the host paths it binds and the shared volumes it mounts (where
/// those are is the caller's to say: `scheduler::locate_volumes`).
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
    let mut host_paths = Vec::new();
    let mut volumes = Vec::new();
    for v in &td.volumes {
        match (&v.host, &v.docker_volume_configuration) {
            (Some(h), _) if !h.source_path.is_empty() => host_paths.push(h.source_path.clone()),
            (_, Some(d)) if d.scope == "shared" => volumes.push(VolumeNeed {
                name: v.name.clone(),
                autoprovision: d.autoprovision == Some(true),
                ..Default::default()
            }),
            _ => {}
        }
    }
    Demand {
        cpu,
        memory,
        ports,
        host_paths,
        volumes,
    }
}

/// What a node has room for, from its record and its unreleased claims.
#[derive(Debug, Clone, Default)]
pub struct Room {
    pub cpu: i64,
    pub memory: i64,
    pub ports_used: HashSet<(i32, String)>,
    pub tasks: usize,
}

/// What a node's unreleased claims add up to.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub cpu: i64,
    pub memory: i64,
    pub ports: Vec<(i32, String)>,
    pub tasks: usize,
}

impl Usage {
    pub fn of<'a>(claims: impl IntoIterator<Item = &'a NodeClaim>) -> Self {
        let mut u = Usage::default();
        for c in claims.into_iter().filter(|c| !c.released) {
            u.cpu += i64::from(c.cpu);
            u.memory += i64::from(c.memory);
            u.ports
                .extend(c.ports.iter().map(|p| (p.port, p.protocol.clone())));
            u.tasks += 1;
        }
        u
    }
}

impl Room {
    /// A node's room given its claims.
    pub fn of(node: &ContainerInstance, claims: &[NodeClaim]) -> Self {
        Self::left(node, &Usage::of(claims))
    }

    /// A node's room given what its claims add up to.
    pub fn left(node: &ContainerInstance, used: &Usage) -> Self {
        let mut ports_used: HashSet<(i32, String)> = reserved_ports(node)
            .into_iter()
            .flat_map(|p| [(p, "tcp".to_string()), (p, "udp".to_string())])
            .collect();
        ports_used.extend(used.ports.iter().cloned());
        Room {
            cpu: resource(node, "CPU") - used.cpu,
            memory: resource(node, "MEMORY") - used.memory,
            ports_used,
            tasks: used.tasks,
        }
    }

    /// Why the demand does not fit, if it does not.
    pub fn take(&mut self, d: &Demand) -> std::result::Result<(), String> {
        if d.cpu > self.cpu {
            return Err(format!(
                "RESOURCE:CPU ({} wanted, {} free)",
                d.cpu, self.cpu
            ));
        }
        if d.memory > self.memory {
            return Err(format!(
                "RESOURCE:MEMORY ({} MiB wanted, {} free)",
                d.memory, self.memory
            ));
        }
        if let Some(p) = d.ports.iter().find(|p| self.ports_used.contains(*p)) {
            return Err(format!("RESOURCE:PORTS ({}/{} taken)", p.0, p.1));
        }
        self.cpu -= d.cpu;
        self.memory -= d.memory;
        self.ports_used.extend(d.ports.iter().cloned());
        self.tasks += 1;
        Ok(())
    }
}

/// A node's registered amount of one resource (`CPU`, `MEMORY`), 0 when it has none.
pub fn resource(node: &ContainerInstance, name: &str) -> i64 {
    node.registered_resources
        .iter()
        .find(|r| r.name == name)
        .map_or(0, |r| r.integer_value)
}

pub fn reserved_ports(node: &ContainerInstance) -> Vec<i32> {
    node.registered_resources
        .iter()
        .find(|r| r.name == "PORTS")
        .map(|r| {
            r.string_set_value
                .iter()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}
