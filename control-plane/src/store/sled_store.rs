//! `Store` on sled 0.34: one tree, batches applied atomically, flushed before returning.

use super::{Op, Store, StoreError};
use std::path::Path;
use tokio::sync::broadcast;

/// The embedded store. Cheap to share behind an `Arc`.
pub struct SledStore {
    db: sled::Db,
    changes: broadcast::Sender<Vec<String>>,
}

impl SledStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .open()
            .map_err(|e| StoreError::Io(format!("opening {}: {e}", dir.display())))?;
        let (changes, _) = broadcast::channel(1024);
        Ok(Self { db, changes })
    }
}

fn io(e: sled::Error) -> StoreError {
    StoreError::Io(e.to_string())
}

impl Store for SledStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get(key.as_bytes()).map_err(io)?.map(|v| v.to_vec()))
    }

    fn scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.db
            .scan_prefix(prefix.as_bytes())
            .map(|item| {
                let (k, v) = item.map_err(io)?;
                Ok((String::from_utf8_lossy(&k).into_owned(), v.to_vec()))
            })
            .collect()
    }

    fn commit(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        let mut keys = Vec::with_capacity(ops.len());
        for op in ops {
            match op {
                Op::Put(k, v) => {
                    batch.insert(k.as_bytes(), v);
                    keys.push(k);
                }
                Op::Delete(k) => {
                    batch.remove(k.as_bytes());
                    keys.push(k);
                }
            }
        }
        self.db.apply_batch(batch).map_err(io)?;
        // On disk before the caller acknowledges anything.
        self.db.flush().map_err(io)?;
        let _ = self.changes.send(keys);
        Ok(())
    }

    fn subscribe(&self) -> broadcast::Receiver<Vec<String>> {
        self.changes.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_committed_batch_is_read_back_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SledStore::open(dir.path()).unwrap();
            s.commit(vec![
                Op::Put("a/1".into(), b"one".to_vec()),
                Op::Put("a/2".into(), b"two".to_vec()),
                Op::Put("b/1".into(), b"other".to_vec()),
            ])
            .unwrap();
            s.commit(vec![Op::Delete("a/2".into())]).unwrap();
        }
        let s = SledStore::open(dir.path()).unwrap();
        let a = s.scan("a/").unwrap();
        assert_eq!(a, vec![("a/1".to_string(), b"one".to_vec())]);
        assert_eq!(s.get("b/1").unwrap(), Some(b"other".to_vec()));
        assert_eq!(s.get("a/2").unwrap(), None);
    }
}
