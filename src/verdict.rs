//! Objectives checked against recordings (DESIGN.md §4-5): availability, latency
//! percentiles, steady state before and after, and the measured RTO. Each check is a
//! [`Verdict`]: pass, fail (measured vs required) or not measured (and why).

use std::time::Duration;

use crate::experiment::spec::{During, LatencyBounds};
use crate::experiment::Experiment;
use crate::probe::write::WriteReport;
use crate::probe::{Phase, PhaseStats, ProbeRecording};
use crate::record::{ActionRecord, FaultRecord, FaultStatus, PodRecovery};
use crate::text::duration;

mod certificate;
pub mod judge;
pub mod live;
mod model;
pub mod monitor;
mod planned;
mod rpo;
mod rto;
mod services;

pub use model::{RtoReport, RunStatus, Verdict, VerdictStatus};
pub use planned::planned;
pub use rto::{measure_rto, recovered, recovery_level, stable_for, RtoWindow, DEFAULT_STABLE_FOR};

/// One probe's results, as the verdicts see them.
pub struct ProbeResult<'a> {
    pub recording: &'a ProbeRecording,
    pub rto: Option<&'a RtoReport>,
    /// Write probes: what the read-back found.
    pub write: Option<&'a WriteReport>,
    /// Length of each phase that happened, indexed by `Phase as usize` (zero when it did not).
    pub phase_lengths: [Duration; 4],
    /// How far the RTO measurement could look (end of recovery, or of the run).
    pub observed_until: Duration,
}

fn during_str(d: During) -> &'static str {
    match d {
        During::Baseline => "baseline",
        During::Faults => "faults",
        During::Recovery => "recovery",
        During::Steady => "steady",
        During::Run => "run",
    }
}

fn stats_for(p: &ProbeResult<'_>, d: During) -> PhaseStats {
    match d {
        During::Baseline => p.recording.phase(Phase::Baseline).clone(),
        During::Faults => p.recording.phase(Phase::Faults).clone(),
        During::Recovery => p.recording.phase(Phase::Recovery).clone(),
        During::Steady => p.recording.phase(Phase::Steady).clone(),
        During::Run => p.recording.total(),
    }
}

fn verdict(id: String, kind: &str, probe: &str, during: &str, required: String) -> Verdict {
    Verdict {
        id,
        kind: kind.into(),
        probe: Some(probe.into()),
        during: Some(during.into()),
        status: VerdictStatus::NotMeasured,
        measured: None,
        required,
        note: None,
    }
}

fn availability_verdict(
    id: String,
    kind: &str,
    probe: &str,
    d: During,
    stats: &PhaseStats,
    min: f64,
) -> Verdict {
    let mut v = verdict(
        id,
        kind,
        probe,
        during_str(d),
        format!(">= {}%", min * 100.0),
    );
    match stats.counts.availability() {
        None => v.note = Some(format!("no sends were due during {}", during_str(d))),
        Some(a) => {
            v.measured = Some(format!(
                "{:.3}% ({}/{})",
                a * 100.0,
                stats.counts.ok(),
                stats.counts.scheduled()
            ));
            v.status = if a >= min {
                VerdictStatus::Pass
            } else {
                VerdictStatus::Fail
            };
        }
    }
    v
}

fn latency_verdicts(
    prefix: &str,
    kind: &str,
    probe: &str,
    d: During,
    stats: &PhaseStats,
    bounds: &LatencyBounds,
) -> Vec<Verdict> {
    bounds
        .bounds()
        .into_iter()
        .map(|(label, q, max)| {
            let id = format!("{prefix}/{label}/{probe}/{}", during_str(d));
            let mut v = verdict(
                id,
                kind,
                probe,
                during_str(d),
                format!("{label} <= {}", duration(max.0)),
            );
            let count = stats.latency.len();
            let needed = min_samples(q);
            if stats.latency.is_empty() {
                v.note = Some(format!("no successful responses during {}", during_str(d)));
            } else if count < needed {
                // With fewer, the percentile is just one of the few responses there were.
                v.note = Some(format!(
                    "only {count} successful responses during {}: a {label} needs at least {needed}",
                    during_str(d)
                ));
            } else {
                let value = Duration::from_micros(stats.latency.value_at_quantile(q));
                v.measured = Some(format!("{label} {}", duration(value)));
                v.status = if value <= max.0 {
                    VerdictStatus::Pass
                } else {
                    VerdictStatus::Fail
                };
            }
            v
        })
        .collect()
}

/// The steady-state hypothesis for one probe over one phase (`when`: `before` or
/// `after`): the verdicts the report shows, and what the runner checks before faults.
pub(crate) fn steady_state_verdicts(
    ss: &crate::experiment::spec::SteadyStateSpec,
    when: &str,
    name: &str,
    during: During,
    stats: &PhaseStats,
) -> Vec<Verdict> {
    let mut vs = Vec::new();
    if let Some(a) = &ss.availability {
        vs.push(availability_verdict(
            format!("steadyState/{when}/availability/{name}"),
            "steadyState",
            name,
            during,
            stats,
            a.min.ratio(),
        ));
    }
    if let Some(l) = &ss.latency {
        vs.extend(latency_verdicts(
            &format!("steadyState/{when}/latency"),
            "steadyState",
            name,
            during,
            stats,
            l,
        ));
    }
    vs
}

/// The fewest samples for which quantile `q` is more than the largest one: 1 / (1 - q)
/// (p50: 2, p90: 10, p99: 100, p99.9: 1000).
pub fn min_samples(q: f64) -> u64 {
    if q >= 1.0 {
        return u64::MAX;
    }
    (1.0 / (1.0 - q)).round().max(1.0) as u64
}

fn applies(filter: &Option<String>, probe: &str) -> bool {
    filter.as_deref().is_none_or(|f| f == probe)
}

/// Every verdict of a finished run, in a stable order.
pub fn evaluate(
    exp: &Experiment,
    probes: &[ProbeResult<'_>],
    faults: &[FaultRecord],
) -> Vec<Verdict> {
    let spec = &exp.file.spec;
    let mut out = Vec::new();
    if let Some(ss) = &spec.steady_state {
        for (when, phase, during) in [
            ("before", Phase::Baseline, During::Baseline),
            ("after", Phase::Steady, During::Steady),
        ] {
            for p in probes {
                let name = p.recording.name.as_str();
                let stats = p.recording.phase(phase);
                let mut vs = steady_state_verdicts(ss, when, name, during, stats);
                let length = p.phase_lengths[phase as usize];
                let short = length + Duration::from_millis(1) < ss.window.0;
                if when == "after" && short {
                    for v in &mut vs {
                        v.status = VerdictStatus::NotMeasured;
                        v.note = Some(format!(
                            "the run ended {} into the {} steady-state window after recovery",
                            duration(length),
                            ss.window
                        ));
                    }
                }
                out.extend(vs);
            }
        }
    }
    let obj = &spec.objectives;
    for p in probes {
        let name = p.recording.name.as_str();
        if let Some(a) = obj
            .availability
            .as_ref()
            .filter(|a| applies(&a.probe, name))
        {
            let stats = stats_for(p, a.during);
            out.push(availability_verdict(
                format!("availability/{name}/{}", during_str(a.during)),
                "availability",
                name,
                a.during,
                &stats,
                a.min.ratio(),
            ));
        }
        if let Some(l) = obj.latency.as_ref().filter(|l| applies(&l.probe, name)) {
            let stats = stats_for(p, l.during);
            out.extend(latency_verdicts(
                "latency",
                "latency",
                name,
                l.during,
                &stats,
                &l.bounds(),
            ));
        }
        if let Some(r) = obj.rto.as_ref().filter(|r| applies(&r.probe, name)) {
            out.push(rto_verdict(name, r.max.0, p.rto, p.observed_until));
        }
        if let Some(r) = obj.rpo.as_ref().filter(|r| applies(&r.probe, name)) {
            if let Some(w) = p.write {
                out.extend(rpo::verdicts(name, r, w));
            }
        }
    }
    if let Some(o) = &obj.pod_recovery {
        out.extend(pod_recovery_verdicts(o, faults));
    }
    for f in faults {
        if f.status == FaultStatus::Skipped {
            out.push(Verdict {
                id: format!("fault/{}", f.name),
                kind: "fault".into(),
                probe: None,
                during: None,
                status: VerdictStatus::NotMeasured,
                measured: None,
                required: "the fault runs".into(),
                note: Some(format!(
                    "skipped: {}",
                    f.reason.as_deref().unwrap_or("no reason given")
                )),
            });
        }
        if matches!(f.status, FaultStatus::Failed | FaultStatus::RevertFailed) {
            let action = if f.status == FaultStatus::Failed {
                f.apply.as_ref()
            } else {
                f.revert.as_ref()
            };
            let what = action
                .map(describe_action)
                .or_else(|| fault_error(f))
                .unwrap_or_else(|| "did not run".into());
            out.push(Verdict {
                id: format!("fault/{}", f.name),
                kind: "fault".into(),
                probe: None,
                during: None,
                status: VerdictStatus::Fail,
                measured: Some(what),
                required: required(f).into(),
                note: None,
            });
        }
    }
    out
}

/// What a fault's verdict requires, in the words of its kind: a command for `exec`, the
/// agent for `network` and `process`, the pods themselves for `pod`.
fn required(f: &FaultRecord) -> &'static str {
    let apply = f.status == FaultStatus::Failed;
    match (f.kind.as_str(), apply) {
        ("pod", _) if f.pods.as_ref().is_some_and(|p| p.evict) => "the pods are evicted",
        ("pod", _) => "the pods are deleted",
        ("network" | "process", true) => "the agent applies the fault",
        ("network" | "process", false) => "the agent confirms the revert",
        (_, true) => "apply command succeeds",
        (_, false) => "revert command succeeds",
    }
}

/// The first error a fault's agents or pod actions reported.
fn fault_error(f: &FaultRecord) -> Option<String> {
    f.error.clone().or_else(|| {
        f.agent
            .iter()
            .chain(&f.agents)
            .find_map(|a| a.error.clone())
            .or_else(|| f.pods.as_ref().and_then(|p| p.errors.first().cloned()))
    })
}

/// One verdict per pod deletion the objective covers: its workloads had Ready
/// replacements within `max`.
fn pod_recovery_verdicts(
    o: &crate::experiment::spec::PodRecoveryObjective,
    faults: &[FaultRecord],
) -> Vec<Verdict> {
    let max = o.max.0;
    faults
        .iter()
        .filter(|f| f.kind == "pod")
        .filter(|f| o.fault.as_deref().is_none_or(|n| n == f.name))
        .map(|f| {
            let p = f.pods.as_ref();
            let resolution = p
                .and_then(|p| p.recovery_resolution_ms)
                .map(|r| format!(" (resolution {r:.0}ms)"))
                .unwrap_or_default();
            let (status, measured, note) = match (p.and_then(|p| p.recovery), p) {
                (Some(PodRecovery::Recovered), Some(p)) => {
                    let d = Duration::from_secs_f64(p.recovery_ms.unwrap_or(0.0) / 1000.0);
                    let status = if d <= max {
                        VerdictStatus::Pass
                    } else {
                        VerdictStatus::Fail
                    };
                    (status, Some(format!("{}{resolution}", duration(d))), None)
                }
                (Some(PodRecovery::NotRecovered), Some(p)) => (
                    VerdictStatus::Fail,
                    Some("not recovered".into()),
                    p.errors.last().cloned(),
                ),
                (Some(PodRecovery::NoOwner), _) => (
                    VerdictStatus::NotMeasured,
                    None,
                    Some("the deleted pods had no owner: nothing replaces them".into()),
                ),
                _ if f.status == FaultStatus::DryRun => (
                    VerdictStatus::NotMeasured,
                    None,
                    Some("dry run: nothing was deleted".into()),
                ),
                _ => (
                    VerdictStatus::NotMeasured,
                    None,
                    Some(format!("no pod was deleted (fault {})", f.status)),
                ),
            };
            Verdict {
                status,
                measured,
                note,
                ..pod_recovery_verdict(&f.name, max)
            }
        })
        .collect()
}

/// `podRecovery/<fault>` before it is judged.
fn pod_recovery_verdict(fault: &str, max: Duration) -> Verdict {
    Verdict {
        id: format!("podRecovery/{fault}"),
        kind: "podRecovery".into(),
        probe: None,
        during: None,
        status: VerdictStatus::NotMeasured,
        measured: None,
        required: format!("<= {}", duration(max)),
        note: None,
    }
}

/// `exit code 1`, `signal 9`, or the error.
pub fn describe_action(a: &ActionRecord) -> String {
    if let Some(e) = &a.error {
        return e.clone();
    }
    match (a.exit_code, a.signal) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("signal {s}"),
        _ => "no exit status".into(),
    }
}

fn rto_verdict(probe: &str, max: Duration, rto: Option<&RtoReport>, until: Duration) -> Verdict {
    let mut v = verdict(
        format!("rto/{probe}"),
        "rto",
        probe,
        "run",
        format!("<= {}", duration(max)),
    );
    v.during = None;
    let Some(r) = rto else {
        v.note = Some("no fault ran, so there was nothing to recover from".into());
        return v;
    };
    let resolution = Duration::from_secs_f64(r.resolution_ms / 1000.0);
    match r.time_to_recover_ms {
        Some(t) => {
            let t = Duration::from_secs_f64(t / 1000.0);
            v.measured = Some(format!("{} (±{})", duration(t), duration(resolution)));
            v.status = if t <= max {
                VerdictStatus::Pass
            } else {
                VerdictStatus::Fail
            };
            v.note = r.note.clone();
        }
        None => {
            v.note = r.note.clone();
            // Still failing when observation ended: if that already exceeds the bound,
            // the objective failed whatever happened later.
            if let Some(first) = r.first_failure_ms {
                let outage = until.saturating_sub(Duration::from_secs_f64(first / 1000.0));
                if outage > max {
                    v.measured = Some(format!("> {} (not recovered)", duration(outage)));
                    v.status = VerdictStatus::Fail;
                }
            }
        }
    }
    v
}

#[cfg(test)]
mod tests;
