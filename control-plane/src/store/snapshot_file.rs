//! The snapshot file: the key space as log records, closed by an empty record carrying the
//! revision the snapshot is at, then a trailer holding a checksum over every byte before it, so
//! a snapshot is whole or refused. The same file is an operator's backup.
//!
//! Trailer: `BSNAP\0v2` (8 bytes), the length of what precedes it (u64), its CRC-32 (u32), all
//! little-endian. A snapshot written before the trailer existed ends at its closing record: it
//! still opens, checked record by record.

use super::wal::{self, Record};
use super::StoreError;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

const MAGIC: &[u8; 8] = b"BSNAP\0v2";
const TRAILER: u64 = 20;

/// What a whole snapshot holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SnapshotInfo {
    /// Every write up to this revision is in it.
    pub revision: u64,
    pub keys: u64,
    pub bytes: u64,
    /// CRC-32 over the file before its trailer, as `crc32:xxxxxxxx`; `none` for the old format.
    pub checksum: String,
}

/// How reading a snapshot ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotRead {
    Whole(SnapshotInfo),
    /// Not whole: the first bad byte's offset and why.
    Damaged {
        offset: u64,
        why: String,
    },
}

/// A writer that sums what passes through it, for the trailer.
pub(super) struct Summed<W> {
    pub inner: W,
    hasher: crc32fast::Hasher,
    len: u64,
}

impl<W: Write> Summed<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: crc32fast::Hasher::new(),
            len: 0,
        }
    }

    /// Writes the trailer over everything written so far.
    pub fn finish(&mut self) -> std::io::Result<()> {
        let t = trailer(self.len, self.hasher.clone().finalize());
        self.inner.write_all(&t)
    }
}

impl<W: Write> Write for Summed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn trailer(len: u64, crc: u32) -> [u8; TRAILER as usize] {
    let mut t = [0u8; TRAILER as usize];
    t[..8].copy_from_slice(MAGIC);
    t[8..16].copy_from_slice(&len.to_le_bytes());
    t[16..].copy_from_slice(&crc.to_le_bytes());
    t
}

/// Appends the trailer to a snapshot built in memory.
#[cfg(test)]
fn seal(buf: &mut Vec<u8>) {
    let t = trailer(buf.len() as u64, crc32fast::hash(buf));
    buf.extend_from_slice(&t);
}

/// A reader that sums what it hands out.
struct Summing<R> {
    inner: R,
    hasher: crc32fast::Hasher,
}

impl<R: Read> Read for Summing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Reads the snapshot (or backup) at `path` through: what it holds, or where it is damaged.
pub fn inspect(path: &Path) -> Result<SnapshotRead, StoreError> {
    read(path, |_| {})
}

/// Hands `each` the records of the snapshot at `path`, and says whether it was whole.
pub(super) fn read(path: &Path, mut each: impl FnMut(Record)) -> Result<SnapshotRead, StoreError> {
    let io = |e| wal::io(path, e);
    let file = std::fs::File::open(path).map_err(io)?;
    let total = file.metadata().map_err(io)?.len();
    let mut tail = [0u8; TRAILER as usize];
    let sealed = total >= TRAILER
        && file.read_exact_at(&mut tail, total - TRAILER).is_ok()
        && &tail[..8] == MAGIC
        && u64::from_le_bytes(tail[8..16].try_into().unwrap_or([0; 8])) == total - TRAILER;
    let region = if sealed { total - TRAILER } else { total };
    let mut r = Summing {
        inner: std::io::BufReader::with_capacity(1 << 20, file).take(region),
        hasher: crc32fast::Hasher::new(),
    };
    let (mut revision, mut keys, mut closed) = (0u64, 0u64, false);
    let scan = wal::read_records_from(&mut r, |rec| {
        closed = rec.entries.is_empty();
        revision = revision.max(rec.revision);
        keys += rec.entries.len() as u64;
        each(rec)
    })
    .map_err(io)?;
    if let Some(why) = scan.bad {
        return Ok(SnapshotRead::Damaged {
            offset: scan.whole,
            why,
        });
    }
    if !closed {
        return Ok(SnapshotRead::Damaged {
            offset: scan.whole,
            why: "the snapshot ends before its closing record".into(),
        });
    }
    let crc = r.hasher.finalize();
    if sealed && u32::from_le_bytes(tail[16..].try_into().unwrap_or([0; 4])) != crc {
        return Ok(SnapshotRead::Damaged {
            offset: region,
            why: "the checksum over the whole file does not match".into(),
        });
    }
    Ok(SnapshotRead::Whole(SnapshotInfo {
        revision,
        keys,
        bytes: total,
        checksum: if sealed {
            format!("crc32:{crc:08x}")
        } else {
            "none".into()
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::wal::{encode, EntryRef};

    fn snapshot(sealed: bool) -> Vec<u8> {
        let mut buf = Vec::new();
        let puts = [("a", b"1".as_slice(), 3u64), ("b", b"2".as_slice(), 5)];
        encode(
            &mut buf,
            0,
            puts.iter().map(|(k, v, r)| EntryRef::Put {
                key: k,
                value: v,
                revision: *r,
            }),
        );
        encode(&mut buf, 7, std::iter::empty());
        if sealed {
            seal(&mut buf);
        }
        buf
    }

    #[test]
    fn a_sealed_and_an_older_snapshot_both_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snapshot-1");
        for sealed in [true, false] {
            std::fs::write(&path, snapshot(sealed)).unwrap();
            let SnapshotRead::Whole(info) = read(&path, |_| {}).unwrap() else {
                panic!("damaged")
            };
            assert_eq!((info.revision, info.keys), (7, 2));
            assert_eq!(info.checksum.starts_with("crc32:"), sealed);
        }
    }

    #[test]
    fn any_flipped_byte_of_a_sealed_snapshot_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snapshot-1");
        let good = snapshot(true);
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            std::fs::write(&path, &bad).unwrap();
            assert!(
                matches!(read(&path, |_| {}).unwrap(), SnapshotRead::Damaged { .. }),
                "flip at {at} went unnoticed"
            );
        }
    }
}
