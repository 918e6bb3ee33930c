//! A new service's deployment controller: ECS (Berth deploys) or EXTERNAL (task sets,
//! `model::tasksets`).

use crate::state::error::{quote, FieldError};
use berth_proto::v1::Service;

/// A new service's deployment controller: ECS (Berth deploys; the default) or EXTERNAL (task
/// sets), checked as ECS checks it.
pub(crate) fn set_controller(errs: &mut Vec<FieldError>, svc: &mut Service, given: &str) {
    let daemon = svc.scheduling_strategy == "DAEMON";
    match given.to_ascii_uppercase().as_str() {
        "" | "ECS" => {}
        "EXTERNAL" if !daemon => svc.deployment_controller = "EXTERNAL".into(),
        "EXTERNAL" => errs.push(FieldError::new(
            "deploymentController.type",
            "a DAEMON service takes the ECS deployment controller",
        )),
        other => errs.push(FieldError::new(
            "deploymentController.type",
            format!(
                "{} is not served: use ECS (Berth deploys) or EXTERNAL (task sets)",
                quote(other)
            ),
        )),
    }
}
