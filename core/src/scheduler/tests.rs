//! Pure placement tests: snapshots in, choices and reasons out. Shared helpers live here.

mod constraints;
mod strategies;
mod volumes;

use super::*;

fn node(id: &str, cpu: i64, mem: i64, tasks: usize) -> NodeSnapshot {
    NodeSnapshot {
        id: id.into(),
        name: id.into(),
        connected: true,
        active: true,
        cpu_free: cpu,
        memory_free: mem,
        ports_used: Default::default(),
        tasks,
        attributes: std::sync::Arc::new(HashMap::from([(
            "ecs.instance-id".to_string(),
            id.to_string(),
        )])),
        service_tasks: 0,
        allowed_host_paths: Default::default(),
    }
}

fn with(mut n: NodeSnapshot, attr: &str, value: &str) -> NodeSnapshot {
    std::sync::Arc::make_mut(&mut n.attributes).insert(attr.into(), value.into());
    n
}

fn demand(cpu: i64, memory: i64) -> Demand {
    Demand {
        cpu,
        memory,
        ports: vec![],
        ..Default::default()
    }
}

fn strategies(specs: &[(&str, &str)]) -> Vec<Strategy> {
    specs
        .iter()
        .map(|(k, f)| parse_strategy(k, f).unwrap())
        .collect()
}

fn member_of(expr: &str) -> Constraint {
    parse_constraint("memberOf", expr).unwrap()
}

/// Places `count` tasks and returns the chosen node ids in order.
fn place_n(
    nodes: &mut [NodeSnapshot],
    d: &Demand,
    strategies: &[Strategy],
    constraints: &[Constraint],
    count: usize,
) -> Vec<String> {
    (0..count)
        .map(|_| {
            let req = PlacementRequest {
                demand: d,
                strategies,
                constraints,
                seed: 7,
            };
            place(nodes, &req).unwrap()
        })
        .collect()
}

fn try_place(
    nodes: &mut [NodeSnapshot],
    d: &Demand,
    constraints: &[Constraint],
) -> Result<String, Rejection> {
    let req = PlacementRequest {
        demand: d,
        strategies: &[],
        constraints,
        seed: 0,
    };
    place(nodes, &req)
}
