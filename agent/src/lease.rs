//! Leases (DESIGN.md §3.1): every fault has a deadline the controller must keep pushing
//! forward, and an end (apply time + duration). The agent's reaper reverts each fault at
//! the earlier of the two, so a fault never outlives its owner or its duration. Pure data
//! and clocks: this module knows nothing of the agent that holds the leases.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Lease when the request names none.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);

/// Longest wait between two tries of a revert that keeps failing.
pub const MAX_RETRY: Duration = Duration::from_secs(60);

/// Upper bound between reaper passes. The reaper sleeps until the next due fault and is
/// woken on every change, so this only bounds lateness if a wake-up were ever missed;
/// expiry happens within this of its deadline on a machine that schedules us at all.
pub const REAPER_TICK: Duration = Duration::from_millis(100);

/// Milliseconds since the Unix epoch, now.
pub fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Why a fault was reverted without being asked to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Not renewed before its deadline.
    Lease,
    /// Its duration ended.
    End,
}

impl Expiry {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Expiry::Lease => "lease",
            Expiry::End => "end",
        }
    }
}

/// One fault's lease, on both clocks: `Instant` for the reaper (monotonic), Unix ms for
/// the API (so the controller can compare against its own clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub length: Duration,
    pub deadline: Instant,
    pub deadline_unix_ms: u64,
    pub ends: Instant,
    pub ends_unix_ms: u64,
}

impl Lease {
    /// A lease of `length` starting now, for a fault lasting `duration`.
    pub fn start(length: Duration, duration: Duration) -> Lease {
        let now = Instant::now();
        let now_ms = unix_ms_now();
        Lease {
            length,
            deadline: now + length,
            deadline_unix_ms: now_ms + length.as_millis() as u64,
            ends: now + duration,
            ends_unix_ms: now_ms + duration.as_millis() as u64,
        }
    }

    /// Push the deadline to now + `length` (the end never moves).
    pub fn renew(&mut self, length: Duration) {
        self.length = length;
        self.deadline = Instant::now() + length;
        self.deadline_unix_ms = unix_ms_now() + length.as_millis() as u64;
    }

    /// When the reaper must act.
    pub fn next(&self) -> Instant {
        self.deadline.min(self.ends)
    }

    /// Whether the fault is due at `now`, and why. The end wins a tie: a fault that
    /// ran its full course "ended", it did not lose its owner.
    pub fn due(&self, now: Instant) -> Option<Expiry> {
        if now >= self.ends {
            Some(Expiry::End)
        } else if now >= self.deadline {
            Some(Expiry::Lease)
        } else {
            None
        }
    }

    /// A lease already due: for a ledger entry the start-up sweep could not revert.
    pub fn due_now() -> Lease {
        Lease::start(Duration::ZERO, Duration::ZERO)
    }

    /// Retry a failed revert later, without spinning: after 1 s, doubling with each
    /// failed `attempt` up to [`MAX_RETRY`].
    pub fn retry_later(&mut self, attempt: u32) {
        let wait = Duration::from_secs(1u64 << attempt.saturating_sub(1).min(6)).min(MAX_RETRY);
        self.deadline = Instant::now() + wait;
        self.ends = self.ends.max(self.deadline);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_at_the_earlier_of_deadline_and_end() {
        let l = Lease::start(Duration::from_secs(10), Duration::from_secs(30));
        assert_eq!(l.next(), l.deadline);
        assert_eq!(l.due(l.deadline - Duration::from_millis(1)), None);
        assert_eq!(l.due(l.deadline), Some(Expiry::Lease));
        assert_eq!(l.due(l.ends), Some(Expiry::End));
        let short = Lease::start(Duration::from_secs(10), Duration::from_secs(2));
        assert_eq!(short.next(), short.ends);
        assert_eq!(short.ends_unix_ms + 8000, short.deadline_unix_ms);
    }

    #[test]
    fn renew_moves_the_deadline_not_the_end() {
        let mut l = Lease::start(Duration::from_secs(1), Duration::from_secs(60));
        let ends = l.ends;
        l.renew(Duration::from_secs(5));
        assert!(l.deadline > Instant::now() + Duration::from_secs(4));
        assert_eq!(l.ends, ends);
    }
}
