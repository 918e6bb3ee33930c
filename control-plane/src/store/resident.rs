//! The records of a few small key spaces held in memory beside sled (`SledStore::resident`):
//! clusters, definitions, services, nodes. Every request reads some of them, and sled 0.34 keeps
//! a page it evicted out of a read until that part of its log is on disk (its read calls
//! `make_durable`), so under a fleet's write load a get of a cold cluster record waited 30–50 ms
//! for someone else's flush. Held here, those reads cost a map lookup.
//!
//! The copy is whole and exact: it is loaded under the committer's lock, and the committer, the
//! store's one writer, updates it with every batch it applies, before the batch is
//! acknowledged. sled stays the record on disk.

use super::Versioned;
use std::collections::BTreeMap;
use std::sync::RwLock;

pub(super) struct Resident {
    prefixes: Vec<Box<str>>,
    records: RwLock<BTreeMap<Box<str>, Versioned>>,
}

/// One key's new state in a batch: its value and revision, or None once deleted.
pub(super) type Update = (String, Option<Versioned>);

impl Resident {
    pub(super) fn new(prefixes: &[&str], records: BTreeMap<Box<str>, Versioned>) -> Self {
        Self {
            prefixes: prefixes.iter().map(|p| Box::from(*p)).collect(),
            records: RwLock::new(records),
        }
    }

    /// Whether `key` is one of the records held.
    pub(super) fn holds(&self, key: &str) -> bool {
        self.prefixes.iter().any(|p| key.starts_with(&**p))
    }

    pub(super) fn get(&self, key: &str) -> Option<Versioned> {
        self.read().get(key).cloned()
    }

    /// The records under `prefix`, in key order; None when `prefix` reaches past what is held.
    pub(super) fn scan(&self, prefix: &str) -> Option<Vec<(String, Versioned)>> {
        if !self.holds(prefix) {
            return None;
        }
        let records = self.read();
        Some(
            records
                .range::<str, _>((
                    std::ops::Bound::Included(prefix),
                    std::ops::Bound::Unbounded,
                ))
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    /// What the committer applied: called under its lock, after sled took the batch.
    pub(super) fn apply(&self, updates: Vec<Update>) {
        if updates.is_empty() {
            return;
        }
        let mut records = self.records.write().unwrap_or_else(|p| p.into_inner());
        for (key, value) in updates {
            match value {
                Some(v) => {
                    records.insert(key.into_boxed_str(), v);
                }
                None => {
                    records.remove(key.as_str());
                }
            }
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<Box<str>, Versioned>> {
        // Only `apply` writes, and it leaves the map whole between inserts.
        self.records.read().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Compare, Op, SledStore, Store, TxnOutcome};

    fn put(k: &str, v: &[u8]) -> Op {
        Op::Put(k.into(), v.to_vec())
    }

    fn keys(s: &SledStore, prefix: &str) -> Vec<(String, Vec<u8>)> {
        s.scan(prefix)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, v.value))
            .collect()
    }

    /// Opens (again) with `held/` in memory.
    fn open(dir: &std::path::Path) -> SledStore {
        super::super::sled_store::tests::reopen(dir)
            .resident(&["held/"])
            .unwrap()
    }

    #[test]
    fn held_records_read_as_sled_holds_them_through_writes_deletes_and_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (r1, r2) = {
            let s = open(dir.path());
            let r1 = s
                .commit(vec![
                    put("held/a", b"1"),
                    put("held/b", b"2"),
                    put("other/a", b"x"),
                ])
                .unwrap();
            let r2 = s
                .commit(vec![put("held/a", b"1b"), Op::Delete("held/b".into())])
                .unwrap();
            assert_eq!(keys(&s, "held/"), vec![("held/a".into(), b"1b".to_vec())]);
            assert_eq!(s.get("held/b").unwrap(), None, "a delete leaves the copy");
            assert_eq!(s.get("other/a").unwrap().unwrap().value, b"x".to_vec());
            (r1, r2)
        };
        let s = open(dir.path());
        let a = s.get("held/a").unwrap().unwrap();
        assert_eq!((a.value, a.mod_revision), (b"1b".to_vec(), r2));
        assert!(r1 < r2);
        assert_eq!(keys(&s, "held/a"), vec![("held/a".into(), b"1b".to_vec())]);
        // A scan wider than what is held reads sled, which has everything.
        assert_eq!(
            keys(&s, ""),
            vec![
                ("held/a".into(), b"1b".to_vec()),
                ("other/a".into(), b"x".to_vec())
            ]
        );
        let mut each = Vec::new();
        s.scan_each("held/", &mut |k, v| {
            each.push((k.to_string(), v.to_vec()));
            true
        })
        .unwrap();
        assert_eq!(each, vec![("held/a".into(), b"1b".to_vec())]);
    }

    #[test]
    fn a_compare_on_a_held_record_sees_the_last_write() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let r1 = s.commit(vec![put("held/k", b"1")]).unwrap();
        let at = |revision| Compare::ModRevision {
            key: "held/k".into(),
            revision,
        };
        assert!(matches!(
            s.txn(&[at(r1)], vec![put("held/k", b"2")]).unwrap(),
            TxnOutcome::Committed(_)
        ));
        assert_eq!(
            s.txn(&[at(r1)], vec![put("held/k", b"3")]).unwrap(),
            TxnOutcome::Conflict,
            "the compare read the copy, which moved on with the write"
        );
        assert_eq!(s.get("held/k").unwrap().unwrap().value, b"2".to_vec());
        s.commit(vec![Op::Delete("held/k".into())]).unwrap();
        assert!(matches!(
            s.txn(&[at(0)], vec![put("held/k", b"4")]).unwrap(),
            TxnOutcome::Committed(_)
        ));
    }
}
