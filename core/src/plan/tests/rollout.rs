//! Rolling deployments within minimumHealthyPercent and maximumPercent, simulated pass by pass.

use super::*;

/// Plans and carries out passes 2 s apart until nothing changes; returns the fewest healthy
/// (running past min healthy time) tasks seen between passes, the most tasks at once, and the
/// final view.
fn roll(mut v: ServiceView, passes: usize) -> (usize, usize, ServiceView) {
    let mut seq = 0;
    let (mut fewest, mut most) = (usize::MAX, 0);
    for i in 0..passes {
        let now = NOW + i as i64 * 2_000;
        let p = plan(&v, now);
        advance(&mut v, &p, &mut seq, now);
        let cutoff = time::rfc3339(now - v.config.min_healthy_time_ms);
        let live: Vec<&Task> = v
            .tasks
            .iter()
            .filter(|t| t.last_status != "STOPPED")
            .collect();
        let healthy = live.iter().filter(|t| t.started_at <= cutoff).count();
        fewest = fewest.min(healthy);
        most = most.max(live.len());
    }
    (fewest, most, v)
}

fn old_tasks(n: usize) -> Vec<Task> {
    (0..n)
        .map(|i| task(&format!("old{i}"), "d1", &format!("n{}", i % 3 + 1), 600))
        .collect()
}

#[test]
fn rollout_at_min_50_on_3_tasks_never_goes_below_2() {
    let (fewest, most, v) = roll(view(rolling(3, 50, 100), old_tasks(3)), 40);
    assert!(fewest >= 2, "healthy tasks fell to {fewest}");
    assert!(most <= 3, "maximumPercent 100 allows 3 tasks, saw {most}");
    let live: Vec<&Task> = v
        .tasks
        .iter()
        .filter(|t| t.last_status != "STOPPED")
        .collect();
    assert_eq!(live.len(), 3);
    assert!(
        live.iter().all(|t| t.started_by == "d2"),
        "every task is on the new revision"
    );
    assert_eq!(v.service.deployments.len(), 1);
    assert_eq!(v.service.deployments[0].rollout_state, "COMPLETED");
}

#[test]
fn rollout_at_min_100_max_200_starts_new_tasks_before_stopping_old_ones() {
    let v = view(rolling(2, 100, 200), old_tasks(2));
    let first = plan(&v, NOW);
    assert_eq!(first.launches.len(), 2, "max 200% leaves room for two more");
    assert!(
        first.stops.is_empty(),
        "min 100% keeps both old tasks until new ones are healthy"
    );
    let (fewest, most, end) = roll(v, 30);
    assert!(fewest >= 2);
    assert!(most <= 4);
    assert!(end
        .tasks
        .iter()
        .filter(|t| t.last_status != "STOPPED")
        .all(|t| t.started_by == "d2"));
}

#[test]
fn the_max_percent_ceiling_holds_launches_back() {
    // Table: (desired, max percent, old tasks) -> launches on the first pass.
    for (desired, max, old, want) in [
        (4, 100, 4, 0),
        (4, 150, 4, 2),
        (4, 200, 4, 4),
        (3, 200, 0, 3),
    ] {
        let p = plan(&view(rolling(desired, 0, max), old_tasks(old)), NOW);
        assert_eq!(
            p.launches.len(),
            want,
            "desired {desired}, max {max}%, {old} old tasks"
        );
    }
}

#[test]
fn healthy_old_tasks_are_stopped_only_down_to_min_healthy() {
    // Table: (desired, min percent) -> old tasks stopped at once when no new task is up yet.
    for (desired, min, want) in [(4, 100, 0), (4, 50, 2), (4, 75, 1), (4, 0, 4), (3, 50, 1)] {
        let p = plan(
            &view(rolling(desired, min, 100), old_tasks(desired as usize)),
            NOW,
        );
        assert_eq!(
            p.stops.len(),
            want,
            "desired {desired}, min {min}%: stopped {:?}",
            stopped(&p)
        );
        assert!(p
            .stops
            .iter()
            .all(|s| s.reason == "Deployment d2 replaced this task"));
    }
}

#[test]
fn unhealthy_old_tasks_go_at_once() {
    let mut old = old_tasks(2);
    old[0].started_at = ago(1); // not yet running long enough to count as healthy
    let p = plan(&view(rolling(2, 100, 200), old), NOW);
    assert_eq!(stopped(&p), vec!["old0"]);
}

#[test]
fn old_tasks_go_once_the_new_ones_are_healthy() {
    let mut tasks = old_tasks(2);
    tasks.push(task("new1", "d2", "n2", 60));
    tasks.push(task("new2", "d2", "n3", 60));
    let p = plan(&view(rolling(2, 100, 200), tasks), NOW);
    let mut s = stopped(&p);
    s.sort();
    assert_eq!(s, vec!["old0", "old1"]);
    assert!(p.launches.is_empty());
}

#[test]
fn a_new_deployment_completes_only_once_old_tasks_are_told_to_go() {
    let mut tasks = old_tasks(1);
    tasks.push(task("new1", "d2", "n2", 60));
    let v = view(rolling(1, 100, 200), tasks);
    let p = plan(&v, NOW);
    assert_eq!(stopped(&p), vec!["old0"]);
    assert_eq!(
        p.service.deployments[0].rollout_state, "IN_PROGRESS",
        "it acted this pass"
    );
    let mut next = v.clone();
    next.tasks[0].desired_status = "STOPPED".into(); // stopping: no longer live
    next.service = p.service.clone();
    let p = plan(&next, NOW + 2_000);
    assert_eq!(p.service.deployments[0].rollout_state, "COMPLETED");
    assert_eq!(
        p.service.deployments.len(),
        1,
        "the drained deployment goes"
    );
}
