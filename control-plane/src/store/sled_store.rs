//! `Store` on sled 0.34: one tree; each value carries the revision that wrote it, the store's
//! revision sits in a meta key written in the same atomic batch, and every batch is flushed
//! before it returns.
//!
//! Commits are grouped: a transaction's compares and batch are one step under the committer's
//! lock, but its flush runs after the lock is released, so the next transaction decides and
//! applies while the disk syncs, and one sync often covers several batches (sled's flush makes
//! everything applied before it durable). A change goes out on the feed only once it is
//! durable, in revision order.
//!
//! A stored value is `0xFF`, the revision (8 bytes, big-endian), then the payload. No protobuf
//! message starts with `0xFF` (wire type 7 does not exist), so values written by versions before
//! revisions read as revision 1 until they are next written.

use super::dirs::Dirs;
use super::history::History;
use super::{Change, Compare, Op, Store, StoreError, TxnOutcome, Versioned};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

const MARK: u8 = 0xFF;
/// Sorts before every key of the layout; never returned by a scan.
const META_REVISION: &[u8] = b"\x00meta/revision";

/// sled's page cache (its default is 1 GiB). Pages beyond it are read back from the file,
/// which the kernel's page cache usually still holds, so a fleet-sized store does not keep its
/// whole working set in the control plane's own memory.
const CACHE_BYTES: u64 = 256 << 20;

/// The embedded store. Cheap to share behind an `Arc`.
pub struct SledStore {
    db: sled::Db,
    /// The store's own serialisation of transactions (sled is in-process): compares and the
    /// batch they guard are one step. Callers never need a lock of their own.
    commit: Mutex<Committer>,
    /// Background commits (controllers, report batches) pass this one at a time before the
    /// committer's lock, and hold it while they apply: when one is done, the only commits
    /// waiting at the committer are requests', and one of them goes next. A placement of a
    /// thousand tasks holds the committer for tens of milliseconds, and a RunTask that queued
    /// behind several of them took over 100 ms.
    background: Mutex<()>,
    /// Applied changes not yet known to be on disk, oldest first: the feed sends them once a
    /// flush that started after them has returned. Its own lock (taken inside the committer's
    /// by `apply`), so a commit back from its flush does not queue behind the next batch.
    unsent: Mutex<VecDeque<Arc<Change>>>,
    changes: broadcast::Sender<Arc<Change>>,
}

struct Committer {
    revision: u64,
    history: History,
    /// When each directory of the keys put was last written: what a prefix compare reads.
    dirs: Dirs,
}

impl SledStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_BYTES)
            .open()
            .map_err(|e| StoreError::Io(format!("opening {}: {e}", dir.display())))?;
        let revision = match db.get(META_REVISION).map_err(io)? {
            Some(v) if v.len() == 8 => u64::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 8])),
            // A store from before revisions: everything in it reads as revision 1.
            _ => 1,
        };
        let (changes, _) = broadcast::channel(4096);
        Ok(Self {
            db,
            background: Mutex::new(()),
            unsent: Mutex::new(VecDeque::new()),
            commit: Mutex::new(Committer {
                revision,
                history: History::default(),
                dirs: Dirs {
                    floor: revision,
                    ..Default::default()
                },
            }),
            changes,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Committer> {
        // A poisoned lock means a commit panicked before applying; sled itself is consistent.
        self.commit.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn unsent(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<Change>>> {
        self.unsent.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn revision_of(&self, key: &str) -> Result<u64, StoreError> {
        Ok(self
            .db
            .get(key.as_bytes())
            .map_err(io)?
            .map_or(0, |v| revision_in(&v)))
    }

    /// A transaction's compares and batch, as one step under the committer's lock: None when a
    /// compare failed; else the revision, and whether anything up to it may not be on disk yet.
    fn apply(&self, compares: &[Compare], ops: Vec<Op>) -> Result<Option<(u64, bool)>, StoreError> {
        let _turn = (!crate::foreground::is_request())
            .then(|| self.background.lock().unwrap_or_else(|p| p.into_inner()));
        let mut c = self.lock();
        for cmp in compares {
            if !self.holds(&c.dirs, cmp)? {
                return Ok(None);
            }
        }
        if ops.is_empty() {
            // Compares only: they may have held on batches still being flushed.
            return Ok(Some((c.revision, !self.unsent().is_empty())));
        }
        let revision = c.revision + 1;
        let mut batch = sled::Batch::default();
        let mut keys = Vec::with_capacity(ops.len());
        for op in ops {
            match op {
                Op::Put(k, v) => {
                    batch.insert(k.as_bytes(), encode(&v, revision));
                    c.dirs.put(&k, revision);
                    keys.push(k);
                }
                Op::Delete(k) => {
                    batch.remove(k.as_bytes());
                    keys.push(k);
                }
            }
        }
        batch.insert(META_REVISION, &revision.to_be_bytes());
        self.db.apply_batch(batch).map_err(io)?;
        c.revision = revision;
        let change = Arc::new(Change {
            revision,
            keys,
            resync: false,
        });
        c.history.push(change.clone());
        self.unsent().push_back(change);
        Ok(Some((revision, true)))
    }

    fn holds(&self, dirs: &Dirs, c: &Compare) -> Result<bool, StoreError> {
        Ok(match c {
            Compare::ModRevision { key, revision } => self.revision_of(key)? == *revision,
            Compare::PrefixUnchangedSince { prefix, revision } => {
                if let Some(unchanged) = dirs.unchanged_since(prefix, *revision) {
                    return Ok(unchanged);
                }
                for item in self.db.scan_prefix(prefix.as_bytes()) {
                    let (_, v) = item.map_err(io)?;
                    if revision_in(&v) > *revision {
                        return Ok(false);
                    }
                }
                true
            }
        })
    }
}

fn io(e: sled::Error) -> StoreError {
    StoreError::Io(e.to_string())
}

fn decode(raw: &[u8]) -> Versioned {
    Versioned {
        value: value_in(raw).to_vec(),
        mod_revision: revision_in(raw),
    }
}

/// The value a stored record carries, without its revision and without copying it.
fn value_in(raw: &[u8]) -> &[u8] {
    if raw.len() >= 9 && raw[0] == MARK {
        &raw[9..]
    } else {
        raw
    }
}

/// The revision a stored value carries, without copying the value (compares read only this).
fn revision_in(raw: &[u8]) -> u64 {
    match raw.get(1..9) {
        Some(rev) if raw[0] == MARK => u64::from_be_bytes(rev.try_into().unwrap_or([0; 8])),
        _ => 1,
    }
}

fn encode(value: &[u8], revision: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 9);
    out.push(MARK);
    out.extend_from_slice(&revision.to_be_bytes());
    out.extend_from_slice(value);
    out
}

impl Store for SledStore {
    fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        Ok(self.db.get(key.as_bytes()).map_err(io)?.map(|v| decode(&v)))
    }

    fn scan(&self, prefix: &str) -> Result<Vec<(String, Versioned)>, StoreError> {
        self.db
            .scan_prefix(prefix.as_bytes())
            .filter(|item| item.as_ref().map_or(true, |(k, _)| k.first() != Some(&0)))
            .map(|item| {
                let (k, v) = item.map_err(io)?;
                Ok((String::from_utf8_lossy(&k).into_owned(), decode(&v)))
            })
            .collect()
    }

    fn scan_each(
        &self,
        prefix: &str,
        each: &mut dyn FnMut(&str, &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        for item in self.db.scan_prefix(prefix.as_bytes()) {
            let (k, v) = item.map_err(io)?;
            if k.first() == Some(&0) {
                continue;
            }
            if !each(&String::from_utf8_lossy(&k), value_in(&v)) {
                break;
            }
        }
        Ok(())
    }

    fn txn(&self, compares: &[Compare], ops: Vec<Op>) -> Result<TxnOutcome, StoreError> {
        let Some((revision, unflushed)) = self.apply(compares, ops)? else {
            return Ok(TxnOutcome::Conflict);
        };
        if !unflushed {
            return Ok(TxnOutcome::Committed(revision));
        }
        // On disk before the caller acknowledges anything (and before the feed tells anyone):
        // this batch, and whatever it was decided on.
        self.db.flush().map_err(io)?;
        let mut unsent = self.unsent();
        while unsent.front().is_some_and(|ch| ch.revision <= revision) {
            if let Some(change) = unsent.pop_front() {
                let _ = self.changes.send(change);
            }
        }
        Ok(TxnOutcome::Committed(revision))
    }

    fn revision(&self) -> Result<u64, StoreError> {
        Ok(self.lock().revision)
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.changes.subscribe()
    }

    fn changes_since(&self, revision: u64) -> Result<Vec<Arc<Change>>, StoreError> {
        let c = self.lock();
        c.history.since(revision, c.revision)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::dirs::DIRS_MAX;
    use super::*;

    fn put(k: &str, v: &[u8]) -> Op {
        Op::Put(k.into(), v.to_vec())
    }

    /// Opens the store again after a drop: sled's flusher thread lets go of the directory's
    /// lock a moment after the handle is dropped, so a reopen at once may find it held.
    pub(in crate::store) fn reopen(dir: &Path) -> SledStore {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match SledStore::open(dir) {
                Ok(s) => return s,
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("reopening {}: {e}", dir.display()),
            }
        }
    }

    #[test]
    fn a_committed_batch_is_read_back_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SledStore::open(dir.path()).unwrap();
            s.commit(vec![
                put("a/1", b"one"),
                put("a/2", b"two"),
                put("b/1", b"other"),
            ])
            .unwrap();
            s.commit(vec![Op::Delete("a/2".into())]).unwrap();
        }
        let s = reopen(dir.path());
        let a: Vec<(String, Vec<u8>)> = s
            .scan("a/")
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, v.value))
            .collect();
        assert_eq!(a, vec![("a/1".to_string(), b"one".to_vec())]);
        assert_eq!(s.get("b/1").unwrap().unwrap().value, b"other".to_vec());
        assert_eq!(s.get("a/2").unwrap(), None);
        assert_eq!(s.revision().unwrap(), 3, "the revision survives a reopen");
    }

    #[test]
    fn a_stale_compare_commits_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        let r1 = s.commit(vec![put("k", b"1")]).unwrap();
        assert_eq!(s.get("k").unwrap().unwrap().mod_revision, r1);
        let stale = Compare::ModRevision {
            key: "k".into(),
            revision: r1,
        };
        assert!(matches!(
            s.txn(std::slice::from_ref(&stale), vec![put("k", b"2")])
                .unwrap(),
            TxnOutcome::Committed(_)
        ));
        // The same compare again: the key moved on, so this one must not land.
        assert_eq!(
            s.txn(&[stale], vec![put("k", b"3"), put("other", b"x")])
                .unwrap(),
            TxnOutcome::Conflict
        );
        assert_eq!(s.get("k").unwrap().unwrap().value, b"2".to_vec());
        assert_eq!(s.get("other").unwrap(), None);
        // Revision 0 means "absent".
        let absent = Compare::ModRevision {
            key: "new".into(),
            revision: 0,
        };
        assert!(matches!(
            s.txn(std::slice::from_ref(&absent), vec![put("new", b"n")])
                .unwrap(),
            TxnOutcome::Committed(_)
        ));
        assert_eq!(
            s.txn(&[absent], vec![put("new", b"m")]).unwrap(),
            TxnOutcome::Conflict
        );
    }

    #[test]
    fn a_new_key_under_a_compared_prefix_is_a_conflict() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        let seen = s.commit(vec![put("node/a/1", b"")]).unwrap();
        s.commit(vec![put("node/b/1", b"")]).unwrap();
        let guard = Compare::PrefixUnchangedSince {
            prefix: "node/a/".into(),
            revision: seen,
        };
        assert!(matches!(
            s.txn(std::slice::from_ref(&guard), vec![put("x", b"")])
                .unwrap(),
            TxnOutcome::Committed(_)
        ));
        s.commit(vec![put("node/a/2", b"")]).unwrap();
        assert_eq!(
            s.txn(&[guard], vec![put("y", b"")]).unwrap(),
            TxnOutcome::Conflict
        );
    }

    #[test]
    fn a_prefix_compare_from_before_a_reopen_still_sees_a_later_write() {
        let dir = tempfile::tempdir().unwrap();
        let seen = {
            let s = SledStore::open(dir.path()).unwrap();
            let seen = s.commit(vec![put("node/a/1", b"")]).unwrap();
            s.commit(vec![put("node/a/2", b"")]).unwrap();
            seen
        };
        // Reopened, the store remembers no directory: a compare as of an older revision reads
        // the keys themselves.
        let s = reopen(dir.path());
        let since = |revision| Compare::PrefixUnchangedSince {
            prefix: "node/a/".into(),
            revision,
        };
        assert_eq!(
            s.txn(&[since(seen)], vec![put("x", b"")]).unwrap(),
            TxnOutcome::Conflict
        );
        let now = s.revision().unwrap();
        assert!(matches!(
            s.txn(&[since(now)], vec![put("x", b"")]).unwrap(),
            TxnOutcome::Committed(_)
        ));
        // A put under a deeper directory changes every directory above it.
        s.commit(vec![put("node/a/deep/1", b"")]).unwrap();
        assert_eq!(
            s.txn(&[since(now)], vec![put("y", b"")]).unwrap(),
            TxnOutcome::Conflict
        );
    }

    #[test]
    fn directories_forgotten_past_the_bound_are_answered_by_a_scan() {
        let mut dirs = Dirs {
            floor: 5,
            ..Default::default()
        };
        dirs.put("bynode/n1/default/t1", 7);
        assert_eq!(dirs.unchanged_since("bynode/n1/", 6), Some(false));
        assert_eq!(dirs.unchanged_since("bynode/n1/", 7), Some(true));
        assert_eq!(
            dirs.unchanged_since("bynode/n2/", 5),
            Some(true),
            "never put since the floor"
        );
        assert_eq!(
            dirs.unchanged_since("bynode/n1/", 4),
            None,
            "older than what is held"
        );
        assert_eq!(
            dirs.unchanged_since("bynode/n1", 7),
            None,
            "not a directory"
        );
        for i in 0..DIRS_MAX {
            dirs.put(&format!("k{i}/"), 8);
        }
        dirs.put("bynode/n3/x", 9);
        assert_eq!(
            dirs.floor, 8,
            "starting over moves the floor to the revision of the moment"
        );
        assert!(dirs.last_put.len() < DIRS_MAX);
        assert_eq!(dirs.unchanged_since("bynode/n1/", 7), None);
        assert_eq!(dirs.unchanged_since("bynode/n1/", 8), Some(true));
        assert_eq!(dirs.unchanged_since("bynode/n3/", 8), Some(false));
    }

    #[test]
    fn grouped_commits_from_many_threads_reach_the_feed_once_each_in_revision_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(SledStore::open(dir.path()).unwrap());
        let mut feed = s.subscribe();
        let writers: Vec<_> = (0..8)
            .map(|w| {
                let s = s.clone();
                std::thread::spawn(move || {
                    (0..50)
                        .map(|i| s.commit(vec![put(&format!("w{w}/{i}"), b"v")]).unwrap())
                        .collect::<Vec<u64>>()
                })
            })
            .collect();
        let mut acked: Vec<u64> = writers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        acked.sort_unstable();
        acked.dedup();
        assert_eq!(acked.len(), 400, "every commit has its own revision");
        let mut sent = Vec::new();
        while let Ok(c) = feed.try_recv() {
            sent.push(c.revision);
        }
        assert_eq!(sent, acked, "each change once, oldest first");
        assert_eq!(s.scan("w").unwrap().len(), 400);
    }

    #[test]
    fn a_watcher_resumes_from_a_revision() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        let r1 = s.commit(vec![put("a", b"")]).unwrap();
        let r2 = s
            .commit(vec![put("b", b""), Op::Delete("a".into())])
            .unwrap();
        let since = s.changes_since(r1).unwrap();
        assert_eq!(since.len(), 1);
        assert_eq!(since[0].revision, r2);
        assert_eq!(since[0].keys, vec!["b".to_string(), "a".to_string()]);
        assert!(s.changes_since(r2).unwrap().is_empty());
        // After a restart the history is gone: a resume must resync.
        drop(s);
        let s = reopen(dir.path());
        s.commit(vec![put("c", b"")]).unwrap();
        assert!(matches!(s.changes_since(r1), Err(StoreError::Compacted(_))));
    }
}
