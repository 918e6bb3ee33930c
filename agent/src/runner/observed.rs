//! Translating between the task definition and Docker for one runner: the container specs it
//! creates, and the task report it publishes from what it observes.

use super::{cluster_of, labels, task_id, Runner};
use crate::runtime::{ContainerRuntime, ContainerSpec, Health, HealthSpec};
use berth_proto::agent::v1::TaskReport;
use berth_proto::time;
use berth_proto::v1::{Container, NetworkBinding, Task, TaskDefinition};

/// The definition as this task runs it, its RunTask / StartTask overrides applied.
pub(super) fn with_overrides(def: TaskDefinition, task: &Task) -> TaskDefinition {
    berth_proto::overrides::apply(def, task.overrides.as_ref())
}

impl<R: ContainerRuntime> Runner<R> {
    pub(super) fn spec(&self, i: usize) -> ContainerSpec {
        let c = self.container(i);
        let mut env: Vec<(String, String)> = c
            .environment
            .iter()
            .map(|kv| (kv.name.clone(), kv.value.clone()))
            .collect();
        for secret in self
            .secrets
            .secrets
            .iter()
            .filter(|s| s.container == c.name)
        {
            env.retain(|(k, _)| *k != secret.name);
            env.push((secret.name.clone(), secret.value.clone()));
        }
        env.push(("BERTH_TASK_ARN".into(), self.arn.clone()));
        env.push(("BERTH_CONTAINER_NAME".into(), c.name.clone()));
        env.extend(self.metadata_env(i));
        let mut labels = c.docker_labels.clone();
        labels.insert(labels::TASK.into(), task_id(&self.arn).into());
        labels.insert(labels::TASK_ARN.into(), self.arn.clone());
        labels.insert(labels::CLUSTER.into(), cluster_of(&self.arn).into());
        labels.insert(labels::NODE.into(), self.ctx.node_id.clone());
        labels.insert(labels::CONTAINER.into(), c.name.clone());
        let health = c
            .health_check
            .as_ref()
            .filter(|h| h.command.first().map(String::as_str) != Some("NONE"))
            .map(|h| HealthSpec {
                test: h.command.clone(),
                interval_s: i64::from(h.interval.unwrap_or(30)),
                timeout_s: i64::from(h.timeout.unwrap_or(5)),
                retries: i64::from(h.retries.unwrap_or(3)),
                start_period_s: i64::from(h.start_period.unwrap_or(0)),
            });
        let (binds, volumes_from) = self.mounts(c);
        let (network_mode, ports) = self.network_of(i);
        ContainerSpec {
            binds,
            volumes_from,
            name: self.name_of(i),
            image: c.image.clone(),
            entry_point: c.entry_point.clone(),
            command: c.command.clone(),
            env,
            working_dir: c.working_directory.clone(),
            user: c.user.clone(),
            memory_mib: self.memory_limit_mib(i),
            memory_reservation_mib: i64::from(c.memory_reservation),
            cpu_shares: i64::from(c.cpu),
            ports,
            health,
            labels,
            network_mode,
            publish_ports: self.ctx.task_network.is_none(),
            stop_timeout: if c.stop_timeout > 0 {
                i64::from(c.stop_timeout)
            } else {
                self.ctx.default_stop_timeout.as_secs() as i64
            },
            extras: self.extras(i),
        }
    }

    /// Publishes the task's observed state; announces it only when something changed.
    pub(super) fn publish(&mut self, status: &str, code: &str, reason: &str) {
        self.ctx.metrics.task_state(&self.arn, status);
        let containers: Vec<Container> = self
            .def
            .container_definitions
            .iter()
            .map(|c| {
                let s = self.status.get(&c.name);
                let bindings_from = if self.awsvpc() {
                    self.status.get(&self.container(self.owner()).name)
                } else {
                    s
                };
                Container {
                    container_arn: format!("{}/{}", self.arn, c.name),
                    task_arn: self.arn.clone(),
                    name: c.name.clone(),
                    image: c.image.clone(),
                    runtime_id: s
                        .map(|s| s.id.clone())
                        .or_else(|| self.ids.get(&c.name).cloned())
                        .unwrap_or_default(),
                    last_status: match s {
                        Some(s) if s.running => "RUNNING".into(),
                        Some(s) if s.exited => "STOPPED".into(),
                        _ if status == "STOPPED" => "STOPPED".into(),
                        _ => "PENDING".into(),
                    },
                    exit_code: s
                        .filter(|s| s.exited)
                        .and_then(|s| s.exit_code)
                        .map(|c| c as i32),
                    reason: s
                        .map(|s| {
                            if s.oom_killed {
                                "OutOfMemoryError: Container killed due to memory usage".to_string()
                            } else {
                                s.error.clone()
                            }
                        })
                        .unwrap_or_default(),
                    health_status: match s.map(|s| s.health) {
                        Some(Health::Healthy) => "HEALTHY".into(),
                        Some(Health::Unhealthy) => "UNHEALTHY".into(),
                        _ => "UNKNOWN".into(),
                    },
                    network_bindings: bindings_from
                        .map(|s| {
                            s.bindings
                                .iter()
                                // The owner holds every awsvpc container's ports.
                                .filter(|b| {
                                    !self.awsvpc()
                                        || c.port_mappings
                                            .iter()
                                            .any(|p| p.container_port == b.container_port)
                                })
                                .map(|b| NetworkBinding {
                                    bind_ip: if b.host_ip.is_empty() {
                                        "0.0.0.0".into()
                                    } else {
                                        b.host_ip.clone()
                                    },
                                    container_port: b.container_port,
                                    host_port: b.host_port,
                                    protocol: b.protocol.clone(),
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    essential: c.essential.unwrap_or(true),
                    image_digest: self.digests.get(&c.name).cloned().unwrap_or_default(),
                    restart_count: self.restarts.get(&c.name).copied().unwrap_or(0),
                    network_interfaces: self.task_interface().into_iter().collect(),
                }
            })
            .collect();
        let mut next = TaskReport {
            task_arn: self.arn.clone(),
            last_status: status.to_string(),
            // A stopped task's last health check result (often failing mid-shutdown) says nothing.
            health_status: if status == "STOPPED" {
                "UNKNOWN".into()
            } else {
                task_health(&self.def, &containers)
            },
            stop_code: code.to_string(),
            stopped_reason: reason.to_string(),
            started_at: self.last.started_at.clone(),
            stopped_at: String::new(),
            containers,
        };
        if status == "RUNNING" && next.started_at.is_empty() {
            next.started_at = time::now();
        }
        if status == "STOPPED" {
            next.stopped_at = time::now();
        }
        let same = TaskReport {
            stopped_at: String::new(),
            ..next.clone()
        } == TaskReport {
            stopped_at: String::new(),
            ..self.last.clone()
        };
        if same && status != "STOPPED" {
            return;
        }
        self.publish_metadata(&next);
        self.last = next.clone();
        self.report.send_replace(next);
        let _ = self.changed.send(self.arn.clone());
    }
}

/// ECS's task health: UNHEALTHY if any essential container with a check is unhealthy, HEALTHY
/// when all of them are healthy, UNKNOWN otherwise (or with no checks at all).
fn task_health(def: &TaskDefinition, containers: &[Container]) -> String {
    let checked: Vec<&Container> = containers
        .iter()
        .filter(|c| {
            c.essential
                && def
                    .container_definitions
                    .iter()
                    .any(|d| d.name == c.name && d.health_check.is_some())
        })
        .collect();
    if checked.is_empty() {
        "UNKNOWN".into()
    } else if checked.iter().any(|c| c.health_status == "UNHEALTHY") {
        "UNHEALTHY".into()
    } else if checked.iter().all(|c| c.health_status == "HEALTHY") {
        "HEALTHY".into()
    } else {
        "UNKNOWN".into()
    }
}
