//! ECS's extended container fields in Docker's terms: what `ContainerExtras` asks of the engine
//! becomes HostConfig and create-body settings here, so `docker.rs` stays about the basics.

use berth_proto::v1::{LinuxParameters, Ulimit};
use bollard::models::{
    ContainerCreateBody, DeviceMapping, DeviceRequest, HostConfig, HostConfigLogConfig,
    ResourcesUlimits,
};
use std::collections::HashMap;

const MIB: i64 = 1024 * 1024;

/// What a container asks of the engine beyond image, command, limits and ports. Namespaces to
/// join are already resolved to Docker's values (`container:NAME`, `shareable`, `host`).
#[derive(Debug, Clone, Default)]
pub struct ContainerExtras {
    /// Docker log driver and its options; `None` keeps the engine's default (which Berth reads).
    pub log_driver: Option<(String, HashMap<String, String>)>,
    pub ulimits: Vec<Ulimit>,
    pub linux: Option<LinuxParameters>,
    pub readonly_rootfs: bool,
    /// `host:ip` entries for /etc/hosts.
    pub extra_hosts: Vec<String>,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub hostname: String,
    pub sysctls: HashMap<String, String>,
    pub pid_mode: String,
    pub ipc_mode: String,
    pub interactive: bool,
    pub tty: bool,
    pub privileged: bool,
    pub security_opt: Vec<String>,
    /// `container-name:alias`, Docker's legacy links.
    pub links: Vec<String>,
    /// Whole GPUs to hand the container through Docker's device requests.
    pub gpus: i64,
    /// Nano-CPUs (1e9 a core): the container's share of a task-level cpu limit; 0 for none.
    pub nano_cpus: i64,
}

fn some_vec<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

/// Fills in `hc` and `body` from `x`. `memory` is the container's hard limit in bytes (swap is
/// counted on top of it, as ECS's maxSwap is).
pub fn apply(
    x: &ContainerExtras,
    memory: Option<i64>,
    hc: &mut HostConfig,
    body: &mut ContainerCreateBody,
) {
    if let Some((driver, options)) = &x.log_driver {
        hc.log_config = Some(HostConfigLogConfig {
            typ: Some(driver.clone()),
            config: (!options.is_empty()).then(|| options.clone()),
        });
    }
    hc.ulimits = some_vec(
        x.ulimits
            .iter()
            .map(|u| ResourcesUlimits {
                name: Some(u.name.clone()),
                soft: Some(i64::from(u.soft_limit)),
                hard: Some(i64::from(u.hard_limit)),
            })
            .collect(),
    );
    if let Some(lp) = &x.linux {
        linux_parameters(lp, memory, hc);
    }
    hc.readonly_rootfs = x.readonly_rootfs.then_some(true);
    hc.extra_hosts = some_vec(x.extra_hosts.clone());
    hc.dns = some_vec(x.dns.clone());
    hc.dns_search = some_vec(x.dns_search.clone());
    hc.sysctls = (!x.sysctls.is_empty()).then(|| x.sysctls.clone());
    hc.pid_mode = (!x.pid_mode.is_empty()).then(|| x.pid_mode.clone());
    hc.ipc_mode = (!x.ipc_mode.is_empty()).then(|| x.ipc_mode.clone());
    hc.privileged = x.privileged.then_some(true);
    hc.security_opt = some_vec(x.security_opt.clone());
    hc.links = some_vec(x.links.clone());
    if x.gpus > 0 {
        hc.device_requests = Some(vec![DeviceRequest {
            driver: Some(String::new()),
            count: Some(x.gpus),
            capabilities: Some(vec![vec!["gpu".into()]]),
            ..Default::default()
        }]);
    }
    if x.nano_cpus > 0 {
        hc.nano_cpus = Some(x.nano_cpus);
    }
    if !x.hostname.is_empty() {
        body.hostname = Some(x.hostname.clone());
    }
    if x.interactive {
        body.open_stdin = Some(true);
        body.stdin_once = Some(false);
    }
    if x.tty {
        body.tty = Some(true);
    }
}

fn linux_parameters(lp: &LinuxParameters, memory: Option<i64>, hc: &mut HostConfig) {
    if let Some(caps) = &lp.capabilities {
        hc.cap_add = some_vec(caps.add.clone());
        hc.cap_drop = some_vec(caps.drop.clone());
    }
    hc.devices = some_vec(
        lp.devices
            .iter()
            .map(|d| DeviceMapping {
                path_on_host: Some(d.host_path.clone()),
                path_in_container: Some(if d.container_path.is_empty() {
                    d.host_path.clone()
                } else {
                    d.container_path.clone()
                }),
                cgroup_permissions: Some(cgroup_permissions(&d.permissions)),
            })
            .collect(),
    );
    if lp.init_process_enabled == Some(true) {
        hc.init = Some(true);
    }
    if let Some(shm) = lp.shared_memory_size.filter(|s| *s > 0) {
        hc.shm_size = Some(i64::from(shm) * MIB);
    }
    if !lp.tmpfs.is_empty() {
        hc.tmpfs = Some(
            lp.tmpfs
                .iter()
                .map(|t| {
                    let mut opts = vec![format!("size={}m", t.size)];
                    opts.extend(t.mount_options.iter().cloned());
                    (t.container_path.clone(), opts.join(","))
                })
                .collect(),
        );
    }
    // Docker's memory-swap is memory plus swap; without a hard limit there is nothing to add to.
    if let (Some(swap), Some(mem)) = (lp.max_swap, memory) {
        hc.memory_swap = Some(mem + i64::from(swap.max(0)) * MIB);
    }
    if let Some(s) = lp.swappiness {
        hc.memory_swappiness = Some(i64::from(s));
    }
}

/// ECS's read / write / mknod as Docker's "rwm" (all three when none is given).
fn cgroup_permissions(perms: &[String]) -> String {
    if perms.is_empty() {
        return "rwm".into();
    }
    let mut out = String::new();
    for (word, letter) in [("read", 'r'), ("write", 'w'), ("mknod", 'm')] {
        if perms.iter().any(|p| p == word) {
            out.push(letter);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::v1::{KernelCapabilities, Tmpfs};

    #[test]
    fn linux_parameters_become_docker_settings() {
        let x = ContainerExtras {
            linux: Some(LinuxParameters {
                capabilities: Some(KernelCapabilities {
                    add: vec![],
                    drop: vec!["ALL".into()],
                }),
                init_process_enabled: Some(true),
                tmpfs: vec![Tmpfs {
                    container_path: "/scratch".into(),
                    size: 16,
                    mount_options: vec!["noexec".into()],
                }],
                max_swap: Some(0),
                swappiness: Some(5),
                ..Default::default()
            }),
            readonly_rootfs: true,
            ..Default::default()
        };
        let (mut hc, mut body) = (HostConfig::default(), ContainerCreateBody::default());
        apply(&x, Some(64 * MIB), &mut hc, &mut body);
        assert_eq!(hc.cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(hc.cap_add, None);
        assert_eq!(hc.init, Some(true));
        assert_eq!(hc.tmpfs.unwrap()["/scratch"], "size=16m,noexec".to_string());
        assert_eq!(hc.memory_swap, Some(64 * MIB));
        assert_eq!(hc.memory_swappiness, Some(5));
        assert_eq!(hc.readonly_rootfs, Some(true));
    }

    #[test]
    fn device_permissions_map_to_rwm_letters() {
        assert_eq!(cgroup_permissions(&[]), "rwm");
        assert_eq!(cgroup_permissions(&["read".into(), "mknod".into()]), "rm");
    }
}
