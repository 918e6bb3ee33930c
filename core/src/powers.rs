//! Powers a node must opt in to before it runs a task that needs them: privileged containers,
//! host devices and Docker security options (`berth agent --allow-privileged`,
//! `--allow-device`, `--allow-security-opt`, which the agent reports as node attributes).
//! RunTask and StartTask place such a task only on a node that allows them, and say so in
//! `failures[]` when none does. GPUs (`resourceRequirements` of type GPU) likewise need a node
//! that reports some (`berth.gpus`); how many each node has left is not yet counted.

use crate::scheduler::{Constraint, Query, Rejection};
use berth_proto::v1::TaskDefinition;

/// One power: the node attribute that grants it, the agent flag that sets it, and what needs it.
struct Power {
    attribute: &'static str,
    flag: &'static str,
    what: &'static str,
}

const PRIVILEGED: Power = Power {
    attribute: "berth.allow-privileged",
    flag: "--allow-privileged",
    what: "privileged containers",
};
const DEVICE: Power = Power {
    attribute: "berth.allow-device",
    flag: "--allow-device",
    what: "host devices (linuxParameters.devices)",
};
const SECURITY_OPT: Power = Power {
    attribute: "berth.allow-security-opt",
    flag: "--allow-security-opt",
    what: "dockerSecurityOptions",
};
const GPU: Power = Power {
    attribute: "berth.gpus",
    flag: "",
    what: "GPUs",
};

/// The powers `td` needs, each with the first field that needs it.
fn needed(td: &TaskDefinition) -> Vec<(&'static Power, String)> {
    let mut out: Vec<(&'static Power, String)> = Vec::new();
    let mut need = |p: &'static Power, path: String| {
        if !out.iter().any(|(q, _)| q.attribute == p.attribute) {
            out.push((p, path));
        }
    };
    for (i, c) in td.container_definitions.iter().enumerate() {
        let p = format!("containerDefinitions[{i}]");
        if c.privileged == Some(true) {
            need(&PRIVILEGED, format!("{p}.privileged"));
        }
        if c.linux_parameters
            .as_ref()
            .is_some_and(|l| !l.devices.is_empty())
        {
            need(&DEVICE, format!("{p}.linuxParameters.devices"));
        }
        if !c.docker_security_options.is_empty() {
            need(&SECURITY_OPT, format!("{p}.dockerSecurityOptions"));
        }
        if c.resource_requirements.iter().any(|r| r.r#type == "GPU") {
            need(&GPU, format!("{p}.resourceRequirements"));
        }
    }
    out
}

/// Constraints that keep `td` to nodes allowing every power it needs.
pub fn constraints(td: &TaskDefinition) -> Vec<Constraint> {
    needed(td)
        .into_iter()
        .filter_map(|(p, _)| {
            let test = if p.flag.is_empty() {
                "exists"
            } else {
                "== true"
            };
            Query::parse(&format!("attribute:{} {test}", p.attribute)).ok()
        })
        .map(Constraint::MemberOf)
        .collect()
}

/// A rejection for want of a power, in words that name the power, the field and the fix
/// (ECS's reason for a missing required attribute is ATTRIBUTE).
pub fn explain(td: &TaskDefinition, r: Rejection) -> Rejection {
    if r.reason != "MEMBER_OF" {
        return r;
    }
    let Some((p, path)) = needed(td)
        .into_iter()
        .find(|(p, _)| r.detail.contains(p.attribute))
    else {
        return r;
    };
    if p.flag.is_empty() {
        return Rejection {
            reason: "RESOURCE:GPU",
            detail: format!(
                "the task needs {} ({path}), and no node reports any ({})",
                p.what, r.detail
            ),
        };
    }
    Rejection {
        reason: "ATTRIBUTE",
        detail: format!(
            "the task needs {} ({path}), which no node allows: start an agent with {} ({})",
            p.what, p.flag, r.detail
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::v1::ContainerDefinition;

    #[test]
    fn a_privileged_container_needs_a_node_that_allows_it() {
        let td = TaskDefinition {
            container_definitions: vec![
                ContainerDefinition::default(),
                ContainerDefinition {
                    privileged: Some(true),
                    docker_security_options: vec!["no-new-privileges".into()],
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let c = constraints(&td);
        assert_eq!(c.len(), 2);
        assert_eq!(
            c[0].to_string(),
            "memberOf(attribute:berth.allow-privileged == true)"
        );
        let r = explain(
            &td,
            Rejection {
                reason: "MEMBER_OF",
                detail: "node a (no berth.allow-privileged) does not satisfy memberOf(attribute:berth.allow-privileged == true)".into(),
            },
        );
        assert_eq!(r.reason, "ATTRIBUTE");
        assert!(
            r.detail.contains("containerDefinitions[1].privileged"),
            "{}",
            r.detail
        );
        assert!(r.detail.contains("--allow-privileged"), "{}", r.detail);
        assert!(constraints(&TaskDefinition::default()).is_empty());
        let gpu = TaskDefinition {
            container_definitions: vec![ContainerDefinition {
                resource_requirements: vec![berth_proto::v1::ResourceRequirement {
                    r#type: "GPU".into(),
                    value: "2".into(),
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(
            constraints(&gpu)[0].to_string(),
            "memberOf(attribute:berth.gpus exists)"
        );
    }
}
