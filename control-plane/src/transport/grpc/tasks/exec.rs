//! `Tasks/ExecTask`: a command in a running task's container. The handler checks the task,
//! asks the task's node's agent over its session stream to open the exec, waits for the agent
//! to dial back (`AgentSessions/Exec`, `live::exec`), and splices the two streams: the
//! caller's stdin and resizes down, the output and exit code up. The agent's session stream
//! carries only the request, so a command's output never queues behind it. Each exec, however
//! it ends, becomes an event on the task.

use super::logs::container_of;
use super::TasksApi;
use crate::live::exec::AgentExec;
use crate::model::auth::Access;
use crate::state::error::Error;
use crate::state::State;
use crate::transport::grpc::blocking;
use crate::{model::tasks, model::tasks::events};
use berth_core::arn;
use berth_core::ids::new_id;
use berth_proto::agent::v1::{server_message, ExecRequest, ServerMessage};
use berth_proto::v1::{ExecInput, ExecOutput, ExecStart, Task};
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

pub type ExecStream = Pin<Box<dyn Stream<Item = Result<ExecOutput, Status>> + Send>>;

/// How long the caller has to say what to run, and the agent to dial back.
const OPEN_WITHIN: Duration = Duration::from_secs(10);

pub async fn exec_task(
    api: &TasksApi,
    req: Request<Streaming<ExecInput>>,
) -> Result<Response<ExecStream>, Status> {
    let who = caller(&req);
    let mut input = req.into_inner();
    let start = tokio::time::timeout(OPEN_WITHIN, input.next())
        .await
        .map_err(|_| Status::deadline_exceeded("start: no command within 10 s"))?
        .transpose()?
        .and_then(|m| m.start)
        .ok_or_else(|| {
            Status::from(Error::invalid(
                "start",
                "the first ExecTask message must say what to run",
            ))
        })?;
    if start.command.iter().all(|a| a.trim().is_empty()) {
        return Err(Error::invalid(
            "command",
            "is empty: give the command after `--` (berth exec TASK -- sh)",
        )
        .into());
    }
    let (cluster, task) = (start.cluster.clone(), start.task.clone());
    let t = blocking(&api.state, move |s| tasks::find(s, &cluster, &task)).await?;
    let container = runnable(&t, &start)?;
    let node_id = arn::last_segment(&t.container_instance_arn).to_string();
    let agent = api.sessions.sender(&node_id).ok_or_else(|| {
        Status::unavailable(format!(
            "the agent of node {node_id}, which runs this task, is not connected; exec goes through it"
        ))
    })?;
    let exec_id = new_id(32);
    let delivered = api.sessions.expect_exec(&exec_id, &node_id);
    let ask = ServerMessage {
        body: Some(server_message::Body::ExecRequest(ExecRequest {
            exec_id: exec_id.clone(),
            task_arn: t.task_arn.clone(),
            container: container.clone(),
            command: start.command.clone(),
            tty: start.tty,
            stdin: start.stdin,
            size: start.size,
        })),
    };
    let opened = async {
        agent
            .send(Ok(ask))
            .await
            .map_err(|_| Status::unavailable("the agent disconnected"))?;
        tokio::time::timeout(OPEN_WITHIN, delivered)
            .await
            .map_err(|_| {
                Status::unavailable(format!(
                    "the agent of node {node_id} did not open the exec within 10 s"
                ))
            })?
            .map_err(|_| Status::unavailable("the agent disconnected"))
    }
    .await;
    let side = match opened {
        Ok(side) => side,
        Err(e) => {
            api.sessions.take_exec(&exec_id);
            return Err(e);
        }
    };
    let (out_tx, out_rx) = mpsc::channel(64);
    let record = Record {
        state: api.state.clone(),
        task_arn: t.task_arn.clone(),
        what: format!(
            "exec by {who} in container {container}: {}",
            shown(&start.command)
        ),
    };
    tokio::spawn(async move {
        let end = splice(input, side, &out_tx).await;
        record.ended(&end).await;
        if let End::Failed(status) = end {
            let _ = out_tx.send(Err(status)).await;
        }
    });
    Ok(Response::new(Box::pin(ReceiverStream::new(out_rx))))
}

/// The container to run in, if the task and it are running.
fn runnable(t: &Task, start: &ExecStart) -> Result<String, Status> {
    let id = tasks::task_id(&t.task_arn);
    if t.last_status != "RUNNING" || t.desired_status != "RUNNING" {
        return Err(Status::failed_precondition(format!(
            "task {id} is {} (desired {}); exec needs a RUNNING task (berth task list)",
            t.last_status, t.desired_status
        )));
    }
    let c = container_of(t, &start.container)?;
    if c.last_status != "RUNNING" {
        return Err(Status::failed_precondition(format!(
            "container {} of task {id} is {}; exec needs a running container",
            c.name, c.last_status
        )));
    }
    Ok(c.name.clone())
}

/// Who asked, for the task's event: the token's id (never its secret) and the peer address.
fn caller<T>(req: &Request<T>) -> String {
    let from = req
        .remote_addr()
        .map_or(String::new(), |a| format!(" from {}", a.ip()));
    let token = req
        .metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .and_then(berth_trust::token::ClientToken::parse);
    match (req.extensions().get::<Access>(), token) {
        (Some(Access::Token(role)), Some(t)) => format!("token {} ({}){from}", t.id, role.as_str()),
        _ => format!("a caller with auth off{from}"),
    }
}

/// The command as a user would type it (an argument with spaces or quotes in single quotes),
/// cut short.
fn shown(command: &[String]) -> String {
    let words: Vec<String> = command
        .iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect();
    crate::state::error::cut(&words.join(" "))
}

enum End {
    Exited(i32),
    Failed(Status),
    /// The caller hung up before the command ended.
    Abandoned,
}

/// Caller's input → agent; agent's output → caller, until the exit code, a failure, or either
/// side going away.
async fn splice(
    mut input: Streaming<ExecInput>,
    mut side: AgentExec,
    out: &mpsc::Sender<Result<ExecOutput, Status>>,
) -> End {
    let mut caller_open = true;
    loop {
        tokio::select! {
            m = input.next(), if caller_open => match m {
                Some(Ok(mut m)) => {
                    m.start = None;
                    if side.input.send(Ok(m)).await.is_err() {
                        return End::Failed(Status::unavailable("the agent's exec stream ended"));
                    }
                }
                // Half-closed: the caller sends nothing more but still reads.
                None => caller_open = false,
                Some(Err(_)) => return End::Abandoned,
            },
            f = side.frames.next() => match f {
                Some(Ok(f)) if !f.error.is_empty() => {
                    return End::Failed(Status::failed_precondition(f.error));
                }
                Some(Ok(f)) => {
                    let Some(o) = f.output else { continue };
                    let code = o.exit_code;
                    if out.send(Ok(o)).await.is_err() {
                        return End::Abandoned;
                    }
                    if let Some(code) = code {
                        return End::Exited(code);
                    }
                }
                Some(Err(e)) => {
                    return End::Failed(Status::unavailable(format!(
                        "the agent's exec stream broke: {}",
                        e.message()
                    )));
                }
                None => {
                    return End::Failed(Status::unavailable(
                        "the agent's exec stream ended before the command did",
                    ));
                }
            },
            _ = out.closed() => return End::Abandoned,
        }
    }
}

/// The task event an exec leaves.
struct Record {
    state: State,
    task_arn: String,
    what: String,
}

impl Record {
    async fn ended(self, end: &End) {
        let how = match end {
            End::Exited(code) => format!("exited {code}"),
            End::Failed(s) => format!("failed: {}", s.message()),
            End::Abandoned => "the caller went away before it ended".to_string(),
        };
        let message = format!("{}: {how}", self.what);
        let arn = self.task_arn.clone();
        let res = blocking(&self.state, move |s| events::record(s, &arn, &message)).await;
        if let Err(e) = res {
            tracing::warn!(task = %self.task_arn, error = %e.message(), "cannot record the exec's event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn the_recorded_command_reads_as_typed() {
        let cmd = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(shown(&cmd(&["cat", "/etc/hostname"])), "cat /etc/hostname");
        assert_eq!(
            shown(&cmd(&["sh", "-c", "echo it's; exit 3"])),
            r"sh -c 'echo it'\''s; exit 3'"
        );
    }
}
