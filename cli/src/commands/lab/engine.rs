//! The lab's Docker side: one network, its Berth containers, and removing all of it again.

use bollard::models::{
    ContainerCreateBody, ContainerSummary, HostConfig, NetworkCreateRequest, PortBinding,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use bollard::Docker;
use std::collections::HashMap;

/// Every container and network of a lab carries `berth.lab=NAME`.
pub const LAB_LABEL: &str = "berth.lab";
pub const ROLE_LABEL: &str = "berth.lab.role";

/// One Berth process of the lab, as a container on the lab network.
#[derive(Debug, Clone)]
pub struct Member {
    pub name: String,
    pub role: &'static str,
    pub args: Vec<String>,
    /// host path → container path
    pub binds: Vec<(String, String)>,
    /// container port → host port on 127.0.0.1
    pub published: Vec<(u16, u16)>,
}

pub struct Engine {
    docker: Docker,
    lab: String,
}

fn message(e: bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message,
        other => other.to_string(),
    }
}

impl Engine {
    pub fn new(docker: Docker, lab: &str) -> Self {
        Self {
            docker,
            lab: lab.to_string(),
        }
    }

    fn labels(&self, role: &str) -> HashMap<String, String> {
        HashMap::from([
            (LAB_LABEL.to_string(), self.lab.clone()),
            (ROLE_LABEL.to_string(), role.to_string()),
        ])
    }

    /// Containers (any state) matching one Docker filter.
    async fn list(&self, filter: &str, value: String) -> anyhow::Result<Vec<ContainerSummary>> {
        let filters = HashMap::from([(filter.to_string(), vec![value])]);
        let opts = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        self.docker
            .list_containers(Some(opts))
            .await
            .map_err(|e| anyhow::anyhow!("listing containers: {}", message(e)))
    }

    /// Containers of this lab (any state): (name, role).
    pub async fn members(&self) -> anyhow::Result<Vec<(String, String)>> {
        let list = self
            .list("label", format!("{LAB_LABEL}={}", self.lab))
            .await?;
        Ok(list
            .into_iter()
            .map(|c| {
                let name = c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_string();
                let role = c
                    .labels
                    .and_then(|l| l.get(ROLE_LABEL).cloned())
                    .unwrap_or_default();
                (name, role)
            })
            .collect())
    }

    pub async fn create_network(&self, network: &str) -> anyhow::Result<()> {
        let request = NetworkCreateRequest {
            name: network.to_string(),
            driver: Some("bridge".into()),
            labels: Some(self.labels("network")),
            ..Default::default()
        };
        self.docker
            .create_network(request)
            .await
            .map_err(|e| anyhow::anyhow!("creating network {network}: {}", message(e)))?;
        Ok(())
    }

    /// Creates and starts `m` on `network` from `image`.
    pub async fn start(&self, m: &Member, network: &str, image: &str) -> anyhow::Result<()> {
        let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
        let mut exposed = Vec::new();
        for (inside, outside) in &m.published {
            let key = format!("{inside}/tcp");
            exposed.push(key.clone());
            bindings.insert(
                key,
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some(outside.to_string()),
                }]),
            );
        }
        let host_config = HostConfig {
            network_mode: Some(network.to_string()),
            binds: Some(m.binds.iter().map(|(h, c)| format!("{h}:{c}")).collect()),
            port_bindings: (!bindings.is_empty()).then_some(bindings),
            init: Some(false),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            cmd: Some(m.args.clone()),
            hostname: Some(m.name.clone()),
            labels: Some(self.labels(m.role)),
            exposed_ports: (!exposed.is_empty()).then_some(exposed),
            env: Some(vec!["RUST_LOG=info".into()]),
            host_config: Some(host_config),
            ..Default::default()
        };
        let opts = CreateContainerOptionsBuilder::new().name(&m.name).build();
        self.docker
            .create_container(Some(opts), body)
            .await
            .map_err(|e| anyhow::anyhow!("creating {}: {}", m.name, message(e)))?;
        self.docker
            .start_container(&m.name, None)
            .await
            .map_err(|e| anyhow::anyhow!("starting {}: {}", m.name, message(e)))?;
        Ok(())
    }

    /// The container's address on `network`.
    pub async fn address(&self, container: &str, network: &str) -> Option<String> {
        let c = self
            .docker
            .inspect_container(container, None::<InspectContainerOptions>)
            .await
            .ok()?;
        c.network_settings?
            .networks?
            .get(network)?
            .ip_address
            .clone()
            .filter(|ip| !ip.is_empty())
    }

    /// Removes the lab's containers, the task containers its agents started on `network`, and
    /// the network. Returns how many containers went.
    pub async fn remove_all(&self, network: &str) -> anyhow::Result<usize> {
        // The agents first, so that none starts another task while the rest goes.
        let members: Vec<String> = self.members().await?.into_iter().map(|m| m.0).collect();
        let mut removed = self.remove(&members).await?;
        let mut attempts = 0;
        loop {
            removed += self.remove(&self.tasks_on(network).await).await?;
            match self.docker.remove_network(network).await {
                Ok(())
                | Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => return Ok(removed),
                // A container the engine was still creating holds an endpoint: once more.
                Err(_) if attempts < 5 => {
                    attempts += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
                Err(e) => anyhow::bail!("removing network {network}: {}", message(e)),
            }
        }
    }

    /// Containers on `network` that Berth started (tasks, lab members).
    async fn tasks_on(&self, network: &str) -> Vec<String> {
        let list = self
            .list("network", network.to_string())
            .await
            .unwrap_or_default();
        list.into_iter()
            .filter(|c| {
                let labels = c.labels.as_ref();
                labels.is_some_and(|l| l.contains_key("berth.task") || l.contains_key(LAB_LABEL))
            })
            .filter_map(|c| c.id)
            .collect()
    }

    async fn remove(&self, names: &[String]) -> anyhow::Result<usize> {
        let opts = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        let mut removed = 0;
        for name in names {
            match self.docker.remove_container(name, Some(opts.clone())).await {
                Ok(()) => removed += 1,
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => {}
                Err(e) => anyhow::bail!("removing {name}: {}", message(e)),
            }
        }
        Ok(removed)
    }
}
