//! `berth.v1.Tasks`: run, stop, describe (with the task's events), list; logs (`logs`) and exec
//! (`exec`) go through the agent that runs the task.

mod exec;
mod logs;

use super::blocking;
use crate::live::sessions::Sessions;
use crate::state::State;
use crate::{model::tasks, model::tasks::events};
use berth_proto::v1::tasks_server::Tasks;
use berth_proto::v1::*;
use std::sync::Arc;
use tonic::{Request, Response, Status, Streaming};

pub struct TasksApi {
    pub state: State,
    pub sessions: Arc<Sessions>,
}

#[tonic::async_trait]
impl Tasks for TasksApi {
    async fn run_task(
        &self,
        req: Request<RunTaskRequest>,
    ) -> Result<Response<RunTaskReply>, Status> {
        let req = req.into_inner();
        let sessions = self.sessions.clone();
        let reply = blocking(&self.state, move |s| tasks::run(s, &sessions, req)).await?;
        Ok(Response::new(reply))
    }

    async fn stop_task(
        &self,
        req: Request<StopTaskRequest>,
    ) -> Result<Response<TaskReply>, Status> {
        let r = req.into_inner();
        let task = blocking(&self.state, move |s| {
            tasks::stop(s, &r.cluster, &r.task, &r.reason)
        })
        .await?;
        Ok(Response::new(TaskReply {
            task: Some(task),
            events: Vec::new(),
        }))
    }

    async fn describe_task(
        &self,
        req: Request<DescribeTaskRequest>,
    ) -> Result<Response<TaskReply>, Status> {
        let r = req.into_inner();
        let (task, events) = blocking(&self.state, move |s| {
            let task = tasks::find(s, &r.cluster, &r.task)?;
            let events = events::list(s, &task.task_arn)?;
            Ok((task, events))
        })
        .await?;
        Ok(Response::new(TaskReply {
            task: Some(task),
            events,
        }))
    }

    async fn list_tasks(
        &self,
        req: Request<ListTasksRequest>,
    ) -> Result<Response<ListTasksReply>, Status> {
        let r = req.into_inner();
        let tasks = blocking(&self.state, move |s| tasks::list(s, &r)).await?;
        Ok(Response::new(ListTasksReply { tasks }))
    }

    async fn list_schedules(
        &self,
        req: Request<ListSchedulesRequest>,
    ) -> Result<Response<ListSchedulesReply>, Status> {
        let r = req.into_inner();
        let schedules = blocking(&self.state, move |s| {
            crate::model::schedules::view::list(s, &r, crate::time::now_millis())
        })
        .await?;
        Ok(Response::new(ListSchedulesReply { schedules }))
    }

    type GetLogsStream = logs::LogStream;

    async fn get_logs(
        &self,
        req: Request<GetLogsRequest>,
    ) -> Result<Response<Self::GetLogsStream>, Status> {
        logs::get_logs(self, req).await
    }

    type ExecTaskStream = exec::ExecStream;

    async fn exec_task(
        &self,
        req: Request<Streaming<ExecInput>>,
    ) -> Result<Response<Self::ExecTaskStream>, Status> {
        exec::exec_task(self, req).await
    }
}
