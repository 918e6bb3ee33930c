//! The planner's task headers of each service the controllers have read, kept in memory and
//! brought up to date from the store's change history before every read (re-reading only the
//! task and index keys that changed), so a woken pass does not decode every task of its service
//! again. A hint, never a guarantee: the pass commits only if nothing under the group's index
//! was written after the revision the cache is as of, so a task created meanwhile is never
//! missed (the pass decides again); a task's status a moment old only delays a decision, as a
//! fresh read racing a report would. A group is also read afresh now and then, and the whole
//! cache when the history no longer reaches back to it. A store that holds every record in
//! memory (the embedded log store) is not cached at all: each read goes to it.

use crate::state::error::Result;
use crate::state::{keys, State};
use berth_proto::v1::{Task, TaskHeader};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A cached group is read again from the store after this long: the level-triggered safety net
/// under the change history (which, followed exactly, would keep it right forever).
const REREAD_AFTER: Duration = Duration::from_secs(120);

/// The cache. Only the controllers' pass uses it (one pass at a time).
#[derive(Debug, Default)]
pub struct Headers {
    /// The revision every cached group reflects; None until first used.
    revision: Option<u64>,
    /// A group's index prefix (`bygroup/CLUSTER/GROUP/`) → its tasks.
    groups: HashMap<Arc<str>, Group>,
    /// Task key → the index prefix of the cached group it belongs to.
    group_of: HashMap<Arc<str>, Arc<str>>,
    pool: Pool,
}

#[derive(Debug)]
struct Group {
    name: String,
    /// The key of the service the group is, if it is one.
    service: Option<String>,
    /// Task key → header, in key order (as the index lists them).
    tasks: BTreeMap<Arc<str>, Header>,
    read_at: Instant,
}

impl Headers {
    /// The tasks of `group` in `cluster` as the planner reads them, and the revision that is as
    /// of: no index entry of the group written up to it is missing.
    /// A store that holds every record in memory is read afresh instead: a lookup and a
    /// header's decode a task cost less than keeping the cache up to date, and a million
    /// headers are not held twice.
    pub fn tasks(&mut self, state: &State, cluster: &str, group: &str) -> Result<(Vec<Task>, u64)> {
        if state.store().in_memory() {
            // Taken first: the read sees every index entry written up to it.
            let revision = state.store().revision()?;
            let tasks =
                crate::model::placement::view::indexed(state, cluster, group, |h: &TaskHeader| {
                    &h.group
                })?
                .into_iter()
                .map(|(_, h)| planner_task(h))
                .collect();
            return Ok((tasks, revision));
        }
        let revision = self.catch_up(state)?;
        let prefix = keys::group_tasks(cluster, group);
        let fresh = self
            .groups
            .get(prefix.as_str())
            .is_some_and(|g| g.read_at.elapsed() < REREAD_AFTER);
        if !fresh {
            self.read_group(state, cluster, group)?;
        }
        let tasks = self
            .groups
            .get(prefix.as_str())
            .map(|g| g.tasks.iter().map(|(k, h)| h.task(k)).collect())
            .unwrap_or_default();
        Ok((tasks, revision))
    }

    /// The key of the service a cached task belongs to (as of the last catch-up).
    pub fn service_of(&self, task_key: &str) -> Option<&str> {
        let prefix = self.group_of.get(task_key)?;
        self.groups.get(prefix)?.service.as_deref()
    }

    /// Whether the group of this index prefix is cached.
    pub fn holds_group(&self, prefix: &str) -> bool {
        self.groups.contains_key(prefix)
    }

    /// How many tasks the cache holds.
    pub fn len(&self) -> usize {
        self.group_of.len()
    }

    pub fn is_empty(&self) -> bool {
        self.group_of.is_empty()
    }

    /// Forgets the groups `live` does not keep (their services are gone or inactive).
    pub fn retain(&mut self, live: impl Fn(&str) -> bool) {
        self.groups.retain(|prefix, _| live(prefix));
        let groups = &self.groups;
        self.group_of
            .retain(|_, prefix| groups.contains_key(&**prefix));
        self.pool.prune();
    }

    /// Brings every cached group up to the store's revision; returns it (a store held in
    /// memory is never cached: nothing to do).
    pub fn catch_up(&mut self, state: &State) -> Result<u64> {
        if state.store().in_memory() {
            return Ok(state.store().revision()?);
        }
        let Some(since) = self.revision else {
            return self.reset(state);
        };
        let changes = match state.store().changes_since(since) {
            Ok(c) => c,
            Err(_) => return self.reset(state),
        };
        let mut revision = since;
        for c in changes {
            if c.resync {
                return self.reset(state);
            }
            for k in &c.keys {
                self.refresh(state, k)?;
            }
            revision = revision.max(c.revision);
        }
        self.revision = Some(revision);
        Ok(revision)
    }

    /// Drops everything: each group is read again when next asked for. The revision is taken
    /// first, so what those reads see is at least as new.
    fn reset(&mut self, state: &State) -> Result<u64> {
        let revision = state.store().revision()?;
        self.groups.clear();
        self.group_of.clear();
        self.pool.prune();
        self.revision = Some(revision);
        Ok(revision)
    }

    fn refresh(&mut self, state: &State, key: &str) -> Result<()> {
        if key.starts_with(keys::TASKS) {
            if let Some((task_key, prefix)) = self.group_of.get_key_value(key) {
                let (task_key, prefix) = (task_key.clone(), prefix.clone());
                self.reread(state, &prefix, task_key)?;
            }
        } else if key.starts_with(keys::GROUP_INDEX) {
            // `bygroup/CLUSTER/GROUP/ID`: the group's prefix keeps the last slash.
            let Some(slash) = key.rfind('/') else {
                return Ok(());
            };
            let (Some(prefix), Some(task_key)) = (
                self.groups
                    .get_key_value(&key[..=slash])
                    .map(|(p, _)| p.clone()),
                keys::task_of_index(key),
            ) else {
                return Ok(());
            };
            if state.get_raw(key)?.is_some() {
                self.reread(state, &prefix, task_key.into())?;
            } else {
                self.remove(&prefix, &task_key);
            }
        }
        Ok(())
    }

    /// Reads one task of a cached group again: it stays only while it exists and is the group's.
    fn reread(&mut self, state: &State, prefix: &Arc<str>, task_key: Arc<str>) -> Result<()> {
        let header = state.get::<TaskHeader>(&task_key)?;
        let Some(group) = self.groups.get_mut(prefix) else {
            return Ok(());
        };
        match header.filter(|h| h.group == group.name) {
            Some(h) => {
                let header = Header::of(h, &task_key, &mut self.pool);
                group.tasks.insert(task_key.clone(), header);
                self.group_of.insert(task_key, prefix.clone());
            }
            None => self.remove(prefix, &task_key),
        }
        Ok(())
    }

    fn remove(&mut self, prefix: &Arc<str>, task_key: &str) {
        if let Some(g) = self.groups.get_mut(prefix) {
            g.tasks.remove(task_key);
        }
        self.group_of.remove(task_key);
    }

    fn read_group(&mut self, state: &State, cluster: &str, group: &str) -> Result<()> {
        let prefix = keys::group_tasks(cluster, group);
        if let Some(old) = self.groups.remove(prefix.as_str()) {
            for k in old.tasks.keys() {
                self.group_of.remove(k);
            }
        }
        let prefix: Arc<str> = prefix.into();
        let mut tasks = BTreeMap::new();
        for (task_key, h) in
            crate::model::placement::view::indexed(state, cluster, group, |h: &TaskHeader| {
                &h.group
            })?
        {
            let task_key: Arc<str> = task_key.into();
            self.group_of.insert(task_key.clone(), prefix.clone());
            let header = Header::of(h, &task_key, &mut self.pool);
            tasks.insert(task_key, header);
        }
        let service = group
            .strip_prefix("service:")
            .map(|name| crate::model::services::key(cluster, name));
        self.groups.insert(
            prefix,
            Group {
                name: group.to_string(),
                service,
                tasks,
                read_at: Instant::now(),
            },
        );
        Ok(())
    }
}

/// One copy of each string many tasks share (ARNs of clusters, definitions and nodes, statuses,
/// groups, deployments): a million cached tasks would otherwise hold a million copies of each.
#[derive(Debug, Default)]
struct Pool(HashSet<Arc<str>>);

impl Pool {
    fn get(&mut self, s: String) -> Arc<str> {
        if let Some(shared) = self.0.get(s.as_str()) {
            return shared.clone();
        }
        let shared: Arc<str> = s.into();
        self.0.insert(shared.clone());
        shared
    }

    /// Drops the strings no task holds any more.
    fn prune(&mut self) {
        self.0.retain(|s| Arc::strong_count(s) > 1);
    }
}

/// A `TaskHeader` as the cache holds it: shared strings once in the pool, the task's own ones
/// boxed, and its ARN as the shared part before its key (`arn:aws:ecs:REGION:ACCOUNT:` then
/// `task/CLUSTER/ID`) when it ends with it, as every ARN this server mints does.
#[derive(Debug)]
struct Header {
    /// What comes before the task key in the ARN; the whole ARN when it does not end with it.
    arn_head: Arc<str>,
    arn_ends_with_key: bool,
    cluster_arn: Arc<str>,
    task_definition_arn: Arc<str>,
    container_instance_arn: Arc<str>,
    last_status: Arc<str>,
    desired_status: Arc<str>,
    health_status: Arc<str>,
    stop_code: Arc<str>,
    stopped_reason: Arc<str>,
    group: Arc<str>,
    started_by: Arc<str>,
    /// Created, started, stopping, stopped and deregistered at, in one allocation.
    times: Times,
    cpu: i32,
    memory: i32,
    version: i64,
    load_balanced: bool,
    capacity_provider_name: Arc<str>,
    protected_until_ms: i64,
}

impl Header {
    fn of(h: TaskHeader, task_key: &str, pool: &mut Pool) -> Self {
        let (arn_head, arn_ends_with_key) = match h.task_arn.strip_suffix(task_key) {
            Some(head) if head.ends_with(':') => (pool.get(head.to_string()), true),
            _ => (Arc::from(h.task_arn), false),
        };
        Header {
            arn_head,
            arn_ends_with_key,
            cluster_arn: pool.get(h.cluster_arn),
            task_definition_arn: pool.get(h.task_definition_arn),
            container_instance_arn: pool.get(h.container_instance_arn),
            last_status: pool.get(h.last_status),
            desired_status: pool.get(h.desired_status),
            health_status: pool.get(h.health_status),
            stop_code: pool.get(h.stop_code),
            stopped_reason: pool.get(h.stopped_reason),
            group: pool.get(h.group),
            started_by: pool.get(h.started_by),
            times: Times::of([
                &h.created_at,
                &h.started_at,
                &h.stopping_at,
                &h.stopped_at,
                &h.deregistered_at,
            ]),
            cpu: h.cpu,
            memory: h.memory,
            version: h.version,
            load_balanced: h.load_balanced,
            capacity_provider_name: pool.get(h.capacity_provider_name),
            protected_until_ms: h.protected_until_ms,
        }
    }

    /// The task as the planner takes it: without containers or overrides.
    fn task(&self, task_key: &str) -> Task {
        let [created_at, started_at, stopping_at, stopped_at, deregistered_at] =
            self.times.get().map(str::to_string);
        let task_arn = if self.arn_ends_with_key {
            format!("{}{task_key}", self.arn_head)
        } else {
            self.arn_head.to_string()
        };
        Task {
            task_arn,
            cluster_arn: self.cluster_arn.to_string(),
            task_definition_arn: self.task_definition_arn.to_string(),
            container_instance_arn: self.container_instance_arn.to_string(),
            last_status: self.last_status.to_string(),
            desired_status: self.desired_status.to_string(),
            health_status: self.health_status.to_string(),
            stop_code: self.stop_code.to_string(),
            stopped_reason: self.stopped_reason.to_string(),
            created_at,
            started_at,
            stopping_at,
            stopped_at,
            group: self.group.to_string(),
            started_by: self.started_by.to_string(),
            containers: Vec::new(),
            cpu: self.cpu,
            memory: self.memory,
            version: self.version,
            load_balanced: self.load_balanced,
            deregistered_at,
            overrides: None,
            capacity_provider_name: self.capacity_provider_name.to_string(),
            protected_until_ms: self.protected_until_ms,
        }
    }
}

/// A task as the planner takes it from its header: without containers or overrides.
fn planner_task(h: TaskHeader) -> Task {
    Task {
        task_arn: h.task_arn,
        cluster_arn: h.cluster_arn,
        task_definition_arn: h.task_definition_arn,
        container_instance_arn: h.container_instance_arn,
        last_status: h.last_status,
        desired_status: h.desired_status,
        health_status: h.health_status,
        stop_code: h.stop_code,
        stopped_reason: h.stopped_reason,
        created_at: h.created_at,
        started_at: h.started_at,
        stopping_at: h.stopping_at,
        stopped_at: h.stopped_at,
        group: h.group,
        started_by: h.started_by,
        containers: Vec::new(),
        cpu: h.cpu,
        memory: h.memory,
        version: h.version,
        load_balanced: h.load_balanced,
        deregistered_at: h.deregistered_at,
        overrides: None,
        capacity_provider_name: h.capacity_provider_name,
        protected_until_ms: h.protected_until_ms,
    }
}

/// A task's timestamps joined by a separator no RFC 3339 time holds: one allocation of about
/// fifty bytes instead of five boxed strings (most of them empty).
#[derive(Debug)]
struct Times(Box<str>);

const TIMES_SEPARATOR: char = '\u{1f}';

impl Times {
    fn of(times: [&str; 5]) -> Self {
        Times(times.join(&TIMES_SEPARATOR.to_string()).into())
    }

    fn get(&self) -> [&str; 5] {
        let mut out = [""; 5];
        for (slot, t) in out.iter_mut().zip(self.0.split(TIMES_SEPARATOR)) {
            *slot = t;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::placement::apply::{create_ops, forget_ops, task_key};
    use crate::state::put;
    use crate::store::{LogStore, SledStore};
    use berth_core::scheduler::Demand;
    use berth_proto::v1::{ContainerDefinition, TaskDefinition};

    const GROUP: &str = "service:web";

    #[test]
    fn times_come_back_as_they_went_in_empty_ones_included() {
        let t = Times::of([
            "2026-12-01T10:00:00.123Z",
            "",
            "",
            "2026-12-01T10:05:00Z",
            "",
        ]);
        assert_eq!(
            t.get(),
            [
                "2026-12-01T10:00:00.123Z",
                "",
                "",
                "2026-12-01T10:05:00Z",
                ""
            ]
        );
        assert_eq!(Times::of([""; 5]).get(), [""; 5]);
    }

    /// On a store read through the cache (sled), or on one held in memory (the log store),
    /// which is read afresh.
    fn setup(in_memory: bool) -> (tempfile::TempDir, State, TaskDefinition) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn crate::store::Store> = if in_memory {
            Arc::new(LogStore::open(dir.path()).unwrap())
        } else {
            Arc::new(SledStore::open(dir.path()).unwrap())
        };
        assert_eq!(store.in_memory(), in_memory);
        let state = State::new(store);
        let td = crate::model::taskdef::register(
            &state,
            TaskDefinition {
                family: "web".into(),
                container_definitions: vec![ContainerDefinition {
                    name: "web".into(),
                    image: "web:1".into(),
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

    fn launch(state: &State, td: &TaskDefinition, group: &str) -> Task {
        let d = Demand::default();
        let t = crate::model::tasks::build_task(
            "default",
            td,
            "n1",
            &d,
            group.into(),
            "".into(),
            false,
        );
        state.commit(create_ops(&t, &d)).unwrap();
        t
    }

    fn statuses(h: &mut Headers, state: &State) -> Vec<(String, String)> {
        let (tasks, _) = h.tasks(state, "default", GROUP).unwrap();
        tasks
            .into_iter()
            .map(|t| (t.task_arn, t.last_status))
            .collect()
    }

    #[test]
    fn the_cache_follows_creations_reports_and_forgetting_as_a_fresh_read_would() {
        for in_memory in [false, true] {
            follows_as_a_fresh_read_would(in_memory);
        }
    }

    fn follows_as_a_fresh_read_would(in_memory: bool) {
        let (_dir, state, td) = setup(in_memory);
        let mut h = Headers::default();
        let first = launch(&state, &td, GROUP);
        launch(&state, &td, "service:other");
        assert_eq!(statuses(&mut h, &state).len(), 1);

        let second = launch(&state, &td, GROUP);
        let mut reported = first.clone();
        reported.last_status = "RUNNING".into();
        reported.version += 1;
        state
            .commit(vec![put(task_key(&first.task_arn).unwrap(), &reported)])
            .unwrap();
        let cached = statuses(&mut h, &state);
        let fresh: Vec<(String, String)> =
            crate::model::placement::view::group_tasks(&state, "default", GROUP)
                .unwrap()
                .into_iter()
                .map(|t| (t.task_arn, t.last_status))
                .collect();
        assert_eq!(cached, fresh);
        assert_eq!(cached.len(), 2);
        assert!(cached.contains(&(first.task_arn.clone(), "RUNNING".into())));

        state.commit(forget_ops(&second)).unwrap();
        assert_eq!(
            statuses(&mut h, &state),
            vec![(first.task_arn, "RUNNING".into())]
        );
        let held = if in_memory { 0 } else { 1 };
        assert_eq!(
            h.len(),
            held,
            "only the group asked for is cached, and none in memory"
        );
    }

    #[test]
    fn a_task_that_joins_after_the_read_fails_the_commit_that_relied_on_it() {
        for in_memory in [false, true] {
            joins_after_the_read(in_memory);
        }
    }

    fn joins_after_the_read(in_memory: bool) {
        let (_dir, state, td) = setup(in_memory);
        let mut h = Headers::default();
        launch(&state, &td, GROUP);
        let prefix = keys::group_tasks("default", GROUP);
        let mut tries = 0;
        let seen = state
            .update(|tx| {
                tries += 1;
                let (tasks, revision) = h.tasks(tx.state(), "default", GROUP)?;
                tx.require_unchanged_since(&prefix, revision);
                if tries == 1 {
                    // Another writer adds a task between this pass's read and its commit.
                    launch(tx.state(), &td, GROUP);
                }
                Ok((tasks.len(), vec![put("marker".into(), &Task::default())]))
            })
            .unwrap();
        assert_eq!(tries, 2, "the first commit must conflict");
        assert_eq!(seen, 2, "the retry sees the new task");
    }

    #[test]
    fn a_header_gives_back_the_task_arn_it_was_made_of() {
        let mut pool = Pool::default();
        let key = "task/default/abc";
        for arn in [
            "arn:aws:ecs:us-east-1:000000000000:task/default/abc",
            "arn:berth:ecs:local:000000000000:task/default/abc",
            "not-an-arn",
        ] {
            let h = TaskHeader {
                task_arn: arn.into(),
                ..Default::default()
            };
            assert_eq!(Header::of(h, key, &mut pool).task(key).task_arn, arn);
        }
    }

    #[test]
    fn catching_up_again_from_far_back_keeps_each_task_once() {
        let (_dir, state, td) = setup(false);
        let mut h = Headers::default();
        launch(&state, &td, GROUP);
        assert_eq!(statuses(&mut h, &state).len(), 1);
        // As if the cache had fallen behind the store's history.
        h.revision = Some(0);
        launch(&state, &td, GROUP);
        assert_eq!(statuses(&mut h, &state).len(), 2);
    }
}
