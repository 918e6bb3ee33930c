//! Placement at scale. 1,000 nodes, 10,000 tasks placed one by one on one snapshot with every
//! node scanned (`place`, as before); then 10,000 nodes, where a plan places through `Placer`
//! (a bounded sample of feasible nodes), compared with a full scan of the same snapshot for
//! speed and for quality: binpack fill, spread over three zones, distinctInstance, memberOf.
//! Run with `cargo bench -p berth-control-plane --bench placement`.

use berth_core::scheduler::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

fn nodes(count: usize) -> Vec<NodeSnapshot> {
    let mut rng = StdRng::seed_from_u64(0x5eed);
    (0..count)
        .map(|i| {
            let id = format!("i-{i:05}");
            let zone = ["a", "b", "c"][rng.random_range(0..3)];
            NodeSnapshot {
                name: format!("node-{i}").into(),
                connected: true,
                active: true,
                cpu_free: rng.random_range(2048..=16384),
                memory_free: rng.random_range(4096..=65536),
                ports_used: Default::default(),
                tasks: 0,
                attributes: std::sync::Arc::new(HashMap::from([
                    ("ecs.instance-id".to_string(), id.clone()),
                    ("berth.node-name".to_string(), format!("node-{i}")),
                    ("zone".to_string(), zone.to_string()),
                ])),
                service_tasks: 0,
                allowed_host_paths: Default::default(),
                id: id.into(),
            }
        })
        .collect()
}

const DEMAND: Demand = Demand {
    cpu: 256,
    memory: 512,
    ports: vec![],
    host_paths: Vec::new(),
    volumes: Vec::new(),
};

/// How one run went: the snapshot after it, and its speed.
struct Run {
    nodes: Vec<NodeSnapshot>,
    total: Duration,
    lat: Vec<Duration>,
}

/// Places `tasks` tasks, through a `Placer` when `sampled`, else by a full scan each.
fn run(count: usize, tasks: usize, s: &[Strategy], c: &[Constraint], sampled: bool) -> Run {
    let mut nodes = nodes(count);
    let mut placer = Placer::new(&nodes, s, c, 7);
    let mut lat = Vec::with_capacity(tasks);
    let start = Instant::now();
    for i in 0..tasks {
        let t = Instant::now();
        let placed = if sampled {
            placer.place(&mut nodes, &DEMAND, i as u64)
        } else {
            let req = PlacementRequest {
                demand: &DEMAND,
                strategies: s,
                constraints: c,
                seed: i as u64,
            };
            place(&mut nodes, &req)
        };
        lat.push(t.elapsed());
        if let Err(r) = placed {
            panic!("task {i} not placed: {} {}", r.reason, r.detail);
        }
    }
    Run {
        nodes,
        total: start.elapsed(),
        lat,
    }
}

fn speed(label: &str, r: &mut Run, count: usize) {
    r.lat.sort();
    let pct = |p: usize| r.lat[(r.lat.len() * p / 100).min(r.lat.len() - 1)];
    let micros = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1e6);
    println!(
        "  {label:<12} {} tasks on {count} nodes in {:.3} s ({:.0} tasks/s); per placement p50 {} µs, p99 {} µs",
        r.lat.len(),
        r.total.as_secs_f64(),
        r.lat.len() as f64 / r.total.as_secs_f64(),
        micros(pct(50)),
        micros(pct(99)),
    );
}

fn zones(nodes: &[NodeSnapshot]) -> BTreeMap<&str, usize> {
    let mut z: BTreeMap<&str, usize> = BTreeMap::new();
    for n in nodes {
        *z.entry(n.attributes["zone"].as_str()).or_default() += n.service_tasks;
    }
    z
}

/// Nodes used, and the share of their memory in use (of what they had at the start).
fn fill(before: &[NodeSnapshot], after: &[NodeSnapshot]) -> (usize, f64) {
    let (mut used, mut had, mut took) = (0, 0i64, 0i64);
    for (b, a) in before.iter().zip(after) {
        if a.service_tasks > 0 {
            used += 1;
            had += b.memory_free;
            took += b.memory_free - a.memory_free;
        }
    }
    (used, took as f64 / had.max(1) as f64)
}

fn at_1000() {
    let s = [
        parse_strategy("spread", "attribute:zone").unwrap(),
        parse_strategy("binpack", "memory").unwrap(),
    ];
    let c = [parse_constraint("memberOf", "attribute:zone != c").unwrap()];
    println!("1,000 nodes, full scan: spread(attribute:zone), binpack(memory), memberOf(attribute:zone != c)");
    let mut r = run(1_000, 10_000, &s, &c, false);
    speed("full scan", &mut r, 1_000);
    let z = zones(&r.nodes);
    println!("  tasks per zone: {z:?}");
    assert_eq!(z.get("c").copied().unwrap_or(0), 0);
    assert!(z["a"].abs_diff(z["b"]) <= 1, "{z:?}");
}

fn at_10000() {
    const N: usize = 10_000;
    const T: usize = 20_000;
    let binpack = [parse_strategy("binpack", "memory").unwrap()];
    println!(
        "10,000 nodes, binpack(memory), {T} tasks: full scan vs sampled ({CANDIDATES} candidates)"
    );
    let before = nodes(N);
    let mut full = run(N, T, &binpack, &[], false);
    let mut sampled = run(N, T, &binpack, &[], true);
    speed("full scan", &mut full, N);
    speed("sampled", &mut sampled, N);
    let (fu, ff) = fill(&before, &full.nodes);
    let (su, sf) = fill(&before, &sampled.nodes);
    println!(
        "  quality: full scan fills {fu} nodes to {:.1}%, sampled {su} nodes to {:.1}%",
        ff * 100.0,
        sf * 100.0
    );
    assert!(
        sf >= ff - 0.05,
        "binpack fill {sf} is not within 5% of {ff}"
    );
    assert!(
        su as f64 <= fu as f64 * 1.05,
        "sampled binpack uses {su} nodes, full {fu}"
    );

    let s = [
        parse_strategy("spread", "attribute:zone").unwrap(),
        parse_strategy("spread", "instanceId").unwrap(),
    ];
    let c = [
        parse_constraint("memberOf", "attribute:zone != c").unwrap(),
        parse_constraint("distinctInstance", "").unwrap(),
    ];
    println!("10,000 nodes, spread(attribute:zone), spread(instanceId), memberOf(zone != c), distinctInstance, 5,000 tasks");
    let mut full = run(N, 5_000, &s, &c, false);
    let mut sampled = run(N, 5_000, &s, &c, true);
    speed("full scan", &mut full, N);
    speed("sampled", &mut sampled, N);
    for (label, r) in [("full scan", &full), ("sampled", &sampled)] {
        let z = zones(&r.nodes);
        let twice = r.nodes.iter().filter(|n| n.service_tasks > 1).count();
        println!("  {label}: tasks per zone {z:?}; nodes with two tasks: {twice}");
        assert_eq!(z.get("c").copied().unwrap_or(0), 0, "memberOf violated");
        assert!(
            z["a"].abs_diff(z["b"]) <= 1,
            "spread off by more than one: {z:?}"
        );
        assert_eq!(twice, 0, "distinctInstance violated");
    }
}

fn main() {
    at_1000();
    at_10000();
}
