//! `berth volume list|describe|delete`: the volumes of the tasks that run, by node, as the
//! control plane knows them (each running task's definition names its volumes). A shared Docker
//! volume is one volume on its node, however many tasks mount it; any other volume is its task's.

use crate::client::connect;
use crate::output::{self, Format, Table};
use berth_proto::v1::task_definitions_client::TaskDefinitionsClient;
use berth_proto::v1::tasks_client::TasksClient;
use berth_proto::v1::*;
use clap::Subcommand;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// The volumes of the cluster's running tasks: name, node, scope, driver, and the tasks
    /// using each.
    List {
        #[arg(long, default_value = "")]
        cluster: String,
    },
    /// One volume by its Docker name (a shared volume's own name, `berth-TASKID-NAME` for one
    /// task's, or a host path).
    Describe {
        name: String,
        #[arg(long, default_value = "")]
        cluster: String,
    },
    /// Delete a volume no running task uses. Berth's agent removes a task's own volumes when the
    /// task is gone; a shared volume is deleted on its node with `docker volume rm NAME` once
    /// this command has confirmed no task uses it.
    Delete {
        name: String,
        #[arg(long, default_value = "")]
        cluster: String,
    },
}

/// One volume as the running tasks use it.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeView {
    /// The Docker volume's name, or the host path of a bind mount.
    pub name: String,
    /// The volume's name in the task definitions.
    pub volume_name: String,
    /// task, shared or host.
    pub scope: String,
    pub driver: String,
    pub container_instance_arn: String,
    pub task_arns: Vec<String>,
}

fn docker_name(task_arn: &str, v: &Volume) -> (String, &'static str, String) {
    let task_id = task_arn.rsplit('/').next().unwrap_or(task_arn);
    match (&v.host, &v.docker_volume_configuration) {
        (Some(h), _) if !h.source_path.is_empty() => (h.source_path.clone(), "host", String::new()),
        (_, Some(d)) if d.scope == "shared" => (v.name.clone(), "shared", driver(&d.driver)),
        (_, d) => (
            format!("berth-{task_id}-{}", v.name),
            "task",
            driver(&d.as_ref().map(|d| d.driver.clone()).unwrap_or_default()),
        ),
    }
}

fn driver(d: &str) -> String {
    if d.is_empty() {
        "local".into()
    } else {
        d.to_string()
    }
}

async fn volumes(server: &str, cluster: &str) -> anyhow::Result<Vec<VolumeView>> {
    let channel = connect(server).await?;
    let mut tasks = TasksClient::new(channel.clone());
    let mut defs = TaskDefinitionsClient::new(channel);
    let running = tasks
        .list_tasks(ListTasksRequest {
            cluster: cluster.to_string(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .tasks;
    let mut seen: BTreeMap<String, TaskDefinition> = BTreeMap::new();
    let mut out: BTreeMap<(String, String), VolumeView> = BTreeMap::new();
    for t in running {
        if !seen.contains_key(&t.task_definition_arn) {
            let td = defs
                .describe_task_definition(DescribeTaskDefinitionRequest {
                    task_definition: t.task_definition_arn.clone(),
                })
                .await?
                .into_inner()
                .task_definition
                .unwrap_or_default();
            seen.insert(t.task_definition_arn.clone(), td);
        }
        for v in &seen[&t.task_definition_arn].volumes {
            let (name, scope, driver) = docker_name(&t.task_arn, v);
            let view = out
                .entry((t.container_instance_arn.clone(), name.clone()))
                .or_insert_with(|| VolumeView {
                    name,
                    volume_name: v.name.clone(),
                    scope: scope.into(),
                    driver,
                    container_instance_arn: t.container_instance_arn.clone(),
                    task_arns: Vec::new(),
                });
            view.task_arns.push(t.task_arn.clone());
        }
    }
    Ok(out.into_values().collect())
}

fn table(list: &[VolumeView]) {
    let mut t = Table::new(&["NAME", "SCOPE", "DRIVER", "NODE", "IN USE BY"]);
    for v in list {
        let node = v.container_instance_arn.rsplit('/').next().unwrap_or("");
        let tasks: Vec<&str> = v
            .task_arns
            .iter()
            .map(|a| a.rsplit('/').next().unwrap_or(a))
            .collect();
        t.row(vec![
            v.name.clone(),
            v.scope.clone(),
            output::or_dash(&v.driver),
            node.to_string(),
            tasks.join(","),
        ]);
    }
    t.print();
}

pub async fn run(cmd: VolumeCommand, server: &str, fmt: Format) -> anyhow::Result<()> {
    match cmd {
        VolumeCommand::List { cluster } => {
            let list = volumes(server, &cluster).await?;
            match fmt {
                Format::Json => output::json(&serde_json::json!({ "volumes": list })),
                Format::Table => {
                    table(&list);
                    Ok(())
                }
            }
        }
        VolumeCommand::Describe { name, cluster } => {
            let found: Vec<VolumeView> = volumes(server, &cluster)
                .await?
                .into_iter()
                .filter(|v| v.name == name)
                .collect();
            if found.is_empty() {
                anyhow::bail!(
                    "no running task uses a volume named {name:?}; see `berth volume list`"
                );
            }
            match fmt {
                Format::Json => output::json(&serde_json::json!({ "volumes": found })),
                Format::Table => {
                    table(&found);
                    Ok(())
                }
            }
        }
        VolumeCommand::Delete { name, cluster } => {
            if let Some(v) = volumes(server, &cluster)
                .await?
                .into_iter()
                .find(|v| v.name == name)
            {
                anyhow::bail!(
                    "volume {name:?} is in use by {} task(s) ({}); stop them first",
                    v.task_arns.len(),
                    v.task_arns.join(", ")
                );
            }
            anyhow::bail!(
                "no running task uses volume {name:?}: remove it on its node with \
                 `docker volume rm {name}` (Berth does not yet delete volumes remotely)"
            )
        }
    }
}
