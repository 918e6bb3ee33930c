//! Docker exec for `berth exec`: create, start attached, resize, and read the exit code.

use super::docker::{message, not_found, DockerRuntime};
use super::{Exec, ExecChunk, ExecSpec, RuntimeError};
use bollard::container::LogOutput;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::ExecConfig;
use bollard::query_parameters::ResizeExecOptions;
use futures_util::StreamExt;

impl DockerRuntime {
    pub(super) async fn start_exec(
        &self,
        container: &str,
        spec: &ExecSpec,
    ) -> Result<Exec, RuntimeError> {
        let failed = |e: bollard::errors::Error| RuntimeError::Container {
            name: container.to_string(),
            message: if not_found(&e) {
                "no such container on this node (it was removed)".to_string()
            } else {
                message(e)
            },
        };
        let config = ExecConfig {
            attach_stdin: Some(spec.stdin),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(spec.tty),
            cmd: Some(spec.command.clone()),
            console_size: spec
                .size
                .filter(|_| spec.tty)
                .map(|(rows, cols)| vec![usize::from(rows), usize::from(cols)]),
            ..Default::default()
        };
        let id = self
            .docker
            .create_exec(container, config)
            .await
            .map_err(failed)?
            .id;
        let options = StartExecOptions {
            detach: false,
            tty: spec.tty,
            output_capacity: None,
        };
        let started = self
            .docker
            .start_exec(&id, Some(options))
            .await
            .map_err(failed)?;
        let StartExecResults::Attached { output, input } = started else {
            return Err(RuntimeError::Container {
                name: container.to_string(),
                message: "the engine started the exec detached".into(),
            });
        };
        let name = container.to_string();
        let output = output
            .filter_map(move |item| {
                let chunk = match item {
                    Ok(LogOutput::StdErr { message }) => {
                        Some(Ok(ExecChunk::Stderr(message.to_vec())))
                    }
                    Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                        Some(Ok(ExecChunk::Stdout(message.to_vec())))
                    }
                    Ok(LogOutput::StdIn { .. }) => None,
                    Err(e) => Some(Err(RuntimeError::Container {
                        name: name.clone(),
                        message: message(e),
                    })),
                };
                std::future::ready(chunk)
            })
            .boxed();
        Ok(Exec { id, output, input })
    }

    pub(super) async fn resize_exec(
        &self,
        exec_id: &str,
        rows: u16,
        cols: u16,
    ) -> Result<(), RuntimeError> {
        let options = ResizeExecOptions {
            h: i32::from(rows),
            w: i32::from(cols),
        };
        self.docker
            .resize_exec(exec_id, options)
            .await
            .map_err(|e| RuntimeError::Engine(format!("resizing exec {exec_id}: {}", message(e))))
    }

    pub(super) async fn exec_status(&self, exec_id: &str) -> Result<Option<i64>, RuntimeError> {
        let r = self.docker.inspect_exec(exec_id).await.map_err(|e| {
            RuntimeError::Engine(format!("inspecting exec {exec_id}: {}", message(e)))
        })?;
        Ok(match r.running {
            Some(false) => r.exit_code,
            _ => None,
        })
    }
}
