//! The log store's map: every record twice over, in key order for scans and in a hash table for
//! point reads. Both hold the same shared records (a pointer each, never the bytes).
//!
//! A point read down the ordered tree compares the key at every step, and each compare follows a
//! record's pointer to its key: at three million records that is about thirty scattered memory
//! reads a `get`, and the control plane's reads of task headers are mostly point reads (a profile
//! at 100,000 tasks put a tenth of all the server's CPU in those compares). The hash table finds a
//! key with one hash and about one compare, for about 20 bytes a record (go-memdb keeps an id
//! index beside its other indexes for the same reason).

use super::record::Rec;
use std::collections::{BTreeSet, HashSet};
use std::ops::RangeBounds;

/// The hash table's hasher: seeded per process as the standard one is, and several times quicker
/// than its SipHash on short keys.
type KeyHasher = foldhash::quality::RandomState;

#[derive(Default)]
pub(super) struct Records {
    ordered: BTreeSet<Rec>,
    by_key: HashSet<Rec, KeyHasher>,
}

impl Records {
    /// The record of `key`, if any.
    pub(super) fn get(&self, key: &[u8]) -> Option<&Rec> {
        self.by_key.get(key)
    }

    /// Puts `rec`, replacing the record of its key.
    pub(super) fn replace(&mut self, rec: Rec) {
        self.by_key.replace(rec.clone());
        self.ordered.replace(rec);
    }

    pub(super) fn remove(&mut self, key: &[u8]) {
        self.by_key.remove(key);
        self.ordered.remove(key);
    }

    /// The records whose keys are in `range`, in key order.
    pub(super) fn range<'a, R>(&'a self, range: R) -> impl Iterator<Item = &'a Rec> + 'a
    where
        R: RangeBounds<[u8]> + 'a,
    {
        self.ordered.range::<[u8], _>(range)
    }

    /// Every record, in key order (shared, for a backup taken outside the lock).
    pub(super) fn ordered(&self) -> &BTreeSet<Rec> {
        &self.ordered
    }
}

impl FromIterator<Rec> for Records {
    /// Built at once from records in key order (a sorted bulk build), then indexed by key.
    fn from_iter<I: IntoIterator<Item = Rec>>(iter: I) -> Self {
        let ordered: BTreeSet<Rec> = iter.into_iter().collect();
        let mut by_key = HashSet::with_capacity_and_hasher(ordered.len(), KeyHasher::default());
        by_key.extend(ordered.iter().cloned());
        Records { ordered, by_key }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ops::Bound;

    #[test]
    fn both_indexes_agree_after_puts_replaces_and_deletes() {
        let mut m: Records = ["a/1", "a/2", "b/1"]
            .iter()
            .map(|k| Rec::new(k, b"v", 1))
            .collect();
        m.replace(Rec::new("a/2", b"newer", 2));
        m.replace(Rec::new("a/3", b"new", 3));
        m.remove(b"b/1");
        m.remove(b"missing");
        assert_eq!(
            m.get(b"a/2").map(|r| (r.value(), r.revision())),
            Some((&b"newer"[..], 2))
        );
        assert!(m.get(b"b/1").is_none());
        let under_a: Vec<&str> = m
            .range((Bound::Included(&b"a/"[..]), Bound::Unbounded))
            .take_while(|r| r.key_bytes().starts_with(b"a/"))
            .map(Rec::key)
            .collect();
        assert_eq!(under_a, ["a/1", "a/2", "a/3"]);
        assert_eq!(m.ordered().len(), 3);
        assert!(m.ordered().iter().all(|r| m.get(r.key_bytes()).is_some()));
    }
}
