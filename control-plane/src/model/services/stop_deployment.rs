//! ECS's StopServiceDeployment: the user ends the deployment in progress. ROLLBACK returns to the
//! last completed deployment; ABORT stops it where it is. A traffic shift under way goes back
//! either way, at once: its old tasks still run, and the new revision was never validated.

use super::{active, find, key, not_found, push_event};
use crate::state::error::{Error, Result};
use crate::state::{put, State};
use crate::time;
use berth_core::ids::new_id;
use berth_core::plan::{rollout, shift};
use berth_core::status::{end_rollout, RolloutState};
use berth_proto::v1::{Service, StopServiceDeploymentRequest};

pub fn stop_deployment(state: &State, req: StopServiceDeploymentRequest) -> Result<Service> {
    let cluster = super::cluster_name(&req.cluster).to_string();
    let abort = match req.stop_type.trim().to_ascii_uppercase().as_str() {
        "" | "ROLLBACK" => false,
        "ABORT" => true,
        other => {
            return Err(Error::Client(format!(
                "stopType {other:?} must be ROLLBACK or ABORT"
            )))
        }
    };
    state.update(|tx| {
        let found = find(tx.state(), &cluster, &req.service)?;
        let k = key(&cluster, &found.service_name);
        let Some(current) = tx.get::<Service>(&k)? else {
            return Err(not_found(&cluster, &req.service));
        };
        let mut svc = active(current)?;
        let Some(primary) = svc.deployments.first().cloned() else {
            return Err(Error::Client(format!(
                "service {} has no deployment to stop",
                svc.service_name
            )));
        };
        let wanted = req.deployment.trim();
        let wanted_id = wanted.rsplit('/').next().unwrap_or(wanted);
        if !wanted.is_empty() && primary.id != wanted && !primary.id.ends_with(&format!("/{wanted_id}")) {
            return Err(Error::Client(format!(
                "deployment {wanted} is not the service's deployment in progress ({}); give that one or none",
                primary.id
            )));
        }
        if berth_core::status::rollout(&primary) != RolloutState::InProgress {
            return Err(Error::Client(format!(
                "deployment {} is {}: only a deployment IN_PROGRESS can be stopped",
                primary.id, primary.rollout_state
            )));
        }
        let now = time::now_millis();
        let why = format!(
            "stopped by the user ({})",
            if abort { "ABORT" } else { "ROLLBACK" }
        );
        let msg = if abort && !shift::mid_shift(&svc) {
            let first = &mut svc.deployments[0];
            end_rollout(first, RolloutState::Failed);
            first.rollout_state_reason = format!("Stopped: {why}.");
            first.updated_at = time::rfc3339(now);
            Some(format!(
                "(service {}) (deployment {}) {why}.",
                svc.service_name, primary.id
            ))
        } else {
            rollout::roll_back(&mut svc, &format!("ecs-svc/{}", new_id(16)), &why, now)
        };
        let Some(msg) = msg else {
            return Err(Error::Client(format!(
                "deployment {} has no completed deployment to roll back to; use stopType ABORT or update the service",
                primary.id
            )));
        };
        push_event(&mut svc, msg);
        let ops = vec![put(k, &svc)];
        Ok((svc, ops))
    })
}
