//! A task's volumes on this node: which Docker volume or host path each task volume is, the
//! binds and `volumesFrom` of each container, and making the volumes before any container starts.
//!
//! Naming: a shared Docker volume is the volume's own name (so the next task finds it); every
//! other volume belongs to one task, `berth-TASKID-NAME`, labelled so the sweep removes it.

use super::{container_name, labels, task_id, Runner};
use crate::runtime::{ContainerRuntime, VolumeSpec, TASK_VOLUME_LABEL};
// Placement checks the same rule first (the node's allowed paths travel in its hello); this
// check stays for a task placed before the agent's allowed paths changed.
use berth_core::scheduler::host_path_allowed;
use berth_proto::v1::{ContainerDefinition, Volume};

/// What a task volume is on this node.
enum Source<'a> {
    /// A bind mount of this host path.
    Host(&'a str),
    /// A Docker volume kept across tasks.
    Shared,
    /// A Docker volume of this task alone.
    Task,
}

fn source(v: &Volume) -> Source<'_> {
    match (&v.host, &v.docker_volume_configuration) {
        (Some(h), _) if !h.source_path.is_empty() => Source::Host(&h.source_path),
        (_, Some(d)) if d.scope == "shared" => Source::Shared,
        _ => Source::Task,
    }
}

impl<R: ContainerRuntime> Runner<R> {
    /// The Docker name (or host path) of the task volume `name`.
    fn volume_source(&self, v: &Volume) -> String {
        match source(v) {
            Source::Host(path) => path.to_string(),
            Source::Shared => v.name.clone(),
            Source::Task => format!("berth-{}-{}", task_id(&self.arn), v.name),
        }
    }

    /// The binds and `volumesFrom` of container `c`, in Docker's forms.
    pub(super) fn mounts(&self, c: &ContainerDefinition) -> (Vec<String>, Vec<String>) {
        let binds = c
            .mount_points
            .iter()
            .filter_map(|m| {
                let v = self
                    .def
                    .volumes
                    .iter()
                    .find(|v| v.name == m.source_volume)?;
                let ro = if m.read_only == Some(true) { ":ro" } else { "" };
                Some(format!(
                    "{}:{}{ro}",
                    self.volume_source(v),
                    m.container_path
                ))
            })
            .collect();
        let from = c
            .volumes_from
            .iter()
            .map(|f| {
                let ro = if f.read_only == Some(true) {
                    ":ro"
                } else {
                    ":rw"
                };
                format!("{}{ro}", container_name(&self.arn, &f.source_container))
            })
            .collect();
        (binds, from)
    }

    /// Checks host paths against the node's allowed ones and makes the Docker volumes, before
    /// any container is created. `Err` is the task's stopped reason.
    pub(super) async fn prepare_volumes(&self) -> Result<(), String> {
        for v in &self.def.volumes {
            let spec = match source(v) {
                Source::Host(path) => {
                    if !host_path_allowed(path, &self.ctx.allow_host_paths) {
                        return Err(format!(
                            "ResourceInitializationError: volume {}: host path {path} is not \
                             allowed on node {}; start its agent with --allow-host-path {path} \
                             (or a parent directory)",
                            v.name, self.ctx.node_id
                        ));
                    }
                    continue;
                }
                Source::Shared => {
                    let d = v.docker_volume_configuration.clone().unwrap_or_default();
                    let mut labels = d.labels.clone();
                    labels.insert(labels::NODE.into(), self.ctx.node_id.clone());
                    VolumeSpec {
                        name: v.name.clone(),
                        driver: d.driver,
                        driver_opts: d.driver_opts,
                        labels,
                        create: d.autoprovision == Some(true),
                    }
                }
                Source::Task => {
                    let d = v.docker_volume_configuration.clone().unwrap_or_default();
                    let mut labels = d.labels.clone();
                    labels.insert(labels::NODE.into(), self.ctx.node_id.clone());
                    labels.insert(TASK_VOLUME_LABEL.into(), self.arn.clone());
                    VolumeSpec {
                        name: self.volume_source(v),
                        driver: d.driver,
                        driver_opts: d.driver_opts,
                        labels,
                        create: true,
                    }
                }
            };
            self.rt
                .ensure_volume(&spec)
                .await
                .map_err(|e| format!("ResourceInitializationError: {e}"))?;
        }
        Ok(())
    }
}
