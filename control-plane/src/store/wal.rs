//! The log store's files: records of writes, each framed so that a torn tail, or damage, is
//! found where it starts (`replay` judges which).
//!
//! A record is `len` (u32, little-endian), `crc32` of the payload (u32), then the payload: the
//! batch's revision (u64), how many writes (u32), and each write: `0` (put) with the key's
//! revision (u64), the key and the value; or `1` (delete) and the key. Keys and values are
//! length-prefixed (u32). A log segment (`wal-SEQ`) holds one record per committed batch; a
//! snapshot (`snapshot-SEQ`) holds the whole key space as records of puts, then one empty
//! record carrying the revision the snapshot began at, and a whole-file checksum
//! (`snapshot_file`).

use super::record::Rec;
use super::StoreError;
use std::io::Read;
use std::path::{Path, PathBuf};

/// One write as it is logged. A put is decoded straight into the record the store's map holds
/// (one allocation for its key and value), so a replay copies each write once.
#[derive(Debug, Clone)]
pub(super) enum Entry {
    Put(Rec),
    Delete(String),
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Entry::Put(a), Entry::Put(b)) => {
                (a.key(), a.value(), a.revision()) == (b.key(), b.value(), b.revision())
            }
            (Entry::Delete(a), Entry::Delete(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Entry {}

impl Entry {
    /// The write, borrowed, to encode again.
    pub(super) fn as_ref(&self) -> EntryRef<'_> {
        match self {
            Entry::Put(r) => EntryRef::Put {
                key: r.key(),
                value: r.value(),
                revision: r.revision(),
            },
            Entry::Delete(k) => EntryRef::Delete(k),
        }
    }
}

/// One decoded record.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Record {
    pub revision: u64,
    pub entries: Vec<Entry>,
}

pub(super) const HEADER: usize = 8;
/// A record longer than this is not one we wrote: the rest of the file is garbage.
const MAX_RECORD: usize = 1 << 30;

/// Appends a record of `revision` holding `entries` to `out`.
pub(super) fn encode<'a>(
    out: &mut Vec<u8>,
    revision: u64,
    entries: impl ExactSizeIterator<Item = EntryRef<'a>>,
) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    out.extend_from_slice(&revision.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        match e {
            EntryRef::Put {
                key,
                value,
                revision,
            } => {
                out.push(0);
                out.extend_from_slice(&revision.to_le_bytes());
                bytes(out, key.as_bytes());
                bytes(out, value);
            }
            EntryRef::Delete(key) => {
                out.push(1);
                bytes(out, key.as_bytes());
            }
        }
    }
    let payload = &out[start + HEADER..];
    let len = (payload.len() as u32).to_le_bytes();
    let crc = crc32fast::hash(payload).to_le_bytes();
    out[start..start + 4].copy_from_slice(&len);
    out[start + 4..start + HEADER].copy_from_slice(&crc);
}

/// A write to encode, borrowed.
#[derive(Debug, Clone, Copy)]
pub(super) enum EntryRef<'a> {
    Put {
        key: &'a str,
        value: &'a [u8],
        revision: u64,
    },
    Delete(&'a str),
}

/// What `remove_paced` frees at a time, and the pause after each step.
const REMOVE_STEP: u64 = 8 << 20;
const REMOVE_PAUSE: std::time::Duration = std::time::Duration::from_millis(25);

/// Removes a file the log no longer needs, a few megabytes at a time (a gigabyte in about three
/// seconds, on the snapshot's thread). Freeing a gigabyte at once stalls every sync on the
/// filesystem until it is done: ext4 mounted with `discard` trims the freed blocks in its
/// journal commit. On this machine's disk an `fdatasync` of 4 KiB, 0.4 ms at p50, took 243 ms
/// while a 1 GiB file was unlinked; in the big fleet case the log's syncs took up to 470 ms as
/// the segments before a snapshot went, and a RunTask waited behind them. The name goes first,
/// so a crash part-way leaves nothing behind to list; the open handle keeps the blocks until
/// the steps have freed them.
pub(super) fn remove_paced(path: &Path) {
    let Ok(file) = std::fs::OpenOptions::new().write(true).open(path) else {
        let _ = std::fs::remove_file(path);
        return;
    };
    if std::fs::remove_file(path).is_err() {
        return;
    }
    let mut size = file.metadata().map_or(0, |m| m.len());
    while size > 0 {
        size = size.saturating_sub(REMOVE_STEP);
        if file.set_len(size).is_err() {
            return;
        }
        std::thread::sleep(REMOVE_PAUSE);
    }
}

fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// How far a file's records read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Scan {
    /// The length of its whole records, from the start.
    pub whole: u64,
    /// What stopped the reading before the end of the file (a record cut short, a length no
    /// writer produced, a checksum that fails), found at `whole`; None when every byte read.
    pub bad: Option<String>,
}

/// Hands `each` the records of a file in order, one at a time (a snapshot may hold a whole
/// fleet's state), and says how far they read: whatever follows the last whole record is for
/// the caller to judge (a torn tail, or damage).
pub(super) fn each_record(path: &Path, each: impl FnMut(Record)) -> Result<Scan, StoreError> {
    let file = std::fs::File::open(path).map_err(|e| io(path, e))?;
    let r = std::io::BufReader::with_capacity(1 << 20, file);
    read_records_from(r, each).map_err(|e| io(path, e))
}

/// As `each_record`, over a reader that ends where the records do.
pub(super) fn read_records_from(
    mut r: impl Read,
    mut each: impl FnMut(Record),
) -> std::io::Result<Scan> {
    let mut payload = Vec::new();
    let mut whole = 0u64;
    loop {
        let mut header = [0u8; HEADER];
        let got = read_some(&mut r, &mut header)?;
        if got == 0 {
            return Ok(Scan { whole, bad: None });
        }
        let bad = |why: String| {
            Ok(Scan {
                whole,
                bad: Some(why),
            })
        };
        if got < HEADER {
            return bad(format!(
                "a record header cut short ({got} of {HEADER} bytes)"
            ));
        }
        let len = u32::from_le_bytes(header[..4].try_into().unwrap_or([0; 4])) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().unwrap_or([0; 4]));
        if len > MAX_RECORD {
            return bad(format!(
                "a record length of {len} bytes, longer than any written"
            ));
        }
        payload.resize(len, 0);
        let got = read_some(&mut r, &mut payload)?;
        if got < len {
            return bad(format!("a record cut short ({got} of {len} bytes)"));
        }
        if crc32fast::hash(&payload) != crc {
            return bad("a record whose checksum does not match".into());
        }
        let Some(record) = decode(&payload) else {
            return bad("a record that does not decode".into());
        };
        each(record);
        whole += (HEADER + len) as u64;
    }
}

/// The revisions of the whole records that can still be read in `path` after a bad one at
/// `offset`: a record is taken for one when its checksum holds and its revision follows
/// `floor`, the last good one (within 2^32, which random bytes almost never are). Read on the
/// failing path only, to tell a torn tail (nothing after it) from damage (more history after).
pub(super) fn valid_after(path: &Path, offset: u64, floor: u64) -> Result<Vec<u64>, StoreError> {
    let raw = std::fs::read(path).map_err(|e| io(path, e))?;
    let mut found = Vec::new();
    let mut at = offset as usize + 1;
    while at + HEADER + 12 <= raw.len() {
        let len = u32::from_le_bytes(raw[at..at + 4].try_into().unwrap_or([0; 4])) as usize;
        let body = at + HEADER;
        let revision = u64::from_le_bytes(raw[body..body + 8].try_into().unwrap_or([0; 8]));
        let plausible =
            len >= 12 && body + len <= raw.len() && revision > floor && revision - floor < 1 << 32;
        if plausible {
            let crc = u32::from_le_bytes(raw[at + 4..body].try_into().unwrap_or([0; 4]));
            let payload = &raw[body..body + len];
            if crc32fast::hash(payload) == crc && decode(payload).is_some() {
                found.push(revision);
                at = body + len;
                continue;
            }
        }
        at += 1;
    }
    Ok(found)
}

/// Fills `buf` as far as the reader goes: how many bytes it got.
fn read_some(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut at = 0;
    while at < buf.len() {
        match r.read(&mut buf[at..]) {
            Ok(0) => break,
            Ok(n) => at += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(at)
}

/// Every record of a file, and the length of its whole records (tests).
#[cfg(test)]
fn read_records(path: &Path) -> Result<(Vec<Record>, u64), StoreError> {
    let mut records = Vec::new();
    let scan = each_record(path, |r| records.push(r))?;
    Ok((records, scan.whole))
}

fn decode(mut p: &[u8]) -> Option<Record> {
    let revision = u64::from_le_bytes(take(&mut p, 8)?.try_into().ok()?);
    let n = u32::from_le_bytes(take(&mut p, 4)?.try_into().ok()?) as usize;
    let mut entries = Vec::with_capacity(n.min(p.len()));
    for _ in 0..n {
        match take(&mut p, 1)?[0] {
            0 => {
                let revision = u64::from_le_bytes(take(&mut p, 8)?.try_into().ok()?);
                let key = std::str::from_utf8(prefixed(&mut p)?).ok()?;
                let value = prefixed(&mut p)?;
                entries.push(Entry::Put(Rec::new(key, value, revision)));
            }
            1 => {
                let key = String::from_utf8(prefixed(&mut p)?.to_vec()).ok()?;
                entries.push(Entry::Delete(key));
            }
            _ => return None,
        }
    }
    p.is_empty().then_some(Record { revision, entries })
}

fn take<'a>(p: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if p.len() < n {
        return None;
    }
    let (head, rest) = p.split_at(n);
    *p = rest;
    Some(head)
}

fn prefixed<'a>(p: &mut &'a [u8]) -> Option<&'a [u8]> {
    let n = u32::from_le_bytes(take(p, 4)?.try_into().ok()?) as usize;
    take(p, n)
}

/// The files of a log store's directory.
#[derive(Debug, Default)]
pub(super) struct Files {
    /// Log segments by sequence number, oldest first.
    pub segments: Vec<u64>,
    /// The newest complete snapshot's sequence number.
    pub snapshot: Option<u64>,
    /// Older snapshots, and snapshots never finished (`.tmp`): removed at open.
    pub stale: Vec<PathBuf>,
}

pub(super) fn segment(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("wal-{seq:016}"))
}

pub(super) fn snapshot(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("snapshot-{seq:016}"))
}

/// What `dir` holds.
pub(super) fn list(dir: &Path) -> Result<Files, StoreError> {
    let mut files = Files::default();
    let mut snapshots = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let entry = entry.map_err(|e| io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(seq) = name.strip_prefix("wal-").and_then(|s| s.parse().ok()) {
            files.segments.push(seq);
        } else if let Some(seq) = name.strip_prefix("snapshot-").and_then(|s| s.parse().ok()) {
            snapshots.push(seq);
        } else if name.starts_with("snapshot-") {
            files.stale.push(entry.path());
        }
    }
    files.segments.sort_unstable();
    snapshots.sort_unstable();
    files.snapshot = snapshots.pop();
    files
        .stale
        .extend(snapshots.into_iter().map(|s| snapshot(dir, s)));
    Ok(files)
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, e))
}

pub(super) fn io(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io(format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &[u8], revision: u64) -> Entry {
        Entry::Put(Rec::new(key, value, revision))
    }

    fn refs(entries: &[Entry]) -> impl ExactSizeIterator<Item = EntryRef<'_>> {
        entries.iter().map(Entry::as_ref)
    }

    #[test]
    fn a_paced_removal_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal-0000000000000001");
        std::fs::write(&path, vec![7u8; (2 * REMOVE_STEP + 1) as usize]).unwrap();
        remove_paced(&path);
        assert!(!path.exists());
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
        // A file already gone is no error.
        remove_paced(&path);
    }

    #[test]
    fn a_torn_or_corrupt_tail_ends_the_log_at_the_last_whole_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal-1");
        let first = vec![put("a", b"one", 2), Entry::Delete("b".into())];
        let second = vec![put("c", b"three", 3)];
        let mut raw = Vec::new();
        encode(&mut raw, 2, refs(&first));
        let whole = raw.len() as u64;
        encode(&mut raw, 3, refs(&second));
        std::fs::write(&path, &raw).unwrap();
        let (records, len) = read_records(&path).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].entries, first);
        assert_eq!(records[1].revision, 3);
        assert_eq!(len, raw.len() as u64);

        // Cut anywhere inside the second record: only the first survives.
        for cut in [raw.len() - 1, whole as usize + 3, whole as usize + 9] {
            std::fs::write(&path, &raw[..cut]).unwrap();
            let (records, len) = read_records(&path).unwrap();
            assert_eq!((records.len(), len), (1, whole), "cut at {cut}");
        }
        // A flipped byte in the second record's payload fails its checksum.
        let mut bad = raw.clone();
        let last = bad.len() - 2;
        bad[last] ^= 0x40;
        std::fs::write(&path, &bad).unwrap();
        assert_eq!(read_records(&path).unwrap().1, whole);
    }

    #[test]
    fn listing_keeps_the_newest_snapshot_and_marks_the_rest_stale() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "wal-0000000000000003",
            "wal-0000000000000001",
            "snapshot-0000000000000002",
            "snapshot-0000000000000003",
            "snapshot-0000000000000004.tmp",
            "LOCK",
        ] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let files = list(dir.path()).unwrap();
        assert_eq!(files.segments, vec![1, 3]);
        assert_eq!(files.snapshot, Some(3));
        let mut stale: Vec<String> = files
            .stale
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        stale.sort();
        assert_eq!(
            stale,
            vec!["snapshot-0000000000000002", "snapshot-0000000000000004.tmp"]
        );
    }
}
