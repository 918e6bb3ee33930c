//! Reading a log store's directory back: the snapshot, then each segment after it, telling a
//! torn tail (cut, as a crash leaves it) from damage (refused, named). Reads only: what to do
//! about what it finds is the caller's (open, `berth store check`, `berth store repair`).
//!
//! A torn tail is an incomplete or bad record at the very end of the last segment that holds
//! anything, with no valid record after it: a write the crash interrupted, never acknowledged.
//! Anything else is damage, as etcd judges its WAL: a bad record with history after it, a bad
//! record in an older segment, or a snapshot that is not whole. Cutting there would drop
//! acknowledged writes, or replay later writes over missing earlier ones.

use super::snapshot_file::{self, SnapshotInfo, SnapshotRead};
use super::wal::{self, Entry, Files};
use super::StoreError;
use std::path::{Path, PathBuf};

/// Where a store's files stop being trustworthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub file: PathBuf,
    pub offset: u64,
    pub why: String,
    /// The newest revision read whole before the damage (0: none).
    pub last_good: u64,
    /// The revisions of records that can still be read after the damage, in the damaged file
    /// and the files after it: what cutting there drops.
    pub after: Vec<u64>,
    /// The files after the damaged one, dropped with it.
    pub later: Vec<PathBuf>,
    /// The damage is in the snapshot the log builds on.
    pub in_snapshot: bool,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is damaged at offset {}: {}; the last good revision is {}",
            self.file.display(),
            self.offset,
            self.why,
            self.last_good
        )?;
        match (self.after.first(), self.after.last()) {
            (Some(first), Some(last)) => write!(
                f,
                ", and {} records after it (revisions {first}..={last}) are still readable",
                self.after.len()
            ),
            _ => Ok(()),
        }
    }
}

/// A torn tail found at the end of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Torn {
    pub segment: u64,
    /// The length of the segment's whole records: where it is cut.
    pub whole: u64,
    pub bytes: u64,
    pub why: String,
}

/// What a directory's files hold.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The newest revision read.
    pub revision: u64,
    /// Records replayed (the snapshot's keys count one each).
    pub records: u64,
    /// Bytes of whole records in the segments after the snapshot.
    pub logged: u64,
    pub snapshot: Option<SnapshotInfo>,
    pub torn: Option<Torn>,
    /// Set: the files are not to be opened as they are; what `apply` saw stops before it.
    pub damage: Option<Damage>,
}

/// Reads `dir`'s snapshot and the segments after it, handing `apply` every write in order.
pub fn load(
    dir: &Path,
    files: &Files,
    apply: &mut dyn FnMut(Vec<Entry>),
) -> Result<Loaded, StoreError> {
    let mut out = Loaded::default();
    let floor = files.snapshot.unwrap_or(0);
    let segments: Vec<u64> = files
        .segments
        .iter()
        .copied()
        .filter(|s| *s >= floor)
        .collect();
    let paths: Vec<PathBuf> = segments.iter().map(|s| wal::segment(dir, *s)).collect();
    if let Some(seq) = files.snapshot {
        let path = wal::snapshot(dir, seq);
        let mut keys = 0;
        match snapshot_file::read(&path, |r| {
            keys += r.entries.len() as u64;
            apply(r.entries)
        })? {
            SnapshotRead::Whole(info) => {
                out.revision = info.revision;
                out.records = keys;
                out.snapshot = Some(info);
            }
            SnapshotRead::Damaged { offset, why } => {
                out.damage = Some(Damage {
                    file: path,
                    offset,
                    why,
                    last_good: 0,
                    after: later_revisions(&paths)?,
                    later: paths,
                    in_snapshot: true,
                });
                return Ok(out);
            }
        }
    }
    // Segments after the last one holding anything are empty: a torn tail may end that one.
    let mut last_used = 0;
    for (i, p) in paths.iter().enumerate() {
        if std::fs::metadata(p).map_err(|e| wal::io(p, e))?.len() > 0 {
            last_used = i;
        }
    }
    for (i, path) in paths.iter().enumerate() {
        let mut revision = out.revision;
        let mut records = 0;
        let scan = wal::each_record(path, |r| {
            revision = revision.max(r.revision);
            records += 1;
            apply(r.entries)
        })?;
        out.revision = revision;
        out.records += records;
        out.logged += scan.whole;
        let Some(why) = scan.bad else { continue };
        let mut after = wal::valid_after(path, scan.whole, out.revision)?;
        if i >= last_used && after.is_empty() {
            let len = std::fs::metadata(path).map_err(|e| wal::io(path, e))?.len();
            out.torn = Some(Torn {
                segment: segments[i],
                whole: scan.whole,
                bytes: len - scan.whole,
                why,
            });
            continue;
        }
        after.extend(later_revisions(&paths[i + 1..])?);
        out.damage = Some(Damage {
            file: path.clone(),
            offset: scan.whole,
            why,
            last_good: out.revision,
            after,
            later: paths[i + 1..].to_vec(),
            in_snapshot: false,
        });
        return Ok(out);
    }
    Ok(out)
}

/// The revisions of the whole records in `paths`, read as far as each goes.
fn later_revisions(paths: &[PathBuf]) -> Result<Vec<u64>, StoreError> {
    let mut revisions = Vec::new();
    for p in paths {
        wal::each_record(p, |r| revisions.push(r.revision))?;
    }
    Ok(revisions)
}
