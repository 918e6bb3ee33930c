//! `berth taskdef …`.

use crate::client::connect;
use crate::output::{self, or_dash, Format, Table};
use anyhow::Context;
use berth_proto::v1::task_definitions_client::TaskDefinitionsClient;
use berth_proto::v1::*;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum TaskDefCommand {
    /// Register an ECS task definition JSON file as the family's next revision.
    Register {
        /// The JSON file (as for `aws ecs register-task-definition --cli-input-json`); - reads stdin.
        #[arg(short, long)]
        file: PathBuf,
    },
    /// Show FAMILY (latest active revision) or FAMILY:REVISION.
    Describe { task_definition: String },
    /// List task definitions.
    List {
        /// Only this family.
        #[arg(long)]
        family: Option<String>,
        /// ACTIVE (default), INACTIVE or ALL.
        #[arg(long, default_value = "ACTIVE")]
        status: String,
    },
    /// Mark FAMILY:REVISION inactive: no new tasks or services from it.
    Deregister { task_definition: String },
}

pub async fn run(cmd: TaskDefCommand, server: &str, fmt: Format) -> anyhow::Result<()> {
    // Read the file before connecting, so a missing file is reported as such.
    let text = match &cmd {
        TaskDefCommand::Register { file } if file.as_os_str() == "-" => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                .context("reading the task definition from stdin")?;
            Some(s)
        }
        TaskDefCommand::Register { file } => Some(
            std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?,
        ),
        _ => None,
    };
    let mut client = TaskDefinitionsClient::new(connect(server).await?);
    match cmd {
        TaskDefCommand::Register { file } => {
            let reply = client
                .register_task_definition(RegisterTaskDefinitionRequest {
                    task_definition: None,
                    task_definition_json: text.unwrap_or_default(),
                })
                .await?
                .into_inner();
            if !reply.ignored_fields.is_empty() {
                eprintln!(
                    "note: {}: Berth stores but does not act on: {}",
                    file.display(),
                    reply.ignored_fields.join(", ")
                );
            }
            for w in &reply.warnings {
                eprintln!("warning: {}: {w}", file.display());
            }
            match fmt {
                Format::Json => output::json(&reply),
                Format::Table => {
                    let td = reply.task_definition.unwrap_or_default();
                    crate::outln!(
                        "registered {}:{} ({})",
                        td.family,
                        td.revision,
                        td.task_definition_arn
                    );
                    Ok(())
                }
            }
        }
        TaskDefCommand::Describe { task_definition } => {
            let reply = client
                .describe_task_definition(DescribeTaskDefinitionRequest { task_definition })
                .await?
                .into_inner();
            match fmt {
                Format::Json => output::json(&reply),
                Format::Table => {
                    describe_table(&reply.task_definition.unwrap_or_default());
                    Ok(())
                }
            }
        }
        TaskDefCommand::List { family, status } => {
            let reply = client
                .list_task_definitions(ListTaskDefinitionsRequest {
                    family: family.unwrap_or_default(),
                    family_prefix: String::new(),
                    status,
                })
                .await?
                .into_inner();
            match fmt {
                Format::Json => output::json(&reply),
                Format::Table => {
                    let mut t = Table::new(&[
                        "TASK DEFINITION",
                        "STATUS",
                        "CONTAINERS",
                        "CPU",
                        "MEMORY",
                        "REGISTERED",
                    ]);
                    for td in &reply.task_definitions {
                        t.row(vec![
                            format!("{}:{}", td.family, td.revision),
                            td.status.clone(),
                            td.container_definitions
                                .iter()
                                .map(|c| c.name.as_str())
                                .collect::<Vec<_>>()
                                .join(","),
                            or_dash(&td.cpu),
                            or_dash(&td.memory),
                            td.registered_at.clone(),
                        ]);
                    }
                    t.print();
                    Ok(())
                }
            }
        }
        TaskDefCommand::Deregister { task_definition } => {
            let reply = client
                .deregister_task_definition(DeregisterTaskDefinitionRequest { task_definition })
                .await?
                .into_inner();
            match fmt {
                Format::Json => output::json(&reply),
                Format::Table => {
                    let td = reply.task_definition.unwrap_or_default();
                    crate::outln!("{}:{} is {}", td.family, td.revision, td.status);
                    Ok(())
                }
            }
        }
    }
}

fn describe_table(td: &TaskDefinition) {
    crate::outln!("Task definition  {}:{}", td.family, td.revision);
    crate::outln!("ARN              {}", td.task_definition_arn);
    crate::outln!("Status           {}", td.status);
    crate::outln!("Network mode     {}", td.network_mode);
    crate::outln!(
        "CPU / memory     {} / {}",
        or_dash(&td.cpu),
        or_dash(&td.memory)
    );
    crate::outln!("Registered       {}", td.registered_at);
    crate::outln!();
    let mut t = Table::new(&["CONTAINER", "IMAGE", "CPU", "MEMORY", "PORTS", "ESSENTIAL"]);
    for c in &td.container_definitions {
        let ports = c
            .port_mappings
            .iter()
            .map(|p| {
                let host = if p.host_port == 0 {
                    "dynamic".to_string()
                } else {
                    p.host_port.to_string()
                };
                format!("{host}->{}/{}", p.container_port, p.protocol)
            })
            .collect::<Vec<_>>()
            .join(",");
        let mem = match (c.memory, c.memory_reservation) {
            (0, 0) => "-".to_string(),
            (m, 0) => m.to_string(),
            (0, r) => format!("{r} (soft)"),
            (m, r) => format!("{r}-{m}"),
        };
        t.row(vec![
            c.name.clone(),
            c.image.clone(),
            c.cpu.to_string(),
            mem,
            or_dash(&ports),
            c.essential.unwrap_or(true).to_string(),
        ]);
    }
    t.print();
    if !td.events.is_empty() {
        crate::outln!();
        for e in &td.events {
            crate::outln!("{}  {}", e.created_at, e.message);
        }
    }
}
