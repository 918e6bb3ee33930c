//! RunTask through the store and the applier, with two nodes: a bind mount goes only to a node
//! whose agent allows its path (the paths come in the agent's hello), and a shared volume's
//! tasks follow the node that made it, until that node is lost.

use super::*;
use crate::store::LogStore;
use berth_core::capacity::{Room, Usage};
use berth_core::scheduler::NodeSnapshot;
use berth_proto::agent::v1::Hello;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The nodes as the sessions would give them, read afresh from the store; `down` are the
/// nodes whose agents are disconnected.
#[derive(Default)]
pub(crate) struct Nodes {
    down: Mutex<Vec<String>>,
}

impl Capacity for Nodes {
    fn snapshots(&self, state: &State, _: Freshness) -> Result<Vec<NodeSnapshot>> {
        let nodes = state.scan::<ContainerInstance>(keys::NODES)?;
        nodes
            .into_iter()
            .map(|n| {
                let claims = state.scan::<NodeClaim>(&keys::node_claims(&n.ec2_instance_id))?;
                let room = Room::of(&n, &claims);
                Ok(view::placement_snapshot(n, room))
            })
            .collect()
    }

    fn usage_of(
        &self,
        state: &State,
        ids: &[&str],
        _: Freshness,
    ) -> Result<(HashMap<String, Usage>, u64)> {
        let revision = state.store().revision()?;
        let mut usage = HashMap::new();
        for id in ids {
            let claims = state.scan::<NodeClaim>(&keys::node_claims(id))?;
            usage.insert(id.to_string(), Usage::of(&claims));
        }
        Ok((usage, revision))
    }

    fn mark_connected(&self, nodes: &mut [NodeSnapshot]) {
        let down = self.down.lock().unwrap();
        for n in nodes {
            n.connected = !down.iter().any(|d| **d == *n.id);
        }
    }
}

struct Fixture {
    state: State,
    nodes: Nodes,
    /// n1 allows no host path; n2 allows /srv.
    n1: String,
    n2: String,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let state = State::new(Arc::new(LogStore::open(dir.path()).unwrap()));
    clusters::create(&state, "demo").unwrap();
    let hello = |name: &str, paths: &[&str]| Hello {
        name: name.into(),
        cpu: 4096,
        memory_mib: 8192,
        allow_host_paths: paths.iter().map(|p| p.to_string()).collect(),
        ..Default::default()
    };
    let n1 = crate::model::nodes::register(&state, &hello("n1", &[])).unwrap();
    let n2 = crate::model::nodes::register(&state, &hello("n2", &["/srv"])).unwrap();
    assert_eq!(n2.allowed_host_paths, ["/srv"], "kept on the node record");
    Fixture {
        state,
        nodes: Nodes::default(),
        n1: n1.ec2_instance_id,
        n2: n2.ec2_instance_id,
        _dir: dir,
    }
}

impl Fixture {
    fn register(&self, family: &str, volume: Volume) -> String {
        let td = TaskDefinition {
            family: family.into(),
            container_definitions: vec![ContainerDefinition {
                name: "app".into(),
                image: "berth-demo:latest".into(),
                memory: 64,
                mount_points: vec![MountPoint {
                    source_volume: volume.name.clone(),
                    container_path: "/data".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            volumes: vec![volume],
            ..Default::default()
        };
        taskdef::register(&self.state, td).unwrap();
        family.into()
    }

    fn run(&self, family: &str, count: i32) -> RunTaskReply {
        let req = RunTaskRequest {
            cluster: "demo".into(),
            task_definition: family.into(),
            count,
            ..Default::default()
        };
        run(&self.state, &self.nodes, req).unwrap()
    }
}

fn nodes_of(reply: &RunTaskReply) -> Vec<String> {
    reply
        .tasks
        .iter()
        .map(|t| arn::last_segment(&t.container_instance_arn).to_string())
        .collect()
}

fn host(name: &str, path: &str) -> Volume {
    Volume {
        name: name.into(),
        host: Some(HostVolumeProperties {
            source_path: path.into(),
        }),
        ..Default::default()
    }
}

fn shared(autoprovision: bool) -> Volume {
    Volume {
        name: "data".into(),
        docker_volume_configuration: Some(DockerVolumeConfiguration {
            scope: "shared".into(),
            autoprovision: Some(autoprovision),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn a_bind_mount_is_placed_only_where_the_agent_allows_its_path() {
    let f = fixture();
    let inside = f.register("inside", host("h", "/srv/app"));
    assert_eq!(nodes_of(&f.run(&inside, 3)), vec![f.n2.clone(); 3]);

    let outside = f.register("outside", host("h", "/etc"));
    let reply = f.run(&outside, 1);
    assert!(reply.tasks.is_empty());
    assert_eq!(reply.failures.len(), 1);
    assert_eq!(reply.failures[0].reason, "HOST_PATH");
    assert!(
        reply.failures[0]
            .detail
            .contains("start its agent with --allow-host-path /etc"),
        "{:?}",
        reply.failures[0]
    );
}

#[test]
fn a_shared_volume_s_tasks_follow_its_node_until_it_is_lost() {
    let f = fixture();
    let fixed = f.register("fixed", shared(false));
    let first = nodes_of(&f.run(&fixed, 1));
    let home = first[0].clone();
    let key = keys::volume_home("demo", "data");
    let recorded = f.state.get::<VolumeHome>(&key).unwrap().unwrap();
    assert_eq!(
        recorded.node_id, home,
        "the placement recorded the volume's node"
    );
    assert_eq!(nodes_of(&f.run(&fixed, 4)), vec![home.clone(); 4]);

    f.nodes.down.lock().unwrap().push(home.clone());
    let reply = f.run(&fixed, 1);
    assert!(reply.tasks.is_empty(), "no empty volume elsewhere");
    assert_eq!(reply.failures[0].reason, "VOLUME");
    assert!(
        reply.failures[0].detail.contains("which is lost"),
        "{:?}",
        reply.failures[0]
    );

    let fresh = f.register("fresh", shared(true));
    let other = if home == f.n1 { &f.n2 } else { &f.n1 };
    assert_eq!(nodes_of(&f.run(&fresh, 1)), vec![other.clone()]);
    let moved = f.state.get::<VolumeHome>(&key).unwrap().unwrap();
    assert_eq!(
        &moved.node_id, other,
        "the volume now lives where it was made afresh"
    );
}
