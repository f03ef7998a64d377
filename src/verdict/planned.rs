//! The verdicts a run of an experiment will give, before it runs (`--dry-run`): built by
//! the same functions that judge, from nothing measured, so ids and requirements are the
//! ones the report will hold.

use std::time::Duration;

use super::{
    availability_verdict, latency_verdicts, rpo, rto_verdict, steady_state_verdicts, During,
    Verdict, VerdictStatus,
};
use crate::experiment::model::{FaultAction, ProbeTarget};
use crate::experiment::Experiment;
use crate::probe::PhaseStats;

/// Every verdict a run will give, unjudged (`fault/NAME` verdicts, which only a failed
/// fault gives, are not among them).
pub fn planned(exp: &Experiment) -> Vec<Verdict> {
    let spec = &exp.file.spec;
    let none = PhaseStats::empty();
    let mut out = Vec::new();
    if let Some(ss) = &spec.steady_state {
        for (when, during) in [("before", During::Baseline), ("after", During::Steady)] {
            for p in &exp.probes {
                out.extend(steady_state_verdicts(ss, when, &p.name, during, &none));
            }
        }
    }
    let obj = &spec.objectives;
    for p in &exp.probes {
        let name = p.name.as_str();
        if let Some(a) = obj
            .availability
            .as_ref()
            .filter(|a| super::applies(&a.probe, name))
        {
            out.push(availability_verdict(
                format!("availability/{name}/{}", super::during_str(a.during)),
                "availability",
                name,
                a.during,
                &none,
                a.min.ratio(),
            ));
        }
        if let Some(l) = obj
            .latency
            .as_ref()
            .filter(|l| super::applies(&l.probe, name))
        {
            out.extend(latency_verdicts(
                "latency",
                "latency",
                name,
                l.during,
                &none,
                &l.bounds(),
            ));
        }
        if let Some(r) = obj.rto.as_ref().filter(|r| super::applies(&r.probe, name)) {
            out.push(rto_verdict(name, r.max.0, None, Duration::ZERO));
        }
        let writes = matches!(p.target, ProbeTarget::Write(_));
        if let Some(r) = obj
            .rpo
            .as_ref()
            .filter(|r| writes && super::applies(&r.probe, name))
        {
            out.extend(rpo::planned(name, r));
        }
    }
    if let Some(o) = &obj.pod_recovery {
        for f in &exp.faults {
            let deletes = matches!(f.action, FaultAction::PodDelete(_));
            if deletes && o.fault.as_deref().is_none_or(|n| n == f.name) {
                out.push(super::pod_recovery_verdict(&f.name, o.max.0));
            }
        }
    }
    for (name, o) in super::certificate::probes(exp) {
        out.push(super::certificate::planned(name, o));
    }
    out.extend(super::monitor::verdicts(exp, None, Default::default()));
    // Nothing is measured yet: no status, no measurement, no note.
    for v in &mut out {
        v.status = VerdictStatus::NotMeasured;
        v.measured = None;
        v.note = None;
    }
    out
}
