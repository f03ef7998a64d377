//! What a failed supervised service does to the verdicts: a service the supervisor gave
//! up on (crash loop, or it could not be restarted) fails the steady state of the phase
//! it failed in, whatever the probes saw (they may have been answered by another server
//! on the same port), and gets a `service/NAME` verdict of its own, so the run fails
//! even without a steady-state hypothesis.

use std::time::Duration;

use super::{Verdict, VerdictStatus};
use crate::record::ServiceRecord;
use crate::text::ms;

/// Apply each failed service to `verdicts`: the steady state before the faults (it
/// failed before they started, or none did) or after them fails with its reason.
pub fn apply(
    verdicts: &mut Vec<Verdict>,
    services: &[ServiceRecord],
    faults_start: Option<Duration>,
) {
    for s in services {
        let Some(failed) = &s.failed else { continue };
        let when = match faults_start {
            Some(at) if failed.at_ms >= ms(at) => "after",
            _ => "before",
        };
        let prefix = format!("steadyState/{when}/");
        for v in verdicts.iter_mut().filter(|v| v.id.starts_with(&prefix)) {
            if v.status == VerdictStatus::Fail && v.measured.as_deref() == Some(&failed.reason) {
                continue;
            }
            let probes_saw = v.measured.take();
            v.status = VerdictStatus::Fail;
            v.measured = Some(failed.reason.clone());
            v.note = probes_saw.map(|m| format!("the probe alone measured {m}"));
        }
        verdicts.push(Verdict {
            id: format!("service/{}", s.name),
            kind: "service".into(),
            probe: None,
            during: None,
            status: VerdictStatus::Fail,
            measured: Some(failed.reason.clone()),
            required: "keeps running (restarted when it exits, without crash-looping)".into(),
            note: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::ServiceFailure;

    fn verdict(id: &str, status: VerdictStatus, measured: &str) -> Verdict {
        Verdict {
            id: id.into(),
            kind: "steadyState".into(),
            probe: Some("p".into()),
            during: None,
            status,
            measured: Some(measured.into()),
            required: ">= 99%".into(),
            note: None,
        }
    }

    fn service(failed_at_ms: Option<f64>) -> ServiceRecord {
        ServiceRecord {
            name: "web".into(),
            command: vec!["web".into()],
            starts: Vec::new(),
            exits: Vec::new(),
            restarts: 5,
            failed: failed_at_ms.map(|at_ms| ServiceFailure {
                at_ms,
                reason: "service `web` is crash-looping".into(),
            }),
            stdout: Vec::new(),
            stderr: Vec::new(),
            log: None,
        }
    }

    fn judged(failed_at_ms: Option<f64>, faults_start: Option<u64>) -> Vec<Verdict> {
        let mut vs = vec![
            verdict(
                "steadyState/before/availability/p",
                VerdictStatus::Pass,
                "100%",
            ),
            verdict(
                "steadyState/after/availability/p",
                VerdictStatus::Pass,
                "100%",
            ),
        ];
        apply(
            &mut vs,
            &[service(failed_at_ms)],
            faults_start.map(Duration::from_millis),
        );
        vs
    }

    #[test]
    fn a_failure_fails_the_steady_state_of_its_phase_and_its_own_verdict() {
        let vs = judged(Some(5000.0), Some(2000));
        assert_eq!(vs[0].status, VerdictStatus::Pass);
        assert_eq!(vs[1].status, VerdictStatus::Fail);
        assert_eq!(
            vs[1].measured.as_deref(),
            Some("service `web` is crash-looping")
        );
        assert_eq!(vs[1].note.as_deref(), Some("the probe alone measured 100%"));
        assert_eq!(vs[2].id, "service/web");
        assert_eq!(vs[2].status, VerdictStatus::Fail);
        // Before the faults, or with none: the steady state before.
        for vs in [judged(Some(1000.0), Some(2000)), judged(Some(1000.0), None)] {
            assert_eq!(vs[0].status, VerdictStatus::Fail);
            assert_eq!(vs[1].status, VerdictStatus::Pass);
        }
        // A service that did not fail changes nothing.
        let vs = judged(None, Some(2000));
        assert_eq!(vs.len(), 2);
        assert!(vs.iter().all(|v| v.status == VerdictStatus::Pass));
    }
}
