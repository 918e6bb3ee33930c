//! The documented maximums of one control plane, and the errors past them. They are the sizes
//! `berth bench fleet` has been measured at (README, "Scale"), with room: past them Berth may
//! still work, but nobody has measured it.

/// Tasks one service may want (`desiredCount`).
pub const MAX_TASKS_PER_SERVICE: i32 = 5_000;
/// Services one cluster may hold (deleted ones count until they are forgotten).
pub const MAX_SERVICES_PER_CLUSTER: usize = 2_000;
/// Agents one control plane serves at once.
pub const MAX_NODES: usize = 10_000;

/// A `desiredCount` error, if `d` is out of range.
pub fn desired_count(d: i32) -> Option<String> {
    (!(0..=MAX_TASKS_PER_SERVICE).contains(&d)).then(|| {
        format!("{d} must be 0-{MAX_TASKS_PER_SERVICE} (the most tasks one service may run)")
    })
}

/// The error for one service too many in `cluster`.
pub fn services_full(cluster: &str, have: usize) -> Option<String> {
    (have >= MAX_SERVICES_PER_CLUSTER).then(|| {
        format!(
            "cluster {cluster} already holds {have} services, the most one cluster may \
             ({MAX_SERVICES_PER_CLUSTER}); delete one or use another cluster"
        )
    })
}

/// The error for an agent past the most nodes one control plane serves.
pub fn nodes_full(connected: usize) -> Option<String> {
    (connected >= MAX_NODES).then(|| {
        format!(
            "this control plane already serves {connected} agents, the most it may \
             ({MAX_NODES}); run another cluster's control plane for more"
        )
    })
}

/// Whether a fleet of this size is within the limits (for `bench fleet`).
pub fn check_fleet(nodes: usize, services: usize, tasks_per_service: usize) -> Result<(), String> {
    if nodes > MAX_NODES {
        return Err(format!("--nodes {nodes}: at most {MAX_NODES}"));
    }
    if services >= MAX_SERVICES_PER_CLUSTER {
        return Err(format!(
            "--services {services}: at most {} (one more is the rolling service)",
            MAX_SERVICES_PER_CLUSTER - 1
        ));
    }
    if tasks_per_service > MAX_TASKS_PER_SERVICE as usize {
        return Err(format!(
            "--tasks-per-service {tasks_per_service}: at most {MAX_TASKS_PER_SERVICE}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_say_the_maximum_and_the_fix() {
        assert_eq!(desired_count(5_000), None);
        assert_eq!(
            desired_count(5_001).unwrap(),
            "5001 must be 0-5000 (the most tasks one service may run)"
        );
        assert!(desired_count(-1).is_some());
        assert!(services_full("demo", 1_999).is_none());
        assert!(services_full("demo", 2_000).unwrap().contains("delete one"));
        assert!(nodes_full(9_999).is_none());
        assert!(nodes_full(10_000).unwrap().contains("at most") || nodes_full(10_000).is_some());
        assert!(check_fleet(10_000, 1_000, 1_000).is_ok());
        assert!(check_fleet(10_001, 1, 1).is_err());
    }
}
