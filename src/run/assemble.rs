//! Turns what a run recorded (histograms, buckets, fault results, events) into the
//! [`Report`] model, computing RTO and verdicts on the way. Pure: no I/O, no clock.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;

use super::{status_of, Stop, Timeline};
use crate::experiment::Experiment;
use crate::probe::{Counts, Outcome, Phase, PhaseStats, ProbeConfig, ProbeRecording, Target};
use crate::report::*;
use crate::verdict::{self, ProbeResult, RtoWindow};

/// Everything a finished run hands over.
pub struct Finished<'a> {
    pub exp: &'a Experiment,
    pub seed: u64,
    pub started_at: SystemTime,
    pub end: Duration,
    pub bucket: Duration,
    pub configs: &'a [ProbeConfig],
    pub recordings: &'a [ProbeRecording],
    /// What each write probe's read-back found (`None` for other probes).
    pub writes: Vec<Option<WriteReport>>,
    pub timeline: Timeline,
    pub stop: Stop,
    pub faults: Vec<FaultReport>,
    pub events: Vec<Event>,
}

fn experiment_info(exp: &Experiment) -> ExperimentInfo {
    ExperimentInfo {
        name: exp.file.metadata.name.clone(),
        file: exp.source.display().to_string(),
        labels: exp.file.metadata.labels.clone(),
    }
}

/// A report for a run that could not start (exit 3).
pub fn error_report(exp: &Experiment, seed: u64, reason: String) -> Report {
    Report {
        schema_version: SCHEMA_VERSION.into(),
        experiment: experiment_info(exp),
        run: RunInfo {
            status: RunStatus::Error,
            exit_code: RunStatus::Error.exit_code(),
            reason: Some(reason),
            seed,
            started_at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            duration_ms: 0.0,
            bucket_ms: 0.0,
            shakeout_version: env!("CARGO_PKG_VERSION").into(),
        },
        phases: Vec::new(),
        probes: Vec::new(),
        faults: Vec::new(),
        events: Vec::new(),
        verdicts: Vec::new(),
    }
}

fn ms_of_us(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Percentiles of a microsecond histogram, in milliseconds.
pub fn latency_summary(h: &Histogram<u64>) -> LatencySummary {
    if h.is_empty() {
        return LatencySummary::default();
    }
    LatencySummary {
        count: h.len(),
        min_ms: Some(ms_of_us(h.min())),
        mean_ms: Some(h.mean() / 1000.0),
        p50_ms: Some(ms_of_us(h.value_at_quantile(0.50))),
        p90_ms: Some(ms_of_us(h.value_at_quantile(0.90))),
        p99_ms: Some(ms_of_us(h.value_at_quantile(0.99))),
        p999_ms: Some(ms_of_us(h.value_at_quantile(0.999))),
        max_ms: Some(ms_of_us(h.max())),
    }
}

fn errors(c: &Counts) -> BTreeMap<String, u64> {
    Outcome::ALL
        .iter()
        .filter(|o| !o.is_ok() && c.get(**o) > 0)
        .map(|o| (o.as_str().to_owned(), c.get(*o)))
        .collect()
}

fn phase_report(name: &str, s: &PhaseStats) -> PhaseReport {
    PhaseReport {
        phase: name.into(),
        scheduled: s.counts.scheduled(),
        ok: s.counts.ok(),
        availability_percent: s.counts.availability().map(|a| a * 100.0),
        errors: errors(&s.counts),
        latency: latency_summary(&s.latency),
    }
}

/// Phase spans as they happened.
fn phase_spans(t: &Timeline, end: Duration) -> Vec<(Phase, Duration, Duration)> {
    let mut spans = Vec::new();
    let baseline_end = t.faults_start.or(t.steady_start).unwrap_or(end);
    spans.push((Phase::Baseline, Duration::ZERO, baseline_end));
    if let Some(fs) = t.faults_start {
        let fe = t.faults_end.unwrap_or(end);
        spans.push((Phase::Faults, fs, fe));
        if t.faults_end.is_some() {
            spans.push((Phase::Recovery, fe, t.steady_start.unwrap_or(end)));
        }
    }
    if let Some(ss) = t.steady_start {
        spans.push((Phase::Steady, ss, t.steady_end.unwrap_or(end)));
    }
    spans
}

fn rate(c: &ProbeConfig) -> f64 {
    match c.pace {
        crate::probe::Pace::Rate(r) => r,
        crate::probe::Pace::Max => 0.0,
    }
}

/// Scheduling lag that makes the prober, not the service, the suspect (FIELD-NOTES 2):
/// p99 above 1 ms or above 10 % of the send interval.
fn prober_limited(lag: &Histogram<u64>, rate: f64) -> bool {
    if lag.is_empty() {
        return false;
    }
    let interval_us = if rate > 0.0 {
        1e6 / rate
    } else {
        f64::INFINITY
    };
    let p99 = lag.value_at_quantile(0.99) as f64;
    p99 > 1000.0 || p99 > 0.1 * interval_us
}

/// Build the report of a finished run.
pub fn report(f: Finished<'_>) -> Report {
    let spec = &f.exp.file.spec;
    let spans = phase_spans(&f.timeline, f.end);
    let mut lengths = [Duration::ZERO; 4];
    for (p, s, e) in &spans {
        lengths[*p as usize] = e.saturating_sub(*s);
    }
    let level = verdict::recovery_level(f.exp);
    let stable_for = verdict::stable_for(f.exp);
    let observed_until = f.timeline.recovery_horizon.unwrap_or(f.end);
    let rtos: Vec<Option<RtoReport>> = f
        .configs
        .iter()
        .zip(f.recordings)
        .map(|(c, r)| {
            let fault_start = f.timeline.faults_start?;
            let w = RtoWindow {
                fault_start,
                fault_end: f.timeline.faults_end.unwrap_or(f.end),
                until: observed_until,
                level,
                stable_for,
                rate_per_second: rate(c).max(1e-9),
            };
            let mut rto = verdict::measure_rto(&r.buckets, f.bucket, w);
            if let Some(first) = rto.first_failure_ms {
                // The failure bucket may start up to one bucket before the fault inside it.
                let cause = f
                    .faults
                    .iter()
                    .filter(|x| x.status != FaultStatus::Pending && x.at_ms <= first + ms(f.bucket))
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
    let results: Vec<ProbeResult<'_>> = f
        .recordings
        .iter()
        .zip(&rtos)
        .zip(&f.writes)
        .map(|((r, rto), write)| ProbeResult {
            recording: r,
            rto: rto.as_ref(),
            write: write.as_ref(),
            phase_lengths: lengths,
            observed_until,
        })
        .collect();
    let mut verdicts = verdict::evaluate(f.exp, &results, &f.faults);
    let faults_ran = f.timeline.faults_start.is_some();
    if faults_ran && f.timeline.steady_start.is_none() {
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
    let any_fail = verdicts.iter().any(|v| v.status == VerdictStatus::Fail);
    let revert_failed = f
        .faults
        .iter()
        .any(|x| x.status == FaultStatus::RevertFailed);
    let status = status_of(&f.stop, revert_failed, any_fail);
    let reason = match (&f.stop, revert_failed) {
        (_, true) => Some(format!(
            "revert not confirmed for: {}; check the target by hand",
            f.faults
                .iter()
                .filter(|x| x.status == FaultStatus::RevertFailed)
                .map(|x| x.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
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
        (Stop::Duration, _) => Some(format!(
            "reached the experiment's duration of {}",
            spec.duration
        )),
        (Stop::Done, _) => None,
    };
    let probes = f
        .configs
        .iter()
        .zip(f.recordings)
        .zip(rtos)
        .zip(f.writes)
        .map(|(((c, r), rto), write)| probe_report(c, r, rto, write, &spans))
        .collect();
    Report {
        schema_version: SCHEMA_VERSION.into(),
        experiment: experiment_info(f.exp),
        run: RunInfo {
            status,
            exit_code: status.exit_code(),
            reason,
            seed: f.seed,
            started_at: humantime::format_rfc3339_millis(f.started_at).to_string(),
            duration_ms: ms(f.end),
            bucket_ms: ms(f.bucket),
            shakeout_version: env!("CARGO_PKG_VERSION").into(),
        },
        phases: spans
            .iter()
            .map(|(p, s, e)| PhaseSpan {
                phase: p.as_str().into(),
                start_ms: ms(*s),
                end_ms: ms(*e),
            })
            .collect(),
        probes,
        faults: f.faults,
        events: f.events,
        verdicts,
    }
}

fn probe_report(
    c: &ProbeConfig,
    r: &ProbeRecording,
    rto: Option<RtoReport>,
    write: Option<WriteReport>,
    spans: &[(Phase, Duration, Duration)],
) -> ProbeReport {
    let mut phases: Vec<PhaseReport> = spans
        .iter()
        .map(|(p, _, _)| phase_report(p.as_str(), r.phase(*p)))
        .collect();
    phases.push(phase_report("run", &r.total()));
    let connection = match &c.target {
        Target::Http(h) => Some(match h.connection {
            crate::experiment::spec::ConnectionMode::KeepAlive => "keepAlive".to_owned(),
            crate::experiment::spec::ConnectionMode::New => "new".to_owned(),
        }),
        Target::Tcp(_) | Target::Write(_) => None,
    };
    ProbeReport {
        name: c.name.clone(),
        kind: c.target.kind().into(),
        target: c.target.describe(),
        rate_per_second: rate(c),
        connection,
        max_in_flight: c.max_in_flight as u64,
        prober_limited: prober_limited(&r.lag, rate(c)),
        scheduling_lag: latency_summary(&r.lag),
        phases,
        rto,
        timeline: r
            .buckets
            .iter()
            .map(|b| BucketReport {
                start_ms: ms(b.start),
                scheduled: b.counts.scheduled(),
                ok: b.counts.ok(),
                errors: errors(&b.counts),
                p99_ms: (b.p99_us > 0).then(|| ms_of_us(b.p99_us)),
                max_ms: (b.max_us > 0).then(|| ms_of_us(b.max_us)),
            })
            .collect(),
        write,
    }
}
