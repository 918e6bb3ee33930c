//! Typed statuses and the one place their transitions are decided. The wire and the store keep
//! ECS's strings; code reads and writes them through these enums, so a status only ever moves
//! forward and an unknown string cannot be mistaken for a known one.
//!
//! Who writes what: desired status (`desiredStatus`, deployments, the service's status) is
//! written by the API and the planner; observed status (`lastStatus`, health, containers) only
//! by agent reports. One exception, in the control plane's `control::lost`: a node that is lost will never report
//! again, so its tasks are marked STOPPED there.

use berth_proto::v1::{Deployment, Service, Task, TaskHeader};

macro_rules! status_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name { $($variant),+ }
        impl $name {
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some(Self::$variant),)+ _ => None }
            }
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

status_enum!(
    /// A task's observed status, in the one order a task moves through it.
    TaskStatus {
        Provisioning = "PROVISIONING",
        Pending = "PENDING",
        Activating = "ACTIVATING",
        Running = "RUNNING",
        Deactivating = "DEACTIVATING",
        Stopping = "STOPPING",
        Stopped = "STOPPED",
    }
);

status_enum!(
    /// What a task is meant to be doing.
    DesiredStatus { Running = "RUNNING", Stopped = "STOPPED" }
);

status_enum!(
    /// A service's lifecycle: deleted services drain, then go INACTIVE.
    ServiceStatus { Active = "ACTIVE", Draining = "DRAINING", Inactive = "INACTIVE" }
);

status_enum!(
    /// A deployment's place in its service: the newest is PRIMARY.
    DeploymentStatus { Primary = "PRIMARY", Active = "ACTIVE", Inactive = "INACTIVE" }
);

status_enum!(
    /// How a deployment's rollout ended, if it has.
    RolloutState { InProgress = "IN_PROGRESS", Completed = "COMPLETED", Failed = "FAILED" }
);

status_enum!(
    /// A task's or container's health.
    HealthStatus { Healthy = "HEALTHY", Unhealthy = "UNHEALTHY", Unknown = "UNKNOWN" }
);

status_enum!(
    /// Whether a node takes new placements.
    NodeStatus { Active = "ACTIVE", Draining = "DRAINING" }
);

impl TaskStatus {
    /// Observed status only moves forward (or stays).
    pub fn can_move_to(self, next: TaskStatus) -> bool {
        next >= self
    }
}

impl RolloutState {
    /// A rollout ends once: COMPLETED and FAILED are final.
    pub fn can_move_to(self, next: RolloutState) -> bool {
        self == RolloutState::InProgress && next != RolloutState::InProgress
    }
}

impl ServiceStatus {
    pub fn can_move_to(self, next: ServiceStatus) -> bool {
        next > self
    }
}

/// Typed reads of a task's two status fields.
pub trait TaskState {
    /// The observed status; an unknown string reads as the earliest.
    fn last(&self) -> TaskStatus;
    fn desired(&self) -> DesiredStatus;
    fn health(&self) -> HealthStatus;
    fn is_stopped(&self) -> bool {
        self.last() == TaskStatus::Stopped
    }
    /// Not stopped, and meant to run.
    fn is_live(&self) -> bool {
        !self.is_stopped() && self.desired() == DesiredStatus::Running
    }
    /// Asked to stop, not stopped yet.
    fn is_stopping(&self) -> bool {
        !self.is_stopped() && self.desired() == DesiredStatus::Stopped
    }
    fn is_running(&self) -> bool {
        self.last() == TaskStatus::Running
    }
}

/// A task record and its header (the same fields, fewer decoded) read their statuses alike.
macro_rules! task_state {
    ($t:ty) => {
        impl TaskState for $t {
            fn last(&self) -> TaskStatus {
                TaskStatus::parse(&self.last_status).unwrap_or(TaskStatus::Provisioning)
            }
            fn desired(&self) -> DesiredStatus {
                // A stopped task never runs again, whatever was last asked of it.
                if self.last_status == "STOPPED" {
                    return DesiredStatus::Stopped;
                }
                DesiredStatus::parse(&self.desired_status).unwrap_or(DesiredStatus::Running)
            }
            fn health(&self) -> HealthStatus {
                HealthStatus::parse(&self.health_status).unwrap_or(HealthStatus::Unknown)
            }
        }
    };
}
task_state!(Task);
task_state!(TaskHeader);

/// Moves a task's observed status forward; `false` (and no change) for a step backwards.
pub fn advance(task: &mut Task, next: TaskStatus) -> bool {
    if !task.last().can_move_to(next) {
        return false;
    }
    task.last_status = next.as_str().to_string();
    true
}

/// Moves a rollout to its end; `false` when it already ended.
pub fn end_rollout(d: &mut Deployment, next: RolloutState) -> bool {
    if !rollout(d).can_move_to(next) {
        return false;
    }
    d.rollout_state = next.as_str().to_string();
    true
}

pub fn rollout(d: &Deployment) -> RolloutState {
    RolloutState::parse(&d.rollout_state).unwrap_or(RolloutState::InProgress)
}

pub fn service_status(s: &Service) -> ServiceStatus {
    ServiceStatus::parse(&s.status).unwrap_or(ServiceStatus::Active)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_never_moves_backwards() {
        let mut t = Task {
            last_status: "RUNNING".into(),
            ..Default::default()
        };
        assert!(!advance(&mut t, TaskStatus::Pending));
        assert_eq!(t.last_status, "RUNNING");
        assert!(advance(&mut t, TaskStatus::Stopped));
        assert!(!advance(&mut t, TaskStatus::Running));
        assert_eq!(t.desired(), DesiredStatus::Stopped);
    }

    #[test]
    fn a_rollout_ends_once() {
        let mut d = Deployment {
            rollout_state: "IN_PROGRESS".into(),
            ..Default::default()
        };
        assert!(end_rollout(&mut d, RolloutState::Failed));
        assert!(!end_rollout(&mut d, RolloutState::Completed));
        assert_eq!(d.rollout_state, "FAILED");
    }

    #[test]
    fn the_wire_keeps_ecs_strings() {
        for s in ["PROVISIONING", "RUNNING", "DEACTIVATING", "STOPPED"] {
            assert_eq!(TaskStatus::parse(s).unwrap().as_str(), s);
        }
        assert_eq!(TaskStatus::parse("running"), None);
    }
}
