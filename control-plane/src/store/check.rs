//! `berth store check` and `berth store repair`: what a data directory's log holds, read
//! without opening the store; and cutting the log at its last good record, only when asked,
//! keeping a copy of everything it cuts.

use super::log_store::LogStore;
use super::replay::{self, Damage, Torn};
use super::snapshot_file::{self, SnapshotInfo, Summed};
use super::wal::{self, Entry};
use super::StoreError;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// What `check` found.
#[derive(Debug)]
pub struct Report {
    /// The log's directory (`DATA/log`).
    pub dir: PathBuf,
    pub snapshot: Option<SnapshotInfo>,
    pub segments: usize,
    /// Records read whole (a snapshot's keys count one each).
    pub records: u64,
    /// The newest revision read whole.
    pub revision: u64,
    /// A torn tail: the next start cuts it (never an acknowledged write).
    pub torn: Option<Torn>,
    /// Damage: the next start refuses, until `repair`.
    pub damage: Option<Damage>,
}

fn log_dir(data_dir: &Path) -> Result<PathBuf, StoreError> {
    let dir = data_dir.join("log");
    if !dir.is_dir() {
        return Err(StoreError::Io(format!(
            "{} holds no embedded store (no {}): pass the --data directory `berth dev` or `berth server` uses",
            data_dir.display(),
            dir.display()
        )));
    }
    Ok(dir)
}

/// Reads the store in `data_dir` through, as opening it would, changing nothing.
pub fn check(data_dir: &Path) -> Result<Report, StoreError> {
    let dir = log_dir(data_dir)?;
    let files = wal::list(&dir)?;
    let loaded = replay::load(&dir, &files, &mut |_| {})?;
    let floor = files.snapshot.unwrap_or(0);
    Ok(Report {
        segments: files.segments.iter().filter(|s| **s >= floor).count(),
        dir,
        snapshot: loaded.snapshot,
        records: loaded.records,
        revision: loaded.revision,
        torn: loaded.torn,
        damage: loaded.damage,
    })
}

/// What `repair` cuts, or cut.
#[derive(Debug)]
pub struct Repair {
    pub damage: Damage,
    /// Only the snapshot's trailer is bad: every record is kept, the trailer is written anew.
    pub trailer_only: bool,
    /// Where the copy of what is cut goes.
    pub copy: PathBuf,
}

impl std::fmt::Display for Repair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = &self.damage;
        writeln!(f, "{d}.")?;
        if self.trailer_only {
            return writeln!(
                f,
                "Only the snapshot's trailer is bad: its records are kept and its checksum written anew; no record is dropped. A copy of the file goes to {}.",
                self.copy.display()
            );
        }
        let dropped = match (d.after.first(), d.after.last()) {
            (Some(a), Some(b)) => format!(
                "the damaged record and {} records after it (revisions {a}..={b})",
                d.after.len()
            ),
            _ => "the damaged record (no readable record follows it)".into(),
        };
        writeln!(
            f,
            "Repair keeps every record before offset {} of {} (up to revision {}) and drops {dropped}{}.",
            d.offset,
            d.file.display(),
            d.last_good,
            if d.later.is_empty() {
                String::new()
            } else {
                format!(", with the {} log files after it", d.later.len())
            }
        )?;
        if d.in_snapshot {
            writeln!(f, "The damage is in the snapshot: the keys in and after its bad record are dropped too; restoring a backup may lose less.")?;
        }
        writeln!(
            f,
            "A copy of every file it cuts goes to {} first.",
            self.copy.display()
        )
    }
}

/// What `repair` would cut in `data_dir` (None: nothing is damaged).
pub fn plan(data_dir: &Path) -> Result<Option<Repair>, StoreError> {
    let report = check(data_dir)?;
    let Some(damage) = report.damage else {
        return Ok(None);
    };
    let len = std::fs::metadata(&damage.file)
        .map_err(|e| wal::io(&damage.file, e))?
        .len();
    let trailer_only = damage.in_snapshot && damage.offset + 20 == len && {
        let (_, closed) = snapshot_prefix(&damage.file, damage.offset)?;
        closed
    };
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(Some(Repair {
        damage,
        trailer_only,
        copy: data_dir.join(format!("log.cut-{stamp}")),
    }))
}

/// Cuts the log as `repair` (from `plan`) says, holding the store's lock: copies every file it
/// changes or drops to `repair.copy`, then truncates the damaged segment at the bad record (or
/// rewrites the snapshot from its good records) and drops the files after it.
pub fn repair(data_dir: &Path, repair: &Repair) -> Result<(), StoreError> {
    let dir = log_dir(data_dir)?;
    let _lock = super::log_store::lock_dir(&dir)?;
    let d = &repair.damage;
    std::fs::create_dir(&repair.copy).map_err(|e| wal::io(&repair.copy, e))?;
    let copy_of = |p: &Path| repair.copy.join(p.file_name().unwrap_or_default());
    std::fs::copy(&d.file, copy_of(&d.file)).map_err(|e| wal::io(&d.file, e))?;
    if !repair.trailer_only {
        for later in &d.later {
            std::fs::rename(later, copy_of(later)).map_err(|e| wal::io(later, e))?;
        }
    }
    wal::sync_dir(&repair.copy)?;
    if d.in_snapshot {
        rewrite_snapshot(&d.file, d.offset)?;
    } else {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&d.file)
            .map_err(|e| wal::io(&d.file, e))?;
        f.set_len(d.offset)
            .and_then(|_| f.sync_all())
            .map_err(|e| wal::io(&d.file, e))?;
    }
    wal::sync_dir(&dir)?;
    drop(_lock);
    // What is left must open.
    LogStore::open(&dir).map(drop)
}

/// A record's writes and its revision.
type Kept = (Vec<Entry>, u64);

/// The entries of a snapshot's records before `offset`, and whether they end with its
/// closing record.
fn snapshot_prefix(path: &Path, offset: u64) -> Result<(Vec<Kept>, bool), StoreError> {
    let file = std::fs::File::open(path).map_err(|e| wal::io(path, e))?;
    let mut records = Vec::new();
    let mut closed = false;
    wal::read_records_from(std::io::BufReader::new(file).take(offset), |r| {
        closed = r.entries.is_empty();
        records.push((r.entries, r.revision));
    })
    .map_err(|e| wal::io(path, e))?;
    Ok((records, closed))
}

/// Writes the snapshot anew from its records before `offset`, closed at the newest revision
/// they hold, and sealed.
fn rewrite_snapshot(path: &Path, offset: u64) -> Result<(), StoreError> {
    let (records, _) = snapshot_prefix(path, offset)?;
    let mut revision = 0;
    let mut buf = Vec::new();
    for (entries, r) in &records {
        revision = revision.max(*r);
        if entries.is_empty() {
            continue;
        }
        wal::encode(
            &mut buf,
            0,
            entries.iter().map(|e| {
                if let Entry::Put(r) = e {
                    revision = revision.max(r.revision());
                }
                e.as_ref()
            }),
        );
    }
    wal::encode(&mut buf, revision, std::iter::empty());
    let tmp = path.with_extension("tmp");
    let mut out = Summed::new(super::log_store::create_private(&tmp)?);
    out.write_all(&buf)
        .and_then(|_| out.finish())
        .and_then(|_| out.inner.sync_all())
        .map_err(|e| wal::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| wal::io(path, e))?;
    let _ = snapshot_file::inspect(path)?;
    Ok(())
}
