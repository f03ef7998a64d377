//! Verdicts on what the monitoring system showed: each PromQL objective over its phase
//! (`promql/NAME/DURING`), and each alert (`alert/NAME/fires`, `.../resolves`,
//! `.../noise`) measured on the run's timeline, with the resolution the polling and the
//! rule's evaluation allow.

use std::time::Duration;

use super::{during_str, Verdict, VerdictStatus};
use crate::experiment::spec::{AlertSpec, PromqlObjective};
use crate::experiment::Experiment;
use crate::monitor::{AlertRecord, MonitorRecord, PromqlRecord};
use crate::text::duration;

/// Where the alert verdicts measure from, on the run's timeline.
#[derive(Debug, Clone, Copy, Default)]
pub struct AlertWindow {
    /// The first fault's start (`None`: no fault ran).
    pub faults_start: Option<Duration>,
    /// When the service was back: the latest probe's measured recovery, else the
    /// steady state restored, else the faults' end.
    pub recovered: Option<Duration>,
    /// What `recovered` is, in words.
    pub recovered_by: &'static str,
    /// The end of the run: a window it cut short is not a failure.
    pub end: Duration,
}

fn base(id: String, kind: &str, during: Option<&str>, required: String) -> Verdict {
    Verdict {
        id,
        kind: kind.into(),
        probe: None,
        during: during.map(Into::into),
        status: VerdictStatus::NotMeasured,
        measured: None,
        required,
        note: None,
    }
}

/// The verdict of one PromQL objective (`rec` `None`: not run yet).
pub fn promql_verdict(o: &PromqlObjective, rec: Option<&PromqlRecord>) -> Verdict {
    let during = during_str(o.during);
    let limit = o.failure_limit.unwrap_or(0);
    let mut v = base(
        format!("promql/{}/{during}", o.name),
        "promql",
        Some(during),
        format!(
            "`{}` {} {} at every evaluation{}",
            o.query,
            o.comparator.as_str(),
            o.threshold,
            if limit > 0 {
                format!(" but {limit}")
            } else {
                String::new()
            }
        ),
    );
    let Some(r) = rec else {
        v.note = Some(format!(
            "no evaluation during {during}: the run did not get there"
        ));
        return v;
    };
    let mut notes = Vec::new();
    if r.errors > 0 {
        notes.push(format!(
            "{} evaluations failed: {}",
            r.errors,
            r.first_error.as_deref().unwrap_or("?")
        ));
    }
    if r.no_data > 0 {
        notes.push(format!("{} evaluations returned no series", r.no_data));
    }
    if let Some(range) = &r.range {
        match &range.error {
            Some(e) => notes.push(format!("range query: {e}")),
            None => notes.push(format!(
                "range query over {during}: {} of {} points broke it",
                range.breaking, range.points
            )),
        }
    }
    if r.evaluations == 0 {
        let why = if r.errors == 0 && r.no_data == 0 {
            format!("no evaluation fell in {during}")
        } else if r.errors == 0 {
            "the query returned no series: nothing to compare (check the metric exists and its labels)".into()
        } else {
            "no evaluation gave a value".into()
        };
        notes.insert(0, why);
        v.note = Some(notes.join("; "));
        return v;
    }
    let extremes = format!(
        "min {}, max {}, last {}",
        num(r.min),
        num(r.max),
        num(r.last)
    );
    v.measured = Some(format!(
        "{} of {} evaluations broke it ({extremes})",
        r.failures, r.evaluations
    ));
    if let Some(first) = r.failed.first() {
        notes.push(format!(
            "first at {}: {} = {}",
            duration(Duration::from_secs_f64(first.at_ms.max(0.0) / 1000.0)),
            first.series,
            first.value
        ));
    }
    v.status = if r.failures > limit {
        VerdictStatus::Fail
    } else {
        VerdictStatus::Pass
    };
    if !notes.is_empty() {
        v.note = Some(notes.join("; "));
    }
    v
}

fn num(v: Option<f64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

/// `±poll + evaluation`, what the times of an alert are exact to.
fn resolution(r: &AlertRecord) -> String {
    let poll = Duration::from_secs_f64(r.poll_ms / 1000.0);
    match r.evaluation_interval_ms {
        Some(e) => {
            let eval = Duration::from_secs_f64(e / 1000.0);
            format!(
                "resolution {}: poll every {} + rule evaluation every {} ({})",
                duration(poll + eval),
                duration(poll),
                duration(eval),
                r.evaluation_interval_note.as_deref().unwrap_or("?")
            )
        }
        None => format!(
            "resolution {} (the poll) plus the rule's evaluation interval, {}",
            duration(poll),
            r.evaluation_interval_note
                .as_deref()
                .unwrap_or("unknown: never asked")
        ),
    }
}

fn at(ms: f64) -> Duration {
    Duration::from_secs_f64(ms.max(0.0) / 1000.0)
}

/// The three verdicts of one alert (`rec` `None`: not run yet).
pub fn alert_verdicts(a: &AlertSpec, rec: Option<&AlertRecord>, w: AlertWindow) -> Vec<Verdict> {
    let name = &a.name;
    let mut fires = base(
        format!("alert/{name}/fires"),
        "alert",
        None,
        format!("firing within {} of the first fault", a.fires_within),
    );
    let mut resolves = base(
        format!("alert/{name}/resolves"),
        "alert",
        None,
        match a.resolves_within {
            Some(d) => format!("gone within {d} of recovery"),
            None => "gone before the run ends".into(),
        },
    );
    let mut noise = base(
        format!("alert/{name}/noise"),
        "alert",
        Some("baseline"),
        "not firing before the first fault".into(),
    );
    let Some(r) = rec else {
        return vec![fires, resolves, noise];
    };
    let res_text = resolution(r);
    if r.polls == r.errors {
        let why = format!(
            "no poll of {} was answered: {}",
            r.source,
            r.first_error.as_deref().unwrap_or("no poll was made")
        );
        for v in [&mut fires, &mut resolves, &mut noise] {
            v.note = Some(why.clone());
        }
        return vec![fires, resolves, noise];
    }
    let start = w.faults_start.map(|d| d.as_secs_f64() * 1000.0);
    // Noise: firing at any poll before the first fault (the whole run without faults).
    let early = r
        .changes
        .iter()
        .find(|c| c.firing && start.is_none_or(|s| c.at_ms < s));
    noise.status = match early {
        Some(c) => {
            noise.measured = Some(format!(
                "firing at {}{}",
                duration(at(c.at_ms)),
                start
                    .map(|s| format!(", before the first fault at {}", duration(at(s))))
                    .unwrap_or_else(|| ", and no fault ran".into())
            ));
            VerdictStatus::Fail
        }
        None => {
            noise.measured = Some(match start {
                Some(s) => format!("quiet for the {} before the first fault", duration(at(s))),
                None => "quiet for the whole run (no fault ran)".into(),
            });
            VerdictStatus::Pass
        }
    };
    let Some(start) = start else {
        let why = "no fault ran, so there was nothing to alert on".to_string();
        fires.note = Some(why.clone());
        resolves.note = Some(why);
        return vec![fires, resolves, noise];
    };
    // Fires: the first poll at or after the first fault that saw it (already firing at
    // the fault's start counts from then: the noise verdict says so).
    let firing_at_start = r
        .changes
        .iter()
        .rev()
        .find(|c| c.at_ms < start)
        .is_some_and(|c| c.firing);
    let first = if firing_at_start {
        Some(start)
    } else {
        r.changes
            .iter()
            .find(|c| c.firing && c.at_ms >= start)
            .map(|c| c.at_ms)
    };
    match first {
        Some(f) => {
            let t = at(f - start);
            fires.measured = Some(format!("{} after the first fault", duration(t)));
            fires.status = if t <= a.fires_within.0 {
                VerdictStatus::Pass
            } else {
                VerdictStatus::Fail
            };
            fires.note = Some(res_text.clone());
        }
        None if w.end < at(start) + a.fires_within.0 => {
            fires.note = Some(format!(
                "not fired when the run ended {} after the first fault, before the {} allowed; {res_text}",
                duration(w.end.saturating_sub(at(start))),
                a.fires_within
            ));
            resolves.note = Some("the alert was not seen firing".into());
            return vec![fires, resolves, noise];
        }
        None => {
            fires.status = VerdictStatus::Fail;
            fires.measured = Some(format!("never fired ({} polls of {})", r.polls, r.source));
            fires.note = Some(if r.others.is_empty() {
                format!("no alert fired at all; {res_text}")
            } else {
                format!("seen firing instead: {}; {res_text}", r.others.join(", "))
            });
            resolves.note = Some("the alert never fired".into());
            return vec![fires, resolves, noise];
        }
    }
    // Resolves: gone at the end, measured from recovery to the poll that saw it go.
    if r.firing_at_end {
        resolves.measured = Some("still firing when the run ended".into());
        let cut = match (w.recovered, a.resolves_within) {
            (Some(rec), Some(max)) => w.end < rec + max.0,
            // Never recovered: no resolution could be due.
            (None, _) => true,
            (Some(_), None) => false,
        };
        if cut {
            resolves.note = Some(format!(
                "the run ended before the alert was due to resolve; {res_text}"
            ));
        } else {
            resolves.status = VerdictStatus::Fail;
            resolves.note = Some(res_text);
        }
        return vec![fires, resolves, noise];
    }
    let gone = r.changes.iter().rev().find(|c| !c.firing).map(|c| c.at_ms);
    let (Some(gone), Some(rec_at)) = (gone, w.recovered) else {
        resolves.note = Some(format!(
            "no recovery was observed to measure from; {res_text}"
        ));
        return vec![fires, resolves, noise];
    };
    let rec_ms = rec_at.as_secs_f64() * 1000.0;
    let t = at(gone - rec_ms);
    resolves.measured = Some(if gone >= rec_ms {
        format!(
            "{} after recovery ({} at {})",
            duration(t),
            w.recovered_by,
            duration(rec_at)
        )
    } else {
        format!(
            "gone {} before recovery ({} at {})",
            duration(at(rec_ms - gone)),
            w.recovered_by,
            duration(rec_at)
        )
    });
    resolves.status = match a.resolves_within {
        Some(max) if t > max.0 => VerdictStatus::Fail,
        _ => VerdictStatus::Pass,
    };
    resolves.note = Some(res_text);
    vec![fires, resolves, noise]
}

/// Every monitoring verdict of a run, in the file's order (`m` `None`: planned).
pub fn verdicts(exp: &Experiment, m: Option<&MonitorRecord>, w: AlertWindow) -> Vec<Verdict> {
    let spec = &exp.file.spec;
    let mut out = Vec::new();
    for o in &spec.objectives.promql {
        let rec = m.and_then(|m| {
            m.promql
                .iter()
                .find(|r| r.role == "objective" && r.name == o.name)
        });
        out.push(promql_verdict(o, rec));
    }
    for a in &spec.alerts {
        let rec = m.and_then(|m| {
            m.alerts
                .iter()
                .find(|r| r.name == a.name && r.labels == a.labels)
        });
        out.extend(alert_verdicts(a, rec, w));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::spec::{AlertSource, Comparator, During};
    use crate::monitor::AlertChange;
    use shakeout_api::Dur;

    fn s(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    fn alert() -> AlertSpec {
        AlertSpec {
            name: "Down".into(),
            labels: Default::default(),
            fires_within: Dur(s(5.0)),
            resolves_within: Some(Dur(s(3.0))),
            source: AlertSource::Alertmanager,
            every: None,
        }
    }

    fn seen(changes: &[(f64, bool)], others: &[&str]) -> AlertRecord {
        AlertRecord {
            name: "Down".into(),
            source: "alertmanager".into(),
            poll_ms: 1000.0,
            evaluation_interval_ms: Some(1000.0),
            evaluation_interval_note: Some("rule group `g`".into()),
            polls: 30,
            changes: changes
                .iter()
                .map(|&(at, firing)| AlertChange {
                    at_ms: at * 1000.0,
                    unix_ms: 0.0,
                    firing,
                })
                .collect(),
            firing_at_end: changes.last().is_some_and(|c| c.1),
            others: others.iter().map(|o| o.to_string()).collect(),
            ..AlertRecord::default()
        }
    }

    fn window() -> AlertWindow {
        AlertWindow {
            faults_start: Some(s(10.0)),
            recovered: Some(s(14.0)),
            recovered_by: "probes recovered",
            end: s(30.0),
        }
    }

    fn by_kind(vs: &[Verdict], kind: &str) -> Verdict {
        vs.iter()
            .find(|v| v.id.ends_with(kind))
            .cloned()
            .unwrap_or_else(|| panic!("no {kind} in {vs:#?}"))
    }

    #[test]
    fn an_alert_that_fires_and_resolves_in_time_passes_with_its_resolution() {
        let vs = alert_verdicts(
            &alert(),
            Some(&seen(&[(13.0, true), (16.0, false)], &[])),
            window(),
        );
        let fires = by_kind(&vs, "fires");
        assert_eq!(fires.status, VerdictStatus::Pass, "{fires:#?}");
        assert_eq!(
            fires.measured.as_deref(),
            Some("3.00s after the first fault")
        );
        assert!(fires
            .note
            .as_deref()
            .unwrap_or("")
            .starts_with("resolution 2.00s: poll every 1.00s + rule evaluation every 1.00s"));
        let resolves = by_kind(&vs, "resolves");
        assert_eq!(resolves.status, VerdictStatus::Pass, "{resolves:#?}");
        assert_eq!(
            resolves.measured.as_deref(),
            Some("2.00s after recovery (probes recovered at 14.0s)")
        );
        assert_eq!(by_kind(&vs, "noise").status, VerdictStatus::Pass);
    }

    #[test]
    fn firing_before_the_first_fault_is_noise_and_slow_is_a_failure() {
        let vs = alert_verdicts(
            &alert(),
            Some(&seen(
                &[(4.0, true), (6.0, false), (17.0, true), (19.0, false)],
                &[],
            )),
            window(),
        );
        let noise = by_kind(&vs, "noise");
        assert_eq!(noise.status, VerdictStatus::Fail);
        assert_eq!(
            noise.measured.as_deref(),
            Some("firing at 4.00s, before the first fault at 10.0s")
        );
        let fires = by_kind(&vs, "fires");
        assert_eq!(
            fires.status,
            VerdictStatus::Fail,
            "7 s is over the 5 s allowed"
        );
        assert_eq!(
            by_kind(&vs, "resolves").status,
            VerdictStatus::Fail,
            "5 s after recovery"
        );
    }

    #[test]
    fn an_alert_that_never_fired_says_what_fired_instead() {
        let vs = alert_verdicts(&alert(), Some(&seen(&[], &["Other", "Third"])), window());
        let fires = by_kind(&vs, "fires");
        assert_eq!(fires.status, VerdictStatus::Fail);
        assert_eq!(
            fires.measured.as_deref(),
            Some("never fired (30 polls of alertmanager)")
        );
        assert!(fires
            .note
            .as_deref()
            .unwrap_or("")
            .starts_with("seen firing instead: Other, Third"));
        let vs = alert_verdicts(&alert(), Some(&seen(&[], &[])), window());
        assert!(by_kind(&vs, "fires")
            .note
            .as_deref()
            .unwrap_or("")
            .starts_with("no alert fired at all"));
        // Still firing when the run ended: never resolved.
        let vs = alert_verdicts(&alert(), Some(&seen(&[(12.0, true)], &[])), window());
        let resolves = by_kind(&vs, "resolves");
        assert_eq!(resolves.status, VerdictStatus::Fail);
        assert_eq!(
            resolves.measured.as_deref(),
            Some("still firing when the run ended")
        );
        // A run that ended inside the windows judges neither.
        let short = AlertWindow {
            end: s(12.0),
            ..window()
        };
        let vs = alert_verdicts(&alert(), Some(&seen(&[], &["Other"])), short);
        assert_eq!(by_kind(&vs, "fires").status, VerdictStatus::NotMeasured);
        let short = AlertWindow {
            end: s(15.0),
            ..window()
        };
        let vs = alert_verdicts(&alert(), Some(&seen(&[(12.0, true)], &[])), short);
        assert_eq!(by_kind(&vs, "fires").status, VerdictStatus::Pass);
        assert_eq!(by_kind(&vs, "resolves").status, VerdictStatus::NotMeasured);
    }

    fn objective() -> PromqlObjective {
        PromqlObjective {
            name: "errors".into(),
            query: "sum(errors)".into(),
            comparator: Comparator::Lt,
            threshold: 1.0,
            during: During::Faults,
            every: None,
            failure_limit: Some(1),
        }
    }

    #[test]
    fn promql_fails_past_its_failure_limit_and_is_not_measured_without_series() {
        let rec = |evaluations, failures, no_data| PromqlRecord {
            evaluations,
            failures,
            no_data,
            min: Some(0.0),
            max: Some(3.0),
            last: Some(0.0),
            ..PromqlRecord::default()
        };
        let v = promql_verdict(&objective(), Some(&rec(10, 1, 0)));
        assert_eq!(v.id, "promql/errors/faults");
        assert_eq!(v.status, VerdictStatus::Pass, "one failure is allowed");
        assert_eq!(v.required, "`sum(errors)` < 1 at every evaluation but 1");
        let v = promql_verdict(&objective(), Some(&rec(10, 2, 0)));
        assert_eq!(v.status, VerdictStatus::Fail);
        assert_eq!(
            v.measured.as_deref(),
            Some("2 of 10 evaluations broke it (min 0, max 3, last 0)")
        );
        let v = promql_verdict(&objective(), Some(&rec(0, 0, 5)));
        assert_eq!(v.status, VerdictStatus::NotMeasured);
        assert!(
            v.note
                .as_deref()
                .unwrap_or("")
                .starts_with("the query returned no series"),
            "{v:#?}"
        );
    }
}
