//! A schedule's tick through the store: its tasks start once, a repeated or stale tick starts
//! nothing, and a deposed leader's tick writes nothing.

use super::fire::{fire, Tick};
use super::*;
use crate::model::tasks::data_tests::Nodes;
use crate::model::{clusters, taskdef};
use crate::store::{Compare, LogStore};
use berth_proto::agent::v1::Hello;
use berth_proto::v1::{ContainerDefinition, RunTaskRequest, Task, TaskDefinition};
use std::sync::Arc;

const T0: i64 = 1_800_000_000_000;

fn fixture() -> (State, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let state = State::new(Arc::new(LogStore::open(dir.path()).unwrap()));
    clusters::create(&state, "demo").unwrap();
    let hello = Hello {
        name: "n1".into(),
        cpu: 4096,
        memory_mib: 8192,
        ..Default::default()
    };
    crate::model::nodes::register(&state, &hello).unwrap();
    let td = TaskDefinition {
        family: "job".into(),
        container_definitions: vec![ContainerDefinition {
            name: "app".into(),
            image: "berth-demo:latest".into(),
            memory: 64,
            ..Default::default()
        }],
        ..Default::default()
    };
    taskdef::register(&state, td).unwrap();
    let rule = Schedule {
        kind: RULE.into(),
        name: "nightly".into(),
        group: DEFAULT_GROUP.into(),
        expression: "cron(* * * * ? *)".into(),
        state: "ENABLED".into(),
        ..Default::default()
    };
    put_definition(&state, rule, Write::Upsert, T0).unwrap();
    let target = ScheduleTarget {
        id: "t1".into(),
        json: "{}".into(),
        run: Some(RunTaskRequest {
            cluster: "demo".into(),
            task_definition: "job".into(),
            count: 2,
            ..Default::default()
        }),
    };
    put_targets(&state, "nightly", vec![target]).unwrap();
    (state, dir)
}

fn tasks(state: &State) -> Vec<Task> {
    state.scan::<Task>(keys::TASKS).unwrap()
}

#[test]
fn a_tick_starts_its_tasks_once() {
    let (state, _dir) = fixture();
    let key = keys::schedule(RULE, DEFAULT_GROUP, "nightly");
    let tick = T0 + 60_000;
    let run = fire(&state, &Nodes::default(), &key, tick, tick + 300, Tick::Run)
        .unwrap()
        .expect("the tick runs");
    assert_eq!(run.task_arns.len(), 2, "{run:?}");
    let started = tasks(&state);
    assert_eq!(started.len(), 2);
    assert!(started
        .iter()
        .all(|t| t.started_by == "events-rule/nightly"));
    assert!(started.iter().all(|t| t.group == "family:job"));
    // The same tick again (a second replica, a retry): nothing more.
    assert!(
        fire(&state, &Nodes::default(), &key, tick, tick + 900, Tick::Run)
            .unwrap()
            .is_none()
    );
    assert_eq!(tasks(&state).len(), 2);
    let s = get(&state, RULE, DEFAULT_GROUP, "nightly").unwrap();
    assert_eq!(s.last_tick_ms, tick);
    assert_eq!(s.runs.len(), 1);
}

#[test]
fn a_deposed_leaders_tick_writes_nothing() {
    let (state, _dir) = fixture();
    let key = keys::schedule(RULE, DEFAULT_GROUP, "nightly");
    // The fence names a leader key revision that is not the store's: this replica was deposed.
    let deposed = state.fenced(Some(Compare::ModRevision {
        key: "election/leader".into(),
        revision: 12345,
    }));
    let tick = T0 + 60_000;
    let err = fire(&deposed, &Nodes::default(), &key, tick, tick, Tick::Run).unwrap_err();
    assert!(err.to_string().contains("no longer leads"), "{err}");
    assert!(tasks(&state).is_empty(), "no task started");
    let s = get(&state, RULE, DEFAULT_GROUP, "nightly").unwrap();
    assert_eq!(s.last_tick_ms, T0 - 1, "the tick is still owed");
}

#[test]
fn a_missed_tick_is_recorded_and_starts_nothing() {
    let (state, _dir) = fixture();
    let key = keys::schedule(RULE, DEFAULT_GROUP, "nightly");
    let tick = T0 + 60_000;
    let run = fire(
        &state,
        &Nodes::default(),
        &key,
        tick,
        tick + 3_600_000,
        Tick::Missed,
    )
    .unwrap()
    .unwrap();
    assert!(run.task_arns.is_empty());
    assert!(run.failures[0].starts_with("missed"), "{run:?}");
    assert!(tasks(&state).is_empty());
    assert_eq!(
        get(&state, RULE, DEFAULT_GROUP, "nightly")
            .unwrap()
            .last_tick_ms,
        tick
    );
}

#[test]
fn bad_definitions_name_their_fields_and_write_nothing() {
    let (state, _dir) = fixture();
    let bad = Schedule {
        kind: SCHEDULE.into(),
        name: "bad name".into(),
        group: DEFAULT_GROUP.into(),
        expression: "cron(0 12 * * * *)".into(),
        timezone: "Mars/Olympus".into(),
        state: "ON".into(),
        flexible_mode: "FLEXIBLE".into(),
        ..Default::default()
    };
    let err = put_definition(&state, bad, Write::Create, T0)
        .unwrap_err()
        .to_string();
    for field in [
        "Name",
        "ScheduleExpression",
        "ScheduleExpressionTimezone",
        "State",
        "FlexibleTimeWindow.MaximumWindowInMinutes",
    ] {
        assert!(err.contains(field), "{field} in {err}");
    }
    assert!(list(&state, SCHEDULE).unwrap().is_empty());
}
