//! `berth.v1.Tasks`, including logs streamed from the agent that runs the task.

use super::blocking;
use crate::error::Error;
use crate::nodes::{new_id, Sessions};
use crate::state::State;
use crate::{arn, tasks};
use berth_proto::agent::v1::{server_message, LogCancel, LogRequest, ServerMessage};
use berth_proto::v1::tasks_server::Tasks;
use berth_proto::v1::*;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

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
        Ok(Response::new(TaskReply { task: Some(task) }))
    }

    async fn describe_task(
        &self,
        req: Request<DescribeTaskRequest>,
    ) -> Result<Response<TaskReply>, Status> {
        let r = req.into_inner();
        let task = blocking(&self.state, move |s| tasks::find(s, &r.cluster, &r.task)).await?;
        Ok(Response::new(TaskReply { task: Some(task) }))
    }

    async fn list_tasks(
        &self,
        req: Request<ListTasksRequest>,
    ) -> Result<Response<ListTasksReply>, Status> {
        let r = req.into_inner();
        let tasks = blocking(&self.state, move |s| tasks::list(s, &r)).await?;
        Ok(Response::new(ListTasksReply { tasks }))
    }

    type GetLogsStream = Pin<Box<dyn Stream<Item = Result<LogOutput, Status>> + Send>>;

    async fn get_logs(
        &self,
        req: Request<GetLogsRequest>,
    ) -> Result<Response<Self::GetLogsStream>, Status> {
        let r = req.into_inner();
        let (cluster, task) = (r.cluster.clone(), r.task.clone());
        let t = blocking(&self.state, move |s| tasks::find(s, &cluster, &task)).await?;
        let container = if r.container.is_empty() {
            t.containers
                .first()
                .map(|c| c.name.clone())
                .unwrap_or_default()
        } else if t.containers.iter().any(|c| c.name == r.container) {
            r.container.clone()
        } else {
            return Err(Error::invalid(
                "container",
                format!(
                    "{} is not a container of this task; it has {}",
                    crate::error::quote(&r.container),
                    t.containers
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .into());
        };
        let node_id = arn::last_segment(&t.container_instance_arn).to_string();
        let agent = self.sessions.sender(&node_id).ok_or_else(|| {
            Status::unavailable(format!(
                "the agent of node {node_id}, which runs this task, is not connected; logs are read through it"
            ))
        })?;
        let request_id = new_id(16);
        let (chunk_tx, mut chunk_rx) = mpsc::channel(64);
        self.sessions.add_log_waiter(&request_id, chunk_tx);
        let ask = ServerMessage {
            body: Some(server_message::Body::LogRequest(LogRequest {
                request_id: request_id.clone(),
                task_arn: t.task_arn.clone(),
                container,
                follow: r.follow,
                tail: r.tail,
            })),
        };
        if agent.send(Ok(ask)).await.is_err() {
            self.sessions.remove_log_waiter(&request_id);
            return Err(Status::unavailable("the agent disconnected"));
        }
        let (out_tx, out_rx) = mpsc::channel::<Result<LogOutput, Status>>(64);
        let sessions = self.sessions.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    biased;
                    chunk = chunk_rx.recv() => match chunk {
                        Some(c) if !c.error.is_empty() => {
                            let _ = out_tx.send(Err(Status::unavailable(c.error))).await;
                            break;
                        }
                        Some(c) => {
                            if !c.data.is_empty() && out_tx.send(Ok(LogOutput { data: c.data })).await.is_err() {
                                break;
                            }
                            if c.eof {
                                break;
                            }
                        }
                        None => break,
                    },
                    _ = out_tx.closed() => break,
                    // The agent's stream ended (it left, or the control plane is shutting down):
                    // no more chunks will come, so do not hold the caller's stream open.
                    _ = agent.closed() => {
                        let _ = out_tx.send(Err(Status::unavailable(
                            "the agent's stream ended before the logs did; try again",
                        ))).await;
                        break;
                    }
                }
            }
            sessions.remove_log_waiter(&request_id);
            // Tell the agent to stop reading (harmless if it already finished).
            let cancel = ServerMessage {
                body: Some(server_message::Body::LogCancel(LogCancel { request_id })),
            };
            let _ = agent.send(Ok(cancel)).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out_rx))))
    }
}
