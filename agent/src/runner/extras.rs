//! How one runner lays out its task on Docker beyond each container's basics: the shared
//! namespaces of awsvpc and of pidMode / ipcMode `task` (the first container in start order owns
//! them, the rest join it), links, task-level cpu / memory spread over the containers as hard
//! limits, and ECS's extended container fields as `ContainerExtras`.

use super::{container_name, Runner};
use crate::runtime::{ContainerExtras, ContainerRuntime, PortSpec};
use berth_proto::v1::{ContainerDefinition, NetworkInterface, TaskDefinition};

/// The smallest memory limit Docker accepts, in MiB.
const MIN_MEMORY_MIB: i64 = 6;

impl<R: ContainerRuntime> Runner<R> {
    /// The container whose namespaces the others join (awsvpc, pidMode / ipcMode task).
    pub(super) fn owner(&self) -> usize {
        self.order.first().copied().unwrap_or(0)
    }

    pub(super) fn awsvpc(&self) -> bool {
        self.def.network_mode == "awsvpc"
    }

    /// Docker's network mode for container `i`, and the ports it exposes (and publishes).
    pub(super) fn network_of(&self, i: usize) -> (String, Vec<PortSpec>) {
        let own_ports = |c: &ContainerDefinition| -> Vec<PortSpec> {
            c.port_mappings
                .iter()
                .map(|p| PortSpec {
                    container_port: p.container_port,
                    host_port: p.host_port,
                    protocol: p.protocol.clone(),
                })
                .collect()
        };
        let base = match (self.def.network_mode.as_str(), &self.ctx.task_network) {
            ("host", _) => "host".to_string(),
            ("none", _) => "none".to_string(),
            (_, Some(network)) => network.clone(),
            (_, None) => String::new(),
        };
        if !self.awsvpc() {
            return (base, own_ports(self.container(i)));
        }
        let owner = self.owner();
        if i != owner {
            return (format!("container:{}", self.name_of(owner)), Vec::new());
        }
        // The owner holds the task's one network namespace: every container's ports are its.
        let ports = self
            .def
            .container_definitions
            .iter()
            .flat_map(own_ports)
            .collect();
        (base, ports)
    }

    /// An awsvpc task's one address (the owner's), as ECS shows an ENI: an attachment id
    /// (the task id in UUID form) and the private IPv4 address.
    pub(super) fn task_interface(&self) -> Option<NetworkInterface> {
        if !self.awsvpc() {
            return None;
        }
        let owner = &self.container(self.owner()).name;
        let ip = self.status.get(owner).map(|s| s.ip.clone())?;
        if ip.is_empty() {
            return None;
        }
        let id = super::task_id(&self.arn);
        let attachment_id = if id.len() == 32 {
            format!(
                "{}-{}-{}-{}-{}",
                &id[..8],
                &id[8..12],
                &id[12..16],
                &id[16..20],
                &id[20..]
            )
        } else {
            id.to_string()
        };
        Some(NetworkInterface {
            attachment_id,
            private_ipv4_address: ip,
        })
    }

    /// Container `i`'s DNS servers: its definition's, else the node resolver's. None for a
    /// container that joins another's network namespace (Docker refuses DNS there) or has no
    /// network.
    fn dns_servers(&self, i: usize) -> Vec<String> {
        let c = self.container(i);
        if !c.dns_servers.is_empty() {
            return c.dns_servers.clone();
        }
        let joins = self.awsvpc() && i != self.owner();
        match &self.ctx.dns {
            Some(ip) if !joins && self.def.network_mode != "none" => vec![ip.clone()],
            _ => Vec::new(),
        }
    }

    /// Container `i`'s Service Connect aliases, each mapped to the node's Service Connect
    /// proxy (`name:ip`, Docker's ExtraHosts). None for a container that joins another's
    /// network namespace (it shares the owner's /etc/hosts) or has no network.
    fn connect_hosts(&self, i: usize) -> Vec<String> {
        let joins = self.awsvpc() && i != self.owner();
        match &self.ctx.connect {
            Some(ip) if !joins && self.def.network_mode != "none" => self
                .secrets
                .connect_hosts
                .iter()
                .map(|name| format!("{name}:{ip}"))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// ECS's extended fields of container `i`, resolved for Docker.
    pub(super) fn extras(&self, i: usize) -> ContainerExtras {
        let c = self.container(i);
        let owner_name = self.name_of(self.owner());
        let joins = i != self.owner();
        let shared = |mode: &str, owner_value: &str| match mode {
            "host" => "host".to_string(),
            "none" => "none".to_string(),
            "task" if joins => format!("container:{owner_name}"),
            "task" => owner_value.to_string(),
            _ => String::new(),
        };
        let mut linux = c.linux_parameters.clone();
        // A task-level memory limit is hard: no swap beyond it unless maxSwap says so.
        if task_memory_mib(&self.def) > 0 {
            let lp = linux.get_or_insert_with(Default::default);
            lp.max_swap.get_or_insert(0);
        }
        ContainerExtras {
            log_driver: c
                .log_configuration
                .as_ref()
                // awslogs and awsfirelens stay with the engine's default driver, which
                // `berth logs` reads: an ECS file's logs do not vanish.
                .filter(|l| !berth_core::taskdef::KEPT_LOG_DRIVERS.contains(&l.log_driver.as_str()))
                .map(|l| (l.log_driver.clone(), l.options.clone())),
            ulimits: c.ulimits.clone(),
            linux,
            readonly_rootfs: c.readonly_root_filesystem == Some(true),
            extra_hosts: c
                .extra_hosts
                .iter()
                .map(|h| format!("{}:{}", h.hostname, h.ip_address))
                .chain(self.connect_hosts(i))
                .collect(),
            dns: self.dns_servers(i),
            dns_search: c.dns_search_domains.clone(),
            hostname: c.hostname.clone(),
            sysctls: c
                .system_controls
                .iter()
                // Joined network namespaces take net.* only from their owner.
                .filter(|s| !(joins && self.awsvpc() && s.namespace.starts_with("net.")))
                .map(|s| (s.namespace.clone(), s.value.clone()))
                .collect(),
            pid_mode: shared(&self.def.pid_mode, ""),
            ipc_mode: shared(&self.def.ipc_mode, "shareable"),
            interactive: c.interactive == Some(true),
            tty: c.pseudo_terminal == Some(true),
            privileged: c.privileged == Some(true),
            security_opt: c.docker_security_options.clone(),
            links: c
                .links
                .iter()
                .map(|l| {
                    let (name, alias) = l.split_once(':').unwrap_or((l, l));
                    format!("{}:{alias}", container_name(&self.arn, name))
                })
                .collect(),
            gpus: c
                .resource_requirements
                .iter()
                .filter(|r| r.r#type == "GPU")
                .filter_map(|r| r.value.parse::<i64>().ok())
                .sum(),
            nano_cpus: cpu_share_nanos(&self.def, i),
        }
    }

    /// Refuses a container that needs a power this node has not opted in to.
    pub(super) fn allowed(&self, i: usize) -> Result<(), String> {
        let c = self.container(i);
        let p = self.ctx.powers;
        let refuse = |what: &str, flag: &str| {
            Err(format!(
                "container {} needs {what}, which this node does not allow (start its agent with {flag})",
                c.name
            ))
        };
        if c.privileged == Some(true) && !p.privileged {
            return refuse("privileged mode", "--allow-privileged");
        }
        if c.linux_parameters
            .as_ref()
            .is_some_and(|l| !l.devices.is_empty())
            && !p.devices
        {
            return refuse("host devices", "--allow-device");
        }
        if !c.docker_security_options.is_empty() && !p.security_opt {
            return refuse("dockerSecurityOptions", "--allow-security-opt");
        }
        Ok(())
    }

    /// Container `i`'s hard memory limit in MiB: its own, or its share of the task's.
    pub(super) fn memory_limit_mib(&self, i: usize) -> i64 {
        memory_share_mib(&self.def, i)
    }
}

fn task_memory_mib(def: &TaskDefinition) -> i64 {
    def.memory.parse().unwrap_or(0)
}

/// Spreads the task's memory over its containers so the sum of hard limits is the task's: a
/// container with its own hard limit keeps it; the others get their reservation plus an equal
/// part of what is left.
fn memory_share_mib(def: &TaskDefinition, i: usize) -> i64 {
    let c = &def.container_definitions[i];
    let task = task_memory_mib(def);
    if task <= 0 || c.memory > 0 {
        return i64::from(c.memory);
    }
    let cs = &def.container_definitions;
    let claimed: i64 = cs
        .iter()
        .map(|c| {
            i64::from(if c.memory > 0 {
                c.memory
            } else {
                c.memory_reservation
            })
        })
        .sum();
    let open = cs.iter().filter(|c| c.memory <= 0).count().max(1) as i64;
    let left = (task - claimed).max(0);
    (i64::from(c.memory_reservation) + left / open).max(MIN_MEMORY_MIB)
}

/// The container's share of a task-level cpu limit in nano-CPUs (0: no task limit): its own
/// cpu units, or an equal part of those no container claims.
fn cpu_share_nanos(def: &TaskDefinition, i: usize) -> i64 {
    let task: i64 = def.cpu.parse().unwrap_or(0);
    if task <= 0 {
        return 0;
    }
    let cs = &def.container_definitions;
    let claimed: i64 = cs.iter().map(|c| i64::from(c.cpu.max(0))).sum();
    let open = cs.iter().filter(|c| c.cpu <= 0).count() as i64;
    let units = match cs[i].cpu {
        n if n > 0 => i64::from(n),
        _ if open > 0 => (task - claimed).max(0) / open,
        _ => 0,
    };
    // Docker's smallest quota is a hundredth of a core.
    (units * 1_000_000_000 / 1024).max(10_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(memory: &str, cpu: &str, cs: &[(i32, i32, i32)]) -> TaskDefinition {
        TaskDefinition {
            memory: memory.into(),
            cpu: cpu.into(),
            container_definitions: cs
                .iter()
                .map(|&(cpu, memory, memory_reservation)| ContainerDefinition {
                    cpu,
                    memory,
                    memory_reservation,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn task_memory_is_spread_so_the_limits_add_up_to_it() {
        let d = def("512", "", &[(0, 128, 0), (0, 0, 64), (0, 0, 0)]);
        let limits: Vec<i64> = (0..3).map(|i| memory_share_mib(&d, i)).collect();
        assert_eq!(limits, vec![128, 64 + 160, 160]);
        assert_eq!(memory_share_mib(&def("", "", &[(0, 0, 0)]), 0), 0);
        assert_eq!(memory_share_mib(&def("64", "", &[(0, 0, 0)]), 0), 64);
    }

    #[test]
    fn task_cpu_is_spread_as_nano_cpus() {
        let d = def("", "1024", &[(256, 0, 0), (0, 0, 0), (0, 0, 0)]);
        assert_eq!(cpu_share_nanos(&d, 0), 250_000_000);
        assert_eq!(cpu_share_nanos(&d, 1), 375_000_000);
        assert_eq!(cpu_share_nanos(&def("", "", &[(0, 0, 0)]), 0), 0);
    }
}
