//! Fault injection under the log store, as SQLite and FoundationDB test their storage: a
//! write-and-snapshot workload runs once per fault point, with the Nth file operation failing
//! (a transient error such as a full disk), or the process "dying" there (that operation and
//! every later one never reach the disk, a write possibly cut short). Each time the store is
//! reopened from what is on disk, and must open, hold every acknowledged write, and hold no
//! write that failed before a later one was acknowledged.

use super::fs::Fs;
use super::{LogStore, Op, Store};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Only the Nth operation fails: a write with ENOSPC after half of it reached the file (as
    /// a disk filling mid-write leaves it), anything else with EIO.
    Transient,
    /// The process dies at the Nth operation: it and every later one never happen.
    Crash,
    /// As `Crash`, with a write cut short: half of it reaches the file.
    ShortCrash,
}

struct Faulty {
    at: u64,
    mode: Mode,
    ops: AtomicU64,
    dead: AtomicBool,
    /// The kind of operation the fault hit.
    hit: Mutex<Option<&'static str>>,
}

impl Faulty {
    fn new(at: u64, mode: Mode) -> Self {
        Self {
            at,
            mode,
            ops: AtomicU64::new(0),
            dead: AtomicBool::new(false),
            hit: Mutex::new(None),
        }
    }

    /// Counts an operation: Err when it must not happen; Ok(true) when it is the one faulted.
    fn step(&self, kind: &'static str) -> std::io::Result<bool> {
        if self.dead.load(Ordering::Acquire) {
            return Err(std::io::Error::other("the process is gone"));
        }
        let n = self.ops.fetch_add(1, Ordering::AcqRel) + 1;
        if n != self.at {
            return Ok(false);
        }
        *self.hit.lock().unwrap() = Some(kind);
        if self.mode != Mode::Transient {
            self.dead.store(true, Ordering::Release);
        }
        Ok(true)
    }

    fn fail(&self, kind: &'static str) -> std::io::Result<()> {
        if self.step(kind)? {
            return Err(std::io::Error::from_raw_os_error(5));
        }
        Ok(())
    }
}

impl Fs for Faulty {
    fn write(&self, mut file: &File, buf: &[u8]) -> std::io::Result<()> {
        if self.step("write")? {
            if self.mode != Mode::Crash {
                file.write_all(&buf[..buf.len() / 2])?;
            }
            return Err(std::io::Error::from_raw_os_error(28));
        }
        file.write_all(buf)
    }

    fn sync(&self, _: &File) -> std::io::Result<()> {
        // No power is lost in this test: the page cache is the disk, and a sync only counts.
        self.fail("sync")
    }

    fn set_len(&self, file: &File, len: u64) -> std::io::Result<()> {
        self.fail("set_len")?;
        file.set_len(len)
    }

    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.fail("rename")?;
        std::fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> std::io::Result<()> {
        self.fail("remove")?;
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, _: &Path) -> std::io::Result<()> {
        self.fail("sync_dir")
    }

    fn sync_failed(&self, _: &str) {}
}

const COMMITS: usize = 60;

/// The workload's i-th write: puts over 25 keys, every fourth a delete; values unique.
fn op(i: usize) -> Op {
    if i % 4 == 3 {
        Op::Delete(format!("k/{:02}", (i - 1) % 25))
    } else {
        Op::Put(format!("k/{:02}", i % 25), format!("v{i}").into_bytes())
    }
}

/// Runs the workload over `fs`: each write's index and whether it was acknowledged.
fn workload(dir: &Path, fs: Arc<dyn Fs>) -> Vec<(usize, bool)> {
    let Ok(s) = LogStore::open_with(dir, fs) else {
        return Vec::new();
    };
    let mut outcomes = Vec::new();
    for i in 0..COMMITS {
        outcomes.push((i, s.commit(vec![op(i)]).is_ok()));
        if i % 20 == 9 {
            let _ = s.snapshot_now();
        }
    }
    outcomes
}

type State = BTreeMap<String, Vec<u8>>;

fn apply(state: &mut State, i: usize) {
    match op(i) {
        Op::Put(k, v) => {
            state.insert(k, v);
        }
        Op::Delete(k) => {
            state.remove(&k);
        }
    }
}

#[test]
fn every_fault_point_keeps_every_acknowledged_write_and_leaves_no_gap() {
    let counted = Arc::new(Faulty::new(u64::MAX, Mode::Transient));
    let dir = tempfile::tempdir().unwrap();
    workload(dir.path(), counted.clone());
    let total = counted.ops.load(Ordering::Acquire);
    let (mut points, mut lost, mut gaps, mut recovered) = (0u64, 0usize, 0usize, 0usize);
    for mode in [Mode::Transient, Mode::Crash, Mode::ShortCrash] {
        for at in 1..=total {
            let dir = tempfile::tempdir().unwrap();
            let fs = Arc::new(Faulty::new(at, mode));
            let outcomes = workload(dir.path(), fs.clone());
            points += 1;
            let hit = *fs.hit.lock().unwrap();
            let reopened = LogStore::open(dir.path())
                .unwrap_or_else(|e| panic!("{mode:?} at op {at} ({hit:?}): refused: {e}"));
            let found: State = reopened
                .scan("k/")
                .unwrap()
                .into_iter()
                .map(|(k, v)| (k, v.value))
                .collect();
            let last_acked = outcomes.iter().rposition(|(_, ok)| *ok);
            let mut expected = State::new();
            for (i, ok) in &outcomes[..last_acked.map_or(0, |p| p + 1)] {
                if *ok {
                    apply(&mut expected, *i);
                }
            }
            // A write that failed after the last acknowledged one may be on disk (a failed
            // sync, a crash after the append): any prefix of them, applied in order.
            let trailing: Vec<usize> = outcomes[last_acked.map_or(0, |p| p + 1)..]
                .iter()
                .map(|(i, _)| *i)
                .collect();
            let mut candidate = expected.clone();
            let mut matched = candidate == found;
            for i in &trailing {
                apply(&mut candidate, *i);
                matched |= candidate == found;
            }
            if !matched {
                let missing = expected
                    .iter()
                    .filter(|(k, v)| found.get(*k) != Some(*v))
                    .count();
                if missing > 0 {
                    lost += missing;
                } else {
                    gaps += 1;
                }
                eprintln!("{mode:?} at op {at} ({hit:?}): expected {expected:?}, found {found:?}");
            }
            // A transient failed append costs that one write: the next ones succeed.
            if mode == Mode::Transient && hit == Some("write") {
                let failed = outcomes.iter().filter(|(_, ok)| !ok).count();
                assert!(
                    failed <= 1,
                    "at op {at}: {failed} writes failed after one fault"
                );
                recovered += 1;
            }
        }
    }
    eprintln!(
        "fault points: {points} ({total} operations × 3 modes); acknowledged writes lost: {lost}; silent gaps: {gaps}; appends failed and recovered without a restart: {recovered}"
    );
    assert!(points >= 200, "only {points} fault points");
    assert_eq!((lost, gaps), (0, 0));
    assert!(recovered > 0);
}
