//! Capacity providers and scale-in protection: a strategy's base and weight decide which pool
//! each launch goes to, and a protected task outlives scale-in and deployments until its
//! protection ends.

use super::*;

fn pooled(pool: &str, id: &str) -> NodeSnapshot {
    let mut n = node(id);
    let mut attrs = (*n.attributes).clone();
    attrs.insert("pool".into(), pool.into());
    n.attributes = std::sync::Arc::new(attrs);
    n
}

fn item(name: &str, base: i32, weight: i32) -> CapacityProviderStrategyItem {
    CapacityProviderStrategyItem {
        capacity_provider: name.into(),
        base,
        weight,
    }
}

/// A view of `desired` tasks with base 2 on A and 1:3 over A:B; pool A is nodes a1, a2 and
/// pool B nodes b1, b2.
fn pools_view(desired: i32, tasks: Vec<Task>) -> ServiceView {
    let mut svc = service(desired);
    svc.capacity_provider_strategy = vec![item("A", 2, 1), item("B", 0, 3)];
    let mut v = view(svc, tasks);
    v.nodes = vec![
        pooled("a", "a1"),
        pooled("a", "a2"),
        pooled("b", "b1"),
        pooled("b", "b2"),
    ];
    v.capacity_providers = [
        ("A".to_string(), "attribute:pool == a".to_string()),
        ("B".to_string(), "attribute:pool == b".to_string()),
    ]
    .into();
    v
}

fn per_pool(p: &ServicePlan) -> (usize, usize) {
    for l in &p.launches {
        let want = if l.node_id.starts_with('a') { "A" } else { "B" };
        assert_eq!(l.capacity_provider, want, "{l:?} is on its pool's node");
    }
    let a = p
        .launches
        .iter()
        .filter(|l| l.capacity_provider == "A")
        .count();
    (a, p.launches.len() - a)
}

#[test]
fn a_strategy_places_base_then_weight_on_each_pools_nodes() {
    let p = plan(&pools_view(10, vec![]), NOW);
    assert_eq!(per_pool(&p), (4, 6), "A gets 2 + 2, B gets 6");
}

#[test]
fn replacements_go_to_the_pool_that_lost_them() {
    let mut tasks: Vec<Task> = (0..4)
        .map(|i| task(&format!("a{i}"), "d1", "a1", 60))
        .collect();
    tasks.extend((0..3).map(|i| task(&format!("b{i}"), "d1", "b1", 60)));
    for t in &mut tasks {
        t.capacity_provider_name = if t.container_instance_arn.ends_with("a1") {
            "A"
        } else {
            "B"
        }
        .into();
    }
    let p = plan(&pools_view(10, tasks), NOW);
    assert_eq!(per_pool(&p), (0, 3));
}

#[test]
fn a_pool_without_nodes_or_provider_says_so() {
    // (provider selectors, expected detail start)
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("A", "attribute:pool == a")],
            "capacity provider B does not exist",
        ),
        (
            &[("A", "attribute:pool == a"), ("B", "attribute:pool == c")],
            "capacity provider B:",
        ),
    ];
    for (providers, want) in cases {
        let mut v = pools_view(10, vec![]);
        v.capacity_providers = providers
            .iter()
            .map(|(n, s)| (n.to_string(), s.to_string()))
            .collect();
        let p = plan(&v, NOW);
        assert_eq!(
            p.launches.len(),
            2,
            "the base on A still goes: {providers:?}"
        );
        assert!(
            p.rejections.iter().any(|r| r.detail.starts_with(want)),
            "{providers:?}: {:?}",
            p.rejections
        );
    }
}

fn protect(mut t: Task, until_ms: i64) -> Task {
    t.protected_until_ms = until_ms;
    t
}

#[test]
fn scale_in_passes_over_protected_tasks_until_their_protection_ends() {
    // (protected until, for tasks x, y, z; desired; stopped)
    let later = NOW + 60_000;
    let cases: &[([i64; 3], i32, &[&str])] = &[
        // None protected: the two newest go.
        ([0, 0, 0], 1, &["z", "y"]),
        // One protected: the other two go, the protected one stays.
        ([0, 0, later], 1, &["y", "x"]),
        // Two protected: only the third goes; the service runs over desired.
        ([0, later, later], 1, &["x"]),
        // Protection that ended at NOW no longer holds.
        ([0, later, NOW], 1, &["z", "x"]),
        // All protected: nothing stops.
        ([later, later, later], 1, &[]),
    ];
    for (until, desired, want) in cases {
        let tasks = ["x", "y", "z"]
            .iter()
            .zip(until)
            .enumerate()
            .map(|(i, (id, u))| protect(task(id, "d1", "n1", 300 - 60 * i as i64), *u))
            .collect();
        let p = plan(&view(service(*desired), tasks), NOW);
        assert_eq!(stopped(&p), want.to_vec(), "protected until {until:?}");
        assert!(
            p.launches.is_empty(),
            "no replacement for a task over desired"
        );
    }
}

#[test]
fn a_deployment_leaves_a_protected_old_task_until_its_protection_ends() {
    let later = NOW + 60_000;
    let old = vec![
        protect(task("o1", "d1", "n1", 300), later),
        task("o2", "d1", "n2", 300),
    ];
    let mut new: Vec<Task> = (0..2)
        .map(|i| task(&format!("n{i}"), "d2", "n3", 120))
        .collect();
    new.extend(old.clone());
    let p = plan(&view(rolling(2, 100, 200), new.clone()), NOW);
    assert_eq!(stopped(&p), vec!["o2"], "the protected old task stays");
    // Once its protection has ended, it goes like any old task.
    let p = plan(&view(rolling(2, 100, 200), new), later + 1);
    assert!(stopped(&p).contains(&"o1".to_string()), "{:?}", stopped(&p));
}
