//! Nothing acknowledged is lost: SIGKILL right after 200 acknowledged registrations (and some
//! cluster writes), restart on the same data directory, find every one of them.

mod common;

use berth_proto::v1::clusters_client::ClustersClient;
use berth_proto::v1::task_definitions_client::TaskDefinitionsClient;
use berth_proto::v1::*;
use common::ServerProcess;
use std::collections::BTreeSet;

const REGISTRATIONS: usize = 200;
const WRITERS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_200_acknowledged_registrations_loses_none() {
    let data = tempfile::tempdir().unwrap();
    let mut dev = ServerProcess::start("dev", data.path());
    let channel = tonic::transport::Channel::from_shared(dev.grpc.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    ClustersClient::new(channel.clone())
        .create_cluster(CreateClusterRequest {
            cluster_name: "durable".into(),
        })
        .await
        .unwrap();

    // Several concurrent writers, so acknowledgements interleave as they would in real use.
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let channel = channel.clone();
        writers.push(tokio::spawn(async move {
            let mut client = TaskDefinitionsClient::new(channel);
            let mut acked = Vec::new();
            for i in 0..REGISTRATIONS / WRITERS {
                let json = format!(
                    r#"{{"family":"fam{}","containerDefinitions":[{{"name":"c","image":"img:{w}-{i}"}}]}}"#,
                    i % 5
                );
                let reply = client
                    .register_task_definition(RegisterTaskDefinitionRequest {
                        task_definition: None,
                        task_definition_json: json,
                    })
                    .await
                    .expect("registration acknowledged")
                    .into_inner()
                    .task_definition
                    .unwrap();
                acked.push((reply.family, reply.revision, reply.container_definitions[0].image.clone()));
            }
            acked
        }));
    }
    let mut acked = BTreeSet::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    assert_eq!(acked.len(), REGISTRATIONS);
    dev.kill9();

    let dev = ServerProcess::start("dev", data.path());
    let channel = tonic::transport::Channel::from_shared(dev.grpc.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let stored: BTreeSet<(String, i32, String)> = TaskDefinitionsClient::new(channel.clone())
        .list_task_definitions(ListTaskDefinitionsRequest {
            status: "ALL".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .task_definitions
        .into_iter()
        .map(|t| {
            (
                t.family,
                t.revision,
                t.container_definitions[0].image.clone(),
            )
        })
        .collect();
    let lost: Vec<_> = acked.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "lost {} acknowledged registrations: {lost:?}",
        lost.len()
    );
    assert_eq!(stored.len(), REGISTRATIONS);
    // Revisions per family are exactly 1..=40: none skipped, none doubled.
    for f in 0..5 {
        let revs: Vec<i32> = stored
            .iter()
            .filter(|(fam, _, _)| *fam == format!("fam{f}"))
            .map(|(_, r, _)| *r)
            .collect();
        assert_eq!(revs, (1..=(REGISTRATIONS / 5) as i32).collect::<Vec<_>>());
    }
    let cluster = ClustersClient::new(channel)
        .describe_cluster(DescribeClusterRequest {
            cluster: "durable".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .cluster
        .unwrap();
    assert_eq!(cluster.status, "ACTIVE");
}
