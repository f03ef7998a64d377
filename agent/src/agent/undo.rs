//! Undoing one held fault: continue its processes or revert its network change, then
//! clear its ledger entry. A failure puts it back, due again after a backoff, so an
//! explicit revert, the reaper and shutdown all retry it the same way.

use crate::error::{AgentError, Result};
use crate::fault::net::Reverted;
use crate::fault::process;
use crate::lease::Expiry;
use crate::ledger::Done;
use crate::telemetry::FaultEvent;

use super::state::{Active, Inner, State};

/// Undo `active` (already removed from `state.faults`); `why` is the expiry that made
/// it due, `None` for an explicit revert or shutdown.
pub(super) async fn undo(
    inner: &Inner,
    state: &mut State,
    mut active: Active,
    why: Option<Expiry>,
) -> Result<()> {
    let kind = active.record.spec.kind();
    let result = match &active.record.done {
        Done::Paused { pids } => {
            let (continued, errors) = process::continue_all(&inner.proc_root, pids);
            tracing::info!(id = %active.record.id, ?continued, "processes continued");
            match errors.is_empty() {
                true => Ok(()),
                false => Err(AgentError::Internal(errors.join("; "))),
            }
        }
        Done::Net { applied } => match inner.net.revert(applied).await {
            Ok(Reverted::Done) => Ok(()),
            Ok(Reverted::NamespaceGone(inode)) => {
                tracing::info!(id = %active.record.id, inode, "network namespace gone: nothing left to revert");
                Ok(())
            }
            Err(e) => Err(e.into()),
        },
        Done::NetPending => Ok(()),
    };
    let result = result.and_then(|()| Ok(inner.ledger.remove(&active.record.id)?));
    match &result {
        Ok(()) => {
            let event = why.map_or(FaultEvent::Reverted, |w| FaultEvent::Expired(w.label()));
            inner.metrics.fault(event, kind);
            state.bury(active.record.id.clone());
        }
        Err(error) => {
            tracing::error!(id = %active.record.id, %error, "revert failed; retrying");
            inner.metrics.fault(FaultEvent::Failed, kind);
            active.attempts += 1;
            active.lease.retry_later(active.attempts);
            state.faults.insert(active.record.id.clone(), active);
        }
    }
    inner.metrics.active(state.faults.len());
    inner
        .metrics
        .pending_reverts(state.faults.values().filter(|a| a.attempts > 0).count());
    result
}
