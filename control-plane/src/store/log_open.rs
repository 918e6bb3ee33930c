//! Opening the log store: its files are read back (refused whole when damaged, before anything
//! on disk changes), a torn tail is cut, and a new segment is started.

use super::*;
use crate::store::fs::{Disk, Fs};
use crate::store::replay;

/// A snapshot is taken once the log since the last one holds this much (and as much as the
/// last snapshot). `BERTH_SNAPSHOT_AFTER` (bytes) lowers it, for tests that need snapshots often.
fn snapshot_after() -> u64 {
    std::env::var("BERTH_SNAPSHOT_AFTER")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(SNAPSHOT_AFTER)
}

impl LogStore {
    /// Opens (or creates) the store in `dir`: loads the newest snapshot, replays the log after
    /// it (a torn tail is cut), and starts a new segment. Damaged files are refused, naming the
    /// file, the offset and the last good revision, with nothing on disk changed.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(dir, Arc::new(Disk))
    }

    /// As `open`, with every write, sync, rename and remove going through `fs`.
    pub fn open_with(dir: &Path, fs: Arc<dyn Fs>) -> Result<Self, StoreError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| wal::io(dir, e))?;
        let lock = lock(dir)?;
        let files = wal::list(dir)?;
        let mut loader = Loader::default();
        let loaded = replay::load(dir, &files, &mut |entries| loader.apply(entries))?;
        let records = loader.finish();
        if let Some(damage) = &loaded.damage {
            return Err(refusal(dir, damage));
        }
        if let Some(torn) = &loaded.torn {
            // Cut, so the next open reads the same log and appends follow whole records.
            let path = wal::segment(dir, torn.segment);
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| wal::io(&path, e))?;
            fs.set_len(&f, torn.whole)
                .and_then(|_| fs.sync(&f))
                .map_err(|e| wal::io(&path, e))?;
            tracing::warn!(
                file = %path.display(),
                offset = torn.whole,
                bytes = torn.bytes,
                why = %torn.why,
                "cut a torn tail from the store's log (a write a crash interrupted, never acknowledged)"
            );
        }
        let floor = files.snapshot.unwrap_or(0);
        for old in files.segments.iter().filter(|s| **s < floor) {
            let _ = fs.remove(&wal::segment(dir, *old));
        }
        for stale in &files.stale {
            let _ = fs.remove(stale);
        }
        let segment = files
            .segments
            .last()
            .copied()
            .unwrap_or(0)
            .max(floor)
            .saturating_add(1);
        let log = create_segment(&*fs, dir, segment)?;
        let synced_log = log.try_clone().map_err(|e| wal::io(dir, e))?;
        let last_snapshot = loaded.snapshot.as_ref().map_or(0, |s| s.bytes);
        let revision = loaded.revision.max(1);
        let (changes, _) = broadcast::channel(4096);
        Ok(Self {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                fs,
                records: RwLock::new(records),
                commit: Mutex::new(Committer {
                    revision,
                    log,
                    segment,
                    len: 0,
                    logged: loaded.logged,
                    last_snapshot,
                    dirs: Dirs {
                        floor: revision,
                        ..Default::default()
                    },
                    buf: Vec::new(),
                    broken: false,
                }),
                background: Mutex::new(()),
                appended: AtomicU64::new(revision),
                history: Mutex::new(History::default()),
                synced: Mutex::new(Synced {
                    revision,
                    syncing: false,
                    log: Arc::new(synced_log),
                }),
                synced_cv: std::sync::Condvar::new(),
                unsent: Mutex::new(VecDeque::new()),
                changes,
                snapshotting: AtomicBool::new(false),
                snapshot_after: snapshot_after(),
                health: Health::default(),
                _lock: lock,
            }),
        })
    }
}

/// The error a damaged store opens with: where, what is known good, and what to run.
fn refusal(dir: &Path, damage: &replay::Damage) -> StoreError {
    let data = match dir.file_name() {
        Some(n) if n == "log" => dir.parent().unwrap_or(dir),
        _ => dir,
    };
    let fix = if damage.in_snapshot {
        "restore a backup (`berth operator snapshot restore`), or cut there with `berth store repair`"
    } else {
        "`berth store repair` cuts the log there, keeping a copy of what it cuts"
    };
    StoreError::Corrupt(format!(
        "{damage}. The store was not opened and nothing on disk was changed: `berth store check --data {}` reports it; {fix}",
        data.display()
    ))
}

/// Builds the map from the writes read back, without a key compare down the tree per write. A
/// snapshot's keys come in key order: they are gathered as they come. The writes after them
/// (the log) go into a hash map that keeps each key's newest write; at the end those few are
/// sorted, merged with the snapshot's, and the map built from the result at once (a sorted bulk
/// build). Inserting the log's writes one by one into a tree of three million keys cost a
/// string compare at every level for each, and a log rewrites most keys several times.
#[derive(Default)]
pub(super) struct Loader {
    /// The snapshot's records, in key order (and the log's, while they happen to follow on).
    sorted: Vec<Rec>,
    /// The newest write of each key since `sorted`: the record, or None for a delete.
    later: std::collections::HashMap<Rec, Option<Rec>>,
}

impl Loader {
    pub(super) fn apply(&mut self, entries: Vec<Entry>) {
        for e in entries {
            match e {
                Entry::Put(r)
                    if self.later.is_empty() && self.sorted.last().is_none_or(|last| *last < r) =>
                {
                    self.sorted.push(r)
                }
                Entry::Put(r) => {
                    self.later.remove(r.key_bytes());
                    self.later.insert(r.clone(), Some(r));
                }
                Entry::Delete(key) => {
                    self.later.remove(key.as_bytes());
                    self.later.insert(Rec::new(&key, b"", 0), None);
                }
            }
        }
    }

    pub(super) fn finish(self) -> Records {
        let Loader { sorted, later } = self;
        if later.is_empty() {
            return sorted.into_iter().collect();
        }
        let mut later: Vec<(Rec, Option<Rec>)> = later.into_iter().collect();
        later.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut merged = Vec::with_capacity(sorted.len() + later.len());
        let mut before = sorted.into_iter().peekable();
        for (key, write) in later {
            while let Some(r) = before.next_if(|r| *r < key) {
                merged.push(r);
            }
            // The later write replaces the snapshot's record of the key, or deletes it.
            before.next_if(|r| *r == key);
            merged.extend(write);
        }
        merged.extend(before);
        merged.into_iter().collect()
    }
}

/// Creates segment `seq`, its name durable before anything is appended to it.
pub(super) fn create_segment(fs: &dyn Fs, dir: &Path, seq: u64) -> Result<File, StoreError> {
    let path = wal::segment(dir, seq);
    let f = private()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| wal::io(&path, e))?;
    if let Err(e) = fs.sync_dir(dir) {
        // Not durable: leave no empty segment behind for a torn tail to hide behind.
        drop(f);
        let _ = std::fs::remove_file(&path);
        return Err(wal::io(dir, e));
    }
    Ok(f)
}

/// Files of the store are owner-only whatever the umask: they hold environment values, secrets
/// among them.
pub(super) fn private() -> std::fs::OpenOptions {
    let mut o = std::fs::OpenOptions::new();
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o
}

/// An exclusive lock on `dir/LOCK`, or a clear error naming the directory.
pub(super) fn lock(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join("LOCK");
    let f = private()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| wal::io(&path, e))?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(|_| {
        StoreError::Io(format!(
            "{} is in use by another process (its LOCK is held)",
            dir.display()
        ))
    })?;
    Ok(f)
}
