//! The run's judgment: measure each probe's recovery (RTO), judge every objective and
//! the steady-state hypothesis, and settle the run's status and its reason. Pure: the
//! record in, the judgment out.

use std::time::Duration;

use hdrhistogram::Histogram;

use super::{
    evaluate, measure_rto, ProbeResult, RtoReport, RtoWindow, RunStatus, Verdict, VerdictStatus,
};
use crate::experiment::Experiment;
use crate::record::{FaultStatus, RunRecord, Stop};
use crate::text::ms;

/// What the verdicts say of a run.
#[derive(Debug, Clone)]
pub struct Judgment {
    /// Each probe's measured recovery (none when no fault ran).
    pub rtos: Vec<Option<RtoReport>>,
    /// Each probe: whether its own scheduling lag, not the service, explains its latency.
    pub prober_limited: Vec<bool>,
    pub verdicts: Vec<Verdict>,
    pub status: RunStatus,
    /// Why the run ended as it did, when that needs saying.
    pub reason: Option<String>,
}

/// Scheduling lag that makes the prober, not the service, the suspect (FIELD-NOTES 2):
/// p99 above 1 ms or above 10 % of the send interval (`rate` `None`: no interval).
pub fn prober_limited(lag: &Histogram<u64>, rate: Option<f64>) -> bool {
    if lag.is_empty() {
        return false;
    }
    let interval_us = match rate {
        Some(r) if r > 0.0 => 1e6 / r,
        _ => f64::INFINITY,
    };
    let p99 = lag.value_at_quantile(0.99) as f64;
    p99 > 1000.0 || p99 > 0.1 * interval_us
}

/// Judge a finished run.
pub fn judge(exp: &Experiment, r: &RunRecord) -> Judgment {
    let spec = &exp.file.spec;
    let spans = r.timeline.spans(r.end);
    let mut lengths = [Duration::ZERO; 4];
    for (p, s, e) in &spans {
        lengths[*p as usize] = e.saturating_sub(*s);
    }
    let level = super::recovery_level(exp);
    let stable_for = super::stable_for(exp);
    let observed_until = r.timeline.recovery_horizon.unwrap_or(r.end);
    let rtos: Vec<Option<RtoReport>> = r
        .configs
        .iter()
        .zip(&r.recordings)
        .map(|(c, rec)| {
            let fault_start = r.timeline.faults_start?;
            let w = RtoWindow {
                fault_start,
                fault_end: r.timeline.faults_end.unwrap_or(r.end),
                until: observed_until,
                level,
                stable_for,
                rate_per_second: c.pace.per_second().unwrap_or(f64::INFINITY),
            };
            let mut rto = measure_rto(&rec.buckets, r.bucket, w);
            if let Some(first) = rto.first_failure_ms {
                // The failure bucket may start up to one bucket before the fault inside it.
                let cause = r
                    .faults
                    .iter()
                    .filter(|x| x.status != FaultStatus::Pending && x.at_ms <= first + ms(r.bucket))
                    .map(|x| x.at_ms)
                    .fold(None, |acc: Option<f64>, at| {
                        Some(acc.map_or(at, |a| a.max(at)))
                    });
                if let Some(at) = cause {
                    rto.time_to_detect_ms = Some((first - at).max(0.0));
                }
            }
            Some(rto)
        })
        .collect();
    let results: Vec<ProbeResult<'_>> = r
        .recordings
        .iter()
        .zip(&rtos)
        .zip(&r.writes)
        .map(|((rec, rto), write)| ProbeResult {
            recording: rec,
            rto: rto.as_ref(),
            write: write.as_ref(),
            phase_lengths: lengths,
            observed_until,
        })
        .collect();
    let mut verdicts = evaluate(exp, &results, &r.faults);
    verdicts.extend(super::certificate::judge(
        exp,
        &r.recordings,
        r.started_at + r.end,
    ));
    verdicts.extend(super::monitor::verdicts(
        exp,
        Some(&r.monitor),
        alert_window(r, &rtos),
    ));
    let faults_ran = r.timeline.faults_start.is_some();
    if faults_ran && r.timeline.steady_start.is_none() {
        // The core hypothesis: steady state must come back. Not coming back is a failure.
        for v in verdicts
            .iter_mut()
            .filter(|v| v.id.starts_with("steadyState/after/"))
        {
            v.status = VerdictStatus::Fail;
            v.measured = Some("not restored before the run ended".into());
            v.note = None;
        }
    }
    super::services::apply(&mut verdicts, &r.services, r.timeline.faults_start);
    rto_cut_short(r, &mut verdicts);
    let any_fail = verdicts.iter().any(|v| v.status == VerdictStatus::Fail);
    let unconfirmed: Vec<&str> = r
        .faults
        .iter()
        .filter(|x| x.status == FaultStatus::RevertFailed)
        .map(|x| x.name.as_str())
        .collect();
    let status = status_of(&r.stop, !unconfirmed.is_empty(), any_fail);
    let reason = match (&r.stop, unconfirmed.is_empty()) {
        (_, false) => Some(format!(
            "revert not confirmed for: {}; check the target by hand",
            unconfirmed.join(", ")
        )),
        (Stop::Interrupted, _) => {
            Some("interrupted by a signal; every applied fault was reverted".into())
        }
        (Stop::Aborted(why), _) => {
            Some(format!("aborted: {why}; every applied fault was reverted"))
        }
        (Stop::SteadyStateBefore(why), _) => Some(format!(
            "steady state did not hold before the first fault ({why}); no fault was injected"
        )),
        (Stop::ServiceFailed(why), _) => Some(format!(
            "{why}; the steady state cannot return, so the run stopped and every applied \
             fault was reverted"
        )),
        (Stop::Duration, _) => Some(format!(
            "reached the experiment's duration of {}",
            spec.duration
        )),
        // A service that failed as the run ended: its verdicts failed, say why.
        (Stop::Done, _) => r
            .services
            .iter()
            .find_map(|s| s.failed.as_ref().map(|f| f.reason.clone())),
    };
    let prober_limited = r
        .configs
        .iter()
        .zip(&r.recordings)
        .map(|(c, rec)| prober_limited(&rec.lag, c.pace.per_second()))
        .collect();
    Judgment {
        rtos,
        prober_limited,
        verdicts,
        status,
        reason,
    }
}

/// Where alert times are measured from: the first fault, and the service back (the
/// latest probe's measured recovery; else the steady state restored; else the faults' end).
fn alert_window(r: &RunRecord, rtos: &[Option<RtoReport>]) -> super::monitor::AlertWindow {
    let probes = rtos
        .iter()
        .flatten()
        .filter_map(|x| x.recovered_ms)
        .fold(None, |acc: Option<f64>, m| {
            Some(acc.map_or(m, |a| a.max(m)))
        });
    let (recovered, recovered_by) = match (probes, r.timeline.steady_start, r.timeline.faults_end) {
        (Some(m), _, _) => (
            Some(Duration::from_secs_f64(m.max(0.0) / 1000.0)),
            "probes recovered",
        ),
        (None, Some(s), _) => (Some(s), "steady state restored"),
        (None, None, e) => (e, "faults ended"),
    };
    super::monitor::AlertWindow {
        faults_start: r.timeline.faults_start,
        recovered,
        recovered_by,
        end: r.end,
    }
}

/// An RTO says how long the service took to recover from the fault plan. When the run
/// stopped before every fault started, or was cut short before any failure showed, there
/// is no such time to judge: the verdict is not measured, and says why (a pass here would
/// claim a recovery nobody saw).
fn rto_cut_short(r: &RunRecord, verdicts: &mut [Verdict]) {
    let never: Vec<&str> = r
        .faults
        .iter()
        .filter(|f| f.status == FaultStatus::Pending)
        .map(|f| f.name.as_str())
        .collect();
    let cut = matches!(
        r.stop,
        Stop::Interrupted | Stop::Aborted(_) | Stop::ServiceFailed(_)
    );
    let stopped = match &r.stop {
        Stop::Interrupted => "the run was interrupted",
        Stop::Aborted(_) => "a stop condition ended the run",
        Stop::ServiceFailed(_) => "a failed service ended the run",
        _ => "the run ended",
    };
    // Only a pass is in doubt: a recovery slower than allowed already failed.
    for v in verdicts
        .iter_mut()
        .filter(|v| v.kind == "rto" && v.status == VerdictStatus::Pass)
    {
        let quiet = v.note.as_deref() == Some("no failure observed");
        let why = if !never.is_empty() && r.timeline.faults_start.is_some() {
            Some(format!(
                "{stopped} before {} started, so the recovery from the whole fault plan was not observed",
                never
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        } else if cut && quiet {
            Some(format!(
                "{stopped} before a failure or a recovery could be observed"
            ))
        } else {
            None
        };
        if let Some(why) = why {
            v.status = VerdictStatus::NotMeasured;
            v.note = Some(why);
        }
    }
}

/// Map the way a run stopped (and its fault outcomes) to the overall status.
fn status_of(stop: &Stop, revert_failed: bool, any_fail: bool) -> RunStatus {
    if revert_failed {
        return RunStatus::RevertUnconfirmed;
    }
    match stop {
        Stop::Interrupted => RunStatus::Interrupted,
        Stop::Aborted(_) => RunStatus::Aborted,
        Stop::SteadyStateBefore(_) | Stop::ServiceFailed(_) => RunStatus::Failed,
        Stop::Done | Stop::Duration if any_fail => RunStatus::Failed,
        Stop::Done | Stop::Duration => RunStatus::Met,
    }
}
