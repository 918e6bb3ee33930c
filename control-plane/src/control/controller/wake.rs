//! Targeted wake-ups: which services a batch of store changes touches. A task key wakes the
//! service that owns it (learned from the group index, or read once); a service key wakes that
//! service; a node change, or a feed that lagged, wakes every service.

use super::headers::Headers;
use crate::state::error::Result;
use crate::state::{keys, State};
use crate::store::Change;
use berth_proto::v1::TaskHeader;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

/// What woke the controllers.
#[derive(Debug, Default)]
pub struct Woken {
    pub everything: bool,
    /// The periodic tick: lost nodes are checked even when the sweep is not due.
    pub lost_nodes: bool,
    pub keys: BTreeSet<String>,
    /// The newest revision seen, to resume from after a lag.
    pub revision: u64,
}

impl Woken {
    pub fn add(&mut self, change: &Change) {
        self.revision = self.revision.max(change.revision);
        if change.resync {
            self.everything = true;
        }
        for k in &change.keys {
            if k.starts_with(keys::NODES) {
                self.everything = true;
            } else if k.starts_with(keys::TASKS)
                || k.starts_with(keys::SERVICES)
                || k.starts_with(keys::GROUP_INDEX)
            {
                self.keys.insert(k.clone());
            }
        }
    }
}

/// Task key → the key of the service that owns it (each service key held once, shared by its
/// tasks: a million tasks would otherwise hold a million copies).
#[derive(Debug, Default)]
pub struct Owners {
    by_task: HashMap<String, Option<Arc<str>>>,
    names: HashSet<Arc<str>>,
}

impl Owners {
    /// The services the woken keys touch, each once. A task of a group the headers cache holds
    /// is looked up there (caught up, it knows every task of the group); only others are kept
    /// here.
    pub fn services_of(
        &mut self,
        state: &State,
        woken: &Woken,
        headers: &Headers,
    ) -> Result<Vec<String>> {
        let mut out = BTreeSet::new();
        // A store held in memory is asked again each time (see `owner`).
        let remember = !state.store().in_memory();
        for k in &woken.keys {
            if k.starts_with(keys::SERVICES) {
                out.insert(k.clone());
            } else if let Some(rest) = k.strip_prefix(keys::GROUP_INDEX) {
                // bygroup/CLUSTER/service:NAME/ID
                let mut parts = rest.splitn(2, '/');
                let cluster = parts.next().unwrap_or_default();
                let group_and_id = parts.next().unwrap_or_default();
                if let (Some(task_key), Some((group, _))) =
                    (keys::task_of_index(k), group_and_id.rsplit_once('/'))
                {
                    let svc = service_key(cluster, group);
                    if remember && headers.service_of(&task_key).is_none() {
                        let svc = svc.clone().map(|s| self.intern(s));
                        self.by_task.insert(task_key, svc);
                    }
                    out.extend(svc);
                }
            } else if let Some(svc) = headers.service_of(k) {
                out.insert(svc.to_string());
            } else if let Some(svc) = self.owner(state, k)? {
                out.insert(svc.to_string());
            }
        }
        Ok(out.into_iter().collect())
    }

    /// The service that owns a task, from its header. Remembered, unless the store holds every
    /// record in memory: a lookup there costs less than a million remembered task keys.
    fn owner(&mut self, state: &State, task_key: &str) -> Result<Option<Arc<str>>> {
        if let Some(o) = self.by_task.get(task_key) {
            return Ok(o.clone());
        }
        let Some(t) = state.get::<TaskHeader>(task_key)? else {
            return Ok(None);
        };
        let cluster = berth_core::arn::cluster_name(&t.cluster_arn);
        let svc = service_key(cluster, &t.group).map(|s| self.intern(s));
        if !state.store().in_memory() {
            self.by_task.insert(task_key.to_string(), svc.clone());
        }
        Ok(svc)
    }

    fn intern(&mut self, name: String) -> Arc<str> {
        if let Some(n) = self.names.get(name.as_str()) {
            return n.clone();
        }
        let n: Arc<str> = name.into();
        self.names.insert(n.clone());
        n
    }

    /// Forgets tasks that no longer exist, and those the headers cache knows.
    pub fn retain(&mut self, exists: &dyn Fn(&str) -> bool, headers: &Headers) {
        self.by_task
            .retain(|k, _| headers.service_of(k).is_none() && exists(k));
        let used: HashSet<&str> = self.by_task.values().flatten().map(|n| &**n).collect();
        self.names.retain(|n| used.contains(&**n));
    }
}

fn service_key(cluster: &str, group: &str) -> Option<String> {
    let name = group.strip_prefix("service:")?;
    Some(crate::model::services::key(cluster, name))
}
