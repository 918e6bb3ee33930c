//! The node's desired set as the agent holds it on one stream: the control plane sends it whole
//! first, then (to an agent that says it can) only what changed; applied in order, the changes
//! give exactly the set a whole message would have carried.

use berth_proto::agent::v1::{AssignedTask, DesiredTasks, DesiredTasksChange};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Default, Clone)]
pub struct DesiredSet {
    /// Task ARN → the task to run and its definition.
    tasks: BTreeMap<String, AssignedTask>,
    retained: BTreeSet<String>,
}

impl DesiredSet {
    /// The set a whole message carries.
    pub fn whole(set: DesiredTasks) -> Self {
        let mut d = DesiredSet::default();
        for a in set.tasks {
            if let Some(arn) = a.task.as_ref().map(|t| t.task_arn.clone()) {
                d.tasks.insert(arn, a);
            }
        }
        d.retained = set.retained_task_arns.into_iter().collect();
        d
    }

    /// Applies one change onto the set.
    pub fn apply(&mut self, change: DesiredTasksChange) {
        for a in change.upserted {
            if let Some(arn) = a.task.as_ref().map(|t| t.task_arn.clone()) {
                self.retained.remove(&arn);
                self.tasks.insert(arn, a);
            }
        }
        for arn in change.retained_task_arns {
            self.tasks.remove(&arn);
            self.retained.insert(arn);
        }
        for arn in change.removed_task_arns {
            self.tasks.remove(&arn);
            self.retained.remove(&arn);
        }
    }

    /// The set as a whole message would carry it, in task ARN order.
    pub fn to_message(&self) -> DesiredTasks {
        DesiredTasks {
            tasks: self.tasks.values().cloned().collect(),
            retained_task_arns: self.retained.iter().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::v1::Task;

    fn task(arn: &str, desired: &str) -> AssignedTask {
        AssignedTask {
            task: Some(Task {
                task_arn: arn.into(),
                desired_status: desired.into(),
                ..Default::default()
            }),
            task_definition: None,
            ..Default::default()
        }
    }

    #[test]
    fn changes_applied_in_order_give_the_whole_set() {
        let mut d = DesiredSet::whole(DesiredTasks {
            tasks: vec![task("a", "RUNNING"), task("b", "RUNNING")],
            retained_task_arns: vec!["old".into()],
        });
        d.apply(DesiredTasksChange {
            upserted: vec![task("c", "RUNNING"), task("a", "STOPPED")],
            retained_task_arns: vec!["b".into()],
            removed_task_arns: vec!["old".into()],
        });
        let m = d.to_message();
        let tasks: Vec<(String, String)> = m
            .tasks
            .iter()
            .map(|a| {
                let t = a.task.as_ref().unwrap();
                (t.task_arn.clone(), t.desired_status.clone())
            })
            .collect();
        assert_eq!(
            tasks,
            vec![
                ("a".to_string(), "STOPPED".to_string()),
                ("c".to_string(), "RUNNING".to_string())
            ]
        );
        assert_eq!(m.retained_task_arns, vec!["b".to_string()]);
    }
}
