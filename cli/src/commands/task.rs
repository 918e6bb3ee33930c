//! `berth task …` and `berth logs`.

use crate::client::connect;
use crate::output::{self, or_dash, Format, Table};
use berth_proto::v1::tasks_client::TasksClient;
use berth_proto::v1::*;
use clap::Subcommand;
use std::io::Write;

#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Run one-off tasks from a task definition.
    Run {
        #[arg(long, default_value = "default")]
        cluster: String,
        /// FAMILY (latest active revision) or FAMILY:REVISION.
        #[arg(long)]
        taskdef: String,
        #[arg(long, default_value_t = 1)]
        count: i32,
        #[arg(long, default_value = "")]
        started_by: String,
    },
    /// Stop a task (SIGTERM, then SIGKILL after the container's stopTimeout).
    Stop {
        task: String,
        #[arg(long, default_value = "")]
        cluster: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Show a task: status, where it runs, its containers and bindings.
    Describe {
        task: String,
        #[arg(long, default_value = "")]
        cluster: String,
    },
    /// List tasks.
    List {
        #[arg(long, default_value = "")]
        cluster: String,
        #[arg(long, default_value = "")]
        service: String,
        /// RUNNING (default) or STOPPED.
        #[arg(long, default_value = "RUNNING")]
        desired_status: String,
        #[arg(long, default_value = "")]
        family: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    pub task: String,
    #[arg(long, default_value = "")]
    pub cluster: String,
    /// One container (default: every container of the task, each line prefixed with its name
    /// when there are several).
    #[arg(long, default_value = "")]
    pub container: String,
    /// Keep streaming new output until the task's containers stop.
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines.
    #[arg(long, default_value_t = 0)]
    pub tail: i32,
    /// Only output since then: a duration back from now (90s, 10m, 1h30m, 2d) or an RFC 3339
    /// time (2026-12-01T10:00:00Z).
    #[arg(long, default_value = "")]
    pub since: String,
    /// Start each line with the time Docker received it (RFC 3339).
    #[arg(short = 't', long)]
    pub timestamps: bool,
}

fn short(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

fn taskdef_of(arn: &str) -> &str {
    arn.rsplit_once("task-definition/").map_or(arn, |(_, r)| r)
}

fn bindings(t: &Task) -> String {
    let mut out = Vec::new();
    for c in &t.containers {
        for b in &c.network_bindings {
            out.push(format!(
                "{}:{}->{}/{}",
                b.bind_ip, b.host_port, b.container_port, b.protocol
            ));
        }
    }
    or_dash(&out.join(","))
}

fn tasks_table(tasks: &[Task]) -> Table {
    let mut t = Table::new(&[
        "TASK",
        "TASK DEFINITION",
        "LAST",
        "DESIRED",
        "HEALTH",
        "NODE",
        "PORTS",
        "STOP CODE",
    ]);
    for task in tasks {
        t.row(vec![
            short(&task.task_arn).to_string(),
            taskdef_of(&task.task_definition_arn).to_string(),
            task.last_status.clone(),
            task.desired_status.clone(),
            task.health_status.clone(),
            short(&task.container_instance_arn).to_string(),
            bindings(task),
            or_dash(&task.stop_code),
        ]);
    }
    t
}

fn describe(t: &Task) {
    crate::outln!("Task             {}", short(&t.task_arn));
    crate::outln!("ARN              {}", t.task_arn);
    crate::outln!("Task definition  {}", taskdef_of(&t.task_definition_arn));
    crate::outln!("Node             {}", short(&t.container_instance_arn));
    crate::outln!(
        "Status           {} (desired {})",
        t.last_status,
        t.desired_status
    );
    crate::outln!("Health           {}", t.health_status);
    crate::outln!("Created          {}", t.created_at);
    crate::outln!("Started          {}", or_dash(&t.started_at));
    if !t.stopped_at.is_empty() || !t.stop_code.is_empty() {
        crate::outln!("Stopped          {}", or_dash(&t.stopped_at));
        crate::outln!("Stop code        {}", or_dash(&t.stop_code));
        crate::outln!("Stopped reason   {}", or_dash(&t.stopped_reason));
    }
    crate::outln!();
    let mut table = Table::new(&[
        "CONTAINER",
        "STATUS",
        "EXIT",
        "HEALTH",
        "PORTS",
        "RUNTIME ID",
        "REASON",
    ]);
    for c in &t.containers {
        table.row(vec![
            c.name.clone(),
            c.last_status.clone(),
            c.exit_code.map_or("-".into(), |e| e.to_string()),
            c.health_status.clone(),
            or_dash(
                &c.network_bindings
                    .iter()
                    .map(|b| {
                        format!(
                            "{}:{}->{}/{}",
                            b.bind_ip, b.host_port, b.container_port, b.protocol
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            c.runtime_id.chars().take(12).collect(),
            or_dash(&c.reason),
        ]);
    }
    table.print();
}

pub async fn run(cmd: TaskCommand, server: &str, fmt: Format) -> anyhow::Result<()> {
    let mut client = TasksClient::new(connect(server).await?);
    match cmd {
        TaskCommand::Run {
            cluster,
            taskdef,
            count,
            started_by,
        } => {
            let reply = client
                .run_task(RunTaskRequest {
                    cluster,
                    task_definition: taskdef,
                    count,
                    started_by,
                    ..Default::default()
                })
                .await?
                .into_inner();
            if fmt == Format::Json {
                return output::json(&reply);
            }
            if !reply.tasks.is_empty() {
                tasks_table(&reply.tasks).print();
            }
            for f in &reply.failures {
                eprintln!("failure: {} {}", f.reason, f.detail);
            }
            if reply.tasks.is_empty() {
                anyhow::bail!("no task could be placed");
            }
            Ok(())
        }
        TaskCommand::Stop {
            task,
            cluster,
            reason,
        } => {
            let reply = client
                .stop_task(StopTaskRequest {
                    cluster,
                    task,
                    reason,
                })
                .await?
                .into_inner();
            if fmt == Format::Json {
                return output::json(&reply);
            }
            tasks_table(reply.task.as_slice()).print();
            Ok(())
        }
        TaskCommand::Describe { task, cluster } => {
            let reply = client
                .describe_task(DescribeTaskRequest { cluster, task })
                .await?
                .into_inner();
            if fmt == Format::Json {
                return output::json(&reply);
            }
            describe(&reply.task.unwrap_or_default());
            if !reply.events.is_empty() {
                crate::outln!();
                crate::outln!("EVENTS");
                for e in &reply.events {
                    crate::outln!("{}  {}", e.created_at, e.message);
                }
            }
            Ok(())
        }
        TaskCommand::List {
            cluster,
            service,
            desired_status,
            family,
        } => {
            let reply = client
                .list_tasks(ListTasksRequest {
                    cluster,
                    service_name: service,
                    desired_status,
                    family,
                    container_instance: String::new(),
                })
                .await?
                .into_inner();
            if fmt == Format::Json {
                return output::json(&reply);
            }
            tasks_table(&reply.tasks).print();
            Ok(())
        }
    }
}

pub async fn logs(args: LogsArgs, server: &str) -> anyhow::Result<()> {
    let mut client = TasksClient::new(connect(server).await?);
    let mut stream = client
        .get_logs(GetLogsRequest {
            cluster: args.cluster,
            task: args.task,
            container: args.container,
            follow: args.follow,
            tail: args.tail,
            since: args.since,
            timestamps: args.timestamps,
        })
        .await?
        .into_inner();
    let mut out = std::io::stdout();
    while let Some(chunk) = stream.message().await? {
        if let Err(e) = out.write_all(&chunk.data).and_then(|_| out.flush()) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(e.into());
        }
    }
    Ok(())
}
