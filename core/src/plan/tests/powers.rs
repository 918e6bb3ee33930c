//! Powers a node must grant: a service whose definition runs a privileged container is placed
//! only on a node that allows privileged containers, and says which flag is missing otherwise.

use super::*;

fn privileged(desired: i32) -> ServiceView {
    let mut v = view(service(desired), vec![]);
    let td = v.definitions.get_mut(TD1).unwrap();
    td.container_definitions[0].privileged = Some(true);
    v
}

fn allow_privileged(v: &mut ServiceView, node: &str) {
    let n = v.nodes.iter_mut().find(|n| &*n.id == node).unwrap();
    let mut attrs = (*n.attributes).clone();
    attrs.insert("berth.allow-privileged".into(), "true".into());
    n.attributes = std::sync::Arc::new(attrs);
}

#[test]
fn a_privileged_service_lands_only_on_the_node_that_allows_it() {
    let mut v = privileged(2);
    allow_privileged(&mut v, "n3");
    let p = plan(&v, NOW);
    let on: Vec<_> = p.launches.iter().map(|l| l.node_id.as_str()).collect();
    assert_eq!(on, ["n3", "n3"]);
}

#[test]
fn a_privileged_service_with_no_node_allowing_it_places_nothing_and_names_the_flag() {
    let p = plan(&privileged(1), NOW);
    assert!(p.launches.is_empty());
    assert_eq!(p.service.placement_failures.len(), 1);
    let said = messages(&p);
    assert!(
        said.iter().any(|m| m.contains("--allow-privileged")),
        "{said:?}"
    );
}
