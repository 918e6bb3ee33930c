//! The command line: global flags, subcommands, and dispatch.

mod agent;
mod bench; // proxy helper
mod cert;
mod cluster;
mod connect_proxy;
mod demo;
mod demo_tcp;
mod demo_upstream;
pub mod exec;
mod flags;
mod images;
mod lab;
mod lb;
mod lifecycle;
mod metrics_http;
mod node;
mod operator;
mod proxy; // proxy helper
mod scaling;
mod schedule;
mod secret;
mod serve;
mod serve_args;
mod serve_handoff;
mod service;
mod service_args;
mod service_shift;
mod service_view;
mod stack;
mod stack_view;
mod store;
mod task;
mod taskdef;
mod token; // trust
mod volume;

use crate::output::Format;
use clap::{Parser, Subcommand};

/// Berth: a self-hosted Amazon ECS. Server, agent, proxy and client in one binary.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about)]
pub struct Cli {
    /// The Berth server's gRPC address.
    #[arg(
        long,
        global = true,
        env = "BERTH_SERVER",
        default_value = "http://127.0.0.1:7070"
    )]
    pub server: String,
    /// Bearer token for a server with auth (`berth server`): DATA/admin.token or `berth token create`.
    #[arg(long, global = true, env = "BERTH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The cluster CA certificate (DATA/ca.crt) to verify a TLS server with.
    #[arg(long, global = true, env = "BERTH_CA")]
    pub ca: Option<std::path::PathBuf>,
    /// Output for people (table) or programs (json, ECS's field names).
    #[arg(short, long, global = true, value_enum, default_value = "table")]
    pub output: Format,
    /// Berth's own log lines on stderr: text (coloured only on a terminal) or json (one object a
    /// line). Filter with BERTH_LOG or RUST_LOG (`info,berth_control_plane=debug`).
    #[arg(
        long,
        global = true,
        env = "BERTH_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: crate::logging::LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Everything on this machine in one process: the control plane, a local agent on the Docker
    /// engine and the load balancer. Like `nomad agent -dev`.
    Dev(serve_args::ServeArgs),
    /// The control plane alone, for a real fleet (`berth server list`: its replicas).
    Server(serve::ServerCommand),
    /// Create, list, describe and delete clusters.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Application load balancers over the built-in proxy: listeners, rules, target groups.
    #[command(subcommand)]
    Lb(lb::LbCommand),
    /// Register, describe, list and deregister ECS task definitions.
    #[command(subcommand, name = "taskdef")]
    TaskDef(taskdef::TaskDefCommand),
    /// Berth's secret store: create, list, describe, delete; reveal a value (read-write token).
    #[command(subcommand)]
    Secret(secret::SecretCommand),
    /// The volumes of running tasks: list, describe, delete (refused while in use).
    #[command(subcommand)]
    Volume(volume::VolumeCommand),
    /// This host as a node: runs the tasks the control plane places here on Docker.
    Agent(agent::AgentArgs),
    /// Run, stop, describe and list tasks.
    #[command(subcommand)]
    Task(task::TaskCommand),
    /// Scheduled tasks (EventBridge rules and Scheduler schedules): next runs, last runs.
    #[command(subcommand)]
    Schedule(schedule::ScheduleCommand),
    /// A task's container output, read through the agent that runs it (--follow: live).
    Logs(task::LogsArgs),
    /// Run a command in a running task's container, wherever it runs (-it: a shell).
    Exec(exec::ExecArgs),
    /// List, describe, drain and activate nodes (container instances).
    #[command(subcommand)]
    Node(node::NodeCommand),
    /// Services: keep N copies running, roll out new revisions.
    #[command(subcommand)]
    Service(service::ServiceCommand),
    /// Create or update the cluster, task definitions and services a stack file declares (JSON
    /// or YAML); what the file no longer declares is deleted.
    Apply(stack::ApplyArgs),
    /// Delete what a stack file declared: services first (they drain), then task definitions,
    /// then the cluster if the stack created it.
    Delete(stack::DeleteArgs),
    /// List stacks; describe one: what it owns, its last apply, its drift.
    #[command(subcommand)]
    Stack(stack_view::StackCommand),
    /// Service events, as ECS words them.
    Events(service_args::EventsArgs),
    /// The demo web server baked into the berth-demo image (serve, check, exit).
    Demo(demo::DemoArgs),
    /// Build the images Berth needs, offline (berth:latest, berth-demo:latest).
    #[command(subcommand)]
    Images(images::ImagesCommand),
    /// A whole cluster as containers on this Docker engine: control plane, agents, proxy.
    #[command(subcommand)]
    Lab(lab::LabCommand),
    #[command(about = "The load balancer alone (one per edge host), routing from --server")]
    // proxy helper
    Proxy(proxy::ProxyArgs), // proxy helper
    #[command(
        subcommand,
        about = "Benchmarks: `bench proxy` loads Berth's proxy and nginx with wrk"
    )] // proxy helper
    Bench(bench::BenchCommand), // proxy helper
    /// Client tokens (needs the admin token): `berth token create [--read-only]`, `list`, `revoke ID`.
    #[command(subcommand)]
    Token(token::TokenCommand), // trust
    /// Agent and proxy certificates: `berth cert revoke node:ID|proxy:ID`, `berth cert list`.
    #[command(subcommand)]
    Cert(cert::CertCommand),
    /// The embedded store's files, with the server stopped: `check` (damage?), `repair`.
    #[command(subcommand)]
    Store(store::StoreCommand),
    /// Backups: `berth operator snapshot save|inspect|restore`.
    #[command(subcommand)]
    Operator(operator::OperatorCommand),
}

impl Command {
    /// Servers log at info by default; client commands stay quiet.
    pub fn is_long_running(&self) -> bool {
        matches!(
            self,
            Command::Dev(_) | Command::Agent(_) | Command::Proxy(_) // proxy helper
        ) || matches!(
            self,
            Command::Server(serve::ServerCommand { action: None, .. })
        )
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    crate::client::configure(crate::client::Credentials {
        token: cli.token.clone(),
        ca: cli.ca.clone(),
    });
    match cli.command {
        Command::Dev(args) => serve::run(args, serve_args::Mode::Dev).await,
        Command::Server(serve::ServerCommand {
            action: Some(serve::ServerAction::List),
            ..
        }) => serve::list(&cli.server, cli.output).await,
        Command::Server(c) => serve::run(c.args, serve_args::Mode::Server).await,
        Command::Cluster(c) => cluster::run(c, &cli.server, cli.output).await,
        Command::Lb(c) => lb::run(c, &cli.server, cli.output).await,
        Command::TaskDef(c) => taskdef::run(c, &cli.server, cli.output).await,
        Command::Volume(c) => volume::run(c, &cli.server, cli.output).await,
        Command::Secret(c) => secret::run(c, &cli.server, cli.output).await,
        Command::Agent(a) => agent::run(a, &cli.server).await,
        Command::Task(c) => task::run(c, &cli.server, cli.output).await,
        Command::Schedule(c) => schedule::run(c, &cli.server, cli.output).await,
        Command::Logs(a) => task::logs(a, &cli.server).await,
        Command::Exec(a) => exec::run(a, &cli.server).await,
        Command::Node(c) => node::run(c, &cli.server, cli.output).await,
        Command::Service(c) => service::run(c, &cli.server, cli.output).await,
        Command::Apply(a) => stack::apply(a, &cli.server, cli.output).await,
        Command::Delete(a) => stack::delete(a, &cli.server, cli.output).await,
        Command::Stack(c) => stack_view::run(c, &cli.server, cli.output).await,
        Command::Events(a) => service_view::events(a, &cli.server, cli.output).await,
        Command::Demo(a) => demo::run(a).await,
        Command::Images(c) => images::run(c).await,
        Command::Lab(c) => lab::run(c, cli.output).await,
        Command::Proxy(a) => proxy::run(a, &cli.server).await, // proxy helper
        Command::Bench(c) => bench::run(c, cli.output).await,  // proxy helper
        Command::Token(c) => token::run(c, &cli.server, cli.output).await, // trust
        Command::Cert(c) => cert::run(c, &cli.server, cli.output).await,
        Command::Store(c) => store::run(c, cli.output),
        Command::Operator(c) => operator::run(c, &cli.server, cli.output).await,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
