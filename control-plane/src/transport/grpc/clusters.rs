//! `berth.v1.Clusters`.

use super::blocking;
use crate::model::clusters;
use crate::state::State;
use berth_proto::v1::clusters_server::Clusters;
use berth_proto::v1::*;
use tonic::{Request, Response, Status};

pub struct ClustersApi {
    pub state: State,
}

#[tonic::async_trait]
impl Clusters for ClustersApi {
    async fn create_cluster(
        &self,
        req: Request<CreateClusterRequest>,
    ) -> Result<Response<ClusterReply>, Status> {
        let name = req.into_inner().cluster_name;
        let cluster = blocking(&self.state, move |s| clusters::create(s, &name)).await?;
        Ok(Response::new(ClusterReply {
            cluster: Some(cluster),
        }))
    }

    async fn describe_cluster(
        &self,
        req: Request<DescribeClusterRequest>,
    ) -> Result<Response<ClusterReply>, Status> {
        let name = req.into_inner().cluster;
        let cluster = blocking(&self.state, move |s| clusters::describe(s, &name)).await?;
        Ok(Response::new(ClusterReply {
            cluster: Some(cluster),
        }))
    }

    async fn list_clusters(
        &self,
        _req: Request<ListClustersRequest>,
    ) -> Result<Response<ListClustersReply>, Status> {
        let clusters = blocking(&self.state, clusters::list).await?;
        Ok(Response::new(ListClustersReply { clusters }))
    }

    async fn delete_cluster(
        &self,
        req: Request<DeleteClusterRequest>,
    ) -> Result<Response<ClusterReply>, Status> {
        let name = req.into_inner().cluster;
        let cluster = blocking(&self.state, move |s| clusters::delete(s, &name)).await?;
        Ok(Response::new(ClusterReply {
            cluster: Some(cluster),
        }))
    }
}
