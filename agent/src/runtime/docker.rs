//! `ContainerRuntime` on the Docker engine through bollard.

use super::*;
use bollard::models::{
    ContainerCreateBody, HealthConfig, HealthStatusEnum, HostConfig, PortBinding,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, StatsOptionsBuilder, StopContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;

/// The local Docker engine.
#[derive(Clone)]
pub struct DockerRuntime {
    pub(super) docker: Docker,
    /// The node's pull policy and registry logins (`pull.rs`).
    pub(super) pull: std::sync::Arc<super::pull::PullConfig>,
}

const NS: i64 = 1_000_000_000;

impl DockerRuntime {
    /// Connects to the engine (DOCKER_HOST or the local socket) and agrees on an API version.
    pub async fn connect() -> Result<Self, RuntimeError> {
        let docker = Docker::connect_with_local_defaults()
            .map_err(|e| RuntimeError::Engine(e.to_string()))?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| RuntimeError::Engine(format!("cannot reach the Docker engine: {e}")))?;
        docker
            .ping()
            .await
            .map_err(|e| RuntimeError::Engine(format!("cannot reach the Docker engine: {e}")))?;
        Ok(Self {
            docker,
            pull: Default::default(),
        })
    }

    /// The bollard client, for image building in this module's siblings.
    pub fn client(&self) -> &Docker {
        &self.docker
    }
}

pub(super) fn not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

pub(super) fn message(e: bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message,
        other => other.to_string(),
    }
}

impl ContainerRuntime for DockerRuntime {
    async fn ensure_volume(&self, v: &VolumeSpec) -> Result<(), RuntimeError> {
        self.ensure_volume_now(v).await
    }

    async fn task_volumes(&self, node_id: &str) -> Result<Vec<TaskVolume>, RuntimeError> {
        self.task_volumes_now(node_id).await
    }

    async fn remove_volume(&self, name: &str) -> Result<(), RuntimeError> {
        self.remove_volume_now(name).await
    }

    async fn ensure_image(&self, image: &str) -> Result<(), RuntimeError> {
        self.ensure_image_now(image, None).await
    }

    async fn ensure_image_as(
        &self,
        image: &str,
        login: Option<(String, String)>,
    ) -> Result<(), RuntimeError> {
        self.ensure_image_now(image, login).await
    }

    async fn image_digest(&self, image: &str) -> Option<String> {
        self.image_digest_now(image).await
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        let mut exposed = Vec::new();
        let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
        for p in &spec.ports {
            let key = format!("{}/{}", p.container_port, p.protocol);
            exposed.push(key.clone());
            if !spec.publish_ports {
                continue;
            }
            bindings.insert(
                key,
                Some(vec![PortBinding {
                    host_ip: None,
                    host_port: Some(if p.host_port > 0 {
                        p.host_port.to_string()
                    } else {
                        String::new()
                    }),
                }]),
            );
        }
        let healthcheck = spec.health.as_ref().map(|h| HealthConfig {
            test: Some(h.test.clone()),
            interval: Some(h.interval_s * NS),
            timeout: Some(h.timeout_s * NS),
            retries: Some(h.retries),
            start_period: Some(h.start_period_s * NS),
            start_interval: None,
        });
        let none_if_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
        let mut host_config = HostConfig {
            memory: (spec.memory_mib > 0).then_some(spec.memory_mib * 1024 * 1024),
            memory_reservation: (spec.memory_reservation_mib > 0)
                .then_some(spec.memory_reservation_mib * 1024 * 1024),
            cpu_shares: (spec.cpu_shares > 0).then_some(spec.cpu_shares.max(2)),
            port_bindings: (!bindings.is_empty()).then_some(bindings),
            network_mode: none_if_empty(&spec.network_mode),
            binds: (!spec.binds.is_empty()).then(|| spec.binds.clone()),
            volumes_from: (!spec.volumes_from.is_empty()).then(|| spec.volumes_from.clone()),
            ..Default::default()
        };
        let mut body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            entrypoint: (!spec.entry_point.is_empty()).then(|| spec.entry_point.clone()),
            cmd: (!spec.command.is_empty()).then(|| spec.command.clone()),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            working_dir: none_if_empty(&spec.working_dir),
            user: none_if_empty(&spec.user),
            labels: Some(spec.labels.clone()),
            exposed_ports: (!exposed.is_empty()).then_some(exposed),
            healthcheck,
            stop_timeout: Some(spec.stop_timeout),
            ..Default::default()
        };
        super::host_config::apply(
            &spec.extras,
            host_config.memory,
            &mut host_config,
            &mut body,
        );
        body.host_config = Some(host_config);
        let opts = CreateContainerOptionsBuilder::new()
            .name(&spec.name)
            .build();
        let created = self
            .docker
            .create_container(Some(opts), body)
            .await
            .map_err(|e| RuntimeError::Container {
                name: spec.name.clone(),
                message: message(e),
            })?;
        Ok(created.id)
    }

    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        self.docker
            .start_container(id, None)
            .await
            .map_err(|e| RuntimeError::Container {
                name: id.into(),
                message: message(e),
            })
    }

    async fn stop(&self, id: &str, timeout_s: i64) -> Result<(), RuntimeError> {
        let opts = StopContainerOptionsBuilder::new()
            .t(timeout_s as i32)
            .build();
        match self.docker.stop_container(id, Some(opts)).await {
            Ok(()) => Ok(()),
            // 304: already stopped; 404: already gone.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304 | 404,
                ..
            }) => Ok(()),
            Err(e) => Err(RuntimeError::Container {
                name: id.into(),
                message: message(e),
            }),
        }
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let opts = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(id, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) if not_found(&e) => Ok(()),
            Err(e) => Err(RuntimeError::Container {
                name: id.into(),
                message: message(e),
            }),
        }
    }

    async fn inspect(&self, name_or_id: &str) -> Result<Option<ContainerStatus>, RuntimeError> {
        let c = match self.docker.inspect_container(name_or_id, None).await {
            Ok(c) => c,
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => {
                return Err(RuntimeError::Container {
                    name: name_or_id.into(),
                    message: message(e),
                })
            }
        };
        let state = c.state.unwrap_or_default();
        let status = state.status.map(|s| s.to_string()).unwrap_or_default();
        let health = match state.health.and_then(|h| h.status) {
            Some(HealthStatusEnum::HEALTHY) => Health::Healthy,
            Some(HealthStatusEnum::UNHEALTHY) => Health::Unhealthy,
            Some(HealthStatusEnum::STARTING) => Health::Starting,
            _ => Health::None,
        };
        let mut bindings = Vec::new();
        let settings = c.network_settings.unwrap_or_default();
        let networks = settings.networks.unwrap_or_default();
        // On a task network nothing is published: the container is reached at its own address.
        let own_ip = networks
            .iter()
            .filter(|(name, _)| !matches!(name.as_str(), "bridge" | "host" | "none"))
            .filter_map(|(_, n)| n.ip_address.clone().filter(|ip| !ip.is_empty()))
            .min();
        let ip = own_ip.clone().or_else(|| {
            networks
                .values()
                .filter_map(|n| n.ip_address.clone().filter(|ip| !ip.is_empty()))
                .min()
        });
        if let Some(ports) = settings.ports {
            for (key, list) in ports {
                let (port, proto) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
                let Ok(container_port) = port.parse::<i32>() else {
                    continue;
                };
                let list = list.unwrap_or_default();
                if list.is_empty() && state.running.unwrap_or(false) {
                    if let Some(ip) = &own_ip {
                        bindings.push(Binding {
                            host_ip: ip.clone(),
                            host_port: container_port,
                            container_port,
                            protocol: proto.to_string(),
                        });
                    }
                }
                for b in list {
                    let Some(host_port) = b.host_port.and_then(|p| p.parse::<i32>().ok()) else {
                        continue;
                    };
                    let binding = Binding {
                        host_ip: b.host_ip.unwrap_or_default(),
                        host_port,
                        container_port,
                        protocol: proto.to_string(),
                    };
                    bindings.push(binding);
                }
            }
        }
        // Docker may bind a port twice, IPv4 and IPv6, even on different host ports: keep one
        // binding per container port, the IPv4 one, which every address family reaches.
        let v4 = |b: &Binding| !b.host_ip.contains(':');
        bindings.sort_by_key(|b| (b.container_port, b.protocol.clone(), !v4(b), b.host_port));
        bindings.dedup_by(|b, a| a.container_port == b.container_port && a.protocol == b.protocol);
        Ok(Some(ContainerStatus {
            id: c.id.unwrap_or_default(),
            running: state.running.unwrap_or(false),
            created: status == "created",
            exited: status == "exited" || status == "dead",
            exit_code: state.exit_code,
            error: state.error.unwrap_or_default(),
            oom_killed: state.oom_killed.unwrap_or(false),
            health,
            started_at: state.started_at.unwrap_or_default(),
            ip: ip.unwrap_or_default(),
            finished_at: state.finished_at.unwrap_or_default(),
            bindings,
        }))
    }

    async fn list(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerSummary>, RuntimeError> {
        let mut filters: HashMap<String, Vec<String>> = HashMap::new();
        filters.insert(
            "label".into(),
            labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        );
        let opts = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let list = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(|e| RuntimeError::Engine(message(e)))?;
        Ok(list
            .into_iter()
            .map(|c| ContainerSummary {
                id: c.id.unwrap_or_default(),
                name: c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .map(|n| n.trim_start_matches('/').to_string())
                    .unwrap_or_default(),
                running: c.state.map(|s| s.to_string()) == Some("running".into()),
                labels: c.labels.unwrap_or_default(),
            })
            .collect())
    }

    async fn cpu_usage_ns(&self, id: &str) -> Result<Option<u64>, RuntimeError> {
        let opts = StatsOptionsBuilder::new()
            .stream(false)
            .one_shot(true)
            .build();
        match self.docker.stats(id, Some(opts)).next().await {
            Some(Ok(s)) => Ok(s
                .cpu_stats
                .and_then(|c| c.cpu_usage)
                .and_then(|u| u.total_usage)),
            Some(Err(e)) if not_found(&e) => Ok(None),
            Some(Err(e)) => Err(RuntimeError::Container {
                name: id.to_string(),
                message: message(e),
            }),
            None => Ok(None),
        }
    }

    fn logs(&self, id: &str, o: LogOptions) -> BoxStream<'static, Result<Vec<u8>, RuntimeError>> {
        let tail = if o.tail > 0 {
            o.tail.to_string()
        } else {
            "all".to_string()
        };
        let opts = LogsOptionsBuilder::new()
            .follow(o.follow)
            .stdout(true)
            .stderr(true)
            .tail(&tail)
            .since(i32::try_from(o.since).unwrap_or(i32::MAX))
            .timestamps(o.timestamps)
            .build();
        let name = id.to_string();
        self.docker
            .logs(id, Some(opts))
            .map(move |item| {
                item.map(|o| o.into_bytes().to_vec())
                    .map_err(|e| RuntimeError::Container {
                        name: name.clone(),
                        message: message(e),
                    })
            })
            .boxed()
    }

    async fn inspect_json(&self, id: &str) -> Option<serde_json::Value> {
        self.inspect_raw(id).await
    }

    async fn stats_json(&self, id: &str) -> Option<serde_json::Value> {
        self.stats_raw(id).await
    }

    async fn network_gateway(&self, network: &str) -> Option<String> {
        self.gateway_of(network).await
    }

    async fn exec(&self, container: &str, spec: &ExecSpec) -> Result<Exec, RuntimeError> {
        self.start_exec(container, spec).await
    }

    async fn exec_resize(&self, exec_id: &str, rows: u16, cols: u16) -> Result<(), RuntimeError> {
        self.resize_exec(exec_id, rows, cols).await
    }

    async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>, RuntimeError> {
        self.exec_status(exec_id).await
    }
}
