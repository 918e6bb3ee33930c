//! `berth.agent.v1.AgentSessions`: one stream per agent. The node's whole desired task set goes
//! down whenever it changes (and on a periodic resync); reports come up and are applied as
//! observed state only.

use crate::api::{blocking, shutting_down, until_shutdown};
use crate::nodes::desired::NodeDesired;
use crate::nodes::push::Push;
use crate::nodes::{self, Sessions};
use crate::state::State;
use berth_proto::agent::v1::agent_sessions_server::AgentSessions;
use berth_proto::agent::v1::*;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

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

#[tonic::async_trait]
impl AgentSessions for AgentSessionsApi {
    type SessionStream = ServerStream;

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
        if let Some(why) = crate::limits::nodes_full(self.sessions.connected_count())
            .filter(|_| !self.sessions.is_connected(&hello.node_id))
        {
            return Err(Status::resource_exhausted(why));
        }
        let node = blocking(&self.state, move |s| nodes::register(s, &hello)).await?;
        let node_id = node.ec2_instance_id.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        let welcome = Welcome {
            node_id: node_id.clone(),
            container_instance_arn: node.container_instance_arn.clone(),
            heartbeat_interval_ms: self.timings.heartbeat.as_millis() as i32,
        };
        let _ = tx
            .send(Ok(msg(server_message::Body::Welcome(welcome))))
            .await;
        let generation = self.sessions.attach(&node_id, tx.clone());
        tracing::info!(node = %node.name, id = %node_id, address = %node.address, "agent connected");

        let ended = tx.clone();
        let pusher = tokio::spawn(push_desired(
            self.state.clone(),
            self.sessions.push(&self.state).clone(),
            node_id.clone(),
            tx,
            self.timings.resync,
        ));
        let (sessions, timings) = (self.sessions.clone(), self.timings);
        let mut stop = self.stop.clone();
        let reports = self.sessions.reports(&self.state).clone();
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    n = tokio::time::timeout(timings.heartbeat_timeout, inbound.message()) => n,
                    // Dropping `inbound` lets the connection close as soon as the reply ends.
                    _ = shutting_down(&mut stop) => break,
                    // The reply stream ended (its certificate was revoked, `Sessions::end`).
                    _ = ended.closed() => break,
                };
                let m = match next {
                    Ok(Ok(Some(m))) => m,
                    Ok(Ok(None)) => break,
                    Ok(Err(e)) => {
                        tracing::info!(node = %node_id, error = %e, "agent stream ended");
                        break;
                    }
                    Err(_) => {
                        tracing::warn!(node = %node_id, "agent missed its heartbeats; disconnecting it");
                        break;
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
                        sessions.record_usage(h.task_usage, crate::time::now_millis());
                    }
                    Some(agent_message::Body::Hello(_)) | None => {}
                }
            }
            pusher.abort();
            sessions.detach(&node_id, generation);
            tracing::info!(node = %node_id, "agent disconnected");
        });
        Ok(Response::new(until_shutdown(rx, self.stop.clone())))
    }
}

/// Desired sets computed at once, across every node: a burst that touches thousands of nodes
/// queues here rather than filling the blocking pool.
static COMPUTING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

/// Sends the node's desired set now, then whenever a change the fan-out routes here (its
/// claims, or a task it holds) alters what the agent acts on, and on every resync tick.
async fn push_desired(
    state: State,
    push: Push,
    node_id: String,
    tx: nodes::AgentTx,
    resync: Duration,
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
            let (id, p, cur) = (node_id.clone(), push.clone(), desired.take());
            let res = blocking(&state, move |s| {
                let (d, gone) = match cur {
                    Some(mut d) if !pending.full => {
                        let gone = d.update(s, &pending.keys)?;
                        (d, gone)
                    }
                    _ => (NodeDesired::read(s, &id)?, Vec::new()),
                };
                p.own(&id, d.keys());
                gone.iter().for_each(|k| p.forget(k));
                Ok(d)
            })
            .await;
            match res {
                Ok(d) => {
                    let fp = d.fingerprint();
                    if last != Some(fp) {
                        let set = d.message();
                        if tx
                            .send(Ok(msg(server_message::Body::DesiredTasks(set))))
                            .await
                            .is_err()
                        {
                            break;
                        }
                        last = Some(fp);
                        sent_at = tokio::time::Instant::now();
                    }
                    desired = Some(d);
                }
                Err(e) => {
                    tracing::warn!(node = %node_id, error = %e, "cannot compute desired tasks")
                }
            }
        }
        tokio::select! {
            _ = tick.tick() => {
                // The full re-read is a safety net; for a large set it comes less often (one
                // node of 500 tasks every 11 ticks), so ten thousand nodes do not re-read a
                // million tasks every resync.
                ticks += 1;
                if ticks > desired.as_ref().map_or(0, NodeDesired::len) / 50 {
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
