//! A record as the log store's map holds it: its revision, its key and its value in one shared
//! allocation. A million tasks are three million records; one allocation each, rather than a
//! key, a value and a map slot of 40 bytes, keeps about 60 bytes a record out of memory, and a
//! scan or a snapshot copies a pointer, never the bytes.

use std::borrow::Borrow;
use std::cell::RefCell;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// The revision (u64) and the key's length (u32) before the key, then the value.
const HEAD: usize = 12;

/// A key, the revision that last wrote it, and its value. Ordered, compared and hashed by the
/// key's bytes alone (UTF-8 orders as its bytes do), so a map of them is looked up by `&[u8]`.
#[derive(Clone)]
pub(super) struct Rec(Arc<[u8]>);

thread_local! {
    /// Where a record is laid out before its one allocation is made.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl Rec {
    pub(super) fn new(key: &str, value: &[u8], revision: u64) -> Self {
        SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            s.clear();
            s.extend_from_slice(&revision.to_le_bytes());
            s.extend_from_slice(&(key.len() as u32).to_le_bytes());
            s.extend_from_slice(key.as_bytes());
            s.extend_from_slice(value);
            let rec = Rec(Arc::from(&s[..]));
            if s.capacity() > 1 << 20 {
                *s = Vec::new();
            }
            rec
        })
    }

    pub(super) fn revision(&self) -> u64 {
        u64::from_le_bytes(self.0[..8].try_into().unwrap_or([0; 8]))
    }

    fn key_len(&self) -> usize {
        u32::from_le_bytes(self.0[8..HEAD].try_into().unwrap_or([0; 4])) as usize
    }

    pub(super) fn key_bytes(&self) -> &[u8] {
        &self.0[HEAD..HEAD + self.key_len()]
    }

    /// The key: always UTF-8, as every record is made from a `&str`.
    pub(super) fn key(&self) -> &str {
        std::str::from_utf8(self.key_bytes()).unwrap_or_default()
    }

    pub(super) fn value(&self) -> &[u8] {
        &self.0[HEAD + self.key_len()..]
    }
}

impl std::fmt::Debug for Rec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rec")
            .field("key", &self.key())
            .field("revision", &self.revision())
            .field("value", &self.value())
            .finish()
    }
}

impl PartialEq for Rec {
    fn eq(&self, other: &Self) -> bool {
        self.key_bytes() == other.key_bytes()
    }
}

impl Eq for Rec {}

impl PartialOrd for Rec {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Rec {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key_bytes().cmp(other.key_bytes())
    }
}

impl Hash for Rec {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key_bytes().hash(state)
    }
}

impl Borrow<[u8]> for Rec {
    fn borrow(&self) -> &[u8] {
        self.key_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn a_record_reads_back_its_parts_and_is_found_by_its_key() {
        let r = Rec::new("task/c/1", b"value", 42);
        assert_eq!(
            (r.key(), r.value(), r.revision()),
            ("task/c/1", &b"value"[..], 42)
        );
        let empty = Rec::new("group/c/x/1", b"", 7);
        assert_eq!((empty.key(), empty.value()), ("group/c/x/1", &b""[..]));
        let mut set = BTreeSet::new();
        set.insert(r);
        set.insert(empty);
        // A newer write of a key replaces the record, found by the key's bytes.
        set.replace(Rec::new("task/c/1", b"newer", 43));
        let got = set.get(&b"task/c/1"[..]).unwrap();
        assert_eq!((got.value(), got.revision()), (&b"newer"[..], 43));
        let keys: Vec<&str> = set.iter().map(Rec::key).collect();
        assert_eq!(keys, ["group/c/x/1", "task/c/1"]);
    }
}
