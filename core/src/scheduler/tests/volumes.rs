//! Tasks that bind host paths go only where the node allows them; tasks of a shared volume go
//! where its data is.

use super::*;

fn binding(path: &str) -> Demand {
    Demand {
        host_paths: vec![path.into()],
        ..demand(128, 128)
    }
}

fn allowing(mut n: NodeSnapshot, paths: &[&str]) -> NodeSnapshot {
    n.allowed_host_paths = Arc::new(paths.iter().map(|p| p.to_string()).collect());
    n
}

/// A demand mounting shared volume `data`, located over `nodes` with its home (if any).
fn sharing(home: Option<&str>, autoprovision: bool, nodes: &[NodeSnapshot]) -> Demand {
    let mut d = Demand {
        volumes: vec![VolumeNeed {
            name: "data".into(),
            autoprovision,
            ..Default::default()
        }],
        ..demand(128, 128)
    };
    let homes = home
        .map(|h| HashMap::from([("data".to_string(), h.to_string())]))
        .unwrap_or_default();
    locate_volumes(&mut d, &homes, nodes);
    d
}

#[test]
fn host_paths_must_lie_under_an_allowed_one() {
    let allowed = ["/srv/data"];
    assert!(host_path_allowed("/srv/data", &allowed));
    assert!(host_path_allowed("/srv/data/redis", &allowed));
    assert!(!host_path_allowed("/srv/database", &allowed));
    assert!(!host_path_allowed("/srv/data/../../etc", &allowed));
    assert!(!host_path_allowed("relative/path", &["relative"]));
    assert!(!host_path_allowed("/etc", &[] as &[&str]));
}

#[test]
fn a_host_path_goes_only_to_a_node_that_allows_it() {
    let mut nodes = vec![
        node("n1", 8192, 8192, 0),
        allowing(node("n2", 8192, 8192, 5), &["/srv"]),
    ];
    assert_eq!(
        try_place(&mut nodes, &binding("/srv/app"), &[]).unwrap(),
        "n2"
    );
}

#[test]
fn a_host_path_no_node_allows_is_refused_naming_the_flag() {
    let mut nodes = vec![
        node("n1", 8192, 8192, 0),
        allowing(node("n2", 8192, 8192, 0), &["/srv/data"]),
    ];
    let r = try_place(&mut nodes, &binding("/etc"), &[]).unwrap_err();
    assert_eq!(r.reason, "HOST_PATH");
    assert_eq!(
        r.detail,
        "node n1 does not allow host path /etc; start its agent with --allow-host-path /etc \
         (or a parent directory)"
    );
}

#[test]
fn a_node_that_allows_the_path_but_lacks_memory_is_the_nearest_miss() {
    let mut nodes = vec![
        node("n1", 8192, 8192, 0),
        allowing(node("n2", 8192, 64, 0), &["/srv"]),
    ];
    let r = try_place(&mut nodes, &binding("/srv/app"), &[]).unwrap_err();
    assert_eq!(r.reason, "RESOURCE:MEMORY");
    assert!(r.detail.starts_with("node n2 "), "{}", r.detail);
}

#[test]
fn a_shared_volume_s_task_goes_to_the_node_that_holds_it() {
    let mut nodes = vec![
        node("n1", 8192, 8192, 0),
        node("n2", 8192, 8192, 9),
        node("n3", 8192, 8192, 0),
    ];
    for autoprovision in [false, true] {
        let d = sharing(Some("n2"), autoprovision, &nodes);
        assert_eq!(try_place(&mut nodes, &d, &[]).unwrap(), "n2");
    }
}

#[test]
fn a_volume_s_node_without_room_makes_the_task_wait_there() {
    let mut nodes = vec![node("n1", 8192, 8192, 0), node("n2", 8192, 64, 0)];
    let d = sharing(Some("n2"), true, &nodes);
    let r = try_place(&mut nodes, &d, &[]).unwrap_err();
    assert_eq!(r.reason, "RESOURCE:MEMORY");
    assert!(r.detail.starts_with("node n2 "), "{}", r.detail);
}

#[test]
fn a_lost_volume_node_stops_placement_unless_autoprovision_allows_it() {
    let lost = |nodes: &mut Vec<NodeSnapshot>| {
        nodes[1].connected = false;
    };
    let mut nodes = vec![node("n1", 8192, 8192, 0), node("n2", 8192, 8192, 0)];
    lost(&mut nodes);
    let d = sharing(Some("n2"), false, &nodes);
    let r = try_place(&mut nodes, &d, &[]).unwrap_err();
    assert_eq!(r.reason, "VOLUME");
    assert_eq!(
        r.detail,
        "shared volume data is on node n2, which is lost; the task does not start on an empty \
         volume elsewhere: bring node n2 back, or set the volume's \
         dockerVolumeConfiguration.autoprovision to true to start afresh on another node"
    );
    // A node no longer registered is lost too.
    let mut gone = vec![node("n1", 8192, 8192, 0)];
    let d = sharing(Some("n2"), false, &gone);
    assert_eq!(try_place(&mut gone, &d, &[]).unwrap_err().reason, "VOLUME");

    let d = sharing(Some("n2"), true, &nodes);
    assert_eq!(try_place(&mut nodes, &d, &[]).unwrap(), "n1");
}

#[test]
fn a_volume_with_no_home_yet_goes_anywhere_and_the_next_task_follows() {
    let mut nodes = vec![node("n1", 8192, 8192, 3), node("n2", 8192, 8192, 0)];
    let mut d = sharing(None, false, &nodes);
    let first = try_place(&mut nodes, &d, &[]).unwrap();
    assert_eq!(first, "n2", "the least loaded node");
    d.placed_on(&nodes[1]);
    for n in nodes.iter_mut() {
        n.tasks = 0;
    }
    assert_eq!(try_place(&mut nodes, &d, &[]).unwrap(), "n2");
}
