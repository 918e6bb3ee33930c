//! `berth.v1.Stacks`: apply, delete, describe and list stacks.

use super::blocking;
use crate::model::stacks;
use crate::state::State;
use berth_proto::v1::stacks_server::Stacks;
use berth_proto::v1::*;
use tonic::{Request, Response, Status};

pub struct StacksApi {
    pub state: State,
}

#[tonic::async_trait]
impl Stacks for StacksApi {
    async fn apply_stack(
        &self,
        req: Request<ApplyStackRequest>,
    ) -> Result<Response<StackReply>, Status> {
        let r = req.into_inner();
        Ok(Response::new(
            blocking(&self.state, move |s| stacks::apply(s, r)).await?,
        ))
    }

    async fn delete_stack(
        &self,
        req: Request<DeleteStackRequest>,
    ) -> Result<Response<StackReply>, Status> {
        let r = req.into_inner();
        Ok(Response::new(
            blocking(&self.state, move |s| stacks::delete(s, r)).await?,
        ))
    }

    async fn describe_stack(
        &self,
        req: Request<DescribeStackRequest>,
    ) -> Result<Response<StackReply>, Status> {
        let r = req.into_inner();
        Ok(Response::new(
            blocking(&self.state, move |s| stacks::describe(s, r)).await?,
        ))
    }

    async fn list_stacks(
        &self,
        req: Request<ListStacksRequest>,
    ) -> Result<Response<ListStacksReply>, Status> {
        let r = req.into_inner();
        Ok(Response::new(
            blocking(&self.state, move |s| stacks::list(s, r)).await?,
        ))
    }
}
