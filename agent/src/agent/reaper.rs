//! The reaper (DESIGN.md §3.1): one task per agent that sleeps until the next fault is
//! due (or the set of faults changes) and reverts what is due, so no fault outlives its
//! lease or its duration. A revert that fails is retried here too, with backoff.

use std::sync::Arc;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::audit::{Action, Entry};
use crate::lease::{Expiry, REAPER_TICK};

use super::state::Inner;
use super::undo::undo;

/// Run until `cancel`: revert each fault at the earlier of its deadline and its end.
pub(super) async fn run(inner: Arc<Inner>, cancel: CancellationToken) {
    loop {
        let now = Instant::now();
        let wake = next_due(&inner)
            .await
            .map_or(now + REAPER_TICK, |t| t.min(now + REAPER_TICK));
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = inner.wake.notified() => {}
            _ = tokio::time::sleep_until(wake) => {}
        }
        reap(&inner, Instant::now()).await;
    }
}

/// When the reaper must next act.
async fn next_due(inner: &Inner) -> Option<Instant> {
    let state = inner.state.lock().await;
    state.faults.values().map(|a| a.lease.next()).min()
}

/// Revert every fault due at `now`, auditing each as an expiry, an end or a retry.
async fn reap(inner: &Inner, now: Instant) {
    let mut state = inner.state.lock().await;
    let due: Vec<(String, Expiry)> = state
        .faults
        .iter()
        .filter_map(|(id, a)| Some((id.clone(), a.lease.due(now)?)))
        .collect();
    for (id, why) in due {
        let Some(active) = state.faults.remove(&id) else {
            continue;
        };
        let retry = active.attempts;
        let action = match why {
            _ if retry > 0 => Action::Revert,
            Expiry::Lease => Action::Expire,
            Expiry::End => Action::End,
        };
        let mut entry = Entry::new(action, &active.record.owner);
        entry.experiment = active.record.experiment.clone();
        entry.fault = active.record.fault.clone();
        entry.fault_id = id.clone();
        entry.target = active.target.clone();
        tracing::info!(%id, reason = why.label(), "fault due; reverting");
        let result = undo(inner, &mut state, active, Some(why)).await;
        let mut entry = entry.outcome(&result);
        if retry > 0 {
            let note = format!("retry {retry} of a revert that failed");
            entry.message = Some(match entry.message.take() {
                Some(error) => format!("{note}: {error}"),
                None => note,
            });
        }
        inner.audit.record(entry);
    }
}
