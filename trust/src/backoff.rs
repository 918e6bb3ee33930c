//! The one reconnect backoff of every client of the control plane (agents, proxies, joining,
//! the fleet benchmark's simulated agents): decorrelated jitter, so that many clients cut off by
//! the same outage come back spread out rather than in step. Each wait is drawn uniformly
//! between `first` and three times the previous wait, and never exceeds `max`; a success resets it.

use rand::Rng;
use std::time::Duration;

/// Waits between attempts; `reset` after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    last: Duration,
}

impl Backoff {
    /// Waits of at least `first` and at most `max` (`max` below `first` is taken as `first`).
    pub fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max: max.max(first),
            last: first,
        }
    }

    /// Starts again from `first` (the connection worked).
    pub fn reset(&mut self) {
        self.last = self.first;
    }

    /// The wait before the next attempt.
    pub fn next_wait(&mut self) -> Duration {
        self.next_from(&mut rand::rng())
    }

    fn next_from(&mut self, rng: &mut impl Rng) -> Duration {
        let high = self.last.saturating_mul(3).min(self.max);
        let wait = if high > self.first {
            rng.random_range(self.first..=high)
        } else {
            self.first
        };
        self.last = wait;
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    const FIRST: Duration = Duration::from_millis(200);
    const MAX: Duration = Duration::from_secs(5);

    #[test]
    fn every_wait_is_between_first_and_max() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut b = Backoff::new(FIRST, MAX);
        for _ in 0..10_000 {
            let w = b.next_from(&mut rng);
            assert!((FIRST..=MAX).contains(&w), "{w:?}");
        }
    }

    #[test]
    fn each_wait_is_at_most_three_times_the_last() {
        let mut rng = StdRng::seed_from_u64(8);
        let mut b = Backoff::new(FIRST, MAX);
        let mut last = FIRST;
        for _ in 0..1_000 {
            let w = b.next_from(&mut rng);
            assert!(w <= last * 3, "{w:?} after {last:?}");
            last = w;
        }
    }

    #[test]
    fn waits_grow_towards_max_then_reset_to_first() {
        let mut rng = StdRng::seed_from_u64(9);
        let mut b = Backoff::new(FIRST, MAX);
        let waits: Vec<Duration> = (0..50).map(|_| b.next_from(&mut rng)).collect();
        let late: Duration = waits[40..].iter().sum::<Duration>() / 10;
        assert!(late > Duration::from_secs(1), "late waits average {late:?}");
        b.reset();
        assert!(b.next_from(&mut rng) <= FIRST * 3);
    }

    #[test]
    fn waits_are_spread_not_in_step() {
        let mut rng = StdRng::seed_from_u64(10);
        let firsts: Vec<Duration> = (0..100)
            .map(|_| Backoff::new(FIRST, MAX).next_from(&mut rng))
            .collect();
        let (lo, hi) = (firsts.iter().min().unwrap(), firsts.iter().max().unwrap());
        assert!(*hi - *lo > Duration::from_millis(200), "{lo:?}..{hi:?}");
    }

    #[test]
    fn a_max_below_first_waits_first() {
        let mut b = Backoff::new(FIRST, Duration::from_millis(10));
        assert_eq!(b.next_wait(), FIRST);
        assert_eq!(b.next_wait(), FIRST);
    }
}
