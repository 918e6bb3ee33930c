//! `berth.agent.v1.AgentSessions`: one stream per agent. The node's whole desired task set goes
//! down whenever it changes (and on a periodic resync); reports come up and are applied as
//! observed state only.

use crate::api::{blocking, shutting_down, until_shutdown};
use crate::nodes::{self, Sessions};
use crate::state::State;
use crate::tasks;
use berth_proto::agent::v1::agent_sessions_server::AgentSessions;
use berth_proto::agent::v1::*;
use prost::Message;
use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
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

        let pusher = tokio::spawn(push_desired(
            self.state.clone(),
            node_id.clone(),
            tx,
            self.timings.resync,
        ));
        let (state, sessions, timings) = (self.state.clone(), self.sessions.clone(), self.timings);
        let mut stop = self.stop.clone();
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    n = tokio::time::timeout(timings.heartbeat_timeout, inbound.message()) => n,
                    // Dropping `inbound` lets the connection close as soon as the reply ends.
                    _ = shutting_down(&mut stop) => break,
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
                        let id = node_id.clone();
                        let res = blocking(&state, move |s| tasks::apply_report(s, &id, &r)).await;
                        if let Err(e) = res {
                            tracing::warn!(node = %node_id, error = %e, "task report not applied");
                        }
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

/// Sends the node's desired set now, then whenever a change touches this node (its claims, or
/// a task it was sent), and on every resync tick; only when it differs from the last one sent.
async fn push_desired(state: State, node_id: String, tx: nodes::AgentTx, resync: Duration) {
    let mut changes = state.store().subscribe();
    let mut last: Option<Vec<u8>> = None;
    let claims = crate::state::keys::node_claims(&node_id);
    // Task keys of what was last sent: a change to one of them concerns this node.
    let mut sent: HashSet<String> = HashSet::new();
    let mut tick = tokio::time::interval(resync);
    loop {
        let id = node_id.clone();
        match blocking(&state, move |s| tasks::desired_for_node(s, &id)).await {
            Ok(set) => {
                sent = set
                    .tasks
                    .iter()
                    .filter_map(|a| a.task.as_ref())
                    .map(|t| t.task_arn.as_str())
                    .chain(set.retained_task_arns.iter().map(String::as_str))
                    .filter_map(crate::controller::apply::task_key)
                    .collect();
                let bytes = set.encode_to_vec();
                if last.as_ref() != Some(&bytes) {
                    if tx
                        .send(Ok(msg(server_message::Body::DesiredTasks(set))))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    last = Some(bytes);
                }
            }
            Err(e) => tracing::warn!(node = %node_id, error = %e, "cannot compute desired tasks"),
        }
        let mine =
            |k: &String| k.starts_with(&claims) || sent.contains(k) || k.starts_with("taskdef/");
        // Wait for a relevant change (coalescing bursts) or the resync tick.
        loop {
            tokio::select! {
                _ = tick.tick() => break,
                _ = tx.closed() => return,
                c = changes.recv() => match c {
                    Ok(change) if change.resync || change.keys.iter().any(mine) => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        while changes.try_recv().is_ok() {}
                        break;
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => return,
                }
            }
        }
    }
}
