//! Damage against torn tails: what opens, what is refused, and what `repair` keeps.

use super::check;
use super::wal;
use super::{LogStore, Op, Store, StoreError};
use std::path::{Path, PathBuf};

fn put(k: &str, v: &str) -> Op {
    Op::Put(k.into(), v.as_bytes().to_vec())
}

/// A data directory whose log holds `n` single-key commits, in segments of `per` commits each
/// (a new segment at every reopen).
fn store_with(data: &Path, n: usize, per: usize) -> Vec<u64> {
    let mut revisions = Vec::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(per) {
        let s = LogStore::open(&data.join("log")).unwrap();
        for i in chunk {
            revisions.push(s.commit(vec![put(&format!("k/{i:03}"), "v")]).unwrap());
        }
    }
    revisions
}

fn segments(data: &Path) -> Vec<PathBuf> {
    let dir = data.join("log");
    let files = wal::list(&dir).unwrap();
    files
        .segments
        .iter()
        .map(|s| wal::segment(&dir, *s))
        .filter(|p| std::fs::metadata(p).unwrap().len() > 0)
        .collect()
}

fn flip(path: &Path, at: u64) -> Vec<u8> {
    let mut raw = std::fs::read(path).unwrap();
    raw[at as usize] ^= 0x20;
    std::fs::write(path, &raw).unwrap();
    raw
}

fn keys(data: &Path) -> usize {
    LogStore::open(&data.join("log"))
        .unwrap()
        .scan("k/")
        .unwrap()
        .len()
}

#[test]
fn a_flipped_byte_mid_segment_is_refused_unchanged_then_repaired_to_the_records_before_it() {
    let data = tempfile::tempdir().unwrap();
    let revisions = store_with(data.path(), 100, 100);
    let seg = segments(data.path()).pop().unwrap();
    let len = std::fs::metadata(&seg).unwrap().len();
    let flipped = flip(&seg, len / 2);

    let e = LogStore::open(&data.path().join("log"))
        .err()
        .expect("refused");
    let msg = e.to_string();
    assert!(matches!(e, StoreError::Corrupt(_)), "{msg}");
    assert!(msg.contains(&seg.display().to_string()), "{msg}");
    assert!(msg.contains("offset"), "{msg}");
    assert!(msg.contains("last good revision"), "{msg}");
    assert_eq!(
        std::fs::read(&seg).unwrap(),
        flipped,
        "nothing on disk changed"
    );

    let report = check::check(data.path()).unwrap();
    let damage = report.damage.expect("check reports it");
    assert_eq!(damage.file, seg);
    assert!(damage.offset <= len / 2 && damage.offset > 0);
    // About half the commits precede the bad record; the rest are still readable after it.
    let kept = revisions.iter().filter(|r| **r <= damage.last_good).count();
    assert!((40..60).contains(&kept), "{kept} kept");
    assert_eq!(
        damage.after.len(),
        100 - kept - 1,
        "every later record is counted"
    );

    let plan = check::plan(data.path())
        .unwrap()
        .expect("something to repair");
    let said = plan.to_string();
    assert!(
        said.contains(&format!("and {} records after it", 100 - kept - 1)),
        "{said}"
    );
    check::repair(data.path(), &plan).unwrap();
    assert_eq!(keys(data.path()), kept, "every record before the bad one");
    let copy = std::fs::read(plan.copy.join(seg.file_name().unwrap())).unwrap();
    assert_eq!(copy, flipped, "a copy of what was cut is kept");
    assert!(check::plan(data.path()).unwrap().is_none());
}

#[test]
fn a_bad_record_at_the_end_of_an_older_segment_is_damage_not_a_torn_tail() {
    let data = tempfile::tempdir().unwrap();
    store_with(data.path(), 20, 10);
    let segs = segments(data.path());
    assert_eq!(segs.len(), 2);
    let len = std::fs::metadata(&segs[0]).unwrap().len();
    flip(&segs[0], len - 2);
    let e = LogStore::open(&data.path().join("log"))
        .err()
        .expect("refused");
    assert!(
        e.to_string().contains(&segs[0].display().to_string()),
        "{e}"
    );
    let damage = check::check(data.path()).unwrap().damage.unwrap();
    assert_eq!((damage.after.len(), damage.later.len()), (10, 1));
}

#[test]
fn a_torn_tail_opens_and_keeps_every_whole_record() {
    let data = tempfile::tempdir().unwrap();
    store_with(data.path(), 30, 30);
    let seg = segments(data.path()).pop().unwrap();
    // Half a record, then the zeros some filesystems show after a crash.
    let mut raw = std::fs::read(&seg).unwrap();
    let whole = raw.len() as u64;
    raw.extend_from_slice(&[40, 0, 0, 0, 1, 2, 3, 4, 5]);
    raw.extend_from_slice(&[0; 64]);
    std::fs::write(&seg, &raw).unwrap();
    let report = check::check(data.path()).unwrap();
    assert!(report.damage.is_none());
    assert_eq!(report.torn.as_ref().map(|t| t.whole), Some(whole));
    assert_eq!(keys(data.path()), 30);
    assert_eq!(
        std::fs::metadata(&seg).unwrap().len(),
        whole,
        "the tail is cut"
    );
}

#[test]
fn a_flipped_byte_in_a_snapshot_is_refused_and_repair_keeps_the_records_before_it() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("log");
    {
        let s = LogStore::open(&dir).unwrap();
        for i in 0..5000 {
            s.commit(vec![put(&format!("k/{i:05}"), "value")]).unwrap();
        }
        s.snapshot_now().unwrap();
    }
    let files = wal::list(&dir).unwrap();
    let snap = wal::snapshot(&dir, files.snapshot.unwrap());
    let len = std::fs::metadata(&snap).unwrap().len();
    let flipped = flip(&snap, len / 2);
    let e = LogStore::open(&dir).err().expect("refused");
    assert!(e.to_string().contains(&snap.display().to_string()), "{e}");
    assert_eq!(std::fs::read(&snap).unwrap(), flipped);
    let plan = check::plan(data.path()).unwrap().unwrap();
    assert!(plan.damage.in_snapshot && !plan.trailer_only);
    check::repair(data.path(), &plan).unwrap();
    let kept = keys(data.path());
    assert!(kept > 0 && kept < 5000, "{kept}");
}

#[test]
fn a_flipped_byte_in_a_snapshots_trailer_is_repaired_keeping_everything() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("log");
    {
        let s = LogStore::open(&dir).unwrap();
        for i in 0..10 {
            s.commit(vec![put(&format!("k/{i}"), "v")]).unwrap();
        }
        s.snapshot_now().unwrap();
        s.commit(vec![put("k/after", "v")]).unwrap();
    }
    let snap = wal::snapshot(&dir, wal::list(&dir).unwrap().snapshot.unwrap());
    let len = std::fs::metadata(&snap).unwrap().len();
    flip(&snap, len - 1);
    assert!(LogStore::open(&dir).is_err());
    let plan = check::plan(data.path()).unwrap().unwrap();
    assert!(plan.trailer_only, "{plan}");
    check::repair(data.path(), &plan).unwrap();
    assert_eq!(keys(data.path()), 11);
}
