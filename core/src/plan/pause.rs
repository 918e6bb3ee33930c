//! ECS's PAUSE lifecycle hooks: a deployment stops at the hook's stage, its run AWAITING_ACTION,
//! until ContinueServiceDeployment answers CONTINUE or ROLLBACK for its `hookId`, or the hook's
//! timeout (ECS's default 24 h) takes its timeout action (ECS's default ROLLBACK). A hook is
//! told apart from the others of the service by its key: a webhook's URL, or `pause:INDEX`.

use berth_proto::v1::{DeploymentLifecycleHook, HookRun};

pub const TARGET_TYPE: &str = "PAUSE";
/// ECS's default and longest wait for a PAUSE hook.
pub const DEFAULT_TIMEOUT_MINUTES: i32 = 1440;
/// The run status of a pause waiting for ContinueServiceDeployment.
pub const AWAITING: &str = "AWAITING_ACTION";

pub fn is_pause(h: &DeploymentLifecycleHook) -> bool {
    h.target_type == TARGET_TYPE
}

/// The key a hook's runs carry (`HookRun::url`): its URL, or `pause:INDEX` for a PAUSE hook.
pub fn hook_key(index: usize, h: &DeploymentLifecycleHook) -> String {
    if is_pause(h) {
        format!("pause:{index}")
    } else {
        h.hook_target_arn.clone()
    }
}

/// A run's `hookId` as DescribeServiceDeployments shows it and ContinueServiceDeployment takes
/// it: the hook's index, stage and step (`pause-0-POST_SCALE_UP-0`).
pub fn hook_id(r: &HookRun) -> String {
    format!("{}-{}-{}", r.url.replacen(':', "-", 1), r.stage, r.step)
}

/// How long the hook waits, in ms, and whether its timeout continues (else it rolls back).
pub fn timeout(h: &DeploymentLifecycleHook) -> (i64, bool) {
    let minutes = if h.timeout_in_minutes > 0 {
        h.timeout_in_minutes
    } else {
        DEFAULT_TIMEOUT_MINUTES
    };
    (i64::from(minutes) * 60_000, h.timeout_action == "CONTINUE")
}

/// A pause's outcome at `now`, given when it began: None while it waits.
pub fn timed_out(h: &DeploymentLifecycleHook, began_ms: i64, now: i64) -> Option<bool> {
    let (ms, continues) = timeout(h);
    (now - began_ms >= ms).then_some(continues)
}
