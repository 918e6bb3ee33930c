//! Ranking: among the feasible nodes, which one the placement strategies prefer. Each strategy
//! turns a node into a number where lower is better; strategies compare in order, the first
//! being the primary key, and fixed tie-breaks make the choice deterministic.

use super::NodeSnapshot;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;

/// A placement strategy, as ECS spells them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    /// Even out the service's tasks over nodes, or over the values of a node attribute.
    Spread(SpreadField),
    /// Prefer the node with the least of a resource left that still fits the task.
    Binpack(Resource),
    /// Any feasible node, drawn from the request's seed.
    Random,
}

/// What `spread` evens out over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpreadField {
    /// Each node on its own (`instanceId`, or `host`).
    InstanceId,
    /// The values of this node attribute (`attribute:NAME`).
    Attribute(String),
}

/// What `binpack` packs by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Cpu,
    Memory,
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Strategy::Spread(SpreadField::InstanceId) => f.write_str("spread(instanceId)"),
            Strategy::Spread(SpreadField::Attribute(a)) => write!(f, "spread(attribute:{a})"),
            Strategy::Binpack(Resource::Cpu) => f.write_str("binpack(cpu)"),
            Strategy::Binpack(Resource::Memory) => f.write_str("binpack(memory)"),
            Strategy::Random => f.write_str("random"),
        }
    }
}

/// Parses an ECS placement strategy: `spread` over `instanceId`, `host` or `attribute:NAME`;
/// `binpack` by `cpu` or `memory`; `random` (no field).
pub fn parse_strategy(kind: &str, field: &str) -> Result<Strategy, String> {
    let field = field.trim();
    match kind.to_ascii_lowercase().as_str() {
        "spread" => {
            if field.eq_ignore_ascii_case("instanceId") || field.eq_ignore_ascii_case("host") {
                return Ok(Strategy::Spread(SpreadField::InstanceId));
            }
            match field.strip_prefix("attribute:") {
                Some(name) if !name.trim().is_empty() => Ok(Strategy::Spread(
                    SpreadField::Attribute(name.trim().to_string()),
                )),
                _ if field.is_empty() => {
                    Err("spread needs a field: instanceId, host or attribute:NAME".into())
                }
                _ => Err(format!(
                    "spread field {} must be instanceId, host or attribute:NAME",
                    crate::error::quote(field)
                )),
            }
        }
        "binpack" => match field.to_ascii_lowercase().as_str() {
            "cpu" => Ok(Strategy::Binpack(Resource::Cpu)),
            "memory" => Ok(Strategy::Binpack(Resource::Memory)),
            "" => Err("binpack needs a field: cpu or memory".into()),
            _ => Err(format!(
                "binpack field {} must be cpu or memory",
                crate::error::quote(field)
            )),
        },
        "random" if field.is_empty() => Ok(Strategy::Random),
        "random" => Err(format!(
            "random takes no field; remove {}",
            crate::error::quote(field)
        )),
        _ => Err(format!(
            "placement strategy type {} must be spread, binpack or random",
            crate::error::quote(kind)
        )),
    }
}

/// What decides between nodes the strategies leave tied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ties {
    /// Fewest tasks of the service, then fewest tasks, then node id.
    Service,
    /// `place_one`'s order: fewest tasks, then most memory free, then snapshot order.
    Legacy,
}

/// Ranks nodes of one snapshot for one placement. Built once per `place` call so that spreading
/// over an attribute counts tasks per value once, not once per node.
pub(super) struct Ranker<'a> {
    strategies: &'a [Strategy],
    /// For each `spread(attribute:…)` strategy, the service's tasks per attribute value.
    spread_counts: Vec<HashMap<&'a str, usize>>,
    /// Differs between successive placements in one snapshot, so `random` draws afresh.
    draw: u64,
    seed: u64,
    ties: Ties,
}

impl<'a> Ranker<'a> {
    pub fn new(
        nodes: &'a [NodeSnapshot],
        strategies: &'a [Strategy],
        seed: u64,
        ties: Ties,
    ) -> Self {
        let draw = if strategies.contains(&Strategy::Random) {
            nodes.iter().map(|n| n.tasks as u64).sum()
        } else {
            0
        };
        Self::with_counts(
            strategies,
            spread_counts(nodes, strategies),
            seed,
            draw,
            ties,
        )
    }

    /// A ranker whose per-value spread counts the caller keeps (the sampled placer, which
    /// never looks at every node).
    pub fn with_counts(
        strategies: &'a [Strategy],
        spread_counts: Vec<HashMap<&'a str, usize>>,
        seed: u64,
        draw: u64,
        ties: Ties,
    ) -> Self {
        Ranker {
            strategies,
            spread_counts,
            draw,
            seed,
            ties,
        }
    }
}

/// For each `spread(attribute:…)` strategy, the service's tasks per value over `nodes`.
pub(super) fn spread_counts<'a>(
    nodes: &'a [NodeSnapshot],
    strategies: &'a [Strategy],
) -> Vec<HashMap<&'a str, usize>> {
    strategies
        .iter()
        .filter_map(|s| match s {
            Strategy::Spread(SpreadField::Attribute(name)) => Some(name),
            _ => None,
        })
        .map(|name| {
            let mut counts: HashMap<&str, usize> = HashMap::new();
            for n in nodes {
                if let Some(v) = n.attributes.get(name) {
                    *counts.entry(v.as_str()).or_default() += n.service_tasks;
                }
            }
            counts
        })
        .collect()
}

impl Ranker<'_> {
    /// Writes the node's sort key into `out` (lower is better), strategies first, then ties.
    pub fn key(&self, node: &NodeSnapshot, out: &mut Vec<i128>) {
        out.clear();
        let mut spreads = self.spread_counts.iter();
        for s in self.strategies {
            out.push(match s {
                Strategy::Spread(SpreadField::InstanceId) => node.service_tasks as i128,
                Strategy::Spread(SpreadField::Attribute(name)) => {
                    let counts = spreads.next().expect("one count map per attribute spread");
                    match node.attributes.get(name) {
                        Some(v) => counts.get(v.as_str()).copied().unwrap_or(0) as i128,
                        None => i128::MAX,
                    }
                }
                Strategy::Binpack(Resource::Cpu) => node.cpu_free.into(),
                Strategy::Binpack(Resource::Memory) => node.memory_free.into(),
                Strategy::Random => self.random(&node.id).into(),
            });
        }
        match self.ties {
            Ties::Service => {
                out.push(node.service_tasks as i128);
                out.push(node.tasks as i128);
            }
            Ties::Legacy => {
                out.push(node.tasks as i128);
                out.push(-i128::from(node.memory_free));
            }
        }
    }

    /// Orders two nodes by their keys; `Less` means `a` is preferred.
    pub fn cmp(&self, a: (&[i128], &NodeSnapshot), b: (&[i128], &NodeSnapshot)) -> Ordering {
        let by_key = a.0.cmp(b.0);
        match self.ties {
            Ties::Service => by_key.then_with(|| a.1.id.cmp(&b.1.id)),
            Ties::Legacy => by_key,
        }
    }

    fn random(&self, id: &str) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325; // FNV-1a over the id
        for b in id.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        splitmix64(self.seed ^ splitmix64(self.draw ^ splitmix64(h)))
    }
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_strategy_accepts_ecs_spellings() {
        let ok = |k, f| parse_strategy(k, f).unwrap();
        assert_eq!(
            ok("spread", "instanceId"),
            Strategy::Spread(SpreadField::InstanceId)
        );
        assert_eq!(
            ok("spread", "host"),
            Strategy::Spread(SpreadField::InstanceId)
        );
        assert_eq!(
            ok("spread", "attribute:ecs.availability-zone"),
            Strategy::Spread(SpreadField::Attribute("ecs.availability-zone".into()))
        );
        assert_eq!(ok("binpack", "memory"), Strategy::Binpack(Resource::Memory));
        assert_eq!(ok("binpack", "CPU"), Strategy::Binpack(Resource::Cpu));
        assert_eq!(ok("random", ""), Strategy::Random);
        assert_eq!(
            ok("spread", "attribute:zone").to_string(),
            "spread(attribute:zone)"
        );
    }

    #[test]
    fn parse_strategy_errors_name_the_fix() {
        let err = |k, f| parse_strategy(k, f).unwrap_err();
        assert_eq!(
            err("binpack", "disk"),
            "binpack field \"disk\" must be cpu or memory"
        );
        assert_eq!(err("binpack", ""), "binpack needs a field: cpu or memory");
        assert_eq!(
            err("spread", "zone"),
            "spread field \"zone\" must be instanceId, host or attribute:NAME"
        );
        assert_eq!(
            err("spread", "attribute:"),
            "spread field \"attribute:\" must be instanceId, host or attribute:NAME"
        );
        assert_eq!(
            err("spread", ""),
            "spread needs a field: instanceId, host or attribute:NAME"
        );
        assert_eq!(
            err("random", "cpu"),
            "random takes no field; remove \"cpu\""
        );
        assert_eq!(
            err("firstfit", ""),
            "placement strategy type \"firstfit\" must be spread, binpack or random"
        );
    }
}
