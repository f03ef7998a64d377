//! The measured recovery time (docs/architecture.md, Measurement): when the service first
//! failed after a fault started, and when it was back at its steady-state level for the
//! stability window, on buckets of intended send time.

use std::time::Duration;

use shakeout_api::Dur;

use super::RtoReport;
use crate::experiment::Experiment;
use crate::probe::Bucket;
use crate::text::ms;

/// Default stability window for RTO when the objective sets none.
pub const DEFAULT_STABLE_FOR: Duration = Duration::from_secs(1);

/// Per-bucket availability (0..=1) that counts as recovered: the steady-state minimum,
/// or 100 % without one. The runner (to end recovery) and the report (to measure RTO)
/// both use this, so they can never disagree.
pub fn recovery_level(exp: &Experiment) -> f64 {
    let ss = exp.file.spec.steady_state.as_ref();
    ss.and_then(|s| s.availability.as_ref())
        .map(|a| a.min.ratio())
        .unwrap_or(1.0)
}

/// How long availability must stay at [`recovery_level`] to count as recovered.
pub fn stable_for(exp: &Experiment) -> Duration {
    let rto = exp.file.spec.objectives.rto.as_ref();
    rto.and_then(|r| r.stable_for)
        .map(|d| d.0)
        .unwrap_or(DEFAULT_STABLE_FOR)
}

/// What the RTO measurement needs to know about the run.
#[derive(Debug, Clone, Copy)]
pub struct RtoWindow {
    /// Start of the first fault.
    pub fault_start: Duration,
    /// End of the last fault.
    pub fault_end: Duration,
    /// Buckets up to here are considered (the end of the recovery phase, or of the run).
    pub until: Duration,
    /// Per-bucket availability (0..=1) that counts as steady.
    pub level: f64,
    pub stable_for: Duration,
    pub rate_per_second: f64,
}

fn failed(b: &Bucket, level: f64) -> bool {
    b.availability().is_some_and(|a| a < level)
}

/// Measured RTO over buckets keyed by intended send time (DESIGN.md §4): first failure is
/// the first bucket below `level` from the fault's bucket on; recovery is the start of the
/// trailing stretch of non-failing buckets, if it lasts at least `stable_for`.
pub fn measure_rto(buckets: &[Bucket], width: Duration, w: RtoWindow) -> RtoReport {
    let resolution = width.max(Duration::from_secs_f64(1.0 / w.rate_per_second.max(1e-9)));
    let width_ns = width.as_nanos().max(1) as u64;
    let first_idx = (w.fault_start.as_nanos() as u64 / width_ns) as usize;
    let end_idx = ((w.until.as_nanos() as u64 / width_ns) as usize).min(buckets.len());
    let mut report = RtoReport {
        fault_start_ms: ms(w.fault_start),
        fault_end_ms: ms(w.fault_end),
        first_failure_ms: None,
        recovered_ms: None,
        time_to_detect_ms: None,
        time_to_recover_ms: None,
        fault_end_to_recovery_ms: None,
        resolution_ms: ms(resolution),
        level_percent: w.level * 100.0,
        stable_for_ms: ms(w.stable_for),
        note: None,
    };
    let window = buckets.get(first_idx..end_idx).unwrap_or(&[]);
    let Some(first) = window.iter().position(|b| failed(b, w.level)) else {
        report.time_to_recover_ms = Some(0.0);
        report.note = Some("no failure observed".into());
        return report;
    };
    let last = window
        .iter()
        .rposition(|b| failed(b, w.level))
        .unwrap_or(first);
    let first_start = window[first].start;
    report.first_failure_ms = Some(ms(first_start));
    report.time_to_detect_ms = Some(ms(first_start.saturating_sub(w.fault_start)));
    let recovered = window[last].start + width;
    let observed_end = Duration::from_nanos(end_idx as u64 * width_ns);
    let stable = observed_end.saturating_sub(recovered);
    if stable >= w.stable_for {
        report.recovered_ms = Some(ms(recovered));
        report.time_to_recover_ms = Some(ms(recovered - first_start));
        report.fault_end_to_recovery_ms = Some(ms(recovered) - ms(w.fault_end));
    } else {
        report.note = Some(format!(
            "not recovered before the run ended: steady for {} of the {} needed",
            Dur(round_ms(stable)),
            Dur(w.stable_for)
        ));
    }
    report
}

/// True once the buckets up to `until` show recovery (used live to end the recovery phase).
pub fn recovered(buckets: &[Bucket], width: Duration, w: RtoWindow) -> bool {
    measure_rto(buckets, width, w).time_to_recover_ms.is_some()
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}
