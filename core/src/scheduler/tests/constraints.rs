//! Constraints, every rejection reason, and no double booking across a plan.

use super::*;

// Constraints.

#[test]
fn distinct_instance_puts_at_most_one_task_of_the_service_per_node() {
    let mut nodes = vec![node("n1", 8192, 8192, 0), node("n2", 8192, 8192, 0)];
    let c = [parse_constraint("distinctInstance", "").unwrap()];
    let placed = place_n(&mut nodes, &demand(10, 10), &[], &c, 2);
    assert_eq!(placed, ["n1", "n2"]);
    let r = try_place(&mut nodes, &demand(10, 10), &c).unwrap_err();
    assert_eq!(r.reason, "DISTINCT_INSTANCE");
    assert_eq!(
        r.detail,
        "node n1 already runs 1 task(s) of this service (distinctInstance)"
    );
}

#[test]
fn member_of_places_only_on_matching_nodes() {
    let nodes = vec![
        with(
            with(node("n1", 8192, 8192, 0), "zone", "a"),
            "type",
            "t2.micro",
        ),
        with(
            with(node("n2", 8192, 8192, 0), "zone", "b"),
            "type",
            "m5.large",
        ),
        with(node("n3", 8192, 8192, 0), "zone", "c"),
    ];
    let spread = strategies(&[("spread", "instanceId")]);
    // Six spread placements on a fresh snapshot reach every node the expression admits.
    let only = |expr: &str| {
        let placed = place_n(
            &mut nodes.clone(),
            &demand(10, 10),
            &spread,
            &[member_of(expr)],
            6,
        );
        let mut v: Vec<String> = placed
            .into_iter()
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        v.sort();
        v
    };
    assert_eq!(only("attribute:zone == a"), ["n1"]);
    assert_eq!(only("attribute:zone != a"), ["n2", "n3"]);
    assert_eq!(only("attribute:zone in (a, c)"), ["n1", "n3"]);
    assert_eq!(only("attribute:zone !in (a, c)"), ["n2"]);
    assert_eq!(only("attribute:type exists"), ["n1", "n2"]);
    assert_eq!(only("attribute:type !exists"), ["n3"]);
    assert_eq!(only("attribute:type =~ 't2.*'"), ["n1"]);
    assert_eq!(only("attribute:type =~ \"m?.*\""), ["n2"]);
    assert_eq!(only("attribute:ecs.instance-id == n2"), ["n2"]);
    // c or (a and m5): and binds tighter than or.
    assert_eq!(only("zone == c or zone == a and type == m5.large"), ["n3"]);
    assert_eq!(only("zone == c or zone == b and type exists"), ["n2", "n3"]);
    assert_eq!(only("(zone == c or zone == b) and type exists"), ["n2"]);
    // (not a) and type: not binds tighter than and.
    assert_eq!(only("not zone == a and type exists"), ["n2"]);
    assert_eq!(only("not (zone == c or type == m5.large)"), ["n1"]);
    let r = try_place(
        &mut nodes.clone(),
        &demand(10, 10),
        &[member_of("zone == d")],
    )
    .unwrap_err();
    assert_eq!(r.reason, "MEMBER_OF");
    assert_eq!(
        r.detail,
        "node n1 (zone=a) does not satisfy memberOf(zone == d)"
    );
}

#[test]
fn parse_constraint_errors_name_the_fix() {
    let err = |k, e| parse_constraint(k, e).unwrap_err();
    assert_eq!(
        err("memberOf", "attribute:zone == "),
        "memberOf: expected a value after '==' at column 19, found the end of the expression"
    );
    assert_eq!(
        err("memberOf", "attribute:zone == ) "),
        "memberOf: expected a value after '==' at column 19, found ')'"
    );
    assert!(err("memberOf", "").starts_with("memberOf: the expression is empty"));
    assert_eq!(
        err("distinctInstance", "zone == a"),
        "distinctInstance takes no expression; remove \"zone == a\""
    );
    assert_eq!(
        err("spreadOut", ""),
        "placement constraint type \"spreadOut\" must be distinctInstance or memberOf"
    );
    assert_eq!(
        parse_constraint("memberOf", " zone == a ")
            .unwrap()
            .to_string(),
        "memberOf(zone == a)"
    );
}

// Failure reasons: the node that got furthest speaks, with its shortfall.

#[test]
fn every_failure_reason_names_the_node_and_shortfall() {
    let d = Demand {
        cpu: 512,
        memory: 4096,
        ports: vec![(80, "tcp".into())],
        ..Default::default()
    };
    let cases: Vec<(NodeSnapshot, Vec<Constraint>, &str, &str)> = vec![
        (
            NodeSnapshot {
                connected: false,
                ..node("n1", 8192, 8192, 0)
            },
            vec![],
            "AGENT",
            "node n1 is disconnected",
        ),
        (
            NodeSnapshot {
                active: false,
                ..node("n1", 8192, 8192, 0)
            },
            vec![],
            "AGENT",
            "node n1 is draining",
        ),
        (
            node("n1", 100, 8192, 0),
            vec![],
            "RESOURCE:CPU",
            "node n1 has 100 CPU units free, the task needs 512",
        ),
        (
            node("n2", 8192, 100, 0),
            vec![],
            "RESOURCE:MEMORY",
            "node n2 has 100 MiB of memory free, the task needs 4096",
        ),
        (
            NodeSnapshot {
                ports_used: std::sync::Arc::new(HashSet::from([(80, "tcp".to_string())])),
                ..node("n1", 8192, 8192, 0)
            },
            vec![],
            "RESOURCE:PORTS",
            "node n1 already uses host port 80/tcp",
        ),
        (
            NodeSnapshot {
                service_tasks: 2,
                ..node("n1", 8192, 8192, 2)
            },
            vec![parse_constraint("distinctInstance", "").unwrap()],
            "DISTINCT_INSTANCE",
            "node n1 already runs 2 task(s) of this service (distinctInstance)",
        ),
        (
            with(node("n1", 8192, 8192, 0), "zone", "c"),
            vec![member_of("attribute:zone != c and gpu exists")],
            "MEMBER_OF",
            "node n1 (zone=c, no gpu) does not satisfy memberOf(attribute:zone != c and gpu exists)",
        ),
    ];
    for (n, c, reason, detail) in cases {
        let r = try_place(&mut [n], &d, &c).unwrap_err();
        assert_eq!((r.reason, r.detail.as_str()), (reason, detail));
    }
}

#[test]
fn the_node_that_got_furthest_gives_the_reason() {
    let d = demand(512, 4096);
    let mut nodes = vec![
        NodeSnapshot {
            connected: false,
            ..node("n0", 8192, 8192, 0)
        },
        node("n1", 100, 8192, 0),
        node("n2", 8192, 100, 0),
        node("n3", 8192, 200, 0),
        with(node("n4", 8192, 8192, 0), "zone", "c"),
    ];
    let c = [
        parse_constraint("distinctInstance", "").unwrap(),
        member_of("zone == a"),
    ];
    let r = try_place(&mut nodes, &d, &c).unwrap_err();
    assert_eq!(r.reason, "MEMBER_OF", "{}", r.detail);
    nodes[4].service_tasks = 1;
    let r = try_place(&mut nodes, &d, &c).unwrap_err();
    assert_eq!(r.reason, "DISTINCT_INSTANCE");
    nodes.pop();
    let r = try_place(&mut nodes, &d, &c).unwrap_err();
    // Ties at the same stage: the first such node speaks.
    assert_eq!(
        r.detail,
        "node n2 has 100 MiB of memory free, the task needs 4096"
    );
}

#[test]
fn successive_places_never_double_book_a_port_or_memory() {
    let mut nodes = vec![node("n1", 8192, 3000, 0), node("n2", 8192, 1000, 0)];
    let d = Demand {
        cpu: 100,
        memory: 1000,
        ports: vec![(8080, "tcp".into())],
        ..Default::default()
    };
    let s = strategies(&[("binpack", "memory")]);
    let placed = place_n(&mut nodes, &d, &s, &[], 2);
    assert_eq!(placed, ["n2", "n1"], "n2 fullest, then out of memory");
    let r = try_place(&mut nodes, &d, &[]).unwrap_err();
    assert_eq!(r.reason, "RESOURCE:PORTS");
    // Without the port, memory is the limit: 2000 left on n1 and 0 on n2.
    let d = demand(100, 1000);
    assert_eq!(place_n(&mut nodes, &d, &s, &[], 2), ["n1", "n1"]);
    let r = try_place(&mut nodes, &d, &[]).unwrap_err();
    assert_eq!(r.reason, "RESOURCE:MEMORY");
    assert_eq!(
        r.detail,
        "node n1 has 0 MiB of memory free, the task needs 1000"
    );
    assert_eq!((nodes[0].memory_free, nodes[1].memory_free), (0, 0));
    assert_eq!((nodes[0].tasks, nodes[0].service_tasks), (3, 3));
    assert_eq!(nodes[0].cpu_free, 8192 - 300);
}
