//! `berth.v1.TaskDefinitions`.

use super::blocking;
use crate::model::taskdef;
use crate::state::error::Error;
use crate::state::State;
use berth_proto::v1::task_definitions_server::TaskDefinitions;
use berth_proto::v1::*;
use tonic::{Request, Response, Status};

pub struct TaskDefinitionsApi {
    pub state: State,
}

#[tonic::async_trait]
impl TaskDefinitions for TaskDefinitionsApi {
    async fn register_task_definition(
        &self,
        req: Request<RegisterTaskDefinitionRequest>,
    ) -> Result<Response<RegisterTaskDefinitionReply>, Status> {
        let req = req.into_inner();
        let reg = blocking(&self.state, move |s| {
            match (req.task_definition, req.task_definition_json.is_empty()) {
                (Some(_), false) => Err(Error::invalid(
                    "taskDefinition",
                    "send either taskDefinition or taskDefinitionJson, not both",
                )),
                (Some(td), true) => taskdef::register(s, td),
                (None, false) => taskdef::register_json(s, &req.task_definition_json),
                (None, true) => Err(Error::invalid(
                    "taskDefinition",
                    "is required (a TaskDefinition message, or its ECS JSON in taskDefinitionJson)",
                )),
            }
        })
        .await?;
        Ok(Response::new(RegisterTaskDefinitionReply {
            task_definition: Some(reg.task_definition),
            ignored_fields: reg.ignored_fields,
            warnings: reg.warnings,
        }))
    }

    async fn describe_task_definition(
        &self,
        req: Request<DescribeTaskDefinitionRequest>,
    ) -> Result<Response<TaskDefinitionReply>, Status> {
        let r = req.into_inner().task_definition;
        let td = blocking(&self.state, move |s| taskdef::describe(s, &r)).await?;
        Ok(Response::new(TaskDefinitionReply {
            task_definition: Some(td),
        }))
    }

    async fn list_task_definitions(
        &self,
        req: Request<ListTaskDefinitionsRequest>,
    ) -> Result<Response<ListTaskDefinitionsReply>, Status> {
        let r = req.into_inner();
        let task_definitions = blocking(&self.state, move |s| {
            taskdef::list(s, &r.family, &r.family_prefix, &r.status)
        })
        .await?;
        Ok(Response::new(ListTaskDefinitionsReply { task_definitions }))
    }

    async fn deregister_task_definition(
        &self,
        req: Request<DeregisterTaskDefinitionRequest>,
    ) -> Result<Response<TaskDefinitionReply>, Status> {
        let r = req.into_inner().task_definition;
        let td = blocking(&self.state, move |s| taskdef::deregister(s, &r)).await?;
        Ok(Response::new(TaskDefinitionReply {
            task_definition: Some(td),
        }))
    }
}
