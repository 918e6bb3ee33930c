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
pub const MAX_LAUNCHES_PER_PASS: i64 = 500;

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
