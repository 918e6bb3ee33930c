//! A node's desired set as its pusher keeps it: read whole once (through the node's claims,
//! never a scan of every task), then updated key by key as changes arrive. Only what the agent
//! acts on (which tasks, their desired status, their deregistration, the retained ones) decides
//! whether a new set goes down: a report that only changed observed fields sends nothing.

use crate::error::Result;
use crate::state::{keys, State};
use crate::status::TaskState;
use crate::{arn, taskdef};
use berth_proto::agent::v1::{AssignedTask, DesiredTasks};
use berth_proto::v1::{Task, TaskDefinition};
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};

#[derive(Debug, Default)]
pub struct NodeDesired {
    node_arn: String,
    /// Task key → the unstopped task placed here.
    tasks: BTreeMap<String, Task>,
    /// Task key → ARN of a stopped task still retained.
    retained: BTreeMap<String, String>,
    defs: HashMap<String, TaskDefinition>,
}

impl NodeDesired {
    /// Reads the node's whole set.
    pub fn read(state: &State, node_id: &str) -> Result<Self> {
        let mut d = NodeDesired {
            node_arn: arn::container_instance(node_id),
            ..Default::default()
        };
        for k in state.scan_keys(&keys::node_claims(node_id))? {
            if let Some(task_key) = keys::task_of_index(&k) {
                d.refresh(state, &task_key)?;
            }
        }
        Ok(d)
    }

    /// Re-reads these task keys; returns the ones that no longer exist.
    pub fn update<'a>(
        &mut self,
        state: &State,
        task_keys: impl IntoIterator<Item = &'a String>,
    ) -> Result<Vec<String>> {
        let mut gone = Vec::new();
        for k in task_keys {
            if !self.refresh(state, k)? {
                gone.push(k.clone());
            }
        }
        Ok(gone)
    }

    /// `false` when the task is gone.
    fn refresh(&mut self, state: &State, task_key: &str) -> Result<bool> {
        self.tasks.remove(task_key);
        self.retained.remove(task_key);
        let Some(t) = state.get::<Task>(task_key)? else {
            return Ok(false);
        };
        if t.container_instance_arn != self.node_arn {
            return Ok(true);
        }
        if t.is_stopped() {
            self.retained.insert(task_key.to_string(), t.task_arn);
            return Ok(true);
        }
        if !self.defs.contains_key(&t.task_definition_arn) {
            let td = taskdef::describe(state, &t.task_definition_arn)?;
            self.defs.insert(t.task_definition_arn.clone(), td);
        }
        self.tasks.insert(task_key.to_string(), t);
        Ok(true)
    }

    /// Tasks the agent is sent to run.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// The task keys of the set (for the fan-out to route their changes here).
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.tasks.keys().chain(self.retained.keys())
    }

    /// What the agent acts on, hashed.
    pub fn fingerprint(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for t in self.tasks.values() {
            (&t.task_arn, &t.desired_status, &t.deregistered_at).hash(&mut h);
        }
        for a in self.retained.values() {
            a.hash(&mut h);
        }
        h.finish()
    }

    /// The set as the agent is sent it, in task ARN order.
    pub fn message(&self) -> DesiredTasks {
        let mut tasks: Vec<AssignedTask> = self
            .tasks
            .values()
            .map(|t| AssignedTask {
                task_definition: self.defs.get(&t.task_definition_arn).cloned(),
                task: Some(t.clone()),
            })
            .collect();
        tasks.sort_by(|a, b| {
            let ka = a.task.as_ref().map(|t| t.task_arn.as_str());
            let kb = b.task.as_ref().map(|t| t.task_arn.as_str());
            ka.cmp(&kb)
        });
        let mut retained_task_arns: Vec<String> = self.retained.values().cloned().collect();
        retained_task_arns.sort();
        DesiredTasks {
            tasks,
            retained_task_arns,
        }
    }
}
