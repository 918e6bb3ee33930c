//! Docker volumes through bollard: a task's volumes made before its containers (a shared one
//! reused by name when it exists), and the volumes of tasks that are gone removed.

use super::{DockerRuntime, RuntimeError};
use bollard::models::VolumeCreateRequest;
use bollard::query_parameters::{ListVolumesOptionsBuilder, RemoveVolumeOptionsBuilder};
use std::collections::HashMap;

/// A Docker volume a task needs.
#[derive(Debug, Clone, Default)]
pub struct VolumeSpec {
    pub name: String,
    /// Empty: Docker's default, local.
    pub driver: String,
    pub driver_opts: HashMap<String, String>,
    pub labels: HashMap<String, String>,
    /// Make it when it does not exist; otherwise a missing volume is an error.
    pub create: bool,
}

/// A volume this node made for one task.
#[derive(Debug, Clone)]
pub struct TaskVolume {
    pub name: String,
    pub task_arn: String,
}

/// The label on a volume made for one task (scratch, or `scope: task`), holding its task's ARN.
pub const TASK_VOLUME_LABEL: &str = "berth.task-volume";

impl DockerRuntime {
    pub(super) async fn ensure_volume_now(&self, v: &VolumeSpec) -> Result<(), RuntimeError> {
        let failed = |message: String| RuntimeError::Volume {
            name: v.name.clone(),
            message,
        };
        match self.docker.inspect_volume(&v.name).await {
            Ok(_) => return Ok(()),
            Err(e) if super::docker::not_found(&e) => {}
            Err(e) => return Err(failed(super::docker::message(e))),
        }
        if !v.create {
            return Err(failed(
                "does not exist on this node, and its dockerVolumeConfiguration has no \
                 autoprovision: true"
                    .into(),
            ));
        }
        let req = VolumeCreateRequest {
            name: Some(v.name.clone()),
            driver: (!v.driver.is_empty()).then(|| v.driver.clone()),
            driver_opts: (!v.driver_opts.is_empty()).then(|| v.driver_opts.clone()),
            labels: Some(v.labels.clone()),
            ..Default::default()
        };
        self.docker
            .create_volume(req)
            .await
            .map_err(|e| failed(super::docker::message(e)))?;
        tracing::info!(volume = %v.name, "made a volume");
        Ok(())
    }

    pub(super) async fn task_volumes_now(
        &self,
        node_id: &str,
    ) -> Result<Vec<TaskVolume>, RuntimeError> {
        let filters: HashMap<&str, Vec<String>> = HashMap::from([(
            "label",
            vec![
                format!("{}={node_id}", crate::runner::labels::NODE),
                TASK_VOLUME_LABEL.to_string(),
            ],
        )]);
        let opts = ListVolumesOptionsBuilder::new().filters(&filters).build();
        let list = self
            .docker
            .list_volumes(Some(opts))
            .await
            .map_err(|e| RuntimeError::Engine(super::docker::message(e)))?;
        Ok(list
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| TaskVolume {
                task_arn: v.labels.get(TASK_VOLUME_LABEL).cloned().unwrap_or_default(),
                name: v.name,
            })
            .collect())
    }

    pub(super) async fn remove_volume_now(&self, name: &str) -> Result<(), RuntimeError> {
        let opts = RemoveVolumeOptionsBuilder::new().build();
        match self.docker.remove_volume(name, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) if super::docker::not_found(&e) => Ok(()),
            Err(e) => Err(RuntimeError::Volume {
                name: name.into(),
                message: super::docker::message(e),
            }),
        }
    }
}
