//! The bounds on what one request may ask for, so that no number or size a user sends can make
//! the control plane allocate or work in proportion to it. Most are fixed (ECS's quotas where
//! ECS has one); the desired count per service is configurable (`--max-desired-count`).

/// ECS's quota on tasks per service.
pub const DEFAULT_MAX_DESIRED_COUNT: i32 = 5000;
/// ECS's RunTask `count` limit.
pub const MAX_RUN_COUNT: i32 = 10;
/// Port mappings of one container, and of one task: each published port costs the host a
/// docker-proxy process.
pub const MAX_PORTS_PER_CONTAINER: usize = 100;
pub const MAX_PORTS_PER_TASK: usize = 100;
/// Environment entries of one container.
pub const MAX_ENVIRONMENT: usize = 1000;
/// Arguments of `command` or `entryPoint`, and bytes of one argument.
pub const MAX_COMMAND_ARGS: usize = 1000;
pub const MAX_ARG_BYTES: usize = 8192;
/// ECS's limit on a task definition: 64 KiB of JSON.
pub const MAX_TASK_DEFINITION_BYTES: usize = 64 * 1024;
/// How many tasks one service reconcile pass starts at most; the next pass starts more.
pub const MAX_LAUNCHES_PER_PASS: i64 = 1_000;

/// Services one cluster may hold (deleted ones count until they are forgotten).
pub const MAX_SERVICES_PER_CLUSTER: usize = 2_000;
/// Agents one control plane serves at once.
pub const MAX_NODES: usize = 10_000;

/// The configurable bounds, held by `State` so every transport checks the same ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest `desiredCount` a service may have.
    pub max_desired_count: i32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_desired_count: DEFAULT_MAX_DESIRED_COUNT,
        }
    }
}

/// `desiredCount` against the limit, in the words of every transport's error.
pub fn check_desired_count(limits: &Limits, desired: i32) -> Result<(), String> {
    if desired < 0 {
        return Err("must be 0 or more".into());
    }
    if desired > limits.max_desired_count {
        return Err(format!(
            "{desired} is more than the limit of {} tasks per service (the server's --max-desired-count)",
            limits.max_desired_count
        ));
    }
    Ok(())
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
    if tasks_per_service > DEFAULT_MAX_DESIRED_COUNT as usize {
        return Err(format!(
            "--tasks-per-service {tasks_per_service}: at most {DEFAULT_MAX_DESIRED_COUNT}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod fleet_tests {
    use super::*;

    #[test]
    fn fleet_limits_say_the_maximum_and_the_fix() {
        assert!(services_full("demo", 1_999).is_none());
        assert!(services_full("demo", 2_000).unwrap().contains("delete one"));
        assert!(nodes_full(9_999).is_none());
        assert!(nodes_full(10_000).is_some());
        assert!(check_fleet(10_000, 1_000, 1_000).is_ok());
        assert!(check_fleet(10_001, 1, 1).is_err());
        assert!(check_fleet(1, 1, 5_001).is_err());
    }
}
