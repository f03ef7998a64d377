//! The certificate objective: the leaf an https:// probe is served must stay valid for
//! at least `minValidity` from the run. Judged on the earliest notAfter the probe saw, so
//! a certificate swapped mid-run for a shorter-lived one still fails.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Verdict, VerdictStatus};
use crate::experiment::model::ProbeTarget;
use crate::experiment::spec::CertificateObjective;
use crate::experiment::Experiment;
use crate::probe::ProbeRecording;

/// The verdict of one probe, unjudged: its id and what it requires.
pub(super) fn planned(probe: &str, o: &CertificateObjective) -> Verdict {
    Verdict {
        id: format!("certificate/{probe}"),
        kind: "certificate".into(),
        probe: Some(probe.into()),
        during: Some("run".into()),
        status: VerdictStatus::NotMeasured,
        measured: None,
        required: format!(">= {} of validity left", o.min_validity),
        note: None,
    }
}

/// The https:// and gRPC TLS probes the objective applies to, in the file's order.
pub(super) fn probes(exp: &Experiment) -> Vec<(&str, &CertificateObjective)> {
    let Some(o) = &exp.file.spec.objectives.certificate else {
        return Vec::new();
    };
    exp.probes
        .iter()
        .filter(|p| match &p.target {
            ProbeTarget::Http(h) => h.tls.is_some(),
            ProbeTarget::Grpc(g) => g.tls.is_some(),
            ProbeTarget::Tcp(_) | ProbeTarget::Write(_) => false,
        })
        .filter(|p| super::applies(&o.probe, &p.name))
        .map(|p| (p.name.as_str(), o))
        .collect()
}

/// Judge every certificate verdict; `at` is the wall-clock time the run ended.
pub(super) fn judge(
    exp: &Experiment,
    recordings: &[ProbeRecording],
    at: SystemTime,
) -> Vec<Verdict> {
    let now = at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    probes(exp)
        .into_iter()
        .map(|(name, o)| {
            let mut v = planned(name, o);
            let setup = recordings.iter().find(|r| r.name == name).map(|r| &r.setup);
            match setup.and_then(|s| s.earliest_not_after) {
                None => {
                    v.note = Some("no TLS handshake completed, so no certificate was seen".into());
                }
                Some(not_after) => {
                    let left = not_after - now;
                    let until = crate::text::rfc3339_unix(not_after);
                    v.measured = Some(if left <= 0 {
                        format!("expired ({until})")
                    } else {
                        format!("{} left (until {until})", days(left))
                    });
                    let enough = left >= 0 && Duration::from_secs(left as u64) >= o.min_validity.0;
                    v.status = if enough {
                        VerdictStatus::Pass
                    } else {
                        VerdictStatus::Fail
                    };
                }
            }
            v
        })
        .collect()
}

/// `10d 4h`, `3h`: time left, to the hour.
fn days(secs: i64) -> String {
    let (d, h) = (secs / 86_400, (secs % 86_400) / 3_600);
    match (d, h) {
        (0, h) => format!("{h}h"),
        (d, 0) => format!("{d}d"),
        (d, h) => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::days;

    #[test]
    fn time_left_reads_in_days_and_hours() {
        assert_eq!(days(10 * 86_400 + 4 * 3_600 + 59), "10d 4h");
        assert_eq!(days(3 * 3_600), "3h");
        assert_eq!(days(90 * 86_400), "90d");
    }
}
