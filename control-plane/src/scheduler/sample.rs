//! Placement over many nodes without scanning them all, in the manner of Nomad's limit
//! iterator: nodes are visited in a seeded random order, continuing where the last placement
//! stopped, until `CANDIDATES` feasible ones are found; only those are ranked (so spread by node
//! is power-of-k-choices). Two additions keep the quality of a full scan where users see it:
//! the node placed on last is always a candidate (binpack keeps filling it), and the visit goes
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
    last: Option<usize>,
    draw: u64,
}

impl<'a> Placer<'a> {
    pub fn new(
        nodes: &[NodeSnapshot],
        strategies: &'a [Strategy],
        constraints: &'a [Constraint],
        seed: u64,
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
                let mut m: HashMap<String, usize> = HashMap::new();
                for n in nodes {
                    if let Some(v) = n.attributes.get(&a) {
                        *m.entry(v.clone()).or_default() += n.service_tasks;
                    }
                }
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
            last: None,
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
        n.ports_used.extend(demand.ports.iter().cloned());
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
        self.last = Some(i);
        self.draw += 1;
        Ok(n.id.clone())
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
        let mut candidates: Vec<usize> = Vec::with_capacity(CANDIDATES + 1);
        let wanted = self.wanted_value();
        let attr = self.spread.as_ref().map(|(a, _, _)| a.clone());
        let mut have_wanted = wanted.is_none();
        let check =
            |i: usize, closest: &mut Option<(usize, Unfit<'r>)>| fits(nodes, i, req, closest);
        if let Some(l) = self.last {
            if check(l, &mut closest) {
                candidates.push(l);
            }
        }
        let mut visited = 0;
        while visited < nodes.len() && (candidates.len() < CANDIDATES || !have_wanted) {
            let i = self.order[self.cursor];
            self.cursor = (self.cursor + 1) % self.order.len();
            visited += 1;
            if Some(i) == self.last || !check(i, &mut closest) {
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
