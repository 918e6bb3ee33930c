//! Feasibility: whether one node can take one task, and if not, why. Checks run in a fixed
//! order (the task's shared volumes, agent, host paths, CPU, memory, ports, then each
//! constraint) and the stage a node fails at says how close it came, so the rejection for an
//! unplaceable task names the nearest miss. Volumes go first: a node without the task's data
//! is further from taking it than the node with the data that lacks memory.

use super::query::Query;
use super::{Demand, NodeSnapshot, VolumeNeed};
use std::fmt;
use std::path::{Component, Path};

/// A placement constraint, as ECS spells them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Constraint {
    /// No two tasks of the service on one node.
    DistinctInstance,
    /// Only nodes whose attributes satisfy the cluster query expression.
    MemberOf(Query),
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Constraint::DistinctInstance => f.write_str("distinctInstance"),
            Constraint::MemberOf(q) => write!(f, "memberOf({q})"),
        }
    }
}

/// Parses an ECS placement constraint: `distinctInstance` (no expression) or `memberOf` with a
/// cluster query expression such as `attribute:ecs.availability-zone in (a, b)`.
pub fn parse_constraint(kind: &str, expression: &str) -> Result<Constraint, String> {
    if kind.eq_ignore_ascii_case("distinctInstance") {
        if !expression.trim().is_empty() {
            return Err(format!(
                "distinctInstance takes no expression; remove \"{}\"",
                expression.trim()
            ));
        }
        return Ok(Constraint::DistinctInstance);
    }
    if kind.eq_ignore_ascii_case("memberOf") {
        return Query::parse(expression)
            .map(Constraint::MemberOf)
            .map_err(|e| format!("memberOf: {e}"));
    }
    Err(format!(
        "placement constraint type {} must be distinctInstance or memberOf",
        crate::error::quote(kind)
    ))
}

/// `parse_constraint` for the `i`th constraint of a request, its error naming the field it is
/// about: `placementConstraints[i].expression`, or `.type` for a type that is neither.
pub fn parse_constraint_at(
    i: usize,
    kind: &str,
    expression: &str,
) -> Result<Constraint, crate::error::FieldError> {
    parse_constraint(kind, expression).map_err(|e| {
        let known = ["distinctInstance", "memberOf"]
            .iter()
            .any(|k| kind.eq_ignore_ascii_case(k));
        let field = if known { "expression" } else { "type" };
        crate::error::FieldError::new(format!("placementConstraints[{i}].{field}"), e)
    })
}

/// Why a node cannot take the task; cheap to build, turned into words only for the node that
/// came closest.
#[derive(Debug, Clone, Copy)]
pub(super) enum Why<'a> {
    /// The volume's data is on another node, which is up.
    VolumeElsewhere(&'a VolumeNeed),
    /// The volume's node is lost and the volume may not be made afresh.
    VolumeLost(&'a VolumeNeed),
    HostPath(&'a str),
    Disconnected,
    Draining,
    Cpu {
        free: i64,
        need: i64,
    },
    Memory {
        free: i64,
        need: i64,
    },
    Port(&'a (i32, String)),
    DistinctInstance(usize),
    MemberOf(&'a Query),
}

/// A failed check: how far the node got (higher is closer) and why it stopped.
#[derive(Debug, Clone, Copy)]
pub(super) struct Unfit<'a> {
    pub stage: usize,
    pub why: Why<'a>,
}

impl Why<'_> {
    /// The ECS reason string.
    pub fn reason(&self) -> &'static str {
        match self {
            Why::VolumeElsewhere(_) | Why::VolumeLost(_) => "VOLUME",
            Why::HostPath(_) => "HOST_PATH",
            Why::Disconnected | Why::Draining => "AGENT",
            Why::Cpu { .. } => "RESOURCE:CPU",
            Why::Memory { .. } => "RESOURCE:MEMORY",
            Why::Port(_) => "RESOURCE:PORTS",
            Why::DistinctInstance(_) => "DISTINCT_INSTANCE",
            Why::MemberOf(_) => "MEMBER_OF",
        }
    }

    /// The shortfall in words, naming the node.
    pub fn detail(&self, node: &NodeSnapshot) -> String {
        let n = &node.name;
        match self {
            Why::VolumeElsewhere(v) => format!(
                "node {n} does not hold shared volume {}; its data is on node {}, where the \
                 task runs",
                v.name, v.home_name
            ),
            Why::VolumeLost(v) => format!(
                "shared volume {} is on node {}, which is lost; the task does not start on an \
                 empty volume elsewhere: bring node {} back, or set the volume's \
                 dockerVolumeConfiguration.autoprovision to true to start afresh on another node",
                v.name, v.home_name, v.home_name
            ),
            Why::HostPath(path) => format!(
                "node {n} does not allow host path {path}; start its agent with \
                 --allow-host-path {path} (or a parent directory)"
            ),
            Why::Disconnected => format!("node {n} is disconnected"),
            Why::Draining => format!("node {n} is draining"),
            Why::Cpu { free, need } => {
                format!("node {n} has {free} CPU units free, the task needs {need}")
            }
            Why::Memory { free, need } => {
                format!("node {n} has {free} MiB of memory free, the task needs {need}")
            }
            Why::Port((port, proto)) => format!("node {n} already uses host port {port}/{proto}"),
            Why::DistinctInstance(k) => {
                format!("node {n} already runs {k} task(s) of this service (distinctInstance)")
            }
            Why::MemberOf(q) => {
                let has: Vec<String> = q
                    .attribute_names()
                    .into_iter()
                    .map(|a| match node.attributes.get(a) {
                        Some(v) => format!("{a}={v}"),
                        None => format!("no {a}"),
                    })
                    .collect();
                format!(
                    "node {n} ({}) does not satisfy memberOf({q})",
                    has.join(", ")
                )
            }
        }
    }
}

/// Whether `path` lies under one of `allowed` (compared by whole components, with no `..`).
pub fn host_path_allowed<A: AsRef<Path>>(path: &str, allowed: &[A]) -> bool {
    let p = Path::new(path);
    p.is_absolute()
        && !p.components().any(|c| matches!(c, Component::ParentDir))
        && allowed.iter().any(|a| p.starts_with(a))
}

/// A shared volume's data stays on its node while that node is up; once it is lost, the task
/// may go elsewhere only if the volume may be made afresh there.
fn volumes<'a>(node: &NodeSnapshot, d: &'a Demand) -> Result<(), Why<'a>> {
    for v in &d.volumes {
        match &v.home {
            None => {}
            Some(_) if v.home_lost && v.autoprovision => {}
            Some(_) if v.home_lost => return Err(Why::VolumeLost(v)),
            Some(h) if **h != *node.id => return Err(Why::VolumeElsewhere(v)),
            Some(_) => {}
        }
    }
    Ok(())
}

fn host_paths<'a>(node: &NodeSnapshot, d: &'a Demand) -> Result<(), Why<'a>> {
    match d
        .host_paths
        .iter()
        .find(|p| !host_path_allowed(p, &node.allowed_host_paths))
    {
        Some(p) => Err(Why::HostPath(p)),
        None => Ok(()),
    }
}

fn agent(node: &NodeSnapshot) -> Result<(), Why<'static>> {
    match (node.connected, node.active) {
        (false, _) => Err(Why::Disconnected),
        (true, false) => Err(Why::Draining),
        (true, true) => Ok(()),
    }
}

fn cpu(node: &NodeSnapshot, d: &Demand) -> Result<(), Why<'static>> {
    if d.cpu > node.cpu_free {
        return Err(Why::Cpu {
            free: node.cpu_free,
            need: d.cpu,
        });
    }
    Ok(())
}

fn memory(node: &NodeSnapshot, d: &Demand) -> Result<(), Why<'static>> {
    if d.memory > node.memory_free {
        return Err(Why::Memory {
            free: node.memory_free,
            need: d.memory,
        });
    }
    Ok(())
}

fn ports<'a>(node: &NodeSnapshot, d: &'a Demand) -> Result<(), Why<'a>> {
    match d.ports.iter().find(|p| node.ports_used.contains(*p)) {
        Some(p) => Err(Why::Port(p)),
        None => Ok(()),
    }
}

fn constraint<'a>(node: &NodeSnapshot, c: &'a Constraint) -> Result<(), Why<'a>> {
    match c {
        Constraint::DistinctInstance if node.service_tasks > 0 => {
            Err(Why::DistinctInstance(node.service_tasks))
        }
        Constraint::MemberOf(q) if !q.matches(&node.attributes) => Err(Why::MemberOf(q)),
        _ => Ok(()),
    }
}

/// Runs every check in order; the first failure stops it.
pub(super) fn check<'a>(
    node: &NodeSnapshot,
    d: &'a Demand,
    constraints: &'a [Constraint],
) -> Result<(), Unfit<'a>> {
    let at = |stage: usize| move |why| Unfit { stage, why };
    volumes(node, d).map_err(at(0))?;
    agent(node).map_err(at(1))?;
    host_paths(node, d).map_err(at(2))?;
    cpu(node, d).map_err(at(3))?;
    memory(node, d).map_err(at(4))?;
    ports(node, d).map_err(at(5))?;
    for (i, c) in constraints.iter().enumerate() {
        constraint(node, c).map_err(at(6 + i))?;
    }
    Ok(())
}
