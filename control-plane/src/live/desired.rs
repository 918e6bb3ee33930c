//! A node's desired set as its pusher keeps it: read whole once (through the node's claims,
//! never a scan of every task), then updated key by key as changes arrive. Only what the agent
//! acts on (which tasks, their desired status, their deregistration, the retained ones) decides
//! whether a new set goes down: a report that only changed observed fields sends nothing.

use crate::model::taskdef;
use crate::state::error::Result;
use crate::state::{keys, State};
use berth_core::arn;
use berth_core::status::TaskState;
use berth_proto::agent::v1::{AssignedTask, DesiredTasks, DesiredTasksChange};
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
    /// Task key → ARN of each task whose place in the set changed since the last message.
    changed: BTreeMap<String, String>,
}

/// Where a task stands in the set.
#[derive(Debug, PartialEq, Eq)]
enum Place {
    Running(Acted),
    Retained,
    Out,
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
        let before = match (self.tasks.remove(task_key), self.retained.remove(task_key)) {
            (Some(a), _) => (Place::Running(a.clone()), Some(a.task_arn)),
            (None, Some(arn)) => (Place::Retained, Some(arn)),
            (None, None) => (Place::Out, None),
        };
        // Only the fields that place it: decoding skips containers and overrides.
        let t = state.get::<berth_proto::v1::TaskHeader>(task_key)?;
        let exists = t.is_some();
        let after = match t {
            Some(t) if t.container_instance_arn == self.node_arn => {
                if t.last_status == "STOPPED" {
                    self.retained
                        .insert(task_key.to_string(), t.task_arn.clone());
                    (Place::Retained, Some(t.task_arn))
                } else {
                    let acted = Acted {
                        desired_stopped: t.desired_status == "STOPPED",
                        deregistered: !t.deregistered_at.is_empty(),
                        task_arn: t.task_arn.clone(),
                    };
                    self.tasks.insert(task_key.to_string(), acted.clone());
                    (Place::Running(acted), Some(t.task_arn))
                }
            }
            _ => (Place::Out, None),
        };
        if before.0 != after.0 {
            if let Some(arn) = after.1.or(before.1) {
                self.changed.insert(task_key.to_string(), arn);
            }
        }
        Ok(exists)
    }

    /// After a full re-read, `self` replacing `old`: what differs from the set the agent was
    /// sent, so the next change carries it (the re-read is a safety net, not a resend).
    pub fn carry_from(&mut self, old: NodeDesired) {
        let mut changed = old.changed;
        for (k, a) in &old.tasks {
            if self.tasks.get(k) != Some(a) {
                changed.insert(k.clone(), a.task_arn.clone());
            }
        }
        for (k, arn) in &old.retained {
            if !self.retained.contains_key(k) {
                changed.insert(k.clone(), arn.clone());
            }
        }
        for (k, a) in &self.tasks {
            if old.tasks.get(k) != Some(a) {
                changed.insert(k.clone(), a.task_arn.clone());
            }
        }
        for (k, arn) in &self.retained {
            if !old.retained.contains_key(k) {
                changed.insert(k.clone(), arn.clone());
            }
        }
        self.changed = changed;
    }

    /// Forgets what changed (an agent that is sent whole sets only).
    pub fn clear_changes(&mut self) {
        self.changed.clear();
    }

    /// Whether anything changed since the last message.
    pub fn has_changes(&self) -> bool {
        !self.changed.is_empty()
    }

    /// What changed since the last message, the tasks read as they are now; `None` when,
    /// read now, nothing did.
    pub fn change(&mut self, state: &State) -> Result<Option<DesiredTasksChange>> {
        let mut defs = Defs::default();
        let mut out = DesiredTasksChange::default();
        for (key, arn) in std::mem::take(&mut self.changed) {
            if self.retained.contains_key(&key) {
                out.retained_task_arns.push(arn);
            } else if self.tasks.contains_key(&key) {
                match self.assigned(state, &key, &mut defs)? {
                    Some(Ok(a)) => out.upserted.push(a),
                    Some(Err(stopped)) => out.retained_task_arns.push(stopped),
                    None => out.removed_task_arns.push(arn),
                }
            } else {
                out.removed_task_arns.push(arn);
            }
        }
        let empty = out.upserted.is_empty()
            && out.retained_task_arns.is_empty()
            && out.removed_task_arns.is_empty();
        Ok((!empty).then_some(out))
    }

    /// The task at `key` as the agent is sent it: `Err(arn)` when it has stopped since, `None`
    /// when it is gone or on another node.
    fn assigned(
        &self,
        state: &State,
        key: &str,
        defs: &mut Defs,
    ) -> Result<Option<std::result::Result<AssignedTask, String>>> {
        let Some(t) = state.get::<Task>(key)? else {
            return Ok(None);
        };
        if t.container_instance_arn != self.node_arn {
            return Ok(None);
        }
        if t.is_stopped() {
            return Ok(Some(Err(t.task_arn)));
        }
        if !defs.definitions.contains_key(&t.task_definition_arn) {
            let td = taskdef::describe(state, &t.task_definition_arn)?;
            defs.definitions.insert(t.task_definition_arn.clone(), td);
        }
        let td = defs.definitions.get(&t.task_definition_arn).cloned();
        let connect_hosts = connect_hosts(state, &t, &mut defs.hosts)?;
        // Resolved for this push only: the values go to this agent and are never stored.
        let (secrets, registry_logins, resolve_error) = match &td {
            Some(td) if !t.is_stopped() => crate::model::secrets::resolve::for_task(state, td),
            _ => Default::default(),
        };
        Ok(Some(Ok(AssignedTask {
            task_definition: td,
            task: Some(t),
            secrets,
            registry_logins,
            resolve_error,
            connect_hosts,
        })))
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
    pub fn message(&mut self, state: &State) -> Result<DesiredTasks> {
        self.changed.clear();
        let mut defs = Defs::default();
        let mut tasks = Vec::with_capacity(self.tasks.len());
        let mut retained_task_arns: Vec<String> = self.retained.values().cloned().collect();
        for key in self.tasks.keys() {
            match self.assigned(state, key, &mut defs)? {
                Some(Ok(a)) => tasks.push(a),
                Some(Err(stopped)) => retained_task_arns.push(stopped),
                None => {}
            }
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

/// What one message reads once for all its tasks.
#[derive(Default)]
pub struct Defs {
    definitions: HashMap<String, TaskDefinition>,
    /// Service key → the alias names its tasks get.
    hosts: HashMap<String, Vec<String>>,
}

/// The Service Connect alias names a task gets in /etc/hosts: every alias of its namespace,
/// when its service has Service Connect on (ECS gives aliases to those tasks only).
fn connect_hosts(
    state: &State,
    t: &Task,
    cache: &mut HashMap<String, Vec<String>>,
) -> Result<Vec<String>> {
    let Some(name) = t.group.strip_prefix("service:") else {
        return Ok(Vec::new());
    };
    let cluster = arn::cluster_name(&t.cluster_arn);
    let key = crate::model::services::key(cluster, name);
    if let Some(hosts) = cache.get(&key) {
        return Ok(hosts.clone());
    }
    let namespace = state
        .get::<berth_proto::v1::Service>(&key)?
        .and_then(|s| s.service_connect)
        .filter(|c| c.enabled)
        .map(|c| c.namespace);
    let hosts = match namespace {
        Some(ns) => berth_core::service::connect_routes::hosts_of(
            &ns,
            &crate::model::services::list(state, cluster)?,
        ),
        None => Vec::new(),
    };
    cache.insert(key, hosts.clone());
    Ok(hosts)
}

/// Every unstopped task placed on the node, with its definition: what the agent must run; and
/// the node's stopped tasks still retained, whose containers it keeps. Read through the node's
/// claims, never a scan of every task.
pub fn desired_for_node(state: &State, node_id: &str) -> Result<DesiredTasks> {
    NodeDesired::read(state, node_id)?.message(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::placement::apply::create_ops;
    use crate::state::put;
    use crate::store::LogStore;
    use berth_core::scheduler::Demand;
    use berth_proto::v1::ContainerDefinition;
    use std::sync::Arc;

    fn setup() -> (tempfile::TempDir, State, TaskDefinition) {
        let dir = tempfile::tempdir().unwrap();
        let state = State::new(Arc::new(LogStore::open(dir.path()).unwrap()));
        let td = taskdef::register(
            &state,
            TaskDefinition {
                family: "app".into(),
                container_definitions: vec![ContainerDefinition {
                    name: "app".into(),
                    image: "app:1".into(),
                    memory: 32,
                    ..Default::default()
                }],
                ..Default::default()
            },
        )
        .unwrap()
        .task_definition;
        (dir, state, td)
    }

    fn launch(state: &State, td: &TaskDefinition, node: &str) -> (String, Task) {
        let d = Demand::default();
        let t =
            crate::model::tasks::build_task("default", td, node, &d, "g".into(), "".into(), false);
        state.commit(create_ops(&t, &d)).unwrap();
        (
            crate::model::placement::apply::task_key(&t.task_arn).unwrap(),
            t,
        )
    }

    #[test]
    fn after_the_whole_set_only_what_the_agent_acts_on_goes_down() {
        let (_dir, state, td) = setup();
        let (k1, mut t1) = launch(&state, &td, "n1");
        let mut d = NodeDesired::read(&state, "n1").unwrap();
        assert_eq!(d.message(&state).unwrap().tasks.len(), 1);
        assert!(!d.has_changes(), "a whole set leaves nothing to send");

        // A new task: upserted alone.
        let (k2, _) = launch(&state, &td, "n1");
        d.update(&state, [&k2]).unwrap();
        let c = d.change(&state).unwrap().expect("a change");
        assert_eq!(c.upserted.len(), 1);
        assert!(c.retained_task_arns.is_empty() && c.removed_task_arns.is_empty());

        // An observed field only: nothing.
        t1.last_status = "RUNNING".into();
        state.commit(vec![put(k1.clone(), &t1)]).unwrap();
        d.update(&state, [&k1]).unwrap();
        assert!(!d.has_changes());

        // Asked to stop, then stopped, then forgotten.
        t1.desired_status = "STOPPED".into();
        state.commit(vec![put(k1.clone(), &t1)]).unwrap();
        d.update(&state, [&k1]).unwrap();
        let c = d.change(&state).unwrap().expect("a change");
        assert_eq!(
            c.upserted[0].task.as_ref().unwrap().desired_status,
            "STOPPED"
        );
        t1.last_status = "STOPPED".into();
        state.commit(vec![put(k1.clone(), &t1)]).unwrap();
        d.update(&state, [&k1]).unwrap();
        let c = d.change(&state).unwrap().expect("a change");
        assert_eq!(c.retained_task_arns, vec![t1.task_arn.clone()]);
        state
            .commit(crate::model::placement::apply::forget_ops(&t1))
            .unwrap();
        d.update(&state, [&k1]).unwrap();
        let c = d.change(&state).unwrap().expect("a change");
        assert_eq!(c.removed_task_arns, vec![t1.task_arn.clone()]);
    }

    #[test]
    fn a_full_re_read_sends_only_what_it_found_changed() {
        let (_dir, state, td) = setup();
        launch(&state, &td, "n1");
        let mut d = NodeDesired::read(&state, "n1").unwrap();
        d.message(&state).unwrap();
        // A change the fan-out never routed here, found by the periodic full read.
        launch(&state, &td, "n1");
        let mut again = NodeDesired::read(&state, "n1").unwrap();
        again.carry_from(d);
        let c = again.change(&state).unwrap().expect("a change");
        assert_eq!(c.upserted.len(), 1);
        let mut same = NodeDesired::read(&state, "n1").unwrap();
        same.carry_from(again);
        assert!(!same.has_changes());
    }
}
