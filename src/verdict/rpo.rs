//! The `rpo` objective of write probes: the data-loss window must stay within `max`
//! (and the lost count within `maxLost`, duplicates and reordering within their bounds
//! when set). A read-back that did not complete makes it "not measured", with why.

use std::time::Duration;

use super::verdict;
use super::{Verdict, VerdictStatus};
use crate::experiment::spec::RpoObjective;
use crate::probe::write::WriteReport;
use crate::text::duration;

fn pass_if(ok: bool) -> VerdictStatus {
    if ok {
        VerdictStatus::Pass
    } else {
        VerdictStatus::Fail
    }
}

/// `rpo/<probe>`, then `rpo/<probe>/duplicates` and `rpo/<probe>/outOfOrder` when bounded.
pub(super) fn verdicts(probe: &str, o: &RpoObjective, w: &WriteReport) -> Vec<Verdict> {
    let mut v = header(probe, o);
    let mut out = Vec::new();
    let Some(lost) = w.lost else {
        v.note = Some(
            w.read_back
                .error
                .clone()
                .unwrap_or_else(|| "the read-back did not complete".into()),
        );
        out.push(v);
        for (id, bound) in [
            ("duplicates", o.max_duplicates),
            ("outOfOrder", o.max_out_of_order),
        ] {
            if let Some(n) = bound {
                let mut b = bound_verdict(probe, id, n);
                b.note = v_note(&out);
                out.push(b);
            }
        }
        return out;
    };
    let window = w.loss_window.as_ref().map_or(0.0, |l| l.duration_ms);
    let window_d = Duration::from_secs_f64(window / 1000.0);
    let mut measured = format!(
        "loss window {} ({lost} of {} acknowledged writes lost",
        duration(window_d),
        w.acknowledged
    );
    if let (Some(d), Some(r)) = (w.duplicated, w.out_of_order) {
        measured.push_str(&format!(", {d} duplicated, {r} out of order"));
    }
    measured.push(')');
    v.measured = Some(measured);
    let max_ms = o.max.0.as_secs_f64() * 1000.0;
    v.status = pass_if(window <= max_ms + 1e-6 && o.max_lost.is_none_or(|n| lost <= n));
    out.push(v);
    for (id, bound, value) in [
        ("duplicates", o.max_duplicates, w.duplicated),
        ("outOfOrder", o.max_out_of_order, w.out_of_order),
    ] {
        let Some(n) = bound else { continue };
        let mut b = bound_verdict(probe, id, n);
        match value {
            Some(m) => {
                b.measured = Some(m.to_string());
                b.status = pass_if(m <= n);
            }
            None => {
                b.note = Some(format!(
                    "`{}` reads keys one by one, which cannot show duplicates or order; use a list or stream",
                    w.mode
                ));
            }
        }
        out.push(b);
    }
    out
}

fn v_note(out: &[Verdict]) -> Option<String> {
    out.first().and_then(|v| v.note.clone())
}

/// The verdict on one count bound of a write probe (`duplicates`, `outOfOrder`), not yet
/// judged.
/// `rpo/<probe>` before it is judged.
fn header(probe: &str, o: &RpoObjective) -> Verdict {
    let mut required = format!("loss window <= {}", duration(o.max.0));
    if let Some(n) = o.max_lost {
        required.push_str(&format!(", lost <= {n}"));
    }
    let mut v = verdict(format!("rpo/{probe}"), "rpo", probe, "run", required);
    v.during = None;
    v
}

/// The verdicts an RPO objective will give `probe`, before anything is measured.
pub(super) fn planned(probe: &str, o: &RpoObjective) -> Vec<Verdict> {
    let mut out = vec![header(probe, o)];
    for (id, bound) in [
        ("duplicates", o.max_duplicates),
        ("outOfOrder", o.max_out_of_order),
    ] {
        if let Some(n) = bound {
            out.push(bound_verdict(probe, id, n));
        }
    }
    out
}

fn bound_verdict(probe: &str, id: &str, n: u64) -> Verdict {
    let mut b = verdict(
        format!("rpo/{probe}/{id}"),
        "rpo",
        probe,
        "run",
        format!("<= {n}"),
    );
    b.during = None;
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::write::{LossWindowReport, ReadBackReport};
    use shakeout_api::Dur;

    fn report(lost: Option<u64>, window_ms: Option<f64>) -> WriteReport {
        WriteReport {
            run_id: "so-1".into(),
            backend: "redis".into(),
            mode: "list".into(),
            scheduled: 100,
            acknowledged: 90,
            lost,
            unacknowledged_present: lost.map(|_| 0),
            duplicated: lost.map(|_| 2),
            out_of_order: lost.map(|_| 0),
            loss_window: window_ms.map(|d| LossWindowReport {
                start_ms: 100.0,
                end_ms: 100.0 + d - 20.0,
                duration_ms: d,
            }),
            read_back: ReadBackReport {
                duration_ms: 5.0,
                reads: 1,
                error: lost
                    .is_none()
                    .then(|| "read-back timed out after 1s".into()),
            },
            keys_kept: false,
            cleanup_error: None,
        }
    }

    fn objective(max_ms: u64) -> RpoObjective {
        RpoObjective {
            max: Dur(Duration::from_millis(max_ms)),
            probe: None,
            max_lost: None,
            max_duplicates: None,
            max_out_of_order: None,
        }
    }

    #[test]
    fn window_within_max_passes_and_beyond_fails() {
        let v = &verdicts("w", &objective(0), &report(Some(0), None))[0];
        assert_eq!((v.id.as_str(), v.status), ("rpo/w", VerdictStatus::Pass));
        let v = &verdicts("w", &objective(0), &report(Some(1), Some(20.0)))[0];
        assert_eq!(v.status, VerdictStatus::Fail);
        assert!(
            v.measured.as_deref().unwrap_or("").contains("1 of 90"),
            "{v:?}"
        );
        let v = &verdicts("w", &objective(500), &report(Some(20), Some(400.0)))[0];
        assert_eq!(v.status, VerdictStatus::Pass);
        let mut o = objective(500);
        o.max_lost = Some(10);
        assert_eq!(
            verdicts("w", &o, &report(Some(20), Some(400.0)))[0].status,
            VerdictStatus::Fail
        );
    }

    #[test]
    fn failed_read_back_is_not_measured_with_the_reason() {
        let mut o = objective(0);
        o.max_duplicates = Some(0);
        let vs = verdicts("w", &o, &report(None, None));
        assert_eq!(vs.len(), 2);
        for v in &vs {
            assert_eq!(v.status, VerdictStatus::NotMeasured);
            assert!(
                v.note.as_deref().unwrap_or("").contains("timed out"),
                "{v:?}"
            );
        }
    }

    #[test]
    fn duplicate_and_order_bounds_when_set() {
        let mut o = objective(1000);
        o.max_duplicates = Some(1);
        o.max_out_of_order = Some(0);
        let vs = verdicts("w", &o, &report(Some(0), None));
        assert_eq!(vs[1].id, "rpo/w/duplicates");
        assert_eq!(vs[1].status, VerdictStatus::Fail);
        assert_eq!(vs[2].id, "rpo/w/outOfOrder");
        assert_eq!(vs[2].status, VerdictStatus::Pass);
    }
}
