//! Waiting for a condition with a deadline, never a fixed sleep: a test that waits says
//! what for, and fails naming it when the deadline passes.

use std::time::{Duration, Instant};

/// How often a condition is checked.
pub const POLL: Duration = Duration::from_millis(10);

/// How long after `since` `cond` first held (checked every [`POLL`]), or `None` once
/// `limit` after `since` has passed without it.
pub fn within(since: Instant, limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    loop {
        if cond() {
            return Some(since.elapsed());
        }
        if since.elapsed() > limit {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// Waits until `cond` holds and returns how long that took; panics naming `what` once
/// `limit` has passed.
#[track_caller]
pub fn wait_for(what: &str, limit: Duration, cond: impl FnMut() -> bool) -> Duration {
    match within(Instant::now(), limit, cond) {
        Some(took) => took,
        None => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

/// [`wait_for`] inside an async test: the runtime's thread is not blocked while it waits.
pub async fn wait_for_async(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let since = Instant::now();
    while !cond() {
        assert!(
            since.elapsed() <= limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}
