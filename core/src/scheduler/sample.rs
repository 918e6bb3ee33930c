//! Placement over many nodes without scanning them all, in the manner of Nomad's limit
//! iterator: nodes are visited in a seeded random order, continuing where the last placement
//! stopped, until `CANDIDATES` feasible ones are found; only those are ranked (so spread by node
//! is power-of-k-choices). Two additions keep the quality of a full scan where users see it:
//! the nodes placed on lately stay candidates while they fit (binpack keeps filling them), and the visit goes
//! on until it holds a node of the least-loaded value of the first `spread(attribute:…)` (so
//! zones stay within one task of each other). Counts per value are kept across the plan's
//! placements, never recounted over every node. Feasibility is exact: every candidate passes
//! every check, so distinctInstance and memberOf hold as they do with a full scan.

use super::feasible::{self, Unfit};
use super::rank::{Ranker, SpreadField, Strategy, Ties};
use super::{Constraint, Demand, NodeSnapshot, PlacementRequest, Rejection};
use std::collections::{HashMap, HashSet};

/// Up to this many nodes, every node is considered (the exact path).
pub const FULL_SCAN_MAX: usize = 256;
/// Feasible nodes ranked per placement above that.
pub const CANDIDATES: usize = 16;

/// One plan's placements over one snapshot.
pub struct Placer<'a> {
    strategies: &'a [Strategy],
    constraints: &'a [Constraint],
    order: Vec<usize>,
    cursor: usize,
    /// The first attribute spread's name, its tasks per value, and values no node can take.
    spread: Option<(String, HashMap<String, usize>, HashSet<String>)>,
    /// Counts of every attribute spread, for ranking.
    counts: Vec<(String, HashMap<String, usize>)>,
    /// Nodes placed on lately that may still fit, newest last (at most `RECENT`).
    recent: Vec<usize>,
    draw: u64,
}

/// Recently used nodes kept as candidates.
const RECENT: usize = 32;

/// Every value an attribute takes over a snapshot's nodes, by attribute name, when the caller
/// knows it without looking at every node (the control plane's rooms cache keeps it).
pub type AttributeValues = HashMap<String, std::sync::Arc<[String]>>;

impl<'a> Placer<'a> {
    pub fn new(
        nodes: &[NodeSnapshot],
        strategies: &'a [Strategy],
        constraints: &'a [Constraint],
        seed: u64,
    ) -> Self {
        Self::with_values(
            nodes,
            strategies,
            constraints,
            seed,
            &AttributeValues::new(),
        )
    }

    /// As `new`, counting a spread attribute whose values `known` holds over only the nodes
    /// that hold the service's tasks: the others add nothing but their value, and looking that
    /// up on ten thousand nodes was a fifth of a controller pass that places.
    pub fn with_values(
        nodes: &[NodeSnapshot],
        strategies: &'a [Strategy],
        constraints: &'a [Constraint],
        seed: u64,
        known: &AttributeValues,
    ) -> Self {
        let mut order: Vec<usize> = (0..nodes.len()).collect();
        shuffle(&mut order, seed);
        let counts: Vec<(String, HashMap<String, usize>)> = strategies
            .iter()
            .filter_map(|s| match s {
                Strategy::Spread(SpreadField::Attribute(a)) => Some(a.clone()),
                _ => None,
            })
            .map(|a| {
                let m = match known.get(&a) {
                    Some(values) => {
                        let start = values.iter().map(|v| (v.clone(), 0)).collect();
                        tasks_per_value(nodes.iter().filter(|n| n.service_tasks > 0), &a, start)
                    }
                    None => tasks_per_value(nodes.iter(), &a, HashMap::new()),
                };
                (a, m)
            })
            .collect();
        let spread = counts
            .first()
            .map(|(a, m)| (a.clone(), m.clone(), HashSet::new()));
        Self {
            strategies,
            constraints,
            order,
            cursor: 0,
            spread,
            counts,
            recent: Vec::new(),
            draw: nodes.iter().map(|n| n.tasks as u64).sum(),
        }
    }

    /// Places one task, charging the node in `nodes` as `scheduler::place` does.
    pub fn place(
        &mut self,
        nodes: &mut [NodeSnapshot],
        demand: &Demand,
        seed: u64,
    ) -> Result<String, Rejection> {
        let req = PlacementRequest {
            demand,
            strategies: self.strategies,
            constraints: self.constraints,
            seed,
        };
        if nodes.len() <= FULL_SCAN_MAX {
            return super::place(nodes, &req);
        }
        let i = self.choose(nodes, &req)?;
        let n = &mut nodes[i];
        n.cpu_free -= demand.cpu;
        n.memory_free -= demand.memory;
        if !demand.ports.is_empty() {
            std::sync::Arc::make_mut(&mut n.ports_used).extend(demand.ports.iter().cloned());
        }
        n.tasks += 1;
        n.service_tasks += 1;
        for (a, m) in self.counts.iter_mut() {
            if let Some(v) = n.attributes.get(a) {
                *m.entry(v.clone()).or_default() += 1;
            }
        }
        if let Some((a, m, _)) = self.spread.as_mut() {
            if let Some(v) = n.attributes.get(a) {
                *m.entry(v.clone()).or_default() += 1;
            }
        }
        self.recent.retain(|&r| r != i);
        if self.recent.len() == RECENT {
            self.recent.remove(0);
        }
        self.recent.push(i);
        self.draw += 1;
        Ok(n.id.to_string())
    }

    /// The least-loaded value of the first attribute spread that some node may still take.
    fn wanted_value(&self) -> Option<String> {
        let (_, m, dead) = self.spread.as_ref()?;
        m.iter()
            .filter(|(v, _)| !dead.contains(*v))
            .min_by(|a, b| a.1.cmp(b.1).then_with(|| a.0.cmp(b.0)))
            .map(|(v, _)| v.clone())
    }

    fn choose<'r>(
        &mut self,
        nodes: &[NodeSnapshot],
        req: &PlacementRequest<'r>,
    ) -> Result<usize, Rejection> {
        let mut closest: Option<(usize, Unfit<'r>)> = None;
        let mut candidates: Vec<usize> = Vec::with_capacity(CANDIDATES + RECENT);
        let wanted = self.wanted_value();
        let attr = self.spread.as_ref().map(|(a, _, _)| a.clone());
        let mut have_wanted = wanted.is_none();
        let check =
            |i: usize, closest: &mut Option<(usize, Unfit<'r>)>| fits(nodes, i, req, closest);
        // Nodes only fill up within a plan: one that no longer fits never will again.
        self.recent.retain(|&r| check(r, &mut closest));
        candidates.extend_from_slice(&self.recent);
        let mut visited = 0;
        while visited < nodes.len() && (candidates.len() < CANDIDATES || !have_wanted) {
            let i = self.order[self.cursor];
            self.cursor = (self.cursor + 1) % self.order.len();
            visited += 1;
            if self.recent.contains(&i) || !check(i, &mut closest) {
                continue;
            }
            let is_wanted = match (&attr, &wanted) {
                (Some(a), Some(w)) => nodes[i].attributes.get(a) == Some(w),
                _ => false,
            };
            if is_wanted {
                have_wanted = true;
            } else if candidates.len() >= CANDIDATES {
                continue;
            }
            candidates.push(i);
        }
        if !have_wanted {
            // A whole round found no node of that value that may take the task; nodes only
            // fill up within a plan, so none will.
            if let (Some((_, _, dead)), Some(w)) = (self.spread.as_mut(), wanted) {
                dead.insert(w);
            }
        }
        self.best(nodes, req, &candidates)
            .ok_or_else(|| match closest {
                Some((i, u)) => Rejection {
                    reason: u.why.reason(),
                    detail: u.why.detail(&nodes[i]),
                },
                None => Rejection {
                    reason: "AGENT",
                    detail: "no node is registered; start one with `berth agent`".into(),
                },
            })
    }

    fn best(
        &self,
        nodes: &[NodeSnapshot],
        req: &PlacementRequest,
        candidates: &[usize],
    ) -> Option<usize> {
        let counts = self
            .counts
            .iter()
            .map(|(_, m)| m.iter().map(|(k, v)| (k.as_str(), *v)).collect())
            .collect();
        let ranker =
            Ranker::with_counts(self.strategies, counts, req.seed, self.draw, Ties::Service);
        let (mut best, mut best_key, mut key) = (None::<usize>, Vec::new(), Vec::new());
        for &i in candidates {
            ranker.key(&nodes[i], &mut key);
            let better = best.is_none_or(|b| {
                ranker.cmp((&key, &nodes[i]), (&best_key, &nodes[b])) == std::cmp::Ordering::Less
            });
            if better {
                best = Some(i);
                std::mem::swap(&mut key, &mut best_key);
            }
        }
        best
    }
}

/// The service's tasks on `nodes` by their value of `attribute`, added to `counts` (every value
/// met is a key, with no task too).
fn tasks_per_value<'n>(
    nodes: impl Iterator<Item = &'n NodeSnapshot>,
    attribute: &str,
    mut counts: HashMap<String, usize>,
) -> HashMap<String, usize> {
    for n in nodes {
        // Looked up before inserting: a value is copied once, not once a node.
        match n.attributes.get(attribute).map(|v| (counts.get_mut(v), v)) {
            Some((Some(count), _)) => *count += n.service_tasks,
            Some((None, v)) => {
                counts.insert(v.clone(), n.service_tasks);
            }
            None => {}
        }
    }
    counts
}

/// Whether node `i` may take the task; if not, remembers it when it came closest so far.
fn fits<'r>(
    nodes: &[NodeSnapshot],
    i: usize,
    req: &PlacementRequest<'r>,
    closest: &mut Option<(usize, Unfit<'r>)>,
) -> bool {
    match feasible::check(&nodes[i], req.demand, req.constraints) {
        Ok(()) => true,
        Err(u) => {
            if closest.as_ref().is_none_or(|(_, c)| u.stage > c.stage) {
                *closest = Some((i, u));
            }
            false
        }
    }
}

/// A Fisher–Yates shuffle from a splitmix64 stream (the scheduler draws from no global RNG).
fn shuffle(v: &mut [usize], seed: u64) {
    let mut x = seed;
    for i in (1..v.len()).rev() {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        v.swap(i, (z % (i as u64 + 1)) as usize);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse_constraint, parse_strategy, place};
    use super::*;

    fn nodes(n: usize) -> Vec<NodeSnapshot> {
        (0..n)
            .map(|i| {
                let id: std::sync::Arc<str> = format!("i-{i:05}").into();
                NodeSnapshot {
                    name: id.clone(),
                    connected: true,
                    active: true,
                    cpu_free: 16_384,
                    memory_free: 4_096 + (i as i64 * 7_919) % 61_440,
                    ports_used: Default::default(),
                    tasks: 0,
                    attributes: std::sync::Arc::new(HashMap::from([(
                        "zone".to_string(),
                        ["a", "b", "c"][i % 3].to_string(),
                    )])),
                    service_tasks: 0,
                    allowed_host_paths: Default::default(),
                    id,
                }
            })
            .collect()
    }

    const D: Demand = Demand {
        cpu: 64,
        memory: 512,
        ports: vec![],
        host_paths: Vec::new(),
        volumes: Vec::new(),
    };

    fn sampled(n: &mut [NodeSnapshot], s: &[Strategy], c: &[Constraint], tasks: usize) {
        let mut p = Placer::new(n, s, c, 3);
        for i in 0..tasks {
            p.place(n, &D, i as u64).expect("placed");
        }
    }

    fn used_fill(before: &[NodeSnapshot], after: &[NodeSnapshot]) -> f64 {
        let (mut had, mut took) = (0, 0);
        for (b, a) in before
            .iter()
            .zip(after)
            .filter(|(_, a)| a.service_tasks > 0)
        {
            had += b.memory_free;
            took += b.memory_free - a.memory_free;
        }
        took as f64 / had as f64
    }

    #[test]
    fn sampled_binpack_fills_nodes_within_five_percent_of_a_full_scan() {
        let s = [parse_strategy("binpack", "memory").unwrap()];
        let before = nodes(2_000);
        let mut full = before.clone();
        for i in 0..3_000 {
            let req = PlacementRequest {
                demand: &D,
                strategies: &s,
                constraints: &[],
                seed: i,
            };
            place(&mut full, &req).unwrap();
        }
        let mut samp = before.clone();
        sampled(&mut samp, &s, &[], 3_000);
        let (f, p) = (used_fill(&before, &full), used_fill(&before, &samp));
        assert!(p >= f - 0.05, "sampled fill {p:.3}, full scan {f:.3}");
    }

    #[test]
    fn known_values_place_as_looking_at_every_node_does() {
        let s = [parse_strategy("spread", "attribute:zone").unwrap()];
        let mut looked = nodes(3_000);
        // Some of the service's tasks already run, unevenly: zone "a" holds the most.
        for (i, n) in looked.iter_mut().enumerate().filter(|(i, _)| i % 7 == 0) {
            n.service_tasks = 1 + usize::from(i % 3 == 0);
        }
        let mut known = looked.clone();
        let values = AttributeValues::from([(
            "zone".to_string(),
            std::sync::Arc::from(["a", "b", "c"].map(String::from)),
        )]);
        let mut p1 = Placer::new(&looked, &s, &[], 5);
        let mut p2 = Placer::with_values(&known, &s, &[], 5, &values);
        for i in 0..600 {
            let a = p1.place(&mut looked, &D, i).expect("placed");
            let b = p2.place(&mut known, &D, i).expect("placed");
            assert_eq!(a, b, "placement {i}");
        }
    }

    #[test]
    fn sampled_spread_keeps_zones_within_one_and_never_breaks_a_constraint() {
        let s = [
            parse_strategy("spread", "attribute:zone").unwrap(),
            parse_strategy("spread", "instanceId").unwrap(),
        ];
        let c = [
            parse_constraint("memberOf", "attribute:zone != c").unwrap(),
            parse_constraint("distinctInstance", "").unwrap(),
        ];
        let mut n = nodes(2_000);
        sampled(&mut n, &s, &c, 1_001);
        let mut zones: HashMap<&str, usize> = HashMap::new();
        for x in &n {
            *zones.entry(x.attributes["zone"].as_str()).or_default() += x.service_tasks;
            assert!(x.service_tasks <= 1, "distinctInstance broken on {}", x.id);
        }
        assert_eq!(zones.get("c").copied().unwrap_or(0), 0, "memberOf broken");
        assert!(zones["a"].abs_diff(zones["b"]) <= 1, "{zones:?}");
    }

    #[test]
    fn a_task_no_node_can_take_says_why() {
        let mut n = nodes(1_000);
        let big = Demand {
            cpu: 1,
            memory: 1 << 30,
            ports: vec![],
            ..Default::default()
        };
        let mut p = Placer::new(&n, &[], &[], 1);
        let r = p.place(&mut n, &big, 0).unwrap_err();
        assert_eq!(r.reason, "RESOURCE:MEMORY");
    }
}
