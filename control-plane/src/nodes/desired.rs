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
    /// Task key → what the agent acts on of the unstopped task placed here (not the task: a
    /// pusher per node holding full records held every task in memory twice over).
    tasks: BTreeMap<String, Acted>,
    /// Task key → ARN of a stopped task still retained.
    retained: BTreeMap<String, String>,
}

/// The fields of a task whose change sends the node a new set.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Acted {
    task_arn: String,
    desired_stopped: bool,
    deregistered: bool,
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
        let acted = Acted {
            desired_stopped: t.desired_status == "STOPPED",
            deregistered: !t.deregistered_at.is_empty(),
            task_arn: t.task_arn,
        };
        self.tasks.insert(task_key.to_string(), acted);
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
        self.tasks.values().for_each(|a| a.hash(&mut h));
        self.retained.values().for_each(|a| a.hash(&mut h));
        h.finish()
    }

    /// The set as the agent is sent it, in task ARN order: the tasks read as they are now (one
    /// that stopped since is sent as retained), each with its definition.
    pub fn message(&self, state: &State) -> Result<DesiredTasks> {
        let mut defs: HashMap<String, TaskDefinition> = HashMap::new();
        let mut tasks = Vec::with_capacity(self.tasks.len());
        let mut retained_task_arns: Vec<String> = self.retained.values().cloned().collect();
        for key in self.tasks.keys() {
            let Some(t) = state.get::<Task>(key)? else {
                continue;
            };
            if t.container_instance_arn != self.node_arn {
                continue;
            }
            if t.is_stopped() {
                retained_task_arns.push(t.task_arn);
                continue;
            }
            if !defs.contains_key(&t.task_definition_arn) {
                let td = taskdef::describe(state, &t.task_definition_arn)?;
                defs.insert(t.task_definition_arn.clone(), td);
            }
            tasks.push(AssignedTask {
                task_definition: defs.get(&t.task_definition_arn).cloned(),
                task: Some(t),
            });
        }
        tasks.sort_by(|a, b| {
            let ka = a.task.as_ref().map(|t| t.task_arn.as_str());
            let kb = b.task.as_ref().map(|t| t.task_arn.as_str());
            ka.cmp(&kb)
        });
        retained_task_arns.sort();
        Ok(DesiredTasks {
            tasks,
            retained_task_arns,
        })
    }
}
