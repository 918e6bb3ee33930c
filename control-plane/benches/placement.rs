//! Placement at scale: 1,000 simulated nodes, 10,000 tasks placed one by one on the same
//! snapshot, as a service deployment's plan would. Run with
//! `cargo bench -p berth-control-plane --bench placement`.

use berth_control_plane::scheduler::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

const NODES: usize = 1_000;
const TASKS: usize = 10_000;

fn nodes() -> Vec<NodeSnapshot> {
    let mut rng = StdRng::seed_from_u64(0x5eed);
    (0..NODES)
        .map(|i| {
            let id = format!("i-{i:05}");
            let zone = ["a", "b", "c"][rng.random_range(0..3)];
            NodeSnapshot {
                name: format!("node-{i}"),
                connected: true,
                active: true,
                cpu_free: rng.random_range(2048..=16384),
                memory_free: rng.random_range(4096..=65536),
                ports_used: HashSet::new(),
                tasks: 0,
                attributes: HashMap::from([
                    ("ecs.instance-id".to_string(), id.clone()),
                    ("berth.node-name".to_string(), format!("node-{i}")),
                    ("zone".to_string(), zone.to_string()),
                ]),
                service_tasks: 0,
                id,
            }
        })
        .collect()
}

/// Places TASKS tasks, prints the timings, and returns how many went to each zone.
fn run(label: &str, strategies: &[Strategy], constraints: &[Constraint]) -> Vec<NodeSnapshot> {
    let mut nodes = nodes();
    let demand = Demand {
        cpu: 256,
        memory: 512,
        ports: vec![],
    };
    let mut lat = Vec::with_capacity(TASKS);
    let start = Instant::now();
    for i in 0..TASKS {
        let req = PlacementRequest {
            demand: &demand,
            strategies,
            constraints,
            seed: i as u64,
        };
        let t = Instant::now();
        let placed = place(&mut nodes, &req);
        lat.push(t.elapsed());
        if let Err(r) = placed {
            panic!("{label}: task {i} not placed: {} {}", r.reason, r.detail);
        }
    }
    let total = start.elapsed();
    lat.sort();
    let pct = |p: usize| lat[(lat.len() * p / 100).min(lat.len() - 1)];
    println!("{label}");
    println!(
        "  placed {TASKS}/{TASKS} tasks on {NODES} nodes in {:.3} s ({:.0} tasks/s)",
        total.as_secs_f64(),
        TASKS as f64 / total.as_secs_f64()
    );
    println!(
        "  per placement: p50 {} µs, p99 {} µs, max {} µs",
        micros(pct(50)),
        micros(pct(99)),
        micros(*lat.last().unwrap())
    );
    nodes
}

fn micros(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

fn main() {
    let by_zone = [
        parse_strategy("spread", "attribute:zone").unwrap(),
        parse_strategy("binpack", "memory").unwrap(),
    ];
    let not_c = [parse_constraint("memberOf", "attribute:zone != c").unwrap()];
    let nodes = run(
        "spread(attribute:zone), binpack(memory), memberOf(attribute:zone != c)",
        &by_zone,
        &not_c,
    );
    let mut zones: BTreeMap<&str, usize> = BTreeMap::new();
    for n in &nodes {
        *zones.entry(&n.attributes["zone"]).or_default() += n.service_tasks;
    }
    let used = nodes.iter().filter(|n| n.service_tasks > 0).count();
    println!("  tasks per zone: {zones:?}; {used} nodes used");
    assert_eq!(zones.values().sum::<usize>(), TASKS);
    assert_eq!(zones.get("c").copied().unwrap_or(0), 0);
    assert!(zones["a"].abs_diff(zones["b"]) <= 1, "{zones:?}");

    let nodes = run(
        "spread(instanceId)",
        &[parse_strategy("spread", "instanceId").unwrap()],
        &[],
    );
    let per_node: Vec<usize> = nodes.iter().map(|n| n.service_tasks).collect();
    let (min, max) = (
        per_node.iter().min().unwrap(),
        per_node.iter().max().unwrap(),
    );
    println!("  tasks per node: min {min}, max {max}");
    assert_eq!(per_node.iter().sum::<usize>(), TASKS);
}
