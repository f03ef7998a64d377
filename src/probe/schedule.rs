//! When sends are due: the pace an experiment asks for and the schedule it makes, with
//! no knowledge of who sends. The pacer, the pool and the claims all read it.

use std::time::Duration;

/// How sends are scheduled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// Send k is due at origin + k / rate (per second).
    Rate(f64),
    /// As fast as the in-flight bound allows (benchmarks only).
    Max,
}

impl Pace {
    /// Sends per second; `None` for [`Pace::Max`], which has no rate (and no interval).
    pub fn per_second(self) -> Option<f64> {
        match self {
            Pace::Rate(r) => Some(r),
            Pace::Max => None,
        }
    }
}

/// The schedule of a paced probe, as offsets from the origin. One formula, never a sum of
/// sleeps, so rounding never accumulates.
#[derive(Debug, Clone, Copy)]
pub(super) struct Schedule {
    rate: f64,
}

impl Schedule {
    pub(super) fn new(pace: Pace) -> Self {
        match pace {
            Pace::Rate(rate) if rate.is_finite() && rate > 0.0 => Schedule { rate },
            // A zero, negative or unbounded rate schedules nothing (`Max` has no schedule).
            _ => Schedule { rate: 0.0 },
        }
    }

    /// Offset of send `k` from the origin (`Duration::MAX` when never due).
    pub(super) fn offset(&self, k: u64) -> Duration {
        if self.rate <= 0.0 {
            return Duration::MAX;
        }
        Duration::try_from_secs_f64(k as f64 / self.rate).unwrap_or(Duration::MAX)
    }

    /// Number of sends due at `elapsed` after the origin: the k with `offset(k) <= elapsed`.
    pub(super) fn due_at(&self, elapsed: Duration) -> u64 {
        if self.rate <= 0.0 {
            return 0;
        }
        // Estimate in floating point, then settle on exactly what `offset` says so the
        // two can never disagree about a send at the boundary.
        let mut n = (elapsed.as_secs_f64() * self.rate).floor() as u64 + 1;
        while self.offset(n) <= elapsed {
            n += 1;
        }
        while n > 0 && self.offset(n - 1) > elapsed {
            n -= 1;
        }
        n
    }
}
