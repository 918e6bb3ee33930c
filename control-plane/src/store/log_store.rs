//! `Store` as a map in memory and a log on disk, the embedded default: every record is held in
//! memory, every batch is appended to a log and synced before it is acknowledged, and the log is
//! folded into a snapshot once it has grown past the snapshot before it. This is how Nomad and
//! Consul keep their state (go-memdb over a log and snapshots), for the same reason: a control
//! plane's state fits in memory, and reads then never wait for a write. sled 0.34 applied every
//! batch under one process-wide lock that every read also took, so a placement of a thousand
//! tasks stopped every reader in the server for about 20 ms, several times a second.
//!
//! Commits: a transaction's compares, its append and its apply to the map are one step under the
//! committer's lock; its sync runs after the lock is released, and one sync covers every batch
//! appended before it, so concurrent commits share their syncs. A change goes out on the feed
//! only once it is durable, in revision order. Readers see a batch once it is applied, as sled's
//! did. The store's revision and its recent changes are read without the committer's lock, so a
//! catch-up never waits for the commit under way.
//!
//! Snapshots are fuzzy: the log is cut over to a new segment, then the map is copied out a slice
//! at a time while commits go on. Every write after the cut is in the new segment, and every
//! logged write carries the whole value, so replaying the segment over the snapshot ends at the
//! exact state, whatever the copy caught mid-way.

use super::dirs::Dirs;
use super::fs::Fs;
use super::health::Health;
use super::history::History;
use super::record::Rec;
use super::records::Records;
use super::wal::{self, Entry, EntryRef};
use super::{Change, Compare, Op, Store, StoreError, TxnOutcome, Versioned};
use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::ops::Bound;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::broadcast;

/// A snapshot is taken once the log since the last one holds this much, and at least as much as
/// that snapshot: the copying then costs at most as much as the writes did, and a start reads
/// at most a snapshot's worth of log after the snapshot (it was twice that).
const SNAPSHOT_AFTER: u64 = 256 << 20;
/// The snapshot's writer syncs what it wrote every this many bytes: the kernel then never holds
/// a whole snapshot of dirty pages for the log's next sync to wait behind.
const SNAPSHOT_SYNC_EVERY: u64 = 8 << 20;
/// Records copied under one hold of the map's read lock while scanning or snapshotting.
const SLICE: usize = 2048;

fn versioned(r: &Rec) -> Versioned {
    Versioned {
        value: r.value().to_vec(),
        mod_revision: r.revision(),
    }
}

/// The embedded store. Cheap to share behind an `Arc`.
pub struct LogStore {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    /// Every write, sync, rename and remove of the store's files.
    fs: Arc<dyn Fs>,
    records: RwLock<Records>,
    /// Serialises transactions: compares, append and apply are one step.
    commit: Mutex<Committer>,
    /// As in the sled store: background commits go one at a time, so a request's commit waits
    /// for at most one of them.
    background: Mutex<()>,
    /// The newest revision appended to the log, applied to the map and kept in `history`
    /// (stored once all three are done): the store's revision, read without the committer.
    appended: AtomicU64,
    /// The recent changes, for `changes_since`: a catch-up reads them without waiting for the
    /// commit under way (pushed to under the committer's lock; never the other way round).
    history: Mutex<History>,
    /// Syncs the log: one at a time, each covering everything appended before it started; the
    /// commits that need one wait on `synced_cv` for the sync under way, never on a lock held
    /// through the disk's latency (an unfair lock let a stream of background commits starve a
    /// request's commit for 450 ms).
    synced: Mutex<Synced>,
    synced_cv: std::sync::Condvar,
    unsent: Mutex<VecDeque<Arc<Change>>>,
    changes: broadcast::Sender<Arc<Change>>,
    snapshotting: AtomicBool,
    /// The log's size that starts a snapshot (`SNAPSHOT_AFTER`, lower in tests).
    snapshot_after: u64,
    /// Whether writes are failing (a full disk), and whether a sync failed.
    health: Health,
    /// Held for the store's life: a second process on the same directory is refused.
    _lock: File,
}

struct Committer {
    revision: u64,
    log: File,
    segment: u64,
    /// The current segment's length: it ends after a whole record, and a failed append is cut
    /// back to here.
    len: u64,
    /// Bytes in the log since the last snapshot, and that snapshot's size.
    logged: u64,
    last_snapshot: u64,
    dirs: Dirs,
    buf: Vec<u8>,
    /// A failed append could not be cut back: what reached the log may be part of a record, so
    /// nothing more is appended after it (it would be history after damage).
    broken: bool,
}

struct Synced {
    revision: u64,
    /// A sync is under way.
    syncing: bool,
    /// The current segment, for syncing outside the committer's lock.
    log: Arc<File>,
}

impl LogStore {
    /// Takes a snapshot now and waits for it (tests; the store takes its own as the log grows).
    pub fn snapshot_now(&self) -> Result<(), StoreError> {
        let seq = {
            let mut c = self.inner.lock();
            if self.inner.snapshotting.swap(true, Ordering::AcqRel) {
                return Err(StoreError::Io("a snapshot is already being taken".into()));
            }
            self.inner.cut(&mut c)?
        };
        self.inner.write_snapshot(seq)
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Committer> {
        self.commit.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Records> {
        self.records.read().unwrap_or_else(|p| p.into_inner())
    }

    fn history(&self) -> std::sync::MutexGuard<'_, History> {
        self.history.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn unsent(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<Change>>> {
        self.unsent.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Compares, append, apply: None when a compare failed; else the revision, and whether
    /// anything up to it may not be durable yet.
    fn apply(
        self: &Arc<Self>,
        compares: &[Compare],
        ops: Vec<Op>,
    ) -> Result<Option<(u64, bool)>, StoreError> {
        let _turn = (!crate::foreground::is_request())
            .then(|| self.background.lock().unwrap_or_else(|p| p.into_inner()));
        let mut c = self.lock();
        for cmp in compares {
            if !self.holds(&c.dirs, cmp) {
                return Ok(None);
            }
        }
        if ops.is_empty() {
            return Ok(Some((c.revision, !self.unsent().is_empty())));
        }
        self.health.usable()?;
        if c.broken {
            return Err(StoreError::Io(format!(
                "the log in {} failed a write that could not be cut back; restart the server to replay it",
                self.dir.display()
            )));
        }
        let revision = c.revision + 1;
        let mut buf = std::mem::take(&mut c.buf);
        buf.clear();
        wal::encode(
            &mut buf,
            revision,
            ops.iter().map(|op| match op {
                Op::Put(k, v) => EntryRef::Put {
                    key: k,
                    value: v,
                    revision,
                },
                Op::Delete(k) => EntryRef::Delete(k),
            }),
        );
        let written = self.fs.write(&c.log, &buf);
        let appended = buf.len() as u64;
        if buf.capacity() <= 1 << 20 {
            c.buf = buf;
        }
        if let Err(e) = written {
            return Err(self.append_failed(&mut c, e));
        }
        c.len += appended;
        c.logged += appended;
        self.health.wrote();
        let mut keys = Vec::with_capacity(ops.len());
        {
            let mut records = self.records.write().unwrap_or_else(|p| p.into_inner());
            for op in ops {
                match op {
                    Op::Put(k, value) => {
                        c.dirs.put(&k, revision);
                        records.replace(Rec::new(&k, &value, revision));
                        keys.push(k);
                    }
                    Op::Delete(k) => {
                        records.remove(k.as_bytes());
                        keys.push(k);
                    }
                }
            }
        }
        c.revision = revision;
        let change = Arc::new(Change {
            revision,
            keys,
            resync: false,
        });
        self.history().push(change.clone());
        self.appended.store(revision, Ordering::Release);
        self.unsent().push_back(change);
        if c.logged >= self.snapshot_after.max(c.last_snapshot)
            && !self.snapshotting.swap(true, Ordering::AcqRel)
        {
            // The batch is in the log and the map: whatever befalls the snapshot, it commits.
            self.start_snapshot(&mut c);
        }
        Ok(Some((revision, true)))
    }

    fn holds(&self, dirs: &Dirs, c: &Compare) -> bool {
        match c {
            Compare::ModRevision { key, revision } => {
                self.read().get(key.as_bytes()).map_or(0, Rec::revision) == *revision
            }
            Compare::PrefixUnchangedSince { prefix, revision } => dirs
                .unchanged_since(prefix, *revision)
                .unwrap_or_else(|| under(&self.read(), prefix).all(|r| r.revision() <= *revision)),
        }
    }

    /// An append failed (a full disk, an I/O error): the segment is cut back to its last whole
    /// record, so the next append can succeed once the disk allows it, with no restart. Nothing
    /// of the batch was applied; the caller hears why.
    fn append_failed(&self, c: &mut Committer, e: std::io::Error) -> StoreError {
        let path = wal::segment(&self.dir, c.segment);
        if let Err(cut) = self.fs.set_len(&c.log, c.len) {
            c.broken = true;
            tracing::error!(file = %path.display(), error = %cut, "a failed append could not be cut back");
        }
        self.health.write_failed(&path, &e)
    }

    /// Under the committer's lock: cuts the log over and copies the map out on a thread.
    fn start_snapshot(self: &Arc<Self>, c: &mut Committer) {
        let seq = match self.cut(c) {
            Ok(seq) => seq,
            Err(e) => {
                self.snapshotting.store(false, Ordering::Release);
                tracing::warn!(error = %e, "snapshot not taken; the log keeps growing");
                return;
            }
        };
        let me = self.clone();
        let spawned = std::thread::Builder::new()
            .name("berth-snapshot".into())
            .spawn(move || {
                if let Err(e) = me.write_snapshot(seq) {
                    tracing::warn!(error = %e, "snapshot not taken; the log keeps growing");
                }
            });
        if spawned.is_err() {
            self.snapshotting.store(false, Ordering::Release);
        }
    }

    /// Syncs the log up to at least `revision`. A failed sync is final (see `Fs::sync_failed`).
    fn sync(&self, revision: u64) -> Result<(), StoreError> {
        let mut s = self.synced.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if s.revision >= revision {
                return Ok(());
            }
            self.health.usable()?;
            if s.syncing {
                s = self.synced_cv.wait(s).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            // Read together with the segment under the lock: a cut swaps both.
            let upto = self.appended.load(Ordering::Acquire);
            let log = s.log.clone();
            s.syncing = true;
            drop(s);
            let done = self.fs.sync(&log);
            if let Err(e) = &done {
                self.sync_failed(e);
            }
            s = self.synced.lock().unwrap_or_else(|p| p.into_inner());
            s.syncing = false;
            if done.is_ok() {
                s.revision = s.revision.max(upto);
            }
            self.synced_cv.notify_all();
            done.map_err(|e| wal::io(&self.dir, e))?;
        }
    }

    /// Marks the store stopped for writes, then lets the `Fs` end the process.
    fn sync_failed(&self, e: &std::io::Error) {
        let msg = format!("syncing the log in {}: {e}", self.dir.display());
        self.health.sync_failed(&msg);
        self.fs.sync_failed(&msg);
    }

    /// Under the committer's lock: syncs the segment, starts the next one, and returns the
    /// sequence number of the snapshot that pairs with it. The segment is synced before the
    /// next exists, so only the last segment can ever end in a torn record.
    fn cut(&self, c: &mut Committer) -> Result<u64, StoreError> {
        let mut s = self.synced.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = self.fs.sync(&c.log) {
            self.sync_failed(&e);
            return Err(wal::io(&self.dir, e));
        }
        s.revision = s.revision.max(c.revision);
        let next = c.segment + 1;
        let log = log_open::create_segment(&*self.fs, &self.dir, next)?;
        s.log = Arc::new(log.try_clone().map_err(|e| wal::io(&self.dir, e))?);
        c.log = log;
        c.segment = next;
        c.len = 0;
        c.logged = 0;
        Ok(next)
    }
}

/// The records under `prefix`.
fn under<'a>(records: &'a Records, prefix: &'a str) -> impl Iterator<Item = &'a Rec> {
    let prefix = prefix.as_bytes();
    records
        .range((Bound::Included(prefix), Bound::Unbounded))
        .take_while(move |r| r.key_bytes().starts_with(prefix))
}

/// Up to `SLICE` records under `prefix` after the record `after`, shared (not copied).
fn slice_after(records: &Records, prefix: &str, after: Option<&Rec>) -> Vec<Rec> {
    let prefix = prefix.as_bytes();
    let from = match after {
        Some(a) => Bound::Excluded(a.key_bytes()),
        None => Bound::Included(prefix),
    };
    records
        .range((from, Bound::Unbounded))
        .take_while(|r| r.key_bytes().starts_with(prefix))
        .take(SLICE)
        .cloned()
        .collect()
}

impl Store for LogStore {
    fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        Ok(self.inner.read().get(key.as_bytes()).map(versioned))
    }

    fn get_with(&self, key: &str, each: &mut dyn FnMut(&[u8], u64)) -> Result<bool, StoreError> {
        // Shared under the map's read lock, read after it is released.
        let Some(r) = self.inner.read().get(key.as_bytes()).cloned() else {
            return Ok(false);
        };
        each(r.value(), r.revision());
        Ok(true)
    }

    fn scan(&self, prefix: &str) -> Result<Vec<(String, Versioned)>, StoreError> {
        let mut out = Vec::new();
        self.scan_slices(prefix, |slice| {
            out.extend(slice.iter().map(|r| (r.key().to_string(), versioned(r))));
            true
        });
        Ok(out)
    }

    fn scan_each(
        &self,
        prefix: &str,
        each: &mut dyn FnMut(&str, &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        self.scan_slices(prefix, |slice| {
            slice.iter().all(|r| each(r.key(), r.value()))
        });
        Ok(())
    }

    fn txn(&self, compares: &[Compare], ops: Vec<Op>) -> Result<TxnOutcome, StoreError> {
        let Some((revision, unsynced)) = self.inner.apply(compares, ops)? else {
            return Ok(TxnOutcome::Conflict);
        };
        if !unsynced {
            return Ok(TxnOutcome::Committed(revision));
        }
        // Durable before the caller acknowledges anything, and before the feed tells anyone.
        self.inner.sync(revision)?;
        let mut unsent = self.inner.unsent();
        while unsent.front().is_some_and(|ch| ch.revision <= revision) {
            if let Some(change) = unsent.pop_front() {
                let _ = self.inner.changes.send(change);
            }
        }
        Ok(TxnOutcome::Committed(revision))
    }

    fn revision(&self) -> Result<u64, StoreError> {
        Ok(self.inner.appended.load(Ordering::Acquire))
    }

    fn in_memory(&self) -> bool {
        true
    }

    fn export(&self) -> Result<(Vec<(String, Versioned)>, u64), StoreError> {
        // The map and its revision together; the values are shared, not copied, until encoded.
        let (records, revision) = {
            let c = self.inner.lock();
            (self.inner.read().ordered().clone(), c.revision)
        };
        // Only what is durable goes into a backup.
        self.inner.sync(revision)?;
        Ok((
            records
                .iter()
                .map(|r| (r.key().to_string(), versioned(r)))
                .collect(),
            revision,
        ))
    }

    fn health(&self) -> super::StoreHealth {
        self.inner.health.report()
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.inner.changes.subscribe()
    }

    fn changes_since(&self, revision: u64) -> Result<Vec<Arc<Change>>, StoreError> {
        let history = self.inner.history();
        // Under the history's lock: every revision up to this one is in it (or was dropped).
        let current = self.inner.appended.load(Ordering::Acquire);
        history.since(revision, current)
    }
}

impl LogStore {
    /// Hands `each` the records under `prefix` a slice at a time, never holding the map while
    /// `each` runs (it may read the store); stops when `each` returns false.
    fn scan_slices(&self, prefix: &str, mut each: impl FnMut(&[Rec]) -> bool) {
        let mut after: Option<Rec> = None;
        loop {
            let slice = slice_after(&self.inner.read(), prefix, after.as_ref());
            let full = slice.len() == SLICE;
            after = slice.last().cloned();
            if slice.is_empty() || !each(&slice) || !full {
                return;
            }
        }
    }
}

#[path = "log_open.rs"]
mod log_open;
#[path = "log_snapshot.rs"]
mod snapshot;

use log_open::private;

/// A new owner-only file at `path`, replacing any.
pub(super) fn create_private(path: &Path) -> Result<File, StoreError> {
    private()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)
        .map_err(|e| wal::io(path, e))
}

/// The store's exclusive lock on `dir` (`berth store repair` holds it while it cuts).
pub(super) fn lock_dir(dir: &Path) -> Result<File, StoreError> {
    log_open::lock(dir)
}

#[cfg(test)]
#[path = "log_store_tests.rs"]
mod tests;
