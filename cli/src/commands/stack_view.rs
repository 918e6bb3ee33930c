//! `berth stack list` and `berth stack describe NAME [-f FILE]`: the stacks, what one owns, its
//! last apply, and the live fields that drifted from the file or from what it last applied.

use super::stack::{read_stack, summary};
use crate::client::connect;
use crate::output::{self, or_dash, Format, Table};
use berth_proto::v1::stacks_client::StacksClient;
use berth_proto::v1::*;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum StackCommand {
    /// The stacks `berth apply -f` made: name, cluster, resources, last apply, status.
    List {
        /// Only this cluster's stacks.
        #[arg(long)]
        cluster: Option<String>,
    },
    /// What a stack owns, its last apply, and where the live resources differ from the file it
    /// last applied (or from FILE).
    Describe {
        /// The stack (default: the name FILE gives it).
        name: Option<String>,
        /// Its cluster (default: FILE's, else the one cluster with a stack of that name).
        #[arg(long)]
        cluster: Option<String>,
        /// Check drift against this stack file instead of the one last applied.
        #[arg(short, long)]
        file: Option<PathBuf>,
    },
}

pub async fn run(cmd: StackCommand, server: &str, fmt: Format) -> anyhow::Result<()> {
    let mut client = StacksClient::new(connect(server).await?);
    match cmd {
        StackCommand::List { cluster } => {
            let reply = client
                .list_stacks(ListStacksRequest {
                    cluster: cluster.unwrap_or_default(),
                })
                .await?
                .into_inner();
            match fmt {
                Format::Json => output::json(&reply),
                Format::Table => {
                    list_table(&reply.stacks).print();
                    Ok(())
                }
            }
        }
        StackCommand::Describe {
            name,
            cluster,
            file,
        } => {
            let mut req = DescribeStackRequest::default();
            if let Some(f) = &file {
                let (json, file_name, file_cluster) = read_stack(f, name.clone())?;
                req.stack_json = json;
                req.stack_name = file_name;
                req.cluster = file_cluster;
            }
            if let Some(n) = name {
                req.stack_name = n;
            }
            if req.stack_name.is_empty() {
                anyhow::bail!("name the stack: `berth stack describe NAME` or `-f FILE`");
            }
            match cluster {
                Some(c) => req.cluster = c,
                None if file.is_none() => {
                    req.cluster = cluster_of(&mut client, &req.stack_name).await?;
                }
                None => {}
            }
            let reply = client.describe_stack(req).await?.into_inner();
            match fmt {
                Format::Json => output::json(&reply),
                Format::Table => {
                    describe(&reply);
                    Ok(())
                }
            }
        }
    }
}

/// The cluster of the one stack with this name (the default cluster when there is none, so the
/// server says it is not found).
async fn cluster_of(
    client: &mut StacksClient<crate::client::Conn>,
    name: &str,
) -> anyhow::Result<String> {
    let all = client
        .list_stacks(ListStacksRequest::default())
        .await?
        .into_inner()
        .stacks;
    let clusters: Vec<String> = all
        .iter()
        .filter(|s| s.name == name)
        .map(|s| short(&s.cluster_arn).to_string())
        .collect();
    match clusters.as_slice() {
        [] => Ok(String::new()),
        [one] => Ok(one.clone()),
        many => anyhow::bail!(
            "stacks named {name} exist in clusters {}; pass --cluster",
            many.join(", ")
        ),
    }
}

fn short(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// "cluster, 1 task definition, 2 services": what the stack owns.
fn resources(s: &Stack) -> String {
    let plural = |n: usize, one: &str| format!("{n} {one}{}", if n == 1 { "" } else { "s" });
    let mut parts = Vec::new();
    if s.owns_cluster {
        parts.push("cluster".to_string());
    }
    parts.push(plural(s.families.len(), "task definition"));
    parts.push(plural(s.services.len(), "service"));
    parts.join(", ")
}

fn list_table(stacks: &[Stack]) -> Table {
    let mut t = Table::new(&["NAME", "CLUSTER", "RESOURCES", "LAST APPLY", "STATUS"]);
    for s in stacks {
        t.row(vec![
            s.name.clone(),
            short(&s.cluster_arn).to_string(),
            resources(s),
            or_dash(&s.updated_at),
            s.status.clone(),
        ]);
    }
    t
}

fn describe(reply: &StackReply) {
    let s = reply.stack.clone().unwrap_or_default();
    crate::outln!("Stack        {}", s.name);
    crate::outln!("Cluster      {}", short(&s.cluster_arn));
    crate::outln!("Status       {}", s.status);
    crate::outln!("Created      {}", or_dash(&s.created_at));
    crate::outln!(
        "Last apply   {} ({})",
        or_dash(&s.updated_at),
        summary(&s.last_changes)
    );
    crate::outln!();
    let mut t = Table::new(&["KIND", "NAME", "STATUS", "DETAIL"]);
    for r in &reply.resources {
        t.row(vec![
            r.kind.clone(),
            r.name.clone(),
            r.status.clone(),
            or_dash(&r.detail),
        ]);
    }
    t.print();
    crate::outln!();
    if reply.drift.is_empty() {
        crate::outln!(
            "No drift from the {}: the live resources are as declared.",
            reply.drift_from
        );
        return;
    }
    crate::outln!("Drift from the {}:", reply.drift_from);
    let mut t = Table::new(&["KIND", "NAME", "FIELD", "DECLARED", "LIVE"]);
    for d in &reply.drift {
        t.row(vec![
            d.kind.clone(),
            d.name.clone(),
            d.field.clone(),
            d.declared.clone(),
            d.live.clone(),
        ]);
    }
    t.print();
}
