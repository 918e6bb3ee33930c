//! The one validation of a task definition: every rule, every field error with its path.
//!
//! `normalize` also fills ECS's defaults (essential = true, protocol tcp, bridge networking,
//! health check timings) and rewrites task-level cpu / memory to plain units, so what is stored
//! is what runs.

use crate::error::{quote, FieldError};
use crate::limits::{
    CONTAINER_CPU, CONTAINER_PORT, HEALTH_INTERVAL, HEALTH_RETRIES, HEALTH_START_PERIOD,
    HEALTH_TIMEOUT, HOST_PORT, MEMORY, MEMORY_RESERVATION, STOP_TIMEOUT, TASK_CPU,
};
use berth_proto::v1::{ContainerDefinition, TaskDefinition};
use std::collections::{HashMap, HashSet};

/// ECS's limit on containers in one task definition.
const MAX_CONTAINERS: usize = 10;

/// What `normalize` accepted but changed or will not honour, for the reply.
pub type Warnings = Vec<String>;

/// Checks `td` against every rule and fills defaults. On error nothing is meant to be stored.
pub fn normalize(td: &mut TaskDefinition) -> Result<Warnings, Vec<FieldError>> {
    let mut errs = Vec::new();
    let mut warnings = Vec::new();

    check_name(&mut errs, "family", &td.family);
    normalize_network_mode(td, &mut errs, &mut warnings);
    let task_cpu = parse_task_cpu(&mut errs, &td.cpu);
    let task_mem = parse_task_memory(&mut errs, &td.memory);
    if let Some(cpu) = task_cpu {
        td.cpu = cpu.map(|c| c.to_string()).unwrap_or_default();
    }
    if let Some(mem) = task_mem {
        td.memory = mem.map(|m| m.to_string()).unwrap_or_default();
    }

    if td.container_definitions.is_empty() {
        errs.push(FieldError::new(
            "containerDefinitions",
            "at least one container definition is required",
        ));
    } else if td.container_definitions.len() > MAX_CONTAINERS {
        errs.push(FieldError::new(
            "containerDefinitions",
            format!(
                "{} containers is over the maximum of {MAX_CONTAINERS} (ECS's limit per task definition)",
                td.container_definitions.len()
            ),
        ));
    }

    let mut names: HashMap<&str, usize> = HashMap::new();
    for (i, c) in td.container_definitions.iter().enumerate() {
        if let Some(first) = names.insert(c.name.as_str(), i) {
            if !c.name.is_empty() {
                errs.push(FieldError::new(
                    format!("containerDefinitions[{i}].name"),
                    format!(
                        "duplicate container name {} (also containerDefinitions[{first}]); names must be unique in a task",
                        quote(&c.name)
                    ),
                ));
            }
        }
    }
    let names: HashSet<String> = names.keys().map(|s| s.to_string()).collect();
    let mut host_ports: HashMap<(i32, String), String> = HashMap::new();
    let mut container_mem_sum = 0i64;
    for (i, c) in td.container_definitions.iter_mut().enumerate() {
        let p = format!("containerDefinitions[{i}]");
        check_container(c, &p, &names, &mut errs, &mut host_ports);
        container_mem_sum += i64::from(c.memory.max(c.memory_reservation));
    }
    check_dependencies(&td.container_definitions, &mut errs);
    super::volumes::check(td, &mut errs);
    super::container_fields::check(td, &mut errs);

    if !td.container_definitions.is_empty()
        && !td
            .container_definitions
            .iter()
            .any(|c| c.essential.unwrap_or(true))
    {
        errs.push(FieldError::new(
            "containerDefinitions",
            "at least one container must be essential (essential defaults to true)",
        ));
    }
    if let Some(Some(mem)) = task_mem {
        if container_mem_sum > mem {
            errs.push(FieldError::new(
                "memory",
                format!("the containers reserve {container_mem_sum} MiB, more than the task's {mem} MiB; raise memory or lower the containers' memory"),
            ));
        }
    }

    // Last, so the size is that of what would be stored (defaults filled in).
    super::bounds::check_bounds(td, &mut errs);
    if errs.is_empty() {
        Ok(warnings)
    } else {
        Err(errs)
    }
}

fn check_name(errs: &mut Vec<FieldError>, path: &str, name: &str) {
    if name.is_empty() {
        errs.push(FieldError::new(path, "is required"));
    } else if name.len() > 255
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        errs.push(FieldError::new(
            path,
            format!(
                "{} must be 1-255 letters, digits, hyphens or underscores",
                quote(name)
            ),
        ));
    }
}

fn normalize_network_mode(td: &mut TaskDefinition, errs: &mut Vec<FieldError>, w: &mut Warnings) {
    match td.network_mode.as_str() {
        "" => td.network_mode = "bridge".into(),
        "bridge" | "host" | "none" => {}
        "awsvpc" => {
            // A Fargate definition gives each task its own address with hostPort == containerPort;
            // on a shared host that is a dynamic host port per task (published once for the task).
            w.push("networkMode: awsvpc shares one network namespace per task; hostPort equal to containerPort becomes a dynamic host port".into());
            for c in &mut td.container_definitions {
                for pm in &mut c.port_mappings {
                    if pm.host_port == pm.container_port {
                        pm.host_port = 0;
                    }
                }
            }
        }
        other => errs.push(FieldError::new(
            "networkMode",
            format!(
                "{} is not supported; use bridge, awsvpc, host or none",
                quote(other)
            ),
        )),
    }
}

/// `None`: invalid (error pushed). `Some(None)`: not set.
fn parse_task_cpu(errs: &mut Vec<FieldError>, s: &str) -> Option<Option<i64>> {
    let t = s.trim();
    if t.is_empty() {
        return Some(None);
    }
    let lower = t.to_ascii_lowercase();
    let units = if let Some(v) = lower.strip_suffix("vcpu") {
        v.trim().parse::<f64>().ok().map(|v| (v * 1024.0).round())
    } else {
        t.parse::<f64>().ok()
    };
    match units.filter(|u| u.is_finite() && u.abs() < 1e15) {
        Some(u) => match TASK_CPU.check(u as i64) {
            Ok(()) => Some(Some(u as i64)),
            Err(e) => {
                errs.push(FieldError::new("cpu", e));
                None
            }
        },
        None => {
            errs.push(FieldError::new(
                "cpu",
                format!("{} is not a CPU size; write units (\"256\", 1024 a core) or vCPUs (\"0.5 vCPU\")", quote(s)),
            ));
            None
        }
    }
}

fn parse_task_memory(errs: &mut Vec<FieldError>, s: &str) -> Option<Option<i64>> {
    let t = s.trim();
    if t.is_empty() {
        return Some(None);
    }
    let lower = t.to_ascii_lowercase();
    let mib = if let Some(v) = lower
        .strip_suffix("gb")
        .or_else(|| lower.strip_suffix("gib"))
    {
        v.trim().parse::<f64>().ok().map(|v| (v * 1024.0).round())
    } else if let Some(v) = lower
        .strip_suffix("mb")
        .or_else(|| lower.strip_suffix("mib"))
    {
        v.trim().parse::<f64>().ok()
    } else {
        t.parse::<f64>().ok()
    };
    match mib.filter(|m| m.is_finite() && m.fract() == 0.0 && m.abs() < 1e15) {
        Some(m) => match MEMORY.check(m as i64) {
            Ok(()) => Some(Some(m as i64)),
            Err(e) => {
                errs.push(FieldError::new("memory", e));
                None
            }
        },
        None => {
            errs.push(FieldError::new(
                "memory",
                format!(
                    "{} is not a memory size; write whole MiB (\"512\") or GB (\"1GB\")",
                    quote(s)
                ),
            ));
            None
        }
    }
}

fn check_container(
    c: &mut ContainerDefinition,
    p: &str,
    names: &HashSet<String>,
    errs: &mut Vec<FieldError>,
    host_ports: &mut HashMap<(i32, String), String>,
) {
    check_name(errs, &format!("{p}.name"), &c.name);
    if c.image.trim().is_empty() {
        errs.push(FieldError::new(
            format!("{p}.image"),
            "is required (for example \"berth-demo:latest\")",
        ));
    } else if c.image.chars().any(char::is_whitespace) {
        errs.push(FieldError::new(
            format!("{p}.image"),
            format!("{} must not contain spaces", quote(&c.image)),
        ));
    }
    CONTAINER_CPU.push(errs, format!("{p}.cpu"), c.cpu.into());
    if c.memory != 0 {
        MEMORY.noting("unset or 0 for no hard limit").push(
            errs,
            format!("{p}.memory"),
            c.memory.into(),
        );
    }
    MEMORY_RESERVATION.push(
        errs,
        format!("{p}.memoryReservation"),
        c.memory_reservation.into(),
    );
    if c.memory > 0 && c.memory_reservation > c.memory {
        errs.push(FieldError::new(
            format!("{p}.memoryReservation"),
            format!("{} MiB is greater than memory ({} MiB); the soft limit must not exceed the hard limit", c.memory_reservation, c.memory),
        ));
    }
    STOP_TIMEOUT.push(errs, format!("{p}.stopTimeout"), c.stop_timeout.into());
    c.essential = Some(c.essential.unwrap_or(true));
    check_port_mappings(c, p, errs, host_ports);
    for (j, kv) in c.environment.iter().enumerate() {
        if kv.name.is_empty() || kv.name.contains('=') {
            errs.push(FieldError::new(
                format!("{p}.environment[{j}].name"),
                "must be a non-empty name without '='",
            ));
        }
    }
    if let Some(hc) = &mut c.health_check {
        check_health_check(hc, &format!("{p}.healthCheck"), errs);
    }
    check_depends_on(c, p, names, errs);
}

/// Port mappings: ports in range, tcp or udp (lowercased, tcp by default), each host port
/// mapped once per task (`host_ports` spans the task's containers).
fn check_port_mappings(
    c: &mut ContainerDefinition,
    p: &str,
    errs: &mut Vec<FieldError>,
    host_ports: &mut HashMap<(i32, String), String>,
) {
    for (j, pm) in c.port_mappings.iter_mut().enumerate() {
        let pp = format!("{p}.portMappings[{j}]");
        CONTAINER_PORT.push(
            errs,
            format!("{pp}.containerPort"),
            pm.container_port.into(),
        );
        HOST_PORT.push(errs, format!("{pp}.hostPort"), pm.host_port.into());
        pm.protocol = pm.protocol.to_ascii_lowercase();
        if pm.protocol.is_empty() {
            pm.protocol = "tcp".into();
        }
        if pm.protocol != "tcp" && pm.protocol != "udp" {
            errs.push(FieldError::new(
                format!("{pp}.protocol"),
                format!("{} must be tcp or udp", quote(&pm.protocol)),
            ));
        }
        if pm.host_port > 0 {
            let key = (pm.host_port, pm.protocol.clone());
            if let Some(other) = host_ports.insert(key, pp.clone()) {
                errs.push(FieldError::new(
                    format!("{pp}.hostPort"),
                    format!(
                        "{} is already mapped by {other}; a host port can be mapped once per task",
                        pm.host_port
                    ),
                ));
            }
        }
    }
}

/// A health check: a CMD or CMD-SHELL command, its timings in range (ECS's defaults filled in).
fn check_health_check(hc: &mut berth_proto::v1::HealthCheck, hp: &str, errs: &mut Vec<FieldError>) {
    match hc.command.first().map(String::as_str) {
        Some("CMD") | Some("CMD-SHELL") if hc.command.len() >= 2 => {}
        Some("NONE") => {}
        _ => errs.push(FieldError::new(
            format!("{hp}.command"),
            "must start with \"CMD\" or \"CMD-SHELL\" followed by the command, e.g. [\"CMD-SHELL\", \"curl -f http://localhost/ || exit 1\"]",
        )),
    }
    for (field, value, bound, default) in [
        ("interval", &mut hc.interval, HEALTH_INTERVAL, 30),
        ("timeout", &mut hc.timeout, HEALTH_TIMEOUT, 5),
        ("retries", &mut hc.retries, HEALTH_RETRIES, 3),
        ("startPeriod", &mut hc.start_period, HEALTH_START_PERIOD, 0),
    ] {
        let v = value.get_or_insert(default);
        bound.push(errs, format!("{hp}.{field}"), i64::from(*v));
    }
}

/// dependsOn: another container of this task, with one of ECS's conditions.
fn check_depends_on(
    c: &ContainerDefinition,
    p: &str,
    names: &HashSet<String>,
    errs: &mut Vec<FieldError>,
) {
    for (j, d) in c.depends_on.iter().enumerate() {
        let dp = format!("{p}.dependsOn[{j}]");
        if !names.contains(&d.container_name) {
            errs.push(FieldError::new(
                format!("{dp}.containerName"),
                format!(
                    "{} is not a container in this task",
                    quote(&d.container_name)
                ),
            ));
        } else if d.container_name == c.name {
            errs.push(FieldError::new(
                format!("{dp}.containerName"),
                "a container cannot depend on itself",
            ));
        }
        if !matches!(
            d.condition.as_str(),
            "START" | "COMPLETE" | "SUCCESS" | "HEALTHY"
        ) {
            errs.push(FieldError::new(
                format!("{dp}.condition"),
                format!(
                    "{} must be START, COMPLETE, SUCCESS or HEALTHY",
                    quote(&d.condition)
                ),
            ));
        }
    }
}

/// dependsOn: HEALTHY needs a health check on the target, and the graph must have no cycle.
fn check_dependencies(containers: &[ContainerDefinition], errs: &mut Vec<FieldError>) {
    let index: HashMap<&str, usize> = containers
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_str(), i))
        .collect();
    for (i, c) in containers.iter().enumerate() {
        for (j, d) in c.depends_on.iter().enumerate() {
            if d.condition == "HEALTHY" {
                if let Some(&t) = index.get(d.container_name.as_str()) {
                    if containers[t].health_check.is_none() {
                        errs.push(FieldError::new(
                            format!("containerDefinitions[{i}].dependsOn[{j}].condition"),
                            format!(
                                "HEALTHY needs a healthCheck on container {}",
                                quote(&d.container_name)
                            ),
                        ));
                    }
                }
            }
        }
    }
    // Depth-first search with colours; report the first cycle found, naming it.
    let mut colour = vec![0u8; containers.len()];
    let mut stack = Vec::new();
    for start in 0..containers.len() {
        if colour[start] == 0 {
            if let Some(cycle) = find_cycle(start, containers, &index, &mut colour, &mut stack) {
                errs.push(FieldError::new(
                    format!("containerDefinitions[{start}].dependsOn"),
                    format!("dependency cycle: {}", cycle.join(" -> ")),
                ));
                return;
            }
        }
    }
}

fn find_cycle(
    at: usize,
    containers: &[ContainerDefinition],
    index: &HashMap<&str, usize>,
    colour: &mut [u8],
    stack: &mut Vec<usize>,
) -> Option<Vec<String>> {
    colour[at] = 1;
    stack.push(at);
    for d in &containers[at].depends_on {
        let Some(&next) = index.get(d.container_name.as_str()) else {
            continue;
        };
        if next == at {
            continue; // reported as self-dependency
        }
        if colour[next] == 1 {
            let from = stack.iter().position(|&s| s == next).unwrap_or(0);
            let mut cycle: Vec<String> = stack[from..]
                .iter()
                .map(|&s| containers[s].name.clone())
                .collect();
            cycle.push(containers[next].name.clone());
            return Some(cycle);
        }
        if colour[next] == 0 {
            if let Some(c) = find_cycle(next, containers, index, colour, stack) {
                return Some(c);
            }
        }
    }
    stack.pop();
    colour[at] = 2;
    None
}
