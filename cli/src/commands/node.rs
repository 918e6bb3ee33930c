//! `berth node …`.

use crate::client::connect;
use crate::output::{self, Format, Table};
use berth_proto::v1::node_admin_client::NodeAdminClient;
use berth_proto::v1::nodes_client::NodesClient;
use berth_proto::v1::*;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Nodes, connected or not, with registered and remaining resources.
    List,
    /// One node by id, name or ARN.
    Describe { node: String },
    /// DRAINING: no new placements; its service tasks are replaced elsewhere.
    Drain { node: String },
    /// Back to ACTIVE.
    Activate { node: String },
    /// Revokes the node's certificate (by id or name): refused at once, its stream closed, no
    /// renewal. Its tasks are replaced elsewhere as for a lost node. Needs the admin token.
    Revoke {
        node: String,
        /// Why (kept with the revocation and shown to the refused agent).
        #[arg(long, default_value = "")]
        reason: String,
    },
}

fn res(list: &[Resource], name: &str) -> i64 {
    list.iter()
        .find(|r| r.name == name)
        .map_or(0, |r| r.integer_value)
}

pub async fn run(cmd: NodeCommand, server: &str, fmt: Format) -> anyhow::Result<()> {
    let channel = connect(server).await?;
    let mut client = NodesClient::new(channel.clone());
    let nodes = match cmd {
        NodeCommand::Drain { node } | NodeCommand::Activate { node } if false => {
            let _ = node;
            unreachable!()
        }
        NodeCommand::Drain { ref node } | NodeCommand::Activate { ref node } => {
            let status = if matches!(cmd, NodeCommand::Drain { .. }) {
                "DRAINING"
            } else {
                "ACTIVE"
            };
            let reply = NodeAdminClient::new(channel)
                .update_node_status(UpdateNodeStatusRequest {
                    node: node.clone(),
                    status: status.into(),
                })
                .await?
                .into_inner();
            if fmt == Format::Json {
                return output::json(&reply);
            }
            reply.container_instance.into_iter().collect()
        }
        NodeCommand::List => {
            let reply = client.list_nodes(ListNodesRequest {}).await?.into_inner();
            if fmt == Format::Json {
                return output::json(&reply);
            }
            reply.container_instances
        }
        NodeCommand::Revoke { node, reason } => {
            let revoke = super::cert::CertCommand::Revoke {
                identity: node,
                reason,
            };
            return super::cert::run(revoke, server, fmt).await;
        }
        NodeCommand::Describe { node } => {
            let reply = client
                .describe_node(DescribeNodeRequest { node })
                .await?
                .into_inner();
            if fmt == Format::Json {
                return output::json(&reply);
            }
            reply.container_instance.into_iter().collect()
        }
    };
    let mut t = Table::new(&[
        "ID",
        "NAME",
        "STATUS",
        "CONNECTED",
        "ADDRESS",
        "CPU FREE/TOTAL",
        "MEMORY FREE/TOTAL",
        "RUNNING",
        "PENDING",
    ]);
    for n in &nodes {
        t.row(vec![
            n.ec2_instance_id.clone(),
            n.name.clone(),
            n.status.clone(),
            n.agent_connected.to_string(),
            n.address.clone(),
            format!(
                "{}/{}",
                res(&n.remaining_resources, "CPU"),
                res(&n.registered_resources, "CPU")
            ),
            format!(
                "{}/{}",
                res(&n.remaining_resources, "MEMORY"),
                res(&n.registered_resources, "MEMORY")
            ),
            n.running_tasks_count.to_string(),
            n.pending_tasks_count.to_string(),
        ]);
    }
    t.print();
    Ok(())
}
