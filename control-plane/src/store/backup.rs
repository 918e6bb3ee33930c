//! Backups: a consistent copy of a running store as a snapshot file (`berth operator snapshot
//! save`), and a snapshot file restored into an empty embedded store or an empty etcd prefix.
//! The file is the log store's own snapshot format, so a restored embedded store opens it as
//! its base; secrets in it stay sealed, as the store holds them.

use super::log_store::LogStore;
use super::snapshot_file::{self, SnapshotInfo, SnapshotRead, Summed};
use super::wal::{self, EntryRef};
use super::{EtcdStore, Op, Store, StoreError, Versioned};
use std::io::Write;
use std::path::Path;

/// Keys in one record of the file, as the log store's own snapshots slice them.
const SLICE: usize = 2048;

/// Writes `keys` (in key order) at `revision` to `out` as a sealed snapshot file.
pub fn write(out: impl Write, keys: &[(String, Versioned)], revision: u64) -> std::io::Result<()> {
    let mut out = Summed::new(out);
    let mut buf = Vec::new();
    for slice in keys.chunks(SLICE) {
        buf.clear();
        wal::encode(
            &mut buf,
            0,
            slice.iter().map(|(k, v)| EntryRef::Put {
                key: k,
                value: &v.value,
                revision: v.mod_revision,
            }),
        );
        out.write_all(&buf)?;
    }
    buf.clear();
    wal::encode(&mut buf, revision, std::iter::empty());
    out.write_all(&buf)?;
    out.finish()?;
    out.flush()
}

/// A consistent copy of `store` as a snapshot file's bytes.
pub fn save(store: &dyn Store) -> Result<Vec<u8>, StoreError> {
    let (keys, revision) = store.export()?;
    let mut out = Vec::new();
    write(&mut out, &keys, revision).map_err(|e| StoreError::Io(e.to_string()))?;
    Ok(out)
}

/// What the backup at `path` holds, or an error naming where it is damaged.
pub fn inspect(path: &Path) -> Result<SnapshotInfo, StoreError> {
    match snapshot_file::inspect(path)? {
        SnapshotRead::Whole(info) => Ok(info),
        SnapshotRead::Damaged { offset, why } => Err(StoreError::Corrupt(format!(
            "{} is not a whole snapshot: at offset {offset}, {why}",
            path.display()
        ))),
    }
}

/// Restores the backup at `file` as the embedded store of `data_dir`, which must hold none:
/// the file becomes the store's first snapshot, then the store is opened once to prove it.
pub fn restore_embedded(file: &Path, data_dir: &Path) -> Result<SnapshotInfo, StoreError> {
    let info = inspect(file)?;
    let dir = data_dir.join("log");
    let holds_store = wal::list(&dir).is_ok_and(|f| {
        f.snapshot.is_some()
            || f.segments
                .iter()
                .any(|s| std::fs::metadata(wal::segment(&dir, *s)).is_ok_and(|m| m.len() > 0))
    });
    if holds_store || data_dir.join("store").join("conf").exists() {
        return Err(StoreError::Io(format!(
            "{} already holds a store: restore into a new, empty --data directory (and start Berth on it), so nothing is overwritten",
            data_dir.display()
        )));
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| wal::io(&dir, e))?;
    let target = wal::snapshot(&dir, 1);
    let tmp = target.with_extension("tmp");
    let mut out = super::log_store::create_private(&tmp)?;
    let mut src = std::fs::File::open(file).map_err(|e| wal::io(file, e))?;
    std::io::copy(&mut src, &mut out)
        .and_then(|_| out.sync_all())
        .map_err(|e| wal::io(&tmp, e))?;
    std::fs::rename(&tmp, &target).map_err(|e| wal::io(&target, e))?;
    wal::sync_dir(&dir)?;
    LogStore::open(&dir)?;
    Ok(info)
}

/// Restores the backup at `file` into `etcd`, which must hold nothing under its prefix. etcd
/// numbers the writes anew: Berth compares revisions only within one run of its servers.
pub fn restore_etcd(file: &Path, etcd: &EtcdStore) -> Result<SnapshotInfo, StoreError> {
    let info = inspect(file)?;
    if !etcd.scan("")?.is_empty() {
        return Err(StoreError::Io(format!(
            "etcd already holds keys under {}: restore into an empty prefix (a new --etcd-prefix, or an empty cluster)",
            etcd.prefix()
        )));
    }
    let mut batch = Vec::new();
    let mut failed = None;
    snapshot_file::read(file, |r| {
        for e in r.entries {
            if let wal::Entry::Put(r) = e {
                batch.push(Op::Put(r.key().to_string(), r.value().to_vec()));
            }
            if batch.len() >= etcd.max_txn_ops() && failed.is_none() {
                failed = etcd.commit(std::mem::take(&mut batch)).err();
            }
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    if !batch.is_empty() {
        etcd.commit(batch)?;
    }
    Ok(info)
}

use std::os::unix::fs::DirBuilderExt;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_store_restores_to_the_same_keys_and_revision() {
        let from = tempfile::tempdir().unwrap();
        let s = LogStore::open(from.path()).unwrap();
        for i in 0..5000 {
            s.commit(vec![Op::Put(format!("k/{i:05}"), vec![7; 32])])
                .unwrap();
        }
        s.commit(vec![Op::Delete("k/00007".into())]).unwrap();
        let file = from.path().join("backup.snap");
        std::fs::write(&file, save(&s).unwrap()).unwrap();
        let info = inspect(&file).unwrap();
        assert_eq!((info.revision, info.keys), (s.revision().unwrap(), 4999));

        let to = tempfile::tempdir().unwrap();
        assert_eq!(restore_embedded(&file, to.path()).unwrap(), info);
        let restored = LogStore::open(&to.path().join("log")).unwrap();
        assert_eq!(restored.scan("").unwrap(), s.scan("").unwrap());
        assert_eq!(restored.revision().unwrap(), info.revision);
        drop(restored);
        let e = restore_embedded(&file, to.path()).unwrap_err();
        assert!(e.to_string().contains("already holds a store"), "{e}");
    }
}
