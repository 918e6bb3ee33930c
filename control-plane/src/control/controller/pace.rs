//! Pacing of woken passes. A report wakes its service, and a pass reads the whole service: a
//! converging service of a thousand tasks woken by every few reports re-read its thousand tasks
//! hundreds of times a minute, the controllers' time going into passes that each counted a
//! handful of new reports. A service that just ran now waits a moment proportional to its size
//! (a millisecond a task, at most a second) before a change runs it again; the changes that
//! arrive meanwhile are taken together when it is due. Small services are not held back, and
//! the periodic sweep runs every service regardless.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

/// How long a service of `tasks` tasks waits after a pass before a change runs it again.
pub fn gap(tasks: usize) -> Duration {
    Duration::from_millis(tasks as u64).min(MAX_GAP)
}

const MAX_GAP: Duration = Duration::from_secs(1);

/// How soon a service whose new deployment replaces another runs again unasked.
pub const REVISIT: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub struct Pace {
    /// Service key → when it may run again.
    ready_at: HashMap<String, Instant>,
    /// Services woken before they were ready: run when due.
    deferred: BTreeMap<String, Instant>,
}

impl Pace {
    /// Whether the service may run now; if not, it is remembered to run once due.
    pub fn admit(&mut self, key: &str, now: Instant) -> bool {
        match self.ready_at.get(key) {
            Some(at) if *at > now => {
                self.deferred.insert(key.to_string(), *at);
                false
            }
            _ => true,
        }
    }

    /// The service ran a pass over `tasks` tasks.
    pub fn ran(&mut self, key: &str, tasks: usize, now: Instant) {
        self.deferred.remove(key);
        let wait = gap(tasks);
        if wait.is_zero() {
            self.ready_at.remove(key);
        } else {
            self.ready_at.insert(key.to_string(), now + wait);
        }
    }

    /// Runs the service again at `at` even if nothing changes: a deployment under way moves on
    /// time (a task healthy once it ran long enough, a bake, a backoff), and the sweep that
    /// would notice comes a minute or more apart in a large fleet.
    pub fn revisit(&mut self, key: &str, at: Instant) {
        let due = self.deferred.entry(key.to_string()).or_insert(at);
        *due = (*due).min(at);
    }

    /// The deferred services due by `now`, no longer deferred.
    pub fn take_due(&mut self, now: Instant) -> Vec<String> {
        let due: Vec<String> = self
            .deferred
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &due {
            self.deferred.remove(k);
        }
        due
    }

    /// When the next deferred service is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.deferred.values().min().copied()
    }

    /// Forgets services that are gone.
    pub fn retain(&mut self, live: impl Fn(&str) -> bool) {
        self.ready_at.retain(|k, _| live(k));
        self.deferred.retain(|k, _| live(k));
    }
}

/// The services a sweep has yet to run, in order. A sweep over a thousand services of a
/// thousand tasks takes seconds; run in one pass, every service woken meanwhile waited for all
/// of it (a rolling deployment took a pass per step, each behind a whole sweep). Run a slice a
/// pass, woken services go between the slices.
#[derive(Debug, Default)]
pub struct Sweep {
    queue: VecDeque<String>,
    queued: HashSet<String>,
}

/// How long a pass spends on the sweep's services before it lets woken ones run.
pub const SWEEP_SLICE: Duration = Duration::from_millis(100);

impl Sweep {
    /// Queues every service of a new sweep (one already queued keeps its place).
    pub fn fill(&mut self, keys: Vec<String>) {
        for k in keys {
            if self.queued.insert(k.clone()) {
                self.queue.push_back(k);
            }
        }
    }

    /// The next service to run, if any is left.
    pub fn next(&mut self) -> Option<String> {
        while let Some(k) = self.queue.pop_front() {
            if self.queued.remove(&k) {
                return Some(k);
            }
        }
        None
    }

    /// A service that just ran for another reason needs no sweep pass this time.
    pub fn ran(&mut self, key: &str) {
        self.queued.remove(key);
        if self.queued.is_empty() {
            self.queue.clear();
        }
    }

    pub fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_service_woken_again_at_once_waits_and_is_due_after_its_gap() {
        let mut p = Pace::default();
        let t0 = Instant::now();
        assert!(p.admit("service/c/big", t0));
        p.ran("service/c/big", 1_000, t0);
        assert!(!p.admit("service/c/big", t0 + Duration::from_millis(10)));
        assert!(p.take_due(t0 + Duration::from_millis(500)).is_empty());
        assert_eq!(p.next_due(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(
            p.take_due(t0 + Duration::from_secs(1)),
            vec!["service/c/big".to_string()]
        );
        assert!(p.admit("service/c/big", t0 + Duration::from_secs(1)));
        assert_eq!(p.next_due(), None);
    }

    #[test]
    fn a_sweep_runs_each_service_once_skipping_those_that_ran_meanwhile() {
        let mut s = Sweep::default();
        s.fill(vec!["a".into(), "b".into(), "c".into()]);
        s.fill(vec!["b".into()]);
        assert_eq!(s.next().as_deref(), Some("a"));
        s.ran("b");
        assert_eq!(s.next().as_deref(), Some("c"));
        assert!(s.is_empty());
        assert_eq!(s.next(), None);
    }

    #[test]
    fn a_service_revisited_runs_when_due_even_unwoken() {
        let mut p = Pace::default();
        let t0 = Instant::now();
        p.ran("service/c/rolling", 10, t0);
        p.revisit("service/c/rolling", t0 + REVISIT);
        assert!(p.take_due(t0).is_empty());
        assert_eq!(
            p.take_due(t0 + REVISIT),
            vec!["service/c/rolling".to_string()]
        );
    }

    #[test]
    fn small_services_are_not_held_back_and_gaps_are_capped() {
        let mut p = Pace::default();
        let t0 = Instant::now();
        p.ran("service/c/small", 0, t0);
        assert!(p.admit("service/c/small", t0));
        p.ran("service/c/three", 3, t0);
        assert!(p.admit("service/c/three", t0 + Duration::from_millis(3)));
        assert_eq!(gap(100_000), Duration::from_secs(1));
    }
}
