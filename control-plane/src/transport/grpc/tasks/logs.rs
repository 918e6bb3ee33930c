//! `Tasks/GetLogs`: a task's output, read through the agent that runs it, one agent log request
//! per container, merged into one stream. With several containers each line starts with its
//! container's name (`web | …`); with `follow` the stream ends once every container has stopped.

use super::TasksApi;
use crate::live::sessions::{AgentTx, Sessions};
use crate::state::error::{quote, Error};
use crate::transport::grpc::blocking;
use crate::{model::tasks, time};
use berth_core::arn;
use berth_core::ids::new_id;
use berth_proto::agent::v1::{server_message, LogCancel, LogChunk, LogRequest, ServerMessage};
use berth_proto::v1::{GetLogsRequest, LogOutput, Task};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

pub type LogStream = Pin<Box<dyn Stream<Item = Result<LogOutput, Status>> + Send>>;

pub async fn get_logs(
    api: &TasksApi,
    req: Request<GetLogsRequest>,
) -> Result<Response<LogStream>, Status> {
    let r = req.into_inner();
    let since = match r.since.trim() {
        "" => 0,
        s => parse_since(s, time::now_millis())?,
    };
    let (cluster, task) = (r.cluster.clone(), r.task.clone());
    let t = blocking(&api.state, move |s| tasks::find(s, &cluster, &task)).await?;
    let containers = if r.container.is_empty() {
        t.containers.iter().map(|c| c.name.clone()).collect()
    } else {
        vec![container_of(&t, &r.container)?.name.clone()]
    };
    let node_id = arn::last_segment(&t.container_instance_arn).to_string();
    let agent = api.sessions.sender(&node_id).ok_or_else(|| {
        Status::unavailable(format!(
            "the agent of node {node_id}, which runs this task, is not connected; logs are read through it"
        ))
    })?;
    // One request per container; every chunk comes back on the same channel, told apart by id.
    let (chunk_tx, chunk_rx) = mpsc::channel(64);
    let mut by_request = HashMap::new();
    for name in &containers {
        let request_id = new_id(16);
        api.sessions.add_log_waiter(&request_id, chunk_tx.clone());
        by_request.insert(request_id.clone(), name.clone());
        let ask = ServerMessage {
            body: Some(server_message::Body::LogRequest(LogRequest {
                request_id,
                task_arn: t.task_arn.clone(),
                container: name.clone(),
                follow: r.follow,
                tail: r.tail,
                since,
                timestamps: r.timestamps,
            })),
        };
        if agent.send(Ok(ask)).await.is_err() {
            forget(&api.sessions, &agent, by_request.keys()).await;
            return Err(Status::unavailable("the agent disconnected"));
        }
    }
    let (out_tx, out_rx) = mpsc::channel::<Result<LogOutput, Status>>(64);
    let merge = Merge {
        sessions: api.sessions.clone(),
        agent,
        by_request,
        lines: Prefixer::new(containers.len() > 1),
    };
    tokio::spawn(merge.run(chunk_rx, out_tx));
    Ok(Response::new(Box::pin(ReceiverStream::new(out_rx))))
}

/// The named container of the task, or an error listing the ones it has.
pub fn container_of<'t>(t: &'t Task, name: &str) -> Result<&'t berth_proto::v1::Container, Status> {
    if name.is_empty() {
        return t.containers.first().ok_or_else(|| {
            Status::failed_precondition("the task has no containers yet; try again once it starts")
        });
    }
    t.containers.iter().find(|c| c.name == name).ok_or_else(|| {
        Error::invalid(
            "container",
            format!(
                "{} is not a container of this task; it has {}",
                quote(name),
                t.containers
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .into()
    })
}

/// The chunks of one GetLogs call, from every container's request, into the caller's stream.
struct Merge {
    sessions: Arc<Sessions>,
    agent: AgentTx,
    /// Request id → container name, for the requests not finished yet.
    by_request: HashMap<String, String>,
    lines: Prefixer,
}

impl Merge {
    async fn run(
        mut self,
        mut chunks: mpsc::Receiver<LogChunk>,
        out: mpsc::Sender<Result<LogOutput, Status>>,
    ) {
        let all: Vec<String> = self.by_request.keys().cloned().collect();
        while !self.by_request.is_empty() {
            tokio::select! {
                biased;
                chunk = chunks.recv() => {
                    let Some(c) = chunk else { break };
                    if !c.error.is_empty() {
                        let _ = out.send(Err(Status::unavailable(c.error))).await;
                        break;
                    }
                    let Some(container) = self.by_request.get(&c.request_id).cloned() else {
                        continue;
                    };
                    if c.eof {
                        self.by_request.remove(&c.request_id);
                    }
                    let data = self.lines.push(&container, &c.data, self.by_request.is_empty());
                    if !data.is_empty() && out.send(Ok(LogOutput { data, container })).await.is_err() {
                        break;
                    }
                }
                _ = out.closed() => break,
                // The agent's stream ended (it left, or the control plane is shutting down):
                // no more chunks will come, so do not hold the caller's stream open.
                _ = self.agent.closed() => {
                    let _ = out.send(Err(Status::unavailable(
                        "the agent's stream ended before the logs did; try again",
                    ))).await;
                    break;
                }
            }
        }
        forget(&self.sessions, &self.agent, all.iter()).await;
    }
}

/// Forgets the requests and tells the agent to stop reading (harmless if it already finished).
async fn forget(sessions: &Sessions, agent: &AgentTx, ids: impl Iterator<Item = &String>) {
    for request_id in ids {
        sessions.remove_log_waiter(request_id);
        let cancel = ServerMessage {
            body: Some(server_message::Body::LogCancel(LogCancel {
                request_id: request_id.clone(),
            })),
        };
        let _ = agent.send(Ok(cancel)).await;
    }
}

/// Starts each line with its container's name when several containers share the stream. A
/// chunk need not end at a line's end: a line another container interrupts is ended first.
struct Prefixer {
    several: bool,
    /// The container whose line is open (written without its newline yet).
    open: Option<String>,
}

impl Prefixer {
    fn new(several: bool) -> Self {
        Self {
            several,
            open: None,
        }
    }

    /// `data` from `container`, as it goes out; `last` ends an open line.
    fn push(&mut self, container: &str, data: &[u8], last: bool) -> Vec<u8> {
        if !self.several {
            return data.to_vec();
        }
        let mut out = Vec::with_capacity(data.len() + 16);
        if self.open.as_deref().is_some_and(|c| c != container) && !data.is_empty() {
            out.push(b'\n');
            self.open = None;
        }
        for line in data.split_inclusive(|b| *b == b'\n') {
            if self.open.is_none() {
                out.extend_from_slice(container.as_bytes());
                out.extend_from_slice(b" | ");
            }
            out.extend_from_slice(line);
            self.open = (!line.ends_with(b"\n")).then(|| container.to_string());
        }
        if last && self.open.take().is_some() {
            out.push(b'\n');
        }
        out
    }
}

/// `--since`: a duration back from `now_ms` (`90s`, `10m`, `1h30m`, `2d`) or an RFC 3339 time;
/// Unix seconds.
pub fn parse_since(s: &str, now_ms: i64) -> Result<i64, Error> {
    if let Some(ms) = time::parse_rfc3339(s) {
        return Ok(ms / 1000);
    }
    let bad = || {
        Error::invalid(
            "since",
            format!(
                "{} is neither a duration (90s, 10m, 1h30m, 2d) nor an RFC 3339 time (2026-12-01T10:00:00Z)",
                quote(s)
            ),
        )
    };
    let mut total_s: i64 = 0;
    let mut digits = String::new();
    for ch in s.chars() {
        if ch.is_ascii_digit() {
            digits.push(ch);
            continue;
        }
        let unit = match ch {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: i64 = digits.parse().map_err(|_| bad())?;
        total_s = n
            .checked_mul(unit)
            .and_then(|x| total_s.checked_add(x))
            .ok_or_else(bad)?;
        digits.clear();
    }
    if !digits.is_empty() || total_s == 0 && !s.starts_with('0') {
        return Err(bad());
    }
    Ok((now_ms / 1000 - total_s).max(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_durations_and_rfc3339_times() {
        let now = 1_800_000_000_000;
        assert_eq!(parse_since("90s", now).unwrap(), 1_800_000_000 - 90);
        assert_eq!(parse_since("1h30m", now).unwrap(), 1_800_000_000 - 5_400);
        assert_eq!(parse_since("2d", now).unwrap(), 1_800_000_000 - 172_800);
        let t = parse_since("2026-12-01T10:00:00Z", now).unwrap();
        assert_eq!(time::rfc3339(t * 1000), "2026-12-01T10:00:00.000Z");
        for bad in ["10", "m", "10x", "yesterday", "-5m"] {
            let e = parse_since(bad, now).unwrap_err().to_string();
            assert!(e.contains("since:") && e.contains("90s"), "{bad}: {e}");
        }
    }

    #[test]
    fn several_containers_get_their_name_on_every_line() {
        let mut p = Prefixer::new(true);
        assert_eq!(p.push("web", b"a\nb", false), b"web | a\nweb | b");
        // Another container interrupts web's open line: it is ended first.
        assert_eq!(p.push("db", b"c\n", false), b"\ndb | c\n");
        assert_eq!(p.push("web", b"d", true), b"web | d\n");
        let mut one = Prefixer::new(false);
        assert_eq!(one.push("web", b"a\nb", true), b"a\nb");
    }
}
