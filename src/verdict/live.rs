//! Judgments made while the run goes on, on the buckets closed so far: does the steady
//! state hold before the first fault, has a stop condition fired, has every probe
//! recovered. The runner asks; the verdicts here decide.

use std::sync::Arc;
use std::time::Duration;

use super::{
    recovered, recovery_level, stable_for, steady_state_verdicts, RtoWindow, VerdictStatus,
};
use crate::experiment::spec::During;
use crate::experiment::Experiment;
use crate::probe::{Counts, Phase, ProbeConfig, Recorder};

/// The steady-state hypothesis on what the baseline recorded so far, judged by the same
/// verdicts the report gives (`steadyState/before/...`): `Err` says which failed and by
/// how much.
pub fn steady_state_holds(exp: &Experiment, recorders: &[Arc<Recorder>]) -> Result<(), String> {
    let Some(ss) = &exp.file.spec.steady_state else {
        return Ok(());
    };
    for r in recorders {
        let stats = r.phase_snapshot(Phase::Baseline);
        if let Some(v) = steady_state_verdicts(ss, "before", r.name(), During::Baseline, &stats)
            .into_iter()
            .find(|v| v.status == VerdictStatus::Fail)
        {
            return Err(format!(
                "probe `{}`: {} measured {}, required {}",
                r.name(),
                v.id,
                v.measured.as_deref().unwrap_or("-"),
                v.required
            ));
        }
    }
    Ok(())
}

/// The stop condition, if it fired: which probe and what it saw over the last window of
/// closed buckets.
pub fn abort_fired(
    exp: &Experiment,
    recorders: &[Arc<Recorder>],
    bucket: Duration,
) -> Option<String> {
    let a = exp.file.spec.abort.as_ref()?.availability.as_ref()?;
    let n = (a.for_.0.as_nanos() / bucket.as_nanos().max(1)).max(1) as usize;
    for r in recorders {
        if a.probe.as_deref().is_some_and(|p| p != r.name()) {
            continue;
        }
        let closed = r.closed_len();
        if closed < n {
            continue;
        }
        let mut counts = Counts::default();
        for b in r.closed_since(closed - n) {
            counts.merge(&b.counts);
        }
        if let Some(av) = counts.availability() {
            if av < a.below.ratio() {
                return Some(format!(
                    "probe `{}` availability {:.2}% over the last {} is below {}",
                    r.name(),
                    av * 100.0,
                    a.for_,
                    a.below
                ));
            }
        }
    }
    None
}

/// Whether every probe is back at its steady-state level after the faults
/// (`window` = fault start, fault end, and how far the buckets are closed). Judged only
/// once a whole stability window after the faults' end is closed: before that, a failure
/// a fault caused may not have reached the buckets yet.
pub fn all_recovered(
    exp: &Experiment,
    configs: &[ProbeConfig],
    recorders: &[Arc<Recorder>],
    bucket: Duration,
    window: (Duration, Duration, Duration),
) -> bool {
    let (fault_start, fault_end, horizon) = window;
    configs.iter().zip(recorders).all(|(c, r)| {
        let buckets = r.closed_since(0);
        let w = RtoWindow {
            fault_start,
            fault_end,
            until: horizon,
            level: recovery_level(exp),
            stable_for: stable_for(exp),
            rate_per_second: c.pace.per_second().unwrap_or(f64::INFINITY),
        };
        horizon >= fault_end + w.stable_for && recovered(&buckets, bucket, w)
    })
}
