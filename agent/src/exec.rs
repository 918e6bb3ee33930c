//! One `berth exec` on this node: asked for over the session stream, it dials the control plane
//! back (`AgentSessions/Exec`) on its own call, so the command's output never waits behind the
//! session's reports (nor they behind it), starts the command, and pumps stdin and resizes in,
//! output out, then the exit code.

use crate::runner;
use crate::runtime::{ContainerRuntime, Exec, ExecChunk, ExecSpec};
use berth_proto::agent::v1::agent_sessions_client::AgentSessionsClient;
use berth_proto::agent::v1::{ExecFrame, ExecRequest};
use berth_proto::v1::ExecOutput;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

/// How long after its output ends the engine may take to say a command's exit code.
const EXIT_CODE_WITHIN: Duration = Duration::from_secs(5);

pub async fn run<R: ContainerRuntime>(rt: Arc<R>, channel: Channel, req: ExecRequest) {
    let (up, up_rx) = mpsc::channel::<ExecFrame>(64);
    let frame = |output: Option<ExecOutput>, error: String| ExecFrame {
        exec_id: String::new(),
        output,
        error,
    };
    let _ = up
        .send(ExecFrame {
            exec_id: req.exec_id.clone(),
            ..Default::default()
        })
        .await;
    let mut down = match AgentSessionsClient::new(channel)
        .exec(ReceiverStream::new(up_rx))
        .await
    {
        Ok(r) => r.into_inner(),
        Err(e) => {
            tracing::warn!(exec = %req.exec_id, error = %e.message(), "cannot dial the control plane back for an exec");
            return;
        }
    };
    let spec = ExecSpec {
        command: req.command.clone(),
        tty: req.tty,
        stdin: req.stdin,
        size: req
            .size
            .map(|s| (clamp(s.rows), clamp(s.cols)))
            .filter(|(r, c)| *r > 0 && *c > 0),
    };
    let name = runner::container_name(&req.task_arn, &req.container);
    let Exec {
        id,
        mut output,
        mut input,
    } = match rt.exec(&name, &spec).await {
        Ok(e) => e,
        Err(e) => {
            let _ = up.send(frame(None, e.to_string())).await;
            return;
        }
    };
    tracing::info!(task = %req.task_arn, container = %req.container, exec = %id, "exec started");
    if let Some((rows, cols)) = spec.size {
        // The start size is in the create call; engines older than API 1.42 ignore it there.
        let _ = rt.exec_resize(&id, rows, cols).await;
    }
    let mut stdin_open = spec.stdin;
    loop {
        tokio::select! {
            chunk = output.next() => {
                let out = match chunk {
                    Some(Ok(ExecChunk::Stdout(b))) => ExecOutput { stdout: b, ..Default::default() },
                    Some(Ok(ExecChunk::Stderr(b))) => ExecOutput { stderr: b, ..Default::default() },
                    Some(Err(e)) => {
                        let _ = up.send(frame(None, e.to_string())).await;
                        return;
                    }
                    None => break,
                };
                if up.send(frame(Some(out), String::new())).await.is_err() {
                    return;
                }
            }
            m = down.next() => match m {
                Some(Ok(m)) => {
                    if stdin_open && !m.stdin.is_empty() {
                        let wrote = input.write_all(&m.stdin).await;
                        if wrote.and(input.flush().await).is_err() {
                            stdin_open = false;
                        }
                    }
                    if stdin_open && m.stdin_closed {
                        let _ = input.shutdown().await;
                        stdin_open = false;
                    }
                    if let Some(s) = m.resize.filter(|s| s.rows > 0 && s.cols > 0) {
                        if let Err(e) = rt.exec_resize(&id, clamp(s.rows), clamp(s.cols)).await {
                            tracing::debug!(exec = %id, error = %e, "resize refused");
                        }
                    }
                }
                // The control plane let go (the caller left): end stdin, so a shell ends too.
                _ => {
                    let _ = input.shutdown().await;
                    return;
                }
            },
        }
    }
    let code = exit_code(rt.as_ref(), &id).await;
    let last = match code {
        Some(c) => frame(
            Some(ExecOutput {
                exit_code: Some(i32::try_from(c).unwrap_or(255)),
                ..Default::default()
            }),
            String::new(),
        ),
        None => frame(
            None,
            format!("the engine did not say exec {id}'s exit code within 5 s"),
        ),
    };
    let _ = up.send(last).await;
    // Hold the call open until the control plane has the last frame and hangs up.
    let _ = tokio::time::timeout(Duration::from_secs(5), down.next()).await;
}

/// The exit code, once the engine has noticed the command ended (it can lag its output).
async fn exit_code<R: ContainerRuntime>(rt: &R, id: &str) -> Option<i64> {
    let deadline = tokio::time::Instant::now() + EXIT_CODE_WITHIN;
    loop {
        if let Ok(Some(code)) = rt.exec_exit_code(id).await {
            return Some(code);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn clamp(n: u32) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}
