//! `berth.agent.v1.AgentSessions`: one stream per agent. The node's whole desired task set goes
//! down whenever it changes (and on a periodic resync); reports come up and are applied as
//! observed state only.

use crate::live::desired::NodeDesired;
use crate::live::push::Push;
use crate::live::sessions::{self, Ended, Sessions};
use crate::live::shutting_down;
use crate::state::State;
use crate::transport::grpc::{blocking, until_shutdown};
use berth_proto::agent::v1::agent_sessions_server::AgentSessions;
use berth_proto::agent::v1::*;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

/// The log target this module had as `crate::nodes::stream`, kept so the filters users wrote
/// (`RUST_LOG=berth_control_plane::nodes=info`) still select its lines.
const LOG_TARGET: &str = "berth_control_plane::nodes::stream";

/// Timings of agent sessions.
#[derive(Debug, Clone, Copy)]
pub struct SessionTimings {
    pub heartbeat: Duration,
    /// An agent silent for this long is treated as gone.
    pub heartbeat_timeout: Duration,
    pub resync: Duration,
}

impl Default for SessionTimings {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(2),
            heartbeat_timeout: Duration::from_secs(6),
            resync: Duration::from_secs(10),
        }
    }
}

pub struct AgentSessionsApi {
    pub state: State,
    pub sessions: Arc<Sessions>,
    pub timings: SessionTimings,
    /// Turns true when the control plane shuts down: every session then ends.
    pub stop: watch::Receiver<bool>,
}

type ServerStream = Pin<Box<dyn Stream<Item = Result<ServerMessage, Status>> + Send>>;

fn msg(body: server_message::Body) -> ServerMessage {
    ServerMessage { body: Some(body) }
}

type ExecInputStream =
    Pin<Box<dyn Stream<Item = Result<berth_proto::v1::ExecInput, Status>> + Send>>;

#[tonic::async_trait]
impl AgentSessions for AgentSessionsApi {
    type SessionStream = ServerStream;
    type ExecStream = ExecInputStream;

    /// An agent dialling back for an exec the control plane asked of it: the first frame names
    /// the exec; the call is handed to the handler waiting for it (`live::exec`).
    async fn exec(
        &self,
        req: Request<Streaming<ExecFrame>>,
    ) -> Result<Response<Self::ExecStream>, Status> {
        let peer = req.extensions().get::<berth_trust::PeerIdentity>().cloned();
        let mut frames = req.into_inner();
        let first = tokio::time::timeout(Duration::from_secs(10), frames.message())
            .await
            .map_err(|_| Status::deadline_exceeded("no exec id within 10 s"))??
            .ok_or_else(|| {
                Status::invalid_argument("execId: the first frame must name the exec")
            })?;
        let pending = self.sessions.take_exec(&first.exec_id).ok_or_else(|| {
            Status::not_found(format!(
                "execId: {} is not waiting (it ended, timed out, or was asked of another server)",
                crate::state::error::quote(&first.exec_id)
            ))
        })?;
        if let Some(p) = peer.filter(|p| p.id != pending.node_id) {
            return Err(Status::permission_denied(format!(
                "the exec was asked of node {}, not of this certificate's node ({p})",
                pending.node_id
            )));
        }
        let (input, rx) = tokio::sync::mpsc::channel(64);
        pending
            .deliver
            .send(crate::live::exec::AgentExec { frames, input })
            .map_err(|_| Status::cancelled("the exec's caller went away"))?;
        Ok(Response::new(until_shutdown(rx, self.stop.clone())))
    }

    async fn task_protection(
        &self,
        req: Request<TaskProtectionRequest>,
    ) -> Result<Response<TaskProtectionReply>, Status> {
        let peer = req.extensions().get::<berth_trust::PeerIdentity>().cloned();
        let reply = super::task_protection::answer(&self.state, peer, req.into_inner()).await?;
        Ok(Response::new(reply))
    }

    async fn session(
        &self,
        req: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        // With TLS the node is who its certificate says, whatever the hello claims.
        let peer = req.extensions().get::<berth_trust::PeerIdentity>().cloned();
        let mut inbound = req.into_inner();
        let first = tokio::time::timeout(Duration::from_secs(10), inbound.message())
            .await
            .map_err(|_| Status::deadline_exceeded("no hello within 10 s"))??;
        let Some(AgentMessage {
            body: Some(agent_message::Body::Hello(mut hello)),
        }) = first
        else {
            return Err(Status::invalid_argument(
                "the first message on an agent stream must be a hello",
            ));
        };
        if let Some(p) = peer {
            if !hello.node_id.is_empty() && hello.node_id != p.id {
                return Err(Status::permission_denied(format!(
                    "hello.nodeId: {} is not this certificate's node ({p})",
                    hello.node_id
                )));
            }
            hello.node_id = p.id;
        }
        if let Some(why) = berth_core::limits::nodes_full(self.sessions.connected_count())
            .filter(|_| !self.sessions.is_connected(&hello.node_id))
        {
            return Err(Status::resource_exhausted(why));
        }
        let deltas = hello
            .capabilities
            .iter()
            .any(|c| c == sessions::DESIRED_TASKS_CHANGE);
        let node = blocking(&self.state, move |s| {
            crate::model::nodes::register(s, &hello)
        })
        .await?;
        let node_id = node.ec2_instance_id.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        let welcome = Welcome {
            node_id: node_id.clone(),
            container_instance_arn: node.container_instance_arn.clone(),
            heartbeat_interval_ms: self.timings.heartbeat.as_millis() as i32,
            usage_interval_ms: crate::live::sessions::USAGE_INTERVAL.as_millis() as i32,
        };
        let _ = tx
            .send(Ok(msg(server_message::Body::Welcome(welcome))))
            .await;
        let generation = self.sessions.attach(&node_id, tx.clone());
        tracing::info!(target: LOG_TARGET, node = %node.name, id = %node_id, address = %node.address, "agent connected");

        let ended = tx.clone();
        let pusher = tokio::spawn(push_desired(
            self.state.clone(),
            self.sessions.push(&self.state).clone(),
            node_id.clone(),
            tx,
            self.timings.resync,
            deltas,
        ));
        let (sessions, timings) = (self.sessions.clone(), self.timings);
        let mut stop = self.stop.clone();
        let reports = self.sessions.reports(&self.state).clone();
        tokio::spawn(async move {
            let how = loop {
                let next = tokio::select! {
                    n = tokio::time::timeout(timings.heartbeat_timeout, inbound.message()) => n,
                    // Dropping `inbound` lets the connection close as soon as the reply ends.
                    _ = shutting_down(&mut stop) => break Ended::Left,
                    // The reply stream ended: its connection went away (or its certificate
                    // was revoked, `Sessions::end`, which has removed the session already).
                    _ = ended.closed() => break Ended::Crashed,
                };
                let m = match next {
                    Ok(Ok(Some(m))) => m,
                    Ok(Ok(None)) => break Ended::Crashed,
                    Ok(Err(e)) => {
                        tracing::info!(target: LOG_TARGET, node = %node_id, error = %e, "agent stream ended");
                        break Ended::Crashed;
                    }
                    Err(_) => {
                        tracing::warn!(target: LOG_TARGET, node = %node_id, "agent missed its heartbeats; disconnecting it");
                        break Ended::Silent;
                    }
                };
                sessions.heartbeat(&node_id);
                match m.body {
                    Some(agent_message::Body::TaskReport(r)) => {
                        reports.send(&node_id, r).await;
                    }
                    Some(agent_message::Body::LogChunk(c)) => {
                        if let Some(w) = sessions.log_waiter(&c.request_id) {
                            let _ = w.send(c).await;
                        }
                    }
                    Some(agent_message::Body::Heartbeat(h)) => {
                        sessions.record_usage(&node_id, h.task_usage, crate::time::now_millis());
                    }
                    Some(agent_message::Body::Goodbye(_)) => break Ended::Left,
                    Some(agent_message::Body::Hello(_)) | None => {}
                }
            };
            pusher.abort();
            sessions.detach(&node_id, generation, how);
            tracing::info!(target: LOG_TARGET, node = %node_id, ended = ?how, "agent disconnected");
        });
        Ok(Response::new(until_shutdown(rx, self.stop.clone())))
    }
}

/// Desired sets computed at once, across every node: a burst that touches thousands of nodes
/// queues here rather than filling the blocking pool.
static COMPUTING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

/// Resync ticks between a pusher's full re-reads of its node's set (30 s at the default 2 s).
const FULL_READ_TICKS: usize = 15;

/// What goes down next, if anything: the whole set first (and always, to an agent without the
/// change capability, whenever what it acts on differs); afterwards only what changed.
fn next_message(
    s: &State,
    d: &mut NodeDesired,
    last: Option<u64>,
    fp: u64,
    deltas: bool,
) -> crate::state::error::Result<Option<server_message::Body>> {
    if last.is_none() || (!deltas && last != Some(fp)) {
        return Ok(Some(server_message::Body::DesiredTasks(d.message(s)?)));
    }
    if !deltas {
        d.clear_changes();
        return Ok(None);
    }
    if !d.has_changes() {
        return Ok(None);
    }
    Ok(d.change(s)?.map(server_message::Body::DesiredTasksChange))
}

/// Sends the node's desired set now, then whenever a change the fan-out routes here (its
/// claims, or a task it holds) alters what the agent acts on, and on every resync tick.
async fn push_desired(
    state: State,
    push: Push,
    node_id: String,
    tx: sessions::AgentTx,
    resync: Duration,
    deltas: bool,
) {
    let slot = push.register(&node_id);
    let mut desired: Option<NodeDesired> = None;
    let mut last: Option<u64> = None;
    let mut sent_at = tokio::time::Instant::now();
    let mut ticks = 0usize;
    let mut tick = tokio::time::interval(resync);
    tick.tick().await;
    loop {
        let pending = slot.take();
        if pending.full || desired.is_none() || !pending.keys.is_empty() {
            let Ok(_permit) = COMPUTING.acquire().await else {
                return;
            };
            let (id, p, cur, s) = (node_id.clone(), push.clone(), desired.take(), state.clone());
            // Background work: not raised as a request's is (ten thousand pushers would crowd
            // out the requests, and each raise is two more system calls).
            let res = tokio::task::spawn_blocking(move || -> crate::state::error::Result<_> {
                let s = &s;
                let mut d = match cur {
                    Some(mut d) if !pending.full => {
                        let gone = d.update(s, &pending.keys)?;
                        gone.iter().for_each(|k| p.forget(k));
                        d
                    }
                    cur => {
                        // Claims route their tasks' changes here already; a full read also
                        // teaches the fan-out the tasks it had not seen placed.
                        let mut d = NodeDesired::read(s, &id)?;
                        p.own(&id, d.keys());
                        if let Some(old) = cur {
                            d.carry_from(old);
                        }
                        d
                    }
                };
                // Only an agent sent whole sets is compared by fingerprint: hashing a node's
                // every task on every change cost 5% of a converging fleet's CPU.
                let fp = if deltas { 0 } else { d.fingerprint() };
                let body = next_message(s, &mut d, last, fp, deltas)?;
                Ok((d, fp, body))
            })
            .await;
            // The runtime is shutting down: the stream ends with it.
            if res.as_ref().is_err_and(|e| e.is_cancelled()) {
                return;
            }
            let res = res
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()));
            match res {
                Ok((d, fp, body)) => {
                    if let Some(body) = body {
                        if tx.send(Ok(msg(body))).await.is_err() {
                            break;
                        }
                        last = Some(fp);
                        sent_at = tokio::time::Instant::now();
                    }
                    desired = Some(d);
                }
                Err(e) => {
                    tracing::warn!(target: LOG_TARGET, node = %node_id, error = %e, "cannot compute desired tasks")
                }
            }
        }
        tokio::select! {
            _ = tick.tick() => {
                // The full re-read is a safety net (the fan-out routes every change, and a
                // feed that lags marks every node full): once every FULL_READ_TICKS, later
                // for a large set, so ten thousand nodes do not re-read a million tasks every
                // few seconds.
                ticks += 1;
                if ticks > FULL_READ_TICKS + desired.as_ref().map_or(0, NodeDesired::len) / 50 {
                    ticks = 0;
                    slot.mark_full();
                }
            }
            _ = tx.closed() => break,
            _ = slot.notified() => {
                // Coalesce a burst of changes into one read, and send a large set less often:
                // the whole set goes down each time, so a node placed on by a thousand
                // services in a row must not be sent it a thousand times.
                let size = desired.as_ref().map_or(0, NodeDesired::len);
                let gap = Duration::from_millis((20 + 4 * size as u64).min(1_000));
                tokio::time::sleep(gap.saturating_sub(sent_at.elapsed()).max(Duration::from_millis(20))).await;
            }
        }
    }
    push.unregister(&node_id, &slot);
}
