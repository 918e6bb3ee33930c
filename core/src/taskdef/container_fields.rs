//! Validation of the container fields Berth hands to Docker beyond the basics (ECS's names):
//! links, logConfiguration, ulimits, linuxParameters, extraHosts, DNS, hostname, systemControls,
//! startTimeout, privileged, dockerSecurityOptions, restartPolicy, resourceRequirements, and the
//! task's pidMode / ipcMode. Each problem names its field path and the fix.

use crate::error::{quote, FieldError};
use berth_proto::v1::{ContainerDefinition, LinuxParameters, TaskDefinition};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

/// Docker log drivers Berth passes through (each built into Docker Engine, and among the
/// drivers ECS accepts), then the ones Berth keeps on its own log path.
pub const LOG_DRIVERS: &[&str] = &[
    "json-file",
    "local",
    "syslog",
    "journald",
    "fluentd",
    "gelf",
    "splunk",
    "awslogs",
    "awsfirelens",
];
/// AWS's own log routes: the container keeps the engine's default driver, so `berth logs` and
/// the console read its output (FireLens's router configuration is stored, not acted on).
pub const KEPT_LOG_DRIVERS: &[&str] = &["awslogs", "awsfirelens"];
const ULIMITS: &[&str] = &[
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];
/// ECS's limit on ignoredExitCodes.
const MAX_IGNORED_EXIT_CODES: usize = 50;

/// Checks every container's extended fields and the task's pidMode / ipcMode.
pub(super) fn check(td: &TaskDefinition, errs: &mut Vec<FieldError>) {
    let mode = td.network_mode.as_str();
    let choice = |errs: &mut Vec<FieldError>, path: &str, v: &str, allowed: &[&str]| {
        if !v.is_empty() && !allowed.contains(&v) {
            errs.push(FieldError::new(
                path,
                format!("{} must be one of {}", quote(v), allowed.join(", ")),
            ));
        }
    };
    choice(errs, "pidMode", &td.pid_mode, &["host", "task"]);
    choice(errs, "ipcMode", &td.ipc_mode, &["host", "task", "none"]);
    let names: HashSet<&str> = td
        .container_definitions
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    for (i, c) in td.container_definitions.iter().enumerate() {
        let p = format!("containerDefinitions[{i}]");
        check_links(c, &p, mode, &names, errs);
        check_log_configuration(c, &p, errs);
        check_ulimits(c, &p, errs);
        if let Some(lp) = &c.linux_parameters {
            check_linux_parameters(lp, c, &format!("{p}.linuxParameters"), errs);
        }
        check_network_fields(c, &p, mode, errs);
        if c.start_timeout < 0 {
            errs.push(FieldError::new(
                format!("{p}.startTimeout"),
                "must be 0 or more seconds",
            ));
        }
        for (j, o) in c.docker_security_options.iter().enumerate() {
            let known = o == "no-new-privileges"
                || ["apparmor", "label", "seccomp", "credentialspec"]
                    .iter()
                    .any(|k| o.starts_with(&format!("{k}:")) || o.starts_with(&format!("{k}=")));
            if !known {
                errs.push(FieldError::new(
                    format!("{p}.dockerSecurityOptions[{j}]"),
                    format!("{} is not one of no-new-privileges, apparmor:PROFILE, label:VALUE or seccomp:PROFILE", quote(o)),
                ));
            }
        }
        check_restart_policy(c, &p, errs);
        check_resource_requirements(c, &p, errs);
    }
    if mode == "awsvpc" {
        check_awsvpc_ports(td, errs);
    }
}

fn check_links(
    c: &ContainerDefinition,
    p: &str,
    mode: &str,
    names: &HashSet<&str>,
    errs: &mut Vec<FieldError>,
) {
    if c.links.is_empty() {
        return;
    }
    if mode != "bridge" {
        errs.push(FieldError::new(
            format!("{p}.links"),
            format!("links need networkMode bridge (this task is {mode}); in awsvpc containers reach each other on localhost"),
        ));
        return;
    }
    for (j, l) in c.links.iter().enumerate() {
        let target = l.split_once(':').map_or(l.as_str(), |(n, _)| n);
        if target == c.name || !names.contains(target) {
            errs.push(FieldError::new(
                format!("{p}.links[{j}]"),
                format!(
                    "{} must name another container of this task (\"name\" or \"name:alias\")",
                    quote(l)
                ),
            ));
        }
    }
}

fn check_log_configuration(c: &ContainerDefinition, p: &str, errs: &mut Vec<FieldError>) {
    let Some(lc) = &c.log_configuration else {
        return;
    };
    if !LOG_DRIVERS.contains(&lc.log_driver.as_str()) {
        errs.push(FieldError::new(
            format!("{p}.logConfiguration.logDriver"),
            format!(
                "{} is not supported; use one of {}",
                quote(&lc.log_driver),
                LOG_DRIVERS.join(", ")
            ),
        ));
    }
    if lc.options.keys().any(String::is_empty) {
        errs.push(FieldError::new(
            format!("{p}.logConfiguration.options"),
            "option names must not be empty",
        ));
    }
}

fn check_ulimits(c: &ContainerDefinition, p: &str, errs: &mut Vec<FieldError>) {
    let mut seen = HashSet::new();
    for (j, u) in c.ulimits.iter().enumerate() {
        let up = format!("{p}.ulimits[{j}]");
        if !ULIMITS.contains(&u.name.as_str()) {
            errs.push(FieldError::new(
                format!("{up}.name"),
                format!("{} must be one of {}", quote(&u.name), ULIMITS.join(", ")),
            ));
        } else if !seen.insert(u.name.as_str()) {
            errs.push(FieldError::new(
                format!("{up}.name"),
                format!("{} is set twice; give each ulimit once", quote(&u.name)),
            ));
        }
        if u.soft_limit < 0 || u.hard_limit < 0 {
            errs.push(FieldError::new(
                up,
                "softLimit and hardLimit must be 0 or more",
            ));
        } else if u.soft_limit > u.hard_limit {
            errs.push(FieldError::new(
                format!("{up}.softLimit"),
                format!(
                    "{} is above hardLimit {}; the soft limit must not exceed the hard limit",
                    u.soft_limit, u.hard_limit
                ),
            ));
        }
    }
}

fn absolute(path: &str) -> bool {
    path.starts_with('/') && !path.contains("..")
}

fn check_linux_parameters(
    lp: &LinuxParameters,
    c: &ContainerDefinition,
    p: &str,
    errs: &mut Vec<FieldError>,
) {
    if let Some(caps) = &lp.capabilities {
        for (kind, list) in [("add", &caps.add), ("drop", &caps.drop)] {
            for (j, cap) in list.iter().enumerate() {
                let ok = !cap.is_empty()
                    && cap
                        .chars()
                        .all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit() || ch == '_');
                if !ok {
                    errs.push(FieldError::new(
                        format!("{p}.capabilities.{kind}[{j}]"),
                        format!(
                            "{} is not a capability name such as NET_ADMIN or ALL (upper case)",
                            quote(cap)
                        ),
                    ));
                }
            }
        }
    }
    for (j, d) in lp.devices.iter().enumerate() {
        let dp = format!("{p}.devices[{j}]");
        if !absolute(&d.host_path) {
            errs.push(FieldError::new(
                format!("{dp}.hostPath"),
                "is required: an absolute path such as /dev/fuse",
            ));
        }
        if !d.container_path.is_empty() && !absolute(&d.container_path) {
            errs.push(FieldError::new(
                format!("{dp}.containerPath"),
                "must be an absolute path",
            ));
        }
        for (k, perm) in d.permissions.iter().enumerate() {
            if !["read", "write", "mknod"].contains(&perm.as_str()) {
                errs.push(FieldError::new(
                    format!("{dp}.permissions[{k}]"),
                    format!("{} must be read, write or mknod", quote(perm)),
                ));
            }
        }
    }
    if lp.shared_memory_size.is_some_and(|s| s <= 0) {
        errs.push(FieldError::new(
            format!("{p}.sharedMemorySize"),
            "must be a positive number of MiB",
        ));
    }
    let mut paths = HashSet::new();
    for (j, t) in lp.tmpfs.iter().enumerate() {
        let tp = format!("{p}.tmpfs[{j}]");
        if !absolute(&t.container_path) {
            errs.push(FieldError::new(
                format!("{tp}.containerPath"),
                "is required: an absolute path such as /tmp",
            ));
        } else if !paths.insert(t.container_path.as_str()) {
            errs.push(FieldError::new(
                format!("{tp}.containerPath"),
                format!("{} is mounted twice", quote(&t.container_path)),
            ));
        }
        if t.size <= 0 {
            errs.push(FieldError::new(
                format!("{tp}.size"),
                "is required: a positive number of MiB",
            ));
        }
        for (k, o) in t.mount_options.iter().enumerate() {
            if o.is_empty() || o.contains(',') {
                errs.push(FieldError::new(
                    format!("{tp}.mountOptions[{k}]"),
                    "each option is one non-empty word such as noexec",
                ));
            }
        }
    }
    if let Some(swap) = lp.max_swap {
        if swap < 0 {
            errs.push(FieldError::new(
                format!("{p}.maxSwap"),
                "must be 0 (no swap) or more MiB",
            ));
        } else if c.memory <= 0 {
            errs.push(FieldError::new(
                format!("{p}.maxSwap"),
                "needs the container's memory (hard limit) to be set; swap is on top of it",
            ));
        }
    }
    if lp.swappiness.is_some_and(|s| !(0..=100).contains(&s)) {
        errs.push(FieldError::new(
            format!("{p}.swappiness"),
            "must be between 0 and 100",
        ));
    }
}

/// Fields that shape the container's own network identity: ECS refuses them where the network
/// namespace is not the container's own (awsvpc shares the task's; host is the node's).
fn check_network_fields(c: &ContainerDefinition, p: &str, mode: &str, errs: &mut Vec<FieldError>) {
    let set: [(&str, bool); 4] = [
        ("hostname", !c.hostname.is_empty()),
        ("extraHosts", !c.extra_hosts.is_empty()),
        ("dnsServers", !c.dns_servers.is_empty()),
        ("dnsSearchDomains", !c.dns_search_domains.is_empty()),
    ];
    if matches!(mode, "awsvpc" | "host") {
        for (field, _) in set
            .iter()
            .filter(|(f, s)| *s && (mode == "awsvpc" || *f == "hostname"))
        {
            errs.push(FieldError::new(
                format!("{p}.{field}"),
                format!("is not supported with networkMode {mode} (the container shares that network namespace); remove it or use bridge"),
            ));
        }
    }
    let hostname_ok = c.hostname.len() <= 253
        && c.hostname.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && l.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-')
        });
    if !c.hostname.is_empty() && !hostname_ok {
        errs.push(FieldError::new(
            format!("{p}.hostname"),
            format!("{} is not a valid host name", quote(&c.hostname)),
        ));
    }
    for (j, h) in c.extra_hosts.iter().enumerate() {
        if h.hostname.is_empty()
            || h.hostname.contains(char::is_whitespace)
            || h.hostname.contains(':')
        {
            errs.push(FieldError::new(
                format!("{p}.extraHosts[{j}].hostname"),
                "is required: a host name without spaces or ':'",
            ));
        }
        if h.ip_address.parse::<IpAddr>().is_err() {
            errs.push(FieldError::new(
                format!("{p}.extraHosts[{j}].ipAddress"),
                format!("{} is not an IP address", quote(&h.ip_address)),
            ));
        }
    }
    for (j, d) in c.dns_servers.iter().enumerate() {
        if d.parse::<IpAddr>().is_err() {
            errs.push(FieldError::new(
                format!("{p}.dnsServers[{j}]"),
                format!("{} is not an IP address", quote(d)),
            ));
        }
    }
    for (j, d) in c.dns_search_domains.iter().enumerate() {
        if d.is_empty() || d.contains(char::is_whitespace) {
            errs.push(FieldError::new(
                format!("{p}.dnsSearchDomains[{j}]"),
                "must be a domain name without spaces",
            ));
        }
    }
    for (j, s) in c.system_controls.iter().enumerate() {
        let ok = !s.namespace.is_empty()
            && s.namespace
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "._-/".contains(ch));
        if !ok {
            errs.push(FieldError::new(
                format!("{p}.systemControls[{j}].namespace"),
                format!(
                    "{} is not a kernel parameter name such as net.core.somaxconn",
                    quote(&s.namespace)
                ),
            ));
        }
        if s.value.is_empty() {
            errs.push(FieldError::new(
                format!("{p}.systemControls[{j}].value"),
                "is required",
            ));
        }
        if mode == "host" && s.namespace.starts_with("net.") {
            errs.push(FieldError::new(
                format!("{p}.systemControls[{j}].namespace"),
                "net.* parameters cannot be set with networkMode host (they would change the node's)",
            ));
        }
    }
}

fn check_restart_policy(c: &ContainerDefinition, p: &str, errs: &mut Vec<FieldError>) {
    let Some(rp) = &c.restart_policy else {
        return;
    };
    if rp.ignored_exit_codes.len() > MAX_IGNORED_EXIT_CODES {
        errs.push(FieldError::new(
            format!("{p}.restartPolicy.ignoredExitCodes"),
            format!(
                "{} codes is over ECS's limit of {MAX_IGNORED_EXIT_CODES}",
                rp.ignored_exit_codes.len()
            ),
        ));
    }
    if let Some(period) = rp.restart_attempt_period {
        if !(60..=1800).contains(&period) {
            errs.push(FieldError::new(
                format!("{p}.restartPolicy.restartAttemptPeriod"),
                format!("{period} must be between 60 and 1800 seconds"),
            ));
        }
    }
}

fn check_resource_requirements(c: &ContainerDefinition, p: &str, errs: &mut Vec<FieldError>) {
    let mut seen = HashSet::new();
    for (j, r) in c.resource_requirements.iter().enumerate() {
        let rp = format!("{p}.resourceRequirements[{j}]");
        if r.r#type != "GPU" {
            errs.push(FieldError::new(
                format!("{rp}.type"),
                format!("{} is not supported; use GPU", quote(&r.r#type)),
            ));
            continue;
        }
        if !seen.insert(r.r#type.as_str()) {
            errs.push(FieldError::new(
                format!("{rp}.type"),
                "GPU is given twice; give one count per container",
            ));
        }
        if !r.value.parse::<u32>().is_ok_and(|n| n > 0) {
            errs.push(FieldError::new(
                format!("{rp}.value"),
                format!(
                    "{} must be a whole number of GPUs, 1 or more",
                    quote(&r.value)
                ),
            ));
        }
    }
}

/// In awsvpc every container shares one network namespace: a port can be listened on once.
fn check_awsvpc_ports(td: &TaskDefinition, errs: &mut Vec<FieldError>) {
    let mut owner: HashMap<(i32, &str), (usize, &str)> = HashMap::new();
    for (i, c) in td.container_definitions.iter().enumerate() {
        for (j, pm) in c.port_mappings.iter().enumerate() {
            let key = (pm.container_port, pm.protocol.as_str());
            match owner.get(&key) {
                Some(&(first, name)) if first != i => errs.push(FieldError::new(
                    format!("containerDefinitions[{i}].portMappings[{j}].containerPort"),
                    format!(
                        "{}/{} is used by both {} (containerDefinitions[{first}]) and {}; in awsvpc the containers share one network namespace, so give each its own port",
                        pm.container_port,
                        pm.protocol,
                        quote(name),
                        quote(&c.name)
                    ),
                )),
                Some(_) => {}
                None => {
                    owner.insert(key, (i, c.name.as_str()));
                }
            }
        }
    }
}
