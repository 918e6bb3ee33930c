//! `berth apply -f FILE` and `berth delete -f FILE`: a stack of task definitions and services,
//! in JSON or YAML, applied as one.

use crate::client::connect;
use crate::client::Conn as Channel;
use crate::output::{self, Format, Table};
use anyhow::Context;
use berth_proto::v1::services_client::ServicesClient;
use berth_proto::v1::stacks_client::StacksClient;
use berth_proto::v1::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// The stack file: JSON, or YAML when it ends in .yaml or .yml.
    #[arg(short, long)]
    pub file: PathBuf,
    /// Stack name (default: the file's `name`, else its file name without extension).
    #[arg(long)]
    pub name: Option<String>,
    /// Show what would change, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Wait until every service of the stack is stable (its deployment completed).
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this long.
    #[arg(long, default_value = "10m", value_parser = super::flags::parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// The stack file that was applied.
    #[arg(short, long)]
    pub file: PathBuf,
    #[arg(long)]
    pub name: Option<String>,
    /// Only start deleting: do not wait for the services to drain (run again to finish).
    #[arg(long)]
    pub no_wait: bool,
    #[arg(long, default_value = "10m", value_parser = super::flags::parse_duration)]
    pub timeout: Duration,
}

/// "1 created, 2 unchanged": what an apply did, by action.
pub fn summary(changes: &[StackChange]) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for c in changes {
        match counts.iter_mut().find(|(a, _)| *a == c.action) {
            Some((_, n)) => *n += 1,
            None => counts.push((c.action.clone(), 1)),
        }
    }
    counts
        .iter()
        .map(|(a, n)| format!("{n} {a}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The file as JSON text, its stack name and its cluster.
pub(super) fn read_stack(
    file: &Path,
    name: Option<String>,
) -> anyhow::Result<(String, String, String)> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let most = berth_core::limits::STACK_FILE_BYTES;
    if text.len() > most {
        anyhow::bail!(
            "{}: {} bytes is over the maximum of {most} bytes for a stack file (CloudFormation's limit on a template); split it into several stacks",
            file.display(),
            text.len()
        );
    }
    let yaml = matches!(
        file.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    let value: serde_json::Value = if yaml {
        serde_saphyr::from_str_with_options(&text, yaml_options()).map_err(|e| {
            anyhow::anyhow!(
                "{}: not valid YAML (at most {} levels of nesting): {e}",
                file.display(),
                berth_core::limits::YAML_DEPTH
            )
        })?
    } else {
        serde_json::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "{}: not valid JSON: {e} (a .yaml or .yml file is read as YAML)",
                file.display()
            )
        })?
    };
    let field = |k: &str| {
        value
            .get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let stem = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_string();
    let name = name
        .or_else(|| Some(field("name")).filter(|n| !n.is_empty()))
        .unwrap_or(stem);
    Ok((value.to_string(), name, field("cluster")))
}

fn print_changes(changes: &[StackChange]) {
    let mut t = Table::new(&["KIND", "NAME", "ACTION", "DETAIL"]);
    for c in changes {
        t.row(vec![
            c.kind.clone(),
            c.name.clone(),
            c.action.clone(),
            output::or_dash(&c.detail),
        ]);
    }
    t.print();
}

pub async fn apply(a: ApplyArgs, server: &str, fmt: Format) -> anyhow::Result<()> {
    let (json, name, cluster) = read_stack(&a.file, a.name)?;
    let channel = connect(server).await?;
    let reply = StacksClient::new(channel.clone())
        .apply_stack(ApplyStackRequest {
            stack_name: name.clone(),
            stack_json: json,
            dry_run: a.dry_run,
        })
        .await?
        .into_inner();
    for w in &reply.warnings {
        eprintln!("note: {}: {w}", a.file.display());
    }
    if fmt == Format::Table {
        print_changes(&reply.changes);
        let changed = reply.changes.iter().any(|c| c.action != "unchanged");
        if changed {
            crate::outln!("stack {name}: {}", summary(&reply.changes));
        } else {
            crate::outln!(
                "stack {name}: no changes (every task definition and service is as the file says)"
            );
        }
    }
    if a.wait && !a.dry_run {
        let services = reply
            .stack
            .as_ref()
            .map(|s| s.services.clone())
            .unwrap_or_default();
        wait_stable(channel.clone(), &cluster, &services, a.timeout).await?;
    }
    if fmt == Format::Json {
        return output::json(&reply);
    }
    Ok(())
}

/// One line per service whenever its progress changes, until every primary deployment has
/// completed.
async fn wait_stable(
    channel: Channel,
    cluster: &str,
    services: &[String],
    timeout: Duration,
) -> anyhow::Result<()> {
    let late = "were not stable within";
    poll_services(channel, cluster, services, timeout, late, |name, svc| {
        let svc = svc.with_context(|| format!("service {name} no longer exists"))?;
        let d = svc.deployments.first().cloned().unwrap_or_default();
        if d.rollout_state == "FAILED" {
            anyhow::bail!(
                "service {name}: deployment {} failed: {}",
                d.id,
                d.rollout_state_reason
            );
        }
        let line = format!(
            "service {name}: {} running, {} pending, {} healthy of {} desired — {}",
            d.running_count, d.pending_count, d.healthy_count, d.desired_count, d.rollout_state
        );
        Ok((line, d.rollout_state == "COMPLETED"))
    })
    .await?;
    crate::outln!(
        "stack is stable: {} services at their desired count",
        services.len()
    );
    Ok(())
}

/// Describes each service every 500 ms and prints its line from `judge` whenever it changes,
/// until `judge` says every one is done (or fails with its error). `judge` gets `None` for a
/// service that no longer exists; `late` words the error after `timeout`.
async fn poll_services(
    channel: Channel,
    cluster: &str,
    services: &[String],
    timeout: Duration,
    late: &str,
    judge: impl Fn(&str, Option<Service>) -> anyhow::Result<(String, bool)>,
) -> anyhow::Result<()> {
    let mut client = ServicesClient::new(channel);
    let deadline = Instant::now() + timeout;
    let mut last: HashMap<String, String> = HashMap::new();
    loop {
        let mut done = 0;
        for name in services {
            let svc = match client
                .describe_service(DescribeServiceRequest {
                    cluster: cluster.into(),
                    service: name.clone(),
                })
                .await
            {
                Ok(r) => Some(r.into_inner().service.unwrap_or_default()),
                Err(s) if s.code() == tonic::Code::NotFound => None,
                Err(s) => return Err(s.into()),
            };
            let (line, finished) = judge(name, svc)?;
            if last.get(name) != Some(&line) {
                eprintln!("{line}");
                last.insert(name.clone(), line);
            }
            done += usize::from(finished);
        }
        if done == services.len() {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!("the stack's services {late} {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub async fn delete(a: DeleteArgs, server: &str, fmt: Format) -> anyhow::Result<()> {
    let (_, name, cluster) = read_stack(&a.file, a.name)?;
    let channel = connect(server).await?;
    let mut stacks = StacksClient::new(channel.clone());
    let req = DeleteStackRequest {
        cluster: cluster.clone(),
        stack_name: name.clone(),
    };
    let first = stacks.delete_stack(req.clone()).await?.into_inner();
    let record = first.stack.clone().unwrap_or_default();
    let mut changes = first.changes.clone();
    if record.status == "DELETING" {
        if a.no_wait {
            if fmt == Format::Json {
                return output::json(&first);
            }
            print_changes(&changes);
            crate::outln!(
                "stack {name} is DELETING: its services are draining; run again to finish"
            );
            return Ok(());
        }
        wait_inactive(channel, &cluster, &record.services, a.timeout).await?;
        let last = stacks.delete_stack(req).await?.into_inner();
        changes.retain(|c| c.kind != "service");
        changes.extend(last.changes.iter().cloned());
        if fmt == Format::Json {
            return output::json(&last);
        }
    } else if fmt == Format::Json {
        return output::json(&first);
    }
    print_changes(&changes);
    crate::outln!("stack {name} deleted");
    Ok(())
}

async fn wait_inactive(
    channel: Channel,
    cluster: &str,
    services: &[String],
    timeout: Duration,
) -> anyhow::Result<()> {
    let late = "were still draining after";
    poll_services(channel, cluster, services, timeout, late, |name, svc| {
        let svc = svc.unwrap_or_else(|| Service {
            status: "INACTIVE".into(),
            ..Default::default()
        });
        let line = format!(
            "service {name}: {} — {} running, {} pending",
            svc.status, svc.running_count, svc.pending_count
        );
        Ok((line, svc.status == "INACTIVE"))
    })
    .await
}

/// YAML's budget for a stack file: nesting bounded before the parser recurses into it.
fn yaml_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = berth_core::limits::YAML_DEPTH;
    budget.flow_nesting_limit = berth_core::limits::YAML_DEPTH;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options
}
