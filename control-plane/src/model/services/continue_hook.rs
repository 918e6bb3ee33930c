//! ECS's ContinueServiceDeployment: the answer to a PAUSE lifecycle hook the deployment waits
//! at. CONTINUE lets the planner's next pass go on; ROLLBACK makes it roll the deployment back,
//! as a hook that answered FAILED does (`berth_core::plan::pause`).

use super::{active, find, key, not_found};
use crate::state::error::{Error, Result};
use crate::state::{put, State};
use berth_core::plan::pause;
use berth_proto::v1::Service;

/// Answers the pause `hook_id` of `deployment_id` (the ID an ARN ends with) with `action`
/// (CONTINUE or ROLLBACK). Refused, writing nothing, when no such pause awaits an answer.
pub fn continue_hook(
    state: &State,
    cluster: &str,
    service: &str,
    deployment_id: &str,
    hook_id: &str,
    action: &str,
) -> Result<Service> {
    let cluster = super::cluster_name(cluster).to_string();
    let status = match action {
        "" | "CONTINUE" => "SUCCEEDED",
        "ROLLBACK" => "FAILED",
        other => {
            return Err(Error::invalid(
                "action",
                format!("{other:?} must be CONTINUE or ROLLBACK"),
            ))
        }
    };
    state.update(|tx| {
        let found = find(tx.state(), &cluster, service)?;
        let k = key(&cluster, &found.service_name);
        let Some(current) = tx.get::<Service>(&k)? else {
            return Err(not_found(&cluster, service));
        };
        let mut svc = active(current)?;
        let name = svc.service_name.clone();
        let Some(dep) = svc
            .deployments
            .iter_mut()
            .find(|d| d.id.rsplit('/').next() == Some(deployment_id) || d.id == deployment_id)
        else {
            return Err(Error::not_found(
                "ServiceDeployment",
                deployment_id,
                format!("see `aws ecs list-service-deployments --service {name}`"),
            ));
        };
        let awaiting: Vec<String> = dep
            .hooks
            .iter()
            .filter(|r| r.status == pause::AWAITING)
            .map(pause::hook_id)
            .collect();
        let Some(run) = dep
            .hooks
            .iter_mut()
            .find(|r| r.status == pause::AWAITING && pause::hook_id(r) == hook_id)
        else {
            let now = if awaiting.is_empty() {
                "none awaits an answer".to_string()
            } else {
                format!("awaiting: {}", awaiting.join(", "))
            };
            return Err(Error::invalid(
                "hookId",
                format!("{hook_id:?} is not a paused hook of deployment {deployment_id} ({now})"),
            ));
        };
        run.status = status.into();
        run.reason = if status == "FAILED" {
            "rolled back by ContinueServiceDeployment".into()
        } else {
            "continued by ContinueServiceDeployment".into()
        };
        super::push_event(
            &mut svc,
            format!("(service {name}) (deployment {deployment_id}) hook {hook_id}: {action_word} by ContinueServiceDeployment.",
                action_word = if status == "FAILED" { "ROLLBACK" } else { "CONTINUE" }),
        );
        Ok((svc.clone(), vec![put(k, &svc)]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LogStore;
    use berth_proto::v1::{Deployment, HookRun};

    fn paused_service() -> (tempfile::TempDir, State) {
        let dir = tempfile::tempdir().unwrap();
        let state = State::new(std::sync::Arc::new(LogStore::open(dir.path()).unwrap()));
        let svc = Service {
            service_name: "web".into(),
            status: "ACTIVE".into(),
            deployments: vec![Deployment {
                id: "ecs-svc/d2".into(),
                status: "PRIMARY".into(),
                hooks: vec![HookRun {
                    stage: "POST_SCALE_UP".into(),
                    url: "pause:0".into(),
                    status: pause::AWAITING.into(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        state.commit(vec![put(key("shop", "web"), &svc)]).unwrap();
        (dir, state)
    }

    fn hook_status(state: &State) -> String {
        let svc = state.get::<Service>(&key("shop", "web")).unwrap().unwrap();
        svc.deployments[0].hooks[0].status.clone()
    }

    #[test]
    fn a_paused_hook_is_answered_once_and_a_wrong_one_writes_nothing() {
        let (_dir, state) = paused_service();
        let wrong = continue_hook(
            &state,
            "shop",
            "web",
            "d2",
            "pause-1-POST_SCALE_UP-0",
            "CONTINUE",
        );
        let msg = wrong.unwrap_err().to_string();
        assert!(
            msg.contains("hookId") && msg.contains("pause-0-POST_SCALE_UP-0"),
            "{msg}"
        );
        let gone = continue_hook(
            &state,
            "shop",
            "web",
            "d9",
            "pause-0-POST_SCALE_UP-0",
            "CONTINUE",
        );
        assert!(matches!(
            gone,
            Err(Error::NotFound {
                kind: "ServiceDeployment",
                ..
            })
        ));
        assert_eq!(hook_status(&state), pause::AWAITING, "nothing written");

        continue_hook(
            &state,
            "shop",
            "web",
            "d2",
            "pause-0-POST_SCALE_UP-0",
            "ROLLBACK",
        )
        .unwrap();
        assert_eq!(hook_status(&state), "FAILED");
        let again = continue_hook(
            &state,
            "shop",
            "web",
            "d2",
            "pause-0-POST_SCALE_UP-0",
            "CONTINUE",
        );
        assert!(again.is_err(), "answered already");
        assert_eq!(hook_status(&state), "FAILED");
    }
}
