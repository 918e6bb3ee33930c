//! The container runtime seam. `ContainerRuntime` speaks Berth's terms (specs, statuses); the
//! Docker implementation behind it is the only code that knows bollard.

mod docker;
mod docker_exec;
mod docker_meta;
mod host_config;
pub mod image;
mod pull;
mod volumes;

pub use docker::DockerRuntime;
pub use host_config::ContainerExtras;
pub use pull::{registry_of, PullConfig, PullPolicy};
pub use volumes::{TaskVolume, VolumeSpec, TASK_VOLUME_LABEL};

use futures_util::stream::BoxStream;
use std::collections::HashMap;
use std::future::Future;

/// A container to create, already translated from the task definition.
#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub entry_point: Vec<String>,
    pub command: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: String,
    pub user: String,
    pub memory_mib: i64,
    pub memory_reservation_mib: i64,
    pub cpu_shares: i64,
    pub ports: Vec<PortSpec>,
    pub health: Option<HealthSpec>,
    pub labels: HashMap<String, String>,
    pub network_mode: String,
    /// Publish `ports` on the host (bridge). Off on a task network, where each container is
    /// reached at its own address and `ports` are only exposed.
    pub publish_ports: bool,
    /// Seconds Docker waits after SIGTERM before SIGKILL.
    pub stop_timeout: i64,
    /// Mounts in Docker's `SOURCE:TARGET[:ro]` form (a volume's name or a host path).
    pub binds: Vec<String>,
    /// Other containers whose mounts this one takes, `NAME[:ro]`.
    pub volumes_from: Vec<String>,
    /// ECS's extended container fields (logging, ulimits, Linux parameters, namespaces, …).
    pub extras: ContainerExtras,
}

#[derive(Debug, Clone, Default)]
pub struct PortSpec {
    pub container_port: i32,
    /// 0: Docker picks a free host port.
    pub host_port: i32,
    pub protocol: String,
}

#[derive(Debug, Clone, Default)]
pub struct HealthSpec {
    /// ["CMD", …] or ["CMD-SHELL", "…"], as in ECS and Docker.
    pub test: Vec<String>,
    pub interval_s: i64,
    pub timeout_s: i64,
    pub retries: i64,
    pub start_period_s: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    None,
    Starting,
    Healthy,
    Unhealthy,
}

/// What the runtime says of one container now.
#[derive(Debug, Clone)]
pub struct ContainerStatus {
    pub id: String,
    pub running: bool,
    /// Created but never started.
    pub created: bool,
    /// Ran and ended (exited or dead).
    pub exited: bool,
    pub exit_code: Option<i64>,
    pub error: String,
    pub oom_killed: bool,
    pub health: Health,
    /// When it last started (RFC 3339; empty if never).
    pub started_at: String,
    /// Its IPv4 address on its network (a task network's first; empty when it has none).
    pub ip: String,
    pub finished_at: String,
    pub bindings: Vec<Binding>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The host address the port is bound on, or the container's own address on a task network.
    pub host_ip: String,
    pub host_port: i32,
    pub container_port: i32,
    pub protocol: String,
}

/// A command to run in a running container (`berth exec`).
#[derive(Debug, Clone, Default)]
pub struct ExecSpec {
    pub command: Vec<String>,
    /// A terminal: stdout and stderr then come as one stream.
    pub tty: bool,
    pub stdin: bool,
    /// The terminal's rows and columns at the start.
    pub size: Option<(u16, u16)>,
}

/// Output of an exec, as the engine tells its streams apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecChunk {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
}

/// A started exec: its id (for resizes and the exit code), output, and stdin.
pub struct Exec {
    pub id: String,
    pub output: BoxStream<'static, Result<ExecChunk, RuntimeError>>,
    pub input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
}

/// A container found by its labels.
#[derive(Debug, Clone)]
pub struct ContainerSummary {
    pub id: String,
    pub name: String,
    pub running: bool,
    pub labels: HashMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("image {image}: {message}")]
    Image { image: String, message: String },
    #[error("container {name}: {message}")]
    Container { name: String, message: String },
    #[error("docker: {0}")]
    Engine(String),
    #[error("volume {name}: {message}")]
    Volume { name: String, message: String },
}

/// Everything a task runner needs from a container engine.
pub trait ContainerRuntime: Send + Sync + 'static {
    /// Makes the image present, pulling as the node's pull policy says.
    fn ensure_image(&self, image: &str) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    /// `ensure_image` with a registry login of the task's own (repositoryCredentials), which
    /// takes the place of the node's.
    fn ensure_image_as(
        &self,
        image: &str,
        _login: Option<(String, String)>,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send {
        self.ensure_image(image)
    }
    /// The digest of the image `image` names now (`sha256:…`), for the container's imageDigest.
    fn image_digest(&self, _image: &str) -> impl Future<Output = Option<String>> + Send {
        async { None }
    }
    fn create(
        &self,
        spec: &ContainerSpec,
    ) -> impl Future<Output = Result<String, RuntimeError>> + Send;
    fn start(&self, id: &str) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    /// SIGTERM, then SIGKILL after `timeout_s`.
    fn stop(
        &self,
        id: &str,
        timeout_s: i64,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    fn remove(&self, id: &str) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    /// `None` when no such container exists.
    fn inspect(
        &self,
        name_or_id: &str,
    ) -> impl Future<Output = Result<Option<ContainerStatus>, RuntimeError>> + Send;
    /// Containers (running or not) carrying every given label.
    fn list(
        &self,
        labels: &[(&str, &str)],
    ) -> impl Future<Output = Result<Vec<ContainerSummary>, RuntimeError>> + Send;
    /// CPU time the container has used since it started, in nanoseconds (None: not running, or
    /// the engine does not say). Auto scaling takes rates from its growth.
    fn cpu_usage_ns(
        &self,
        _id: &str,
    ) -> impl Future<Output = Result<Option<u64>, RuntimeError>> + Send {
        async { Ok(None) }
    }
    /// Makes the volume unless it exists (or fails, when `v.create` is false).
    fn ensure_volume(
        &self,
        _v: &VolumeSpec,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send {
        async { Ok(()) }
    }
    /// The volumes this node made for single tasks.
    fn task_volumes(
        &self,
        _node_id: &str,
    ) -> impl Future<Output = Result<Vec<TaskVolume>, RuntimeError>> + Send {
        async { Ok(Vec::new()) }
    }
    /// Removes a volume (one still in use is refused by the engine).
    fn remove_volume(&self, _name: &str) -> impl Future<Output = Result<(), RuntimeError>> + Send {
        async { Ok(()) }
    }
    /// The engine's own description of a container (Docker's inspect JSON), for the task
    /// metadata endpoint; `None` when it does not exist or the engine does not say.
    fn inspect_json(&self, _id: &str) -> impl Future<Output = Option<serde_json::Value>> + Send {
        async { None }
    }
    /// One sample of a container's resource use in Docker's stats shape.
    fn stats_json(&self, _id: &str) -> impl Future<Output = Option<serde_json::Value>> + Send {
        async { None }
    }
    /// The IPv4 address the host has on `network` ("" the engine's default bridge), which
    /// containers on it reach the host at.
    fn network_gateway(&self, _network: &str) -> impl Future<Output = Option<String>> + Send {
        async { None }
    }
    /// Output of a container; `tail` <= 0 means all of it, `since` (Unix seconds) 0 from the start.
    fn logs(&self, id: &str, opts: LogOptions)
        -> BoxStream<'static, Result<Vec<u8>, RuntimeError>>;
    /// Starts a command in a running container.
    fn exec(
        &self,
        container: &str,
        spec: &ExecSpec,
    ) -> impl Future<Output = Result<Exec, RuntimeError>> + Send;
    fn exec_resize(
        &self,
        exec_id: &str,
        rows: u16,
        cols: u16,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    /// The command's exit code once it has ended (`None` while it runs).
    fn exec_exit_code(
        &self,
        exec_id: &str,
    ) -> impl Future<Output = Result<Option<i64>, RuntimeError>> + Send;
}

/// Which of a container's output to read.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogOptions {
    pub follow: bool,
    pub tail: i32,
    pub since: i64,
    pub timestamps: bool,
}
