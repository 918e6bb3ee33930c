//! The task runner: the one owner of a task on this node. Only the runner mutates its task; it is
//! fed desired-state changes through a watch channel and publishes what it observes through
//! another. It starts containers in `dependsOn` order, watches them, stops the task when an
//! essential container exits, and stops in reverse order with each container's stop timeout.

mod extras;
mod meta;
mod observed;
mod restart;
mod volumes;

use crate::runtime::{ContainerRuntime, ContainerStatus, Health};
use berth_proto::agent::v1::TaskReport;
use berth_proto::v1::{ContainerDefinition, Task, TaskDefinition};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// What the control plane wants of this task now.
#[derive(Debug, Clone)]
pub struct Desired {
    pub task: Task,
    pub definition: TaskDefinition,
    /// False once the task is no longer in the node's desired set.
    pub wanted: bool,
    /// Its secrets and registry logins, resolved by the control plane for this node alone.
    pub secrets: Arc<Resolved>,
}

/// A task's secret values and registry logins. Held only in memory, never logged: `Debug`
/// names the secrets without their values.
#[derive(Default)]
pub struct Resolved {
    pub secrets: Vec<berth_proto::agent::v1::ResolvedSecret>,
    pub logins: Vec<berth_proto::agent::v1::RegistryLogin>,
    /// Why they could not all be resolved (the task must not start).
    pub error: String,
    /// Service Connect alias names the task's /etc/hosts maps to the node's proxy.
    pub connect_hosts: Vec<String>,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self
            .secrets
            .iter()
            .map(|s| format!("{}/{}", s.container, s.name))
            .collect();
        f.debug_struct("Resolved")
            .field("secrets", &names)
            .field("logins", &self.logins.len())
            .field("error", &self.error)
            .finish()
    }
}

impl Desired {
    /// Stop now. A load-balanced task waits until the control plane has deregistered it from
    /// every proxy (its in-flight requests done), so no request meets a dying container.
    fn stop_requested(&self) -> bool {
        !self.wanted
            || (self.task.desired_status == "STOPPED"
                && (!self.task.load_balanced || !self.task.deregistered_at.is_empty()))
    }

    /// Asked to stop, but still draining behind the load balancer.
    fn draining(&self) -> bool {
        self.wanted && self.task.desired_status == "STOPPED" && !self.stop_requested()
    }
}

/// Node-wide settings every runner shares.
#[derive(Debug, Clone)]
pub struct RunnerContext {
    pub node_id: String,
    pub default_stop_timeout: Duration,
    pub poll: Duration,
    /// Bridge-mode tasks join this Docker network instead of publishing host ports.
    pub task_network: Option<String>,
    pub metrics: Arc<crate::metrics::AgentMetrics>,
    /// Host paths tasks may bind-mount (`berth agent --allow-host-path`).
    pub allow_host_paths: Arc<Vec<std::path::PathBuf>>,
    /// The task metadata endpoint (none: containers get no metadata URIs).
    pub metadata: Option<Arc<crate::metadata::Registry>>,
    pub powers: crate::Powers,
    /// The node resolver (`crate::dns`), the DNS server of tasks that name none.
    pub dns: Option<String>,
    /// The address the node's Service Connect proxy listens on (None: no Service Connect).
    pub connect: Option<String>,
}

/// Labels every Berth container carries; adoption and cleanup find containers by them.
pub mod labels {
    pub const TASK: &str = "berth.task";
    pub const TASK_ARN: &str = "berth.task-arn";
    pub const CLUSTER: &str = "berth.cluster";
    pub const NODE: &str = "berth.node";
    pub const CONTAINER: &str = "berth.container";
}

/// The deterministic name of a task's container, so a restarted agent finds it again.
pub fn container_name(task_arn: &str, container: &str) -> String {
    format!("berth-{}-{container}", task_id(task_arn))
}

pub fn task_id(task_arn: &str) -> &str {
    task_arn.rsplit('/').next().unwrap_or(task_arn)
}

fn cluster_of(task_arn: &str) -> &str {
    task_arn
        .rsplit_once(":task/")
        .and_then(|(_, r)| r.split_once('/'))
        .map_or("", |(c, _)| c)
}

/// Runs a task until it has stopped. `report` always holds the latest observation; each change
/// is also announced on `changed` with the task ARN.
pub async fn run<R: ContainerRuntime>(
    rt: Arc<R>,
    ctx: RunnerContext,
    mut desired: watch::Receiver<Desired>,
    report: watch::Sender<TaskReport>,
    changed: mpsc::UnboundedSender<String>,
) {
    let first = desired.borrow().clone();
    let mut r = Runner {
        rt,
        ctx,
        arn: first.task.task_arn.clone(),
        def: observed::with_overrides(first.definition.clone(), &first.task),
        secrets: first.secrets.clone(),
        order: start_order(&first.definition.container_definitions),
        status: HashMap::new(),
        ids: HashMap::new(),
        digests: HashMap::new(),
        restarts: HashMap::new(),
        report,
        changed,
        last: TaskReport {
            task_arn: first.task.task_arn.clone(),
            last_status: first.task.last_status.clone(),
            containers: first.task.containers.clone(),
            ..Default::default()
        },
    };
    r.run(&mut desired).await;
}

struct Runner<R> {
    rt: Arc<R>,
    ctx: RunnerContext,
    arn: String,
    def: TaskDefinition,
    secrets: Arc<Resolved>,
    /// Container indexes in start order (dependencies first).
    order: Vec<usize>,
    status: HashMap<String, ContainerStatus>,
    ids: HashMap<String, String>,
    /// The image digest each container was created from.
    digests: HashMap<String, String>,
    /// In-place restarts under each container's restartPolicy, by container name.
    restarts: HashMap<String, i32>,
    report: watch::Sender<TaskReport>,
    changed: mpsc::UnboundedSender<String>,
    last: TaskReport,
}

enum Outcome {
    Started,
    StopRequested,
    Failed(String, String),
}

impl<R: ContainerRuntime> Runner<R> {
    async fn run(&mut self, desired: &mut watch::Receiver<Desired>) {
        let (code, reason) = match self.start(desired).await {
            Outcome::Started => {
                self.publish("RUNNING", "", "");
                self.watch(desired).await
            }
            Outcome::StopRequested => (String::new(), String::new()),
            Outcome::Failed(code, reason) => {
                self.ctx.metrics.container_failed(&reason);
                (code, reason)
            }
        };
        self.stop(&code, &reason).await;
        if let Some(m) = &self.ctx.metadata {
            m.remove(&self.arn);
        }
    }

    fn container(&self, i: usize) -> &ContainerDefinition {
        &self.def.container_definitions[i]
    }

    fn name_of(&self, i: usize) -> String {
        container_name(&self.arn, &self.container(i).name)
    }

    async fn refresh(&mut self) {
        for i in 0..self.def.container_definitions.len() {
            let name = self.name_of(i);
            match self.rt.inspect(&name).await {
                Ok(Some(s)) => {
                    self.ids
                        .insert(self.container(i).name.clone(), s.id.clone());
                    self.status.insert(self.container(i).name.clone(), s);
                }
                Ok(None) => {
                    let name = self.container(i).name.clone();
                    self.status.remove(&name);
                }
                Err(e) => tracing::warn!(task = %self.arn, error = %e, "inspect failed"),
            }
        }
    }

    /// Starts every container in dependency order, adopting any that already exist.
    async fn start(&mut self, desired: &mut watch::Receiver<Desired>) -> Outcome {
        self.refresh().await;
        self.publish("PENDING", "", "");
        if !self.secrets.error.is_empty() {
            return Outcome::Failed(
                "TaskFailedToStart".into(),
                format!(
                    "ResourceInitializationError: unable to pull secrets or registry auth: {}",
                    self.secrets.error
                ),
            );
        }
        if let Err(why) = self.prepare_volumes().await {
            return Outcome::Failed("TaskFailedToStart".into(), why);
        }
        for pos in 0..self.order.len() {
            let i = self.order[pos];
            let c = self.container(i).clone();
            // Wait for this container's dependencies, for at most its startTimeout (ECS's).
            let waiting = std::time::Instant::now();
            loop {
                if desired.borrow().stop_requested() {
                    return Outcome::StopRequested;
                }
                match self.dependencies_met(&c) {
                    Ok(true) => break,
                    Ok(false) => {}
                    Err(why) => return Outcome::Failed("TaskFailedToStart".into(), why),
                }
                if c.start_timeout > 0
                    && waiting.elapsed() >= Duration::from_secs(c.start_timeout as u64)
                {
                    return Outcome::Failed(
                        "TaskFailedToStart".into(),
                        format!(
                            "container {}: its dependsOn conditions were not met within its startTimeout of {} s",
                            c.name, c.start_timeout
                        ),
                    );
                }
                self.sleep_or_change(desired).await;
                self.refresh().await;
                self.publish("PENDING", "", "");
            }
            match self.status.get(&c.name) {
                Some(s) if s.running || s.exited => continue, // adopted
                Some(s) if s.created => {
                    let id = s.id.clone();
                    if let Err(e) = self.rt.start(&id).await {
                        return Outcome::Failed(
                            "TaskFailedToStart".into(),
                            format!("CannotStartContainerError: {e}"),
                        );
                    }
                    self.ctx.metrics.container_started();
                }
                _ => {
                    let login = self
                        .secrets
                        .logins
                        .iter()
                        .find(|l| l.container == c.name)
                        .map(|l| (l.username.clone(), l.password.clone()));
                    if let Err(e) = self.rt.ensure_image_as(&c.image, login).await {
                        return Outcome::Failed(
                            "TaskFailedToStart".into(),
                            format!("CannotPullContainerError: {e}"),
                        );
                    }
                    if let Some(d) = self.rt.image_digest(&c.image).await {
                        self.digests.insert(c.name.clone(), d);
                    }
                    if let Err(why) = self.allowed(i) {
                        return Outcome::Failed(
                            "TaskFailedToStart".into(),
                            format!("CannotCreateContainerError: {why}"),
                        );
                    }
                    let spec = self.spec(i);
                    let id = match self.rt.create(&spec).await {
                        Ok(id) => id,
                        Err(e) => {
                            return Outcome::Failed(
                                "TaskFailedToStart".into(),
                                format!("CannotCreateContainerError: {e}"),
                            )
                        }
                    };
                    self.ids.insert(c.name.clone(), id.clone());
                    if let Err(e) = self.rt.start(&id).await {
                        return Outcome::Failed(
                            "TaskFailedToStart".into(),
                            format!("CannotStartContainerError: {e}"),
                        );
                    }
                    self.ctx.metrics.container_started();
                }
            }
            self.refresh().await;
        }
        Outcome::Started
    }

    fn dependencies_met(&self, c: &ContainerDefinition) -> Result<bool, String> {
        for d in &c.depends_on {
            let s = self.status.get(&d.container_name);
            let met = match (d.condition.as_str(), s) {
                (_, None) => false,
                ("START", Some(s)) => s.running || s.exited,
                ("COMPLETE", Some(s)) => s.exited,
                ("SUCCESS", Some(s)) if s.exited => {
                    if s.exit_code != Some(0) {
                        return Err(format!(
                            "dependency {} exited with code {} (condition SUCCESS)",
                            d.container_name,
                            s.exit_code.unwrap_or(-1)
                        ));
                    }
                    true
                }
                ("SUCCESS", Some(_)) => false,
                ("HEALTHY", Some(s)) => {
                    if s.exited {
                        return Err(format!(
                            "dependency {} exited before it was healthy",
                            d.container_name
                        ));
                    }
                    s.health == Health::Healthy
                }
                _ => true,
            };
            if !met {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Watches a running task until an essential container exits or a stop is requested.
    async fn watch(&mut self, desired: &mut watch::Receiver<Desired>) -> (String, String) {
        loop {
            if desired.borrow().stop_requested() {
                return (String::new(), String::new());
            }
            self.refresh().await;
            if self.restart_exited().await {
                self.refresh().await;
            }
            let essential_exit = self.def.container_definitions.iter().find(|c| {
                c.essential.unwrap_or(true) && self.status.get(&c.name).is_none_or(|s| s.exited)
            });
            if let Some(c) = essential_exit {
                let why = match self.status.get(&c.name) {
                    None => format!(
                        "Essential container in task exited ({} was removed)",
                        c.name
                    ),
                    // ECS names the OOM kill on the container; say it on the task too, as
                    // the reason a user reads first.
                    Some(s) if s.oom_killed => format!(
                        "Essential container in task exited: OutOfMemoryError: container {} was killed for using more memory than its limit",
                        c.name
                    ),
                    Some(_) => "Essential container in task exited".to_string(),
                };
                return ("EssentialContainerExited".into(), why);
            }
            let status = if desired.borrow().draining() {
                "DEACTIVATING"
            } else {
                "RUNNING"
            };
            self.publish(status, "", "");
            self.sleep_or_change(desired).await;
        }
    }

    /// Stops containers in reverse start order, then reports STOPPED.
    async fn stop(&mut self, code: &str, reason: &str) {
        self.refresh().await;
        self.publish("STOPPING", code, reason);
        for pos in (0..self.order.len()).rev() {
            let i = self.order[pos];
            let c = self.container(i).clone();
            let Some(s) = self.status.get(&c.name) else {
                continue;
            };
            if !s.running {
                continue;
            }
            let timeout = if c.stop_timeout > 0 {
                i64::from(c.stop_timeout)
            } else {
                self.ctx.default_stop_timeout.as_secs() as i64
            };
            if let Err(e) = self.rt.stop(&s.id.clone(), timeout).await {
                tracing::warn!(task = %self.arn, container = %c.name, error = %e, "stop failed");
            }
        }
        self.refresh().await;
        self.publish("STOPPED", code, reason);
    }

    async fn sleep_or_change(&self, desired: &mut watch::Receiver<Desired>) {
        tokio::select! {
            _ = tokio::time::sleep(self.ctx.poll) => {}
            _ = desired.changed() => {}
        }
    }
}

/// Dependencies first (validation guarantees no cycle); ties keep definition order.
fn start_order(containers: &[ContainerDefinition]) -> Vec<usize> {
    let index: HashMap<&str, usize> = containers
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_str(), i))
        .collect();
    let mut done = vec![false; containers.len()];
    let mut order = Vec::with_capacity(containers.len());
    fn visit(
        i: usize,
        cs: &[ContainerDefinition],
        index: &HashMap<&str, usize>,
        done: &mut [bool],
        order: &mut Vec<usize>,
        depth: usize,
    ) {
        if done[i] || depth > cs.len() {
            return;
        }
        // A linked container must run before the link to it is made.
        let links = cs[i]
            .links
            .iter()
            .map(|l| l.split_once(':').map_or(l.as_str(), |(n, _)| n));
        let deps = cs[i].depends_on.iter().map(|d| d.container_name.as_str());
        for name in deps.chain(links) {
            if let Some(&j) = index.get(name) {
                visit(j, cs, index, done, order, depth + 1);
            }
        }
        if !done[i] {
            done[i] = true;
            order.push(i);
        }
    }
    for i in 0..containers.len() {
        visit(i, containers, &index, &mut done, &mut order, 0);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::v1::ContainerDependency;

    fn c(name: &str, deps: &[&str]) -> ContainerDefinition {
        ContainerDefinition {
            name: name.into(),
            depends_on: deps
                .iter()
                .map(|d| ContainerDependency {
                    container_name: d.to_string(),
                    condition: "START".into(),
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn dependencies_start_first() {
        let cs = vec![c("app", &["db", "init"]), c("db", &[]), c("init", &["db"])];
        assert_eq!(start_order(&cs), vec![1, 2, 0]);
    }

    #[test]
    fn names_are_deterministic() {
        let arn = "arn:berth:ecs:local:000000000000:task/demo/abc123";
        assert_eq!(container_name(arn, "web"), "berth-abc123-web");
        assert_eq!(cluster_of(arn), "demo");
    }
}
