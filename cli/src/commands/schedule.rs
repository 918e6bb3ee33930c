//! `berth schedule list|describe`: EventBridge rules and Scheduler schedules that run tasks,
//! with their next runs and their last runs' tasks as they stand.

use crate::client::connect;
use crate::output::{self, or_dash, Format, Table};
use berth_proto::v1::tasks_client::TasksClient;
use berth_proto::v1::*;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Every schedule (rules and Scheduler schedules), with its next run and its last run.
    List {
        /// Only schedules whose targets run in this cluster.
        #[arg(long, default_value = "")]
        cluster: String,
    },
    /// One schedule: its expression, targets, next runs and last runs with their tasks.
    Describe { name: String },
}

pub async fn run(cmd: ScheduleCommand, server: &str, fmt: Format) -> anyhow::Result<()> {
    let mut client = TasksClient::new(connect(server).await?);
    let (req, one) = match cmd {
        ScheduleCommand::List { cluster } => (
            ListSchedulesRequest {
                cluster,
                name: String::new(),
            },
            false,
        ),
        ScheduleCommand::Describe { name } => (
            ListSchedulesRequest {
                cluster: String::new(),
                name,
            },
            true,
        ),
    };
    let name = req.name.clone();
    let reply = client.list_schedules(req).await?.into_inner();
    if one && reply.schedules.is_empty() {
        anyhow::bail!("schedule {name:?} not found: see `berth schedule list`");
    }
    if fmt == Format::Json {
        return output::json(&reply);
    }
    if !one {
        let mut t = Table::new(&[
            "NAME",
            "KIND",
            "EXPRESSION",
            "STATE",
            "NEXT RUN",
            "LAST RUN",
            "LAST TASKS",
        ]);
        for v in &reply.schedules {
            let s = v.schedule.clone().unwrap_or_default();
            let last = v.runs.first();
            t.row(vec![
                s.name.clone(),
                s.kind.clone(),
                s.expression.clone(),
                s.state.clone(),
                or_dash(v.next_runs.first().map_or("", String::as_str)),
                or_dash(last.map_or("", |r| r.tick.as_str())),
                last.map_or("-".into(), outcome),
            ]);
        }
        t.print();
        return Ok(());
    }
    for v in &reply.schedules {
        let s = v.schedule.clone().unwrap_or_default();
        crate::outln!("Name        {} ({})", s.name, s.kind);
        crate::outln!("ARN         {}", s.arn);
        crate::outln!("Expression  {} {}", s.expression, or_dash(&s.timezone));
        crate::outln!("State       {}", s.state);
        for t in &s.targets {
            let r = t.run.clone().unwrap_or_default();
            crate::outln!(
                "Target      {} runs {} x{} in {}",
                or_dash(&t.id),
                r.task_definition,
                r.count.max(1),
                r.cluster
            );
        }
        crate::outln!("Next runs   {}", or_dash(&v.next_runs.join(", ")));
        crate::outln!("Last runs");
        let mut t = Table::new(&["TICK", "FIRED", "TASKS", "OUTCOME"]);
        for r in &v.runs {
            let ids: Vec<&str> = r
                .tasks
                .iter()
                .map(|t| t.task_arn.rsplit('/').next().unwrap_or(""))
                .collect();
            t.row(vec![
                r.tick.clone(),
                r.fired_at.clone(),
                or_dash(&ids.join(" ")),
                outcome(r),
            ]);
        }
        t.print();
    }
    Ok(())
}

/// A run's tasks in a few words: `RUNNING`, `STOPPED exit 0`, or why it started nothing.
fn outcome(r: &ScheduleRunView) -> String {
    let mut parts: Vec<String> = r
        .tasks
        .iter()
        .map(|t| {
            let exit = t
                .containers
                .iter()
                .find_map(|c| c.exit_code)
                .map(|c| format!(" exit {c}"))
                .unwrap_or_default();
            format!("{}{exit}", t.last_status)
        })
        .collect();
    parts.extend(r.failures.iter().cloned());
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join("; ")
    }
}
