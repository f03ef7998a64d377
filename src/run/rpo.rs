//! The runner's side of write probes: check every backend before anything starts (an
//! unreachable backend is exit 3, like a service that never gets ready), and read the
//! writes back after probing stops, while the services are still up.

use crate::probe::write::WriteReport;
use crate::probe::{ProbeConfig, ProbeRecording, Target};

use crate::record::Stop;

/// A write probe whose backend does not answer before the run.
#[derive(Debug, Clone, thiserror::Error)]
#[error("probe `{probe}`: write backend unreachable before the run: {message}")]
pub struct BackendError {
    pub probe: String,
    pub message: String,
}

/// Every write probe's backend answers; `Err` names the first one that does not.
pub async fn preflight(configs: &[ProbeConfig]) -> Result<(), BackendError> {
    for c in configs {
        if let Target::Write(w) = &c.target {
            w.preflight().await.map_err(|e| BackendError {
                probe: c.name.clone(),
                message: e.to_string(),
            })?;
        }
    }
    Ok(())
}

/// Read back each write probe's writes (one after another: each is bounded by its own
/// `readBack.timeout`); `None` for other probes.
pub async fn verify(
    configs: &[ProbeConfig],
    recordings: &[ProbeRecording],
    stop: &Stop,
) -> Vec<Option<WriteReport>> {
    let mut out = Vec::new();
    for (c, r) in configs.iter().zip(recordings) {
        let Target::Write(w) = &c.target else {
            out.push(None);
            continue;
        };
        // An interrupted run should end now; the keys are still cleaned up.
        let skip = matches!(stop, Stop::Interrupted)
            .then(|| "interrupted: the read-back was skipped".to_owned());
        let scheduled = r.total().counts.scheduled();
        out.push(Some(
            crate::probe::write::readback::verify(
                w,
                &r.acks,
                scheduled,
                c.pace.per_second().unwrap_or(f64::INFINITY),
                skip,
            )
            .await,
        ));
    }
    out
}
