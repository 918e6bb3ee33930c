//! `AgentSessions/TaskProtection`: a task's own request for its scale-in protection, relayed by
//! its agent from `$ECS_AGENT_URI/task-protection/v1/state`. Answered with ECS's outcome (the
//! protection, a failure, or the ECS API's error) for the agent to shape as ECS's agent does.

use crate::model::tasks::protection::{self, OwnRequest};
use crate::state::State;
use crate::transport::ecs::EcsError;
use crate::transport::grpc::blocking;
use berth_proto::agent::v1::{TaskProtectionReply, TaskProtectionRequest};
use berth_trust::PeerIdentity;
use tonic::Status;

pub(super) async fn answer(
    state: &State,
    peer: Option<PeerIdentity>,
    req: TaskProtectionRequest,
) -> Result<TaskProtectionReply, Status> {
    // With TLS the node is who its certificate says, whatever the request claims.
    let node_id = match peer {
        Some(p) if !req.node_id.is_empty() && req.node_id != p.id => {
            return Err(Status::permission_denied(format!(
                "nodeId: {} is not this certificate's node ({p})",
                req.node_id
            )))
        }
        Some(p) => p.id,
        None => req.node_id.clone(),
    };
    let ask = if req.update {
        OwnRequest::Set(req.protection_enabled, req.expires_in_minutes)
    } else {
        OwnRequest::Get
    };
    let arn = req.task_arn.clone();
    let outcome = blocking(state, move |s| {
        Ok(protection::own(
            s,
            &node_id,
            &arn,
            ask,
            crate::time::now_millis(),
        ))
    })
    .await?;
    let mut reply = TaskProtectionReply {
        task_arn: req.task_arn,
        ..Default::default()
    };
    match outcome {
        Ok((found, refused)) => {
            if let Some(p) = found.into_iter().next() {
                reply.task_arn = p.task_arn;
                reply.protection_enabled = p.enabled;
                reply.expires_at_ms = p.expires_ms.unwrap_or(0);
            } else if let Some(r) = refused.into_iter().next() {
                reply.failure_reason = r.reason.to_string();
                reply.failure_detail = r.detail;
            }
        }
        Err(e) => {
            let e = EcsError::from(e);
            reply.error_code = e.kind.to_string();
            reply.error_message = e.message;
            reply.error_status = i32::from(e.status.as_u16());
        }
    }
    Ok(reply)
}
