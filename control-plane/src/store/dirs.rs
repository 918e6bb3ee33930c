//! The sled committer's memory of when each key directory was last written (`Dirs`).

/// The revision at which each key prefix ending in `/` last had a key put under it, for the
/// puts since `floor`. A prefix compare is then one lookup under the committer's lock, where it
/// was a scan of every key under the prefix: a placement of a thousand tasks compares a
/// thousand nodes' claims, a hundred thousand keys at fleet scale. Bounded: past `DIRS_MAX`
/// directories it starts over from the revision of the moment, and a compare older than that
/// scans as before.
#[derive(Debug, Default)]
pub(super) struct Dirs {
    /// Every prefix not held was last written at or before this revision.
    pub(super) floor: u64,
    pub(super) last_put: std::collections::HashMap<Box<str>, u64>,
}

/// Directories remembered at most (a fleet of 10,000 nodes has about 20,000).
pub(super) const DIRS_MAX: usize = 256 * 1024;

impl Dirs {
    pub(super) fn put(&mut self, key: &str, revision: u64) {
        if self.last_put.len() >= DIRS_MAX {
            self.last_put.clear();
            self.floor = revision;
        }
        for (i, _) in key.match_indices('/') {
            let dir = &key[..=i];
            match self.last_put.get_mut(dir) {
                Some(at) => *at = revision,
                None => {
                    self.last_put.insert(dir.into(), revision);
                }
            }
        }
    }

    /// Whether nothing was put under `prefix` after `revision`; None when this cannot tell.
    pub(super) fn unchanged_since(&self, prefix: &str, revision: u64) -> Option<bool> {
        if !prefix.ends_with('/') || revision < self.floor {
            return None;
        }
        Some(self.last_put.get(prefix).is_none_or(|at| *at <= revision))
    }
}
