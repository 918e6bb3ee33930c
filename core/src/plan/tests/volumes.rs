//! Data stays with its tasks: a service whose definition mounts a shared Docker volume is
//! placed on the node holding it, and says so when that node is lost.

use super::*;

/// The view of a service of `desired` whose definition mounts shared volume `data`.
fn with_volume(desired: i32, autoprovision: bool, home: Option<&str>) -> ServiceView {
    let mut v = view(service(desired), vec![]);
    let td = v.definitions.get_mut(TD1).unwrap();
    td.volumes = vec![Volume {
        name: "data".into(),
        docker_volume_configuration: Some(DockerVolumeConfiguration {
            scope: "shared".into(),
            autoprovision: Some(autoprovision),
            ..Default::default()
        }),
        ..Default::default()
    }];
    if let Some(h) = home {
        v.volume_homes.insert("data".into(), h.into());
    }
    v
}

fn launched_on(p: &ServicePlan) -> Vec<&str> {
    p.launches.iter().map(|l| l.node_id.as_str()).collect()
}

#[test]
fn the_replacement_lands_on_the_node_that_holds_the_volume() {
    for home in ["n1", "n2", "n3"] {
        let mut v = with_volume(1, false, Some(home));
        // The home is the busiest node: only the volume sends the task there.
        v.nodes.iter_mut().find(|n| *n.id == *home).unwrap().tasks = 50;
        let p = plan(&v, NOW);
        assert_eq!(launched_on(&p), [home]);
        assert_eq!(
            p.launches[0].volumes[0].name, "data",
            "the applier records it"
        );
    }
}

#[test]
fn tasks_of_a_new_volume_share_the_node_the_first_one_made_it_on() {
    let p = plan(&with_volume(3, true, None), NOW);
    let on = launched_on(&p);
    assert_eq!(on.len(), 3);
    assert!(on.iter().all(|n| *n == on[0]), "{on:?}");
}

#[test]
fn a_lost_volume_node_without_autoprovision_places_nothing_and_says_why() {
    let mut v = with_volume(1, false, Some("n2"));
    v.nodes
        .iter_mut()
        .find(|n| &*n.id == "n2")
        .unwrap()
        .connected = false;
    let p = plan(&v, NOW);
    assert!(p.launches.is_empty());
    assert_eq!(p.service.placement_failures.len(), 1);
    assert_eq!(p.service.placement_failures[0].reason, "VOLUME");
    let said = messages(&p);
    assert!(
        said.iter()
            .any(|m| m.contains("(service web) was unable to place a task")
                && m.contains("shared volume data is on node n2, which is lost")
                && m.contains("dockerVolumeConfiguration.autoprovision")),
        "{said:?}"
    );
    // Deregistered, not just disconnected: the same.
    v.nodes.retain(|n| &*n.id != "n2");
    assert_eq!(plan(&v, NOW).rejections[0].reason, "VOLUME");
}

#[test]
fn a_lost_volume_node_with_autoprovision_starts_afresh_elsewhere() {
    let mut v = with_volume(1, true, Some("n2"));
    v.nodes
        .iter_mut()
        .find(|n| &*n.id == "n2")
        .unwrap()
        .connected = false;
    let p = plan(&v, NOW);
    let on = launched_on(&p);
    assert_eq!(on.len(), 1);
    assert_ne!(on[0], "n2");
    assert!(p.rejections.is_empty());
}

#[test]
fn a_daemon_keeps_a_shared_volume_on_every_node() {
    let mut v = with_volume(0, false, Some("n2"));
    v.service.scheduling_strategy = "DAEMON".into();
    let p = plan(&v, NOW);
    let mut on = launched_on(&p);
    on.sort();
    assert_eq!(on, ["n1", "n2", "n3"]);
}
