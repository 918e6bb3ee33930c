//! `berth cluster …`.

use crate::client::connect;
use crate::output::{self, Format, Table};
use berth_proto::v1::clusters_client::ClustersClient;
use berth_proto::v1::*;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Create a cluster (returns the existing one if the name is taken).
    Create { name: String },
    /// List active clusters.
    List,
    /// Show one cluster with its counts.
    Describe { name: String },
    /// Delete a cluster that has no services and no running tasks.
    Delete { name: String },
}

pub async fn run(cmd: ClusterCommand, server: &str, fmt: Format) -> anyhow::Result<()> {
    let mut client = ClustersClient::new(connect(server).await?);
    match cmd {
        ClusterCommand::Create { name } => {
            let reply = client
                .create_cluster(CreateClusterRequest { cluster_name: name })
                .await?
                .into_inner();
            show_one(&reply, fmt)
        }
        ClusterCommand::Describe { name } => {
            let reply = client
                .describe_cluster(DescribeClusterRequest { cluster: name })
                .await?
                .into_inner();
            show_one(&reply, fmt)
        }
        ClusterCommand::Delete { name } => {
            let reply = client
                .delete_cluster(DeleteClusterRequest { cluster: name })
                .await?
                .into_inner();
            show_one(&reply, fmt)
        }
        ClusterCommand::List => {
            let reply = client
                .list_clusters(ListClustersRequest {})
                .await?
                .into_inner();
            match fmt {
                Format::Json => output::json(&reply),
                Format::Table => {
                    table(&reply.clusters).print();
                    Ok(())
                }
            }
        }
    }
}

fn show_one(reply: &ClusterReply, fmt: Format) -> anyhow::Result<()> {
    match fmt {
        Format::Json => output::json(reply),
        Format::Table => {
            table(reply.cluster.as_slice()).print();
            Ok(())
        }
    }
}

fn table(clusters: &[Cluster]) -> Table {
    let mut t = Table::new(&["NAME", "STATUS", "NODES", "RUNNING", "PENDING", "SERVICES"]);
    for c in clusters {
        t.row(vec![
            c.cluster_name.clone(),
            c.status.clone(),
            c.registered_container_instances_count.to_string(),
            c.running_tasks_count.to_string(),
            c.pending_tasks_count.to_string(),
            c.active_services_count.to_string(),
        ]);
    }
    t
}
