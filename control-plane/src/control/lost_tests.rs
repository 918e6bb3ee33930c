//! Which ends of an agent's stream mark its node lost, and when.

use super::*;
use crate::live::sessions::Ended;
use crate::model::placement::apply::{build_task, create_ops, task_key};
use crate::model::taskdef;
use crate::store::LogStore;
use berth_core::scheduler::Demand;
use berth_proto::v1::{ContainerDefinition, TaskDefinition};
use std::sync::Arc;

const AFTER: LostAfter = LostAfter {
    timeout: Duration::from_secs(10),
    crash_grace: Duration::from_secs(3),
};

/// A store with node `n1` running one task; its key.
fn setup() -> (tempfile::TempDir, State, String) {
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
    let node = ContainerInstance {
        ec2_instance_id: "n1".into(),
        name: "n1".into(),
        container_instance_arn: berth_core::arn::container_instance("n1"),
        ..Default::default()
    };
    state.commit(vec![put(keys::node("n1"), &node)]).unwrap();
    let d = Demand::default();
    let t = build_task("default", &td, "n1", &d, "g".into(), "".into(), false);
    state.commit(create_ops(&t, &d)).unwrap();
    (dir, state, task_key(&t.task_arn).unwrap())
}

/// A session for `n1` that ended as `how`; when it ended.
fn ended(sessions: &Sessions, how: Ended) -> i64 {
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    let generation = sessions.attach("n1", tx);
    sessions.detach("n1", generation, how);
    sessions.last_seen("n1").unwrap()
}

fn stopped(state: &State, key: &str) -> Option<Task> {
    state.get::<Task>(key).unwrap().filter(|t| t.is_stopped())
}

#[test]
fn a_crashed_agent_is_lost_after_the_grace_and_a_silent_one_only_after_the_timeout() {
    let (_dir, state, key) = setup();
    let sessions = Sessions::new();
    let at = ended(&sessions, Ended::Crashed);
    assert_eq!(
        mark_lost_nodes(&state, &sessions, AFTER, at, at + 2_900).unwrap(),
        0
    );
    assert_eq!(
        mark_lost_nodes(&state, &sessions, AFTER, at, at + 3_100).unwrap(),
        1
    );
    let t = stopped(&state, &key).expect("the crashed node's task stopped");
    assert_eq!(t.stop_code, "NodeLost");
    assert!(
        t.stopped_reason.contains("without a goodbye"),
        "{}",
        t.stopped_reason
    );

    // Heartbeats missed on an open connection (a pause, a partition): the timeout, not the grace.
    let (_dir, state, key) = setup();
    let sessions = Sessions::new();
    let at = ended(&sessions, Ended::Silent);
    assert_eq!(
        mark_lost_nodes(&state, &sessions, AFTER, at, at + 9_000).unwrap(),
        0
    );
    assert!(stopped(&state, &key).is_none());
    assert_eq!(
        mark_lost_nodes(&state, &sessions, AFTER, at, at + 10_100).unwrap(),
        1
    );
    let t = stopped(&state, &key).expect("the silent node's task stopped");
    assert!(
        t.stopped_reason.contains("not been heard from for 10 s"),
        "{}",
        t.stopped_reason
    );
}

#[test]
fn a_goodbye_or_a_reconnect_within_the_grace_keeps_the_tasks() {
    // A planned stop (an upgrade): only the timeout applies.
    let (_dir, state, key) = setup();
    let sessions = Sessions::new();
    let at = ended(&sessions, Ended::Left);
    assert_eq!(
        mark_lost_nodes(&state, &sessions, AFTER, at, at + 9_000).unwrap(),
        0
    );
    assert!(stopped(&state, &key).is_none());

    // A crash the agent comes back from (restarted by systemd, a reset connection).
    let (_dir, state, key) = setup();
    let sessions = Sessions::new();
    let at = ended(&sessions, Ended::Crashed);
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    let generation = sessions.attach("n1", tx);
    assert_eq!(
        sessions.crashed_at("n1"),
        None,
        "a reconnect forgets the crash"
    );
    assert_eq!(
        mark_lost_nodes(&state, &sessions, AFTER, at, at + 5_000).unwrap(),
        0
    );
    // It then stops on purpose: still the timeout, from when it left.
    sessions.detach("n1", generation, Ended::Left);
    let left = sessions.last_seen("n1").unwrap();
    assert_eq!(
        mark_lost_nodes(&state, &sessions, AFTER, at, left + 5_000).unwrap(),
        0
    );
    assert!(stopped(&state, &key).is_none());
}

#[test]
fn the_controller_is_woken_when_the_first_grace_still_to_come_ends() {
    let sessions = Sessions::new();
    assert_eq!(sessions.next_crash_deadline(3_000, 0), None);
    let at = ended(&sessions, Ended::Crashed);
    assert_eq!(sessions.next_crash_deadline(3_000, at), Some(at + 3_000));
    assert_eq!(
        sessions.next_crash_deadline(3_000, at + 3_000),
        None,
        "past graces do not wake"
    );
}
