//! Which due send a free worker takes next. Newest first: when every slot was busy, the
//! freshest send goes out on time with its full deadline, and sends that waited past their
//! deadline are handed out as `Missed` (k6's dropped iterations). Oldest first would send
//! each waiting probe late with a sliver of its deadline left and blame the service for
//! the timeout that follows, so the in-flight bound would never show.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::schedule::{Pace, Schedule};

/// What a free worker gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Claim {
    /// Send number `k` is this worker's to send.
    Send(u64),
    /// These sends reached their deadline unsent: record them as missed.
    Missed(Range<u64>),
    /// Nothing due yet; more will be released.
    Wait,
    /// Nothing due and nothing more will be.
    Finished,
}

/// Due sends not yet taken: ascending, disjoint ranges. Taking from the top of the last
/// range and releasing above it is what splits ranges; expiry removes them from the
/// front, so there are never more than one timeout's worth of releases.
#[derive(Debug, Default)]
struct Backlog {
    ranges: VecDeque<Range<u64>>,
    released: u64,
    waiting: u64,
    done: bool,
}

/// The claim state shared by the pacer (releases) and the workers (claims).
#[derive(Debug)]
pub(super) struct Claims {
    pace: Pace,
    schedule: Schedule,
    timeout: Duration,
    backlog: Mutex<Backlog>,
    /// `Pace::Max` needs no backlog: every claim is a new send.
    started: AtomicU64,
    done: AtomicBool,
}

impl Claims {
    pub(super) fn new(pace: Pace, timeout: Duration) -> Self {
        Claims {
            pace,
            schedule: Schedule::new(pace),
            timeout,
            backlog: Mutex::new(Backlog::default()),
            started: AtomicU64::new(0),
            done: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Backlog> {
        // Every update leaves the backlog consistent, so a poisoned lock is still usable.
        self.backlog.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next thing for a free worker to do, `elapsed` after the origin.
    pub(super) fn claim(&self, elapsed: Duration) -> Claim {
        if let Pace::Max = self.pace {
            return if self.done.load(Ordering::Acquire) {
                Claim::Finished
            } else {
                Claim::Send(self.started.fetch_add(1, Ordering::AcqRel))
            };
        }
        // Send k is past its deadline once origin + offset(k) + timeout <= now.
        let expired_below = elapsed
            .checked_sub(self.timeout)
            .map_or(0, |t| self.schedule.due_at(t));
        let mut b = self.lock();
        if let Some(front) = b.ranges.front_mut() {
            if front.start < expired_below {
                let end = front.end.min(expired_below);
                let missed = front.start..end;
                front.start = end;
                if front.is_empty() {
                    b.ranges.pop_front();
                }
                b.waiting -= missed.end - missed.start;
                return Claim::Missed(missed);
            }
        }
        if let Some(last) = b.ranges.back_mut() {
            last.end -= 1;
            let k = last.end;
            if last.is_empty() {
                b.ranges.pop_back();
            }
            b.waiting -= 1;
            return Claim::Send(k);
        }
        if b.done {
            Claim::Finished
        } else {
            Claim::Wait
        }
    }

    /// Make sends `0..count` due. Returns how many became due with this call.
    pub(super) fn release(&self, count: u64) -> u64 {
        let mut b = self.lock();
        let from = b.released;
        if count <= from || b.done {
            return 0;
        }
        match b.ranges.back_mut() {
            Some(last) if last.end == from => last.end = count,
            _ => b.ranges.push_back(from..count),
        }
        b.released = count;
        b.waiting += count - from;
        count - from
    }

    /// No more sends will be released.
    pub(super) fn finish(&self) {
        self.lock().done = true;
        self.done.store(true, Ordering::Release);
    }

    /// Due sends waiting for a worker (unbounded for `Pace::Max` until finished).
    pub(super) fn pending(&self) -> u64 {
        match self.pace {
            Pace::Max if self.done.load(Ordering::Acquire) => 0,
            Pace::Max => u64::MAX,
            Pace::Rate(_) => self.lock().waiting,
        }
    }

    /// Every send scheduled so far; each gets exactly one outcome.
    pub(super) fn scheduled(&self) -> u64 {
        match self.pace {
            Pace::Max => self.started.load(Ordering::Acquire),
            Pace::Rate(_) => self.lock().released,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// 1000/s with a 100 ms deadline: send k is due at k ms, expires at k + 100 ms.
    fn claims() -> Claims {
        Claims::new(Pace::Rate(1000.0), 100 * MS)
    }

    #[test]
    fn the_newest_due_send_goes_first() {
        let c = claims();
        assert_eq!(c.claim(MS), Claim::Wait);
        assert_eq!(c.release(3), 3);
        // A stale, lower release never takes sends back.
        assert_eq!(c.release(2), 0);
        assert_eq!(c.pending(), 3);
        assert_eq!(c.claim(2 * MS), Claim::Send(2));
        c.release(5);
        assert_eq!(c.claim(4 * MS), Claim::Send(4));
        assert_eq!(c.claim(4 * MS), Claim::Send(3));
        assert_eq!(c.claim(4 * MS), Claim::Send(1));
        c.finish();
        assert_eq!(c.release(9), 0, "nothing is released after the stop");
        assert_eq!(c.claim(4 * MS), Claim::Send(0));
        assert_eq!(c.claim(4 * MS), Claim::Finished);
        assert_eq!(c.scheduled(), 5);
    }

    #[test]
    fn sends_past_their_deadline_are_handed_out_as_missed() {
        let c = claims();
        c.release(10);
        assert_eq!(c.claim(9 * MS), Claim::Send(9));
        c.release(20);
        // At 105 ms, sends 0..=5 are past their deadline, 6.. are not.
        assert_eq!(c.claim(105 * MS), Claim::Missed(0..6));
        assert_eq!(c.claim(105 * MS), Claim::Send(19));
        // The gap left by send 9 is skipped, not reported twice.
        assert_eq!(c.claim(200 * MS), Claim::Missed(6..9));
        assert_eq!(c.claim(200 * MS), Claim::Missed(10..19));
        assert_eq!(c.claim(200 * MS), Claim::Wait);
        assert_eq!(c.pending(), 0);
    }

    #[test]
    fn concurrent_claims_never_duplicate_or_skip() {
        let c = std::sync::Arc::new(claims());
        c.release(40_000);
        c.finish();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let c = std::sync::Arc::clone(&c);
                std::thread::spawn(move || {
                    let mut mine = Vec::new();
                    // Half the threads see everything as expired, half as fresh.
                    let at = if t % 2 == 0 { MS } else { 100_000 * MS };
                    loop {
                        match c.claim(at) {
                            Claim::Send(k) => mine.push(k),
                            Claim::Missed(r) => mine.extend(r),
                            Claim::Wait | Claim::Finished => break,
                        }
                    }
                    mine
                })
            })
            .collect();
        let mut all: Vec<u64> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..40_000).collect::<Vec<_>>());
    }

    #[test]
    fn max_pace_claims_until_finished() {
        let c = Claims::new(Pace::Max, 100 * MS);
        assert_eq!(c.claim(MS), Claim::Send(0));
        assert_eq!(c.claim(MS), Claim::Send(1));
        assert_eq!(c.pending(), u64::MAX);
        c.finish();
        assert_eq!(c.claim(MS), Claim::Finished);
        assert_eq!(c.scheduled(), 2);
    }
}
