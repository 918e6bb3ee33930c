//! `berth store check|repair --data DIR`: the embedded store's files read through without
//! starting (damage named, as a start would refuse it), and a damaged log cut at its last good
//! record, only when asked, keeping a copy of what is cut.

use crate::output::{self, Format};
use berth_control_plane::store::check;
use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
pub enum StoreCommand {
    /// Reads the store through as a start would, changing nothing; exits 1 when it is damaged.
    Check {
        /// The data directory of `berth dev` or `berth server`.
        #[arg(long, env = "BERTH_DATA", default_value = "./berth-data")]
        data: PathBuf,
    },
    /// Cuts a damaged log at its last good record. Prints what it drops first; cuts only with
    /// --yes, copying every file it changes to DATA/log.cut-TIME. Stop the server first.
    Repair {
        #[arg(long, env = "BERTH_DATA", default_value = "./berth-data")]
        data: PathBuf,
        /// Cut: without it, repair only says what it would drop.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct CheckOutput {
    store: String,
    healthy: bool,
    revision: u64,
    records: u64,
    segments: usize,
    snapshot: Option<berth_control_plane::store::snapshot_file::SnapshotInfo>,
    torn_tail: Option<String>,
    damage: Option<String>,
}

pub fn run(cmd: StoreCommand, fmt: Format) -> anyhow::Result<()> {
    match cmd {
        StoreCommand::Check { data } => check_store(&data, fmt),
        StoreCommand::Repair { data, yes } => repair(&data, yes),
    }
}

fn check_store(data: &std::path::Path, fmt: Format) -> anyhow::Result<()> {
    let r = check::check(data)?;
    let out = CheckOutput {
        store: r.dir.display().to_string(),
        healthy: r.damage.is_none(),
        revision: r.revision,
        records: r.records,
        segments: r.segments,
        snapshot: r.snapshot.clone(),
        torn_tail: r.torn.as_ref().map(|t| {
            format!(
                "{} bytes after offset {} of segment {}: {} (cut at the next start; never an acknowledged write)",
                t.bytes, t.whole, t.segment, t.why
            )
        }),
        damage: r.damage.as_ref().map(ToString::to_string),
    };
    if fmt == Format::Json {
        output::json(&out)?;
    } else {
        println!("store: {}", out.store);
        match &out.snapshot {
            Some(s) => println!(
                "snapshot: revision {}, {} keys, {} bytes, checksum {}",
                s.revision, s.keys, s.bytes, s.checksum
            ),
            None => println!("snapshot: none"),
        }
        println!(
            "log: {} segments; {} records read whole, up to revision {}",
            out.segments, out.records, out.revision
        );
        if let Some(t) = &out.torn_tail {
            println!("torn tail: {t}");
        }
    }
    match r.damage {
        None => Ok(()),
        Some(d) => anyhow::bail!(
            "{d}. `berth dev`/`berth server` refuse to start on it; `berth store repair --data {}` says what cutting there drops",
            data.display()
        ),
    }
}

fn repair(data: &std::path::Path, yes: bool) -> anyhow::Result<()> {
    let Some(plan) = check::plan(data)? else {
        println!(
            "{}: nothing is damaged; nothing to repair",
            data.join("log").display()
        );
        return Ok(());
    };
    print!("{plan}");
    if !yes {
        anyhow::bail!("nothing was changed: run again with --yes to cut the log there");
    }
    check::repair(data, &plan)?;
    println!(
        "repaired: the store opens at revision {}; what was cut is in {}",
        if plan.trailer_only {
            check::check(data)?.revision
        } else {
            plan.damage.last_good
        },
        plan.copy.display()
    );
    Ok(())
}
