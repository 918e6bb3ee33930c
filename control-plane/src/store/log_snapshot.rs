//! The log store's snapshots: taking one while commits go on, and carrying a sled data
//! directory over into one.

use super::*;
use crate::store::fs::FsFile;
use crate::store::snapshot_file::Summed;

impl LogStore {
    /// Opens the embedded store of a data directory (`DATA/log`). A data directory from before
    /// this store keeps its state in sled (`DATA/store`): that is carried over first, each key
    /// with its revision, into a snapshot written beside it and moved into place whole, so a
    /// crash mid-way leaves the sled store as it was and the next start carries it over again.
    pub fn open_in(data_dir: &Path) -> Result<Self, StoreError> {
        let dir = data_dir.join("log");
        let sled_dir = data_dir.join("store");
        if !dir.exists() && sled_dir.join("conf").exists() {
            let sled = crate::store::SledStore::open(&sled_dir)?;
            let revision = sled.revision()?;
            let records = sled.scan("")?;
            drop(sled);
            let staging = data_dir.join("log.import");
            let _ = std::fs::remove_dir_all(&staging);
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&staging)
                .map_err(|e| wal::io(&staging, e))?;
            let mut buf = Vec::new();
            crate::store::backup::write(&mut buf, &records, revision)
                .map_err(|e| wal::io(&staging, e))?;
            let path = wal::snapshot(&staging, 1);
            let mut f = private()
                .create_new(true)
                .write(true)
                .open(&path)
                .map_err(|e| wal::io(&path, e))?;
            f.write_all(&buf)
                .and_then(|_| f.sync_all())
                .map_err(|e| wal::io(&path, e))?;
            wal::sync_dir(&staging)?;
            std::fs::rename(&staging, &dir).map_err(|e| wal::io(&dir, e))?;
            wal::sync_dir(data_dir)?;
            tracing::info!(
                keys = records.len(),
                revision,
                "carried the sled store over to the log store; {} can be removed",
                sled_dir.display()
            );
        }
        Self::open(&dir)
    }
}

impl Inner {
    /// Copies the map out to `snapshot-SEQ` a slice at a time, then drops the segments and
    /// snapshots before it. At the usual priority: lowered, a copy preempted while it holds the
    /// map's read lock would keep the committer, and every reader queued behind it, waiting.
    pub(super) fn write_snapshot(&self, seq: u64) -> Result<(), StoreError> {
        let began = std::time::Instant::now();
        let result = self.copy_out(seq);
        if result.is_err() {
            // A copy cut short by a full disk must not keep holding the space it took.
            let tmp = wal::snapshot(&self.dir, seq).with_extension("tmp");
            let _ = self.fs.remove(&tmp);
        }
        if let Ok(size) = &result {
            self.lock().last_snapshot = *size;
            tracing::info!(
                seq,
                mib = *size >> 20,
                seconds = began.elapsed().as_secs_f64(),
                "store snapshot taken; the log before it removed"
            );
        }
        self.snapshotting.store(false, Ordering::Release);
        result.map(|_| ())
    }

    fn copy_out(&self, seq: u64) -> Result<u64, StoreError> {
        // The revision the copy starts from: everything up to it is in the map now.
        let begun = self.lock().revision;
        let path = wal::snapshot(&self.dir, seq);
        let tmp = path.with_extension("tmp");
        let file = private()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&tmp)
            .map_err(|e| wal::io(&tmp, e))?;
        let fs = &*self.fs;
        let mut out = Summed::new(std::io::BufWriter::with_capacity(
            1 << 20,
            FsFile { fs, file },
        ));
        let mut buf = Vec::new();
        let mut after: Option<Rec> = None;
        let mut unsynced = 0u64;
        loop {
            let slice = slice_after(&self.read(), "", after.as_ref());
            let Some(last) = slice.last() else { break };
            after = Some(last.clone());
            buf.clear();
            wal::encode(
                &mut buf,
                0,
                slice.iter().map(|r| EntryRef::Put {
                    key: r.key(),
                    value: r.value(),
                    revision: r.revision(),
                }),
            );
            out.write_all(&buf).map_err(|e| wal::io(&tmp, e))?;
            unsynced += buf.len() as u64;
            if unsynced >= SNAPSHOT_SYNC_EVERY {
                unsynced = 0;
                out.flush()
                    .and_then(|_| fs.sync(&out.inner.get_ref().file))
                    .map_err(|e| wal::io(&tmp, e))?;
            }
        }
        buf.clear();
        wal::encode(&mut buf, begun, std::iter::empty());
        out.write_all(&buf)
            .and_then(|_| out.finish())
            .map_err(|e| wal::io(&tmp, e))?;
        let written = out
            .inner
            .into_inner()
            .map_err(|e| wal::io(&tmp, e.into_error()))?;
        // A failed sync here costs only this snapshot: it is never renamed into place, and
        // the log it would replace stays.
        fs.sync(&written.file).map_err(|e| wal::io(&tmp, e))?;
        let size = written.file.metadata().map_or(0, |m| m.len());
        fs.rename(&tmp, &path).map_err(|e| wal::io(&path, e))?;
        fs.sync_dir(&self.dir).map_err(|e| wal::io(&self.dir, e))?;
        let files = wal::list(&self.dir)?;
        for old in files.segments.iter().filter(|s| **s < seq) {
            let _ = fs.remove(&wal::segment(&self.dir, *old));
        }
        for stale in files.stale {
            let _ = fs.remove(&stale);
        }
        Ok(size)
    }
}
