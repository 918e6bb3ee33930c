//! place_one's unchanged behaviour, and every placement strategy alone and in order.

use super::*;

// place_one keeps its behaviour.

#[test]
fn place_one_spreads_over_the_node_with_fewest_tasks_then_most_memory() {
    let mut nodes = vec![node("a", 2048, 1000, 2), node("b", 2048, 1000, 0)];
    let d = demand(100, 100);
    assert_eq!(place_one(&mut nodes, &d).unwrap(), "b");
    assert_eq!(nodes[1].memory_free, 900);
    assert_eq!(place_one(&mut nodes, &d).unwrap(), "b");
    // a:2 b:2, a has more memory free.
    assert_eq!(place_one(&mut nodes, &d).unwrap(), "a");
    let mut nodes = vec![node("a", 2048, 500, 0), node("b", 2048, 1000, 0)];
    assert_eq!(place_one(&mut nodes, &d).unwrap(), "b");
}

#[test]
fn place_one_reports_the_closest_failure() {
    let mut nodes = vec![node("a", 2048, 100, 0), node("b", 10, 5000, 0)];
    let r = place_one(&mut nodes, &demand(100, 4096)).unwrap_err();
    assert_eq!(r.reason, "RESOURCE:MEMORY");
    assert_eq!(
        r.detail,
        "node a has 100 MiB of memory free, the task needs 4096"
    );
}

#[test]
fn place_one_never_double_books_a_static_port_within_a_plan() {
    let mut nodes = vec![node("a", 4096, 4096, 0)];
    let d = Demand {
        cpu: 0,
        memory: 10,
        ports: vec![(8080, "tcp".into())],
        ..Default::default()
    };
    assert!(place_one(&mut nodes, &d).is_ok());
    assert_eq!(
        place_one(&mut nodes, &d).unwrap_err().reason,
        "RESOURCE:PORTS"
    );
}

#[test]
fn place_one_with_no_connected_node_is_an_agent_failure() {
    let mut nodes = vec![NodeSnapshot {
        connected: false,
        ..node("a", 4096, 4096, 0)
    }];
    let r = place_one(&mut nodes, &Demand::default()).unwrap_err();
    assert_eq!(r.reason, "AGENT");
    let r = place_one(&mut [], &Demand::default()).unwrap_err();
    assert_eq!(r.reason, "AGENT");
    assert!(r.detail.contains("no node is registered"), "{}", r.detail);
}

// Strategies.

#[test]
fn spread_instance_id_evens_six_tasks_over_three_nodes() {
    let mut nodes = vec![
        node("n1", 8192, 8192, 0),
        node("n2", 8192, 8192, 5),
        node("n3", 8192, 8192, 0),
    ];
    let s = strategies(&[("spread", "instanceId")]);
    let placed = place_n(&mut nodes, &demand(10, 10), &s, &[], 6);
    for n in &nodes {
        assert_eq!(n.service_tasks, 2, "{placed:?}");
    }
    // Other services' tasks (n2's five) only break ties.
    assert_eq!(&placed[..3], &["n1", "n3", "n2"]);
    assert_eq!(nodes[1].tasks, 7);
}

#[test]
fn spread_by_zone_puts_the_first_two_tasks_in_different_zones() {
    let mut nodes = vec![
        with(node("n1", 8192, 8192, 0), "zone", "a"),
        with(node("n2", 8192, 8192, 0), "zone", "a"),
        with(node("n3", 8192, 8192, 0), "zone", "b"),
    ];
    let s = strategies(&[("spread", "attribute:zone")]);
    let placed = place_n(&mut nodes, &demand(10, 10), &s, &[], 4);
    assert_eq!(placed[0], "n1");
    assert_eq!(placed[1], "n3");
    // Zones even at 1/1; within zone a, n2 has fewer service tasks.
    assert_eq!(placed[2], "n2");
    assert_eq!(placed[3], "n3");
}

#[test]
fn spread_by_attribute_counts_every_node_and_ranks_nodes_without_it_last() {
    let mut nodes = vec![
        node("n0", 8192, 8192, 0),
        NodeSnapshot {
            connected: false,
            service_tasks: 3,
            ..with(node("n1", 8192, 8192, 3), "zone", "a")
        },
        with(node("n2", 8192, 8192, 0), "zone", "a"),
        with(node("n3", 8192, 8192, 0), "zone", "b"),
    ];
    nodes[3].service_tasks = 1;
    let s = strategies(&[("spread", "attribute:zone")]);
    // Zone a holds 3 (on the disconnected n1), zone b 1: b first, then n0 lacking a zone last.
    let placed = place_n(&mut nodes, &demand(10, 10), &s, &[], 3);
    assert_eq!(placed, ["n3", "n3", "n2"]);
    let placed = place_n(&mut nodes, &demand(10, 10), &s, &[], 10);
    assert!(!placed.contains(&"n0".to_string()), "{placed:?}");
    // Ranked last, not infeasible.
    let only_n0 = [member_of("not zone exists")];
    assert_eq!(
        place_n(&mut nodes, &demand(10, 10), &s, &only_n0, 1),
        ["n0"]
    );
}

#[test]
fn binpack_memory_fills_the_fullest_node_first() {
    let mut nodes = vec![
        node("n1", 8192, 4000, 0),
        node("n2", 8192, 1000, 0),
        node("n3", 8192, 2500, 0),
    ];
    let s = strategies(&[("binpack", "memory")]);
    let placed = place_n(&mut nodes, &demand(10, 500), &s, &[], 8);
    assert_eq!(
        placed,
        ["n2", "n2", "n3", "n3", "n3", "n3", "n3", "n1"],
        "n2 has least left; once it cannot fit, n3; then n1"
    );
}

#[test]
fn binpack_cpu_prefers_the_least_cpu_left() {
    let mut nodes = vec![node("n1", 1024, 8192, 0), node("n2", 512, 8192, 0)];
    let s = strategies(&[("binpack", "cpu")]);
    assert_eq!(
        place_n(&mut nodes, &demand(256, 10), &s, &[], 3),
        ["n2", "n2", "n1"]
    );
}

#[test]
fn random_with_a_fixed_seed_is_deterministic_and_uses_every_feasible_node() {
    let fresh = || {
        vec![
            node("n1", 1 << 20, 1 << 20, 0),
            node("n2", 1 << 20, 1 << 20, 0),
            NodeSnapshot {
                active: false,
                ..node("n3", 1 << 20, 1 << 20, 0)
            },
            node("n4", 1 << 20, 1 << 20, 0),
            node("n5", 1 << 20, 1 << 20, 0),
        ]
    };
    let s = strategies(&[("random", "")]);
    let run = |seed: u64| {
        let mut nodes = fresh();
        (0..200)
            .map(|_| {
                let req = PlacementRequest {
                    demand: &demand(1, 1),
                    strategies: &s,
                    constraints: &[],
                    seed,
                };
                place(&mut nodes, &req).unwrap()
            })
            .collect::<Vec<_>>()
    };
    let a = run(42);
    assert_eq!(a, run(42));
    assert_ne!(a, run(43));
    for id in ["n1", "n2", "n4", "n5"] {
        let k = a.iter().filter(|x| *x == id).count();
        assert!(k >= 20, "{id} got {k} of 200");
    }
    assert!(!a.iter().any(|x| x == "n3"), "n3 is draining");
    // Varying the seed over single placements reaches every feasible node too.
    let firsts: HashSet<String> = (0..64)
        .map(|seed| {
            let req = PlacementRequest {
                demand: &demand(1, 1),
                strategies: &s,
                constraints: &[],
                seed,
            };
            place(&mut fresh(), &req).unwrap()
        })
        .collect();
    assert_eq!(firsts.len(), 4, "{firsts:?}");
}

#[test]
fn strategies_apply_in_order_spread_zone_then_binpack_memory() {
    let mut nodes = vec![
        with(node("a-big", 8192, 8000, 0), "zone", "a"),
        with(node("a-small", 8192, 2000, 0), "zone", "a"),
        with(node("b-big", 8192, 8000, 0), "zone", "b"),
        with(node("b-mid", 8192, 3000, 0), "zone", "b"),
    ];
    let s = strategies(&[("spread", "attribute:zone"), ("binpack", "memory")]);
    let placed = place_n(&mut nodes, &demand(10, 1000), &s, &[], 6);
    assert_eq!(
        placed,
        ["a-small", "b-mid", "a-small", "b-mid", "b-mid", "a-big"],
        "zones alternate; within a zone the fullest node that fits"
    );
    // Reversed, binpack is primary: the fullest node overall, zones only break ties.
    let mut nodes = vec![
        with(node("a1", 8192, 3000, 0), "zone", "a"),
        with(node("b1", 8192, 3000, 0), "zone", "b"),
        with(node("b2", 8192, 5000, 0), "zone", "b"),
    ];
    nodes[0].service_tasks = 1;
    let s = strategies(&[("binpack", "memory"), ("spread", "attribute:zone")]);
    assert_eq!(
        place_n(&mut nodes, &demand(10, 1000), &s, &[], 2),
        ["b1", "b1"]
    );
}

#[test]
fn ties_break_by_service_tasks_then_tasks_then_node_id() {
    let mut nodes = vec![
        node("n3", 8192, 8192, 0),
        NodeSnapshot {
            service_tasks: 1,
            ..node("n0", 8192, 8192, 1)
        },
        node("n2", 8192, 8192, 4),
        node("n1", 8192, 8192, 4),
    ];
    let s = strategies(&[("binpack", "cpu")]);
    // All tie on cpu; n0 has a service task, n1/n2 other tasks.
    assert_eq!(
        place_n(&mut nodes, &demand(0, 0), &s, &[], 3),
        ["n3", "n1", "n2"]
    );
}
