//! `berth.v1.Nodes`.

use super::blocking;
use crate::live::sessions::Sessions;
use crate::state::State;
use berth_proto::v1::nodes_server::Nodes;
use berth_proto::v1::*;
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct NodesApi {
    pub state: State,
    pub sessions: Arc<Sessions>,
}

#[tonic::async_trait]
impl Nodes for NodesApi {
    async fn list_nodes(
        &self,
        _req: Request<ListNodesRequest>,
    ) -> Result<Response<ListNodesReply>, Status> {
        let sessions = self.sessions.clone();
        let container_instances = blocking(&self.state, move |s| {
            crate::model::nodes::list(s, &sessions)
        })
        .await?;
        Ok(Response::new(ListNodesReply {
            container_instances,
        }))
    }

    async fn describe_node(
        &self,
        req: Request<DescribeNodeRequest>,
    ) -> Result<Response<NodeReply>, Status> {
        let node = req.into_inner().node;
        let sessions = self.sessions.clone();
        let n = blocking(&self.state, move |s| {
            crate::model::nodes::describe(s, &sessions, &node)
        })
        .await?;
        Ok(Response::new(NodeReply {
            container_instance: Some(n),
        }))
    }
}
