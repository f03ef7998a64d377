//! Human formatting shared by every renderer, so a time or a percentage reads the same
//! in the terminal, the Markdown summary and the JUnit messages.

use std::collections::BTreeMap;

use super::{
    ActionReport, FaultReport, FaultStatus, PodRecovery, ProbeReport, RtoReport, RunStatus,
    ServiceExit, ServiceReport, Verdict, VerdictStatus, WriteReport,
};

pub(crate) use crate::text::{duration_ms as duration, NONE};

/// A moment on the run's timeline, to the millisecond: events 40ms apart must not read
/// as simultaneous, which three significant digits would do at `20.0s`.
pub(crate) fn offset(ms: f64) -> String {
    if !ms.is_finite() {
        return NONE.to_string();
    }
    format!("{:.3}s", ms / 1000.0)
}

/// An optional duration, `-` when absent.
pub(crate) fn opt_duration(ms: Option<f64>) -> String {
    ms.map_or_else(|| NONE.to_string(), duration)
}

/// A percentage with two decimals that never rounds to a misleading `100%` or `0%`:
/// 99.999% availability is not 100%, and one ok response is not none.
pub(crate) fn percent(p: f64) -> String {
    if !p.is_finite() {
        return NONE.to_string();
    }
    if p >= 100.0 {
        return "100%".to_string();
    }
    if p <= 0.0 {
        return "0%".to_string();
    }
    let shown = format!("{p:.2}");
    match shown.as_str() {
        "100.00" => "99.99%".to_string(),
        "0.00" => "0.01%".to_string(),
        _ => format!("{shown}%"),
    }
}

/// An optional percentage, `-` when absent (nothing was scheduled).
pub(crate) fn opt_percent(p: Option<f64>) -> String {
    p.map_or_else(|| NONE.to_string(), percent)
}

/// Errors by kind, most frequent first (`timeout 12, refused 3`), `-` when none.
pub(crate) fn errors(by_kind: &BTreeMap<String, u64>) -> String {
    let mut kinds: Vec<_> = by_kind.iter().filter(|(_, n)| **n > 0).collect();
    if kinds.is_empty() {
        return NONE.to_string();
    }
    kinds.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    kinds
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The words a person reads for a run status (`revert unconfirmed`, not the JSON spelling).
pub(crate) fn status_words(s: RunStatus) -> &'static str {
    match s {
        RunStatus::RevertUnconfirmed => "revert unconfirmed",
        other => other.as_str(),
    }
}

/// Fixed-width tag for a verdict, so columns line up.
pub(crate) fn verdict_tag(s: VerdictStatus) -> &'static str {
    match s {
        VerdictStatus::Pass => "PASS",
        VerdictStatus::Fail => "FAIL",
        VerdictStatus::NotMeasured => "SKIP",
    }
}

/// `measured 97.3%, required >= 95%`, or `not measured: why`.
pub(crate) fn verdict_outcome(v: &Verdict) -> String {
    match (v.status, &v.measured) {
        (VerdictStatus::NotMeasured, _) => format!(
            "not measured: {}",
            v.note.as_deref().unwrap_or("no reason given")
        ),
        (_, Some(m)) => format!("measured {m}, required {}", v.required),
        (_, None) => format!("measured {NONE}, required {}", v.required),
    }
}

/// A command line as a person would type it; arguments with spaces are quoted.
pub(crate) fn command(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if a.is_empty() || a.contains(char::is_whitespace) || a.contains('\'') {
                format!("'{}'", a.replace('\'', r"'\''"))
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// How a fault command ended: `exit 0 in 12.0ms`, `killed by signal 9`, `could not run: ...`.
pub(crate) fn action_outcome(a: &ActionReport) -> String {
    let took = duration(a.ended_ms - a.started_ms);
    match (&a.error, a.exit_code, a.signal) {
        (Some(e), _, _) => format!("could not run: {e}"),
        (None, Some(code), _) => format!("exit {code} in {took}"),
        (None, None, Some(sig)) => format!("killed by signal {sig} after {took}"),
        (None, None, None) => format!("no exit status after {took}"),
    }
}

/// How a service exit ended: `exit 1`, `signal 9`, `stopped (signal 15)`.
pub(crate) fn exit_outcome(e: &ServiceExit) -> String {
    let how = match (e.exit_code, e.signal) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(sig)) => format!("signal {sig}"),
        (None, None) => "no exit status".to_string(),
    };
    if e.stopped {
        format!("stopped ({how})")
    } else {
        how
    }
}

/// A service in one line: `6 starts (5 restarts), last exit 1 at 2.450s`.
pub(crate) fn service_summary(s: &ServiceReport) -> String {
    let plural = |n: u64, what: &str| match n {
        1 => format!("1 {what}"),
        n => format!("{n} {what}s"),
    };
    let mut line = format!(
        "{} ({})",
        plural(s.starts.len() as u64, "start"),
        plural(s.restarts, "restart")
    );
    if let Some(e) = s.exits.iter().rev().find(|e| !e.stopped).or(s.exits.last()) {
        line.push_str(&format!(
            ", last {} at {}",
            exit_outcome(e),
            offset(e.at_ms)
        ));
    }
    line
}

/// A service's last `n` lines of output, standard error's first (where a failing
/// program says why).
pub(crate) fn service_output(s: &ServiceReport, n: usize) -> Vec<&str> {
    fn tail(lines: &[String], n: usize) -> Vec<&str> {
        lines[lines.len().saturating_sub(n)..]
            .iter()
            .map(String::as_str)
            .collect()
    }
    let mut lines = tail(&s.stderr, n);
    let left = n - lines.len();
    lines.extend(tail(&s.stdout, left));
    lines
}

/// One line of measured recovery; states the resolution because every time is a bucket edge.
pub(crate) fn rto_summary(r: &RtoReport) -> String {
    let mut s = format!(
        "detect {}, recover {}, fault end → recovered {} (resolution ±{}; steady at ≥ {} for {})",
        opt_duration(r.time_to_detect_ms),
        opt_duration(r.time_to_recover_ms),
        opt_duration(r.fault_end_to_recovery_ms),
        duration(r.resolution_ms),
        percent(r.level_percent),
        duration(r.stable_for_ms),
    );
    if let Some(note) = &r.note {
        s.push_str("; ");
        s.push_str(note);
    }
    s
}

/// A write probe's read-back in three lines: counts, the loss window beside the faults,
/// and how the read-back and cleanup went.
pub(crate) fn write_summary(w: &WriteReport, faults: &[FaultReport]) -> Vec<String> {
    let opt = |v: Option<u64>| v.map_or(NONE.to_string(), |n| n.to_string());
    let mut counts = format!(
        "writes {} scheduled, {} acknowledged, {} lost, {} unacknowledged but present",
        w.scheduled,
        w.acknowledged,
        opt(w.lost),
        opt(w.unacknowledged_present)
    );
    if w.duplicated.is_some() || w.out_of_order.is_some() {
        counts.push_str(&format!(
            ", {} duplicated, {} out of order",
            opt(w.duplicated),
            opt(w.out_of_order)
        ));
    }
    counts.push_str(&format!(" ({} {}, run {})", w.backend, w.mode, w.run_id));
    let window = match (&w.loss_window, w.lost) {
        (Some(l), _) => {
            let near: Vec<String> = faults
                .iter()
                .filter(|f| f.status != FaultStatus::Pending)
                .map(|f| format!("{} at {}", f.name, duration(f.at_ms)))
                .collect();
            let near = if near.is_empty() {
                String::new()
            } else {
                format!("; faults: {}", near.join(", "))
            };
            format!(
                "loss window {} (writes intended {} to {}){near}",
                duration(l.duration_ms),
                duration(l.start_ms),
                duration(l.end_ms)
            )
        }
        (None, Some(_)) => "loss window 0 (no acknowledged write lost)".to_string(),
        (None, None) => "loss window not measured".to_string(),
    };
    let mut read = format!(
        "read-back {} reads in {}",
        w.read_back.reads,
        duration(w.read_back.duration_ms)
    );
    if let Some(e) = &w.read_back.error {
        read.push_str(&format!(" FAILED: {e}"));
    }
    read.push_str(if w.keys_kept {
        "; keys kept"
    } else {
        "; keys deleted"
    });
    if let Some(e) = &w.cleanup_error {
        read.push_str(&format!(" (cleanup failed: {e})"));
    }
    vec![counts, window, read]
}

/// Why a prober-limited probe's latency must not be trusted.
pub(crate) fn prober_limited_warning(p: &ProbeReport) -> String {
    format!(
        "probe {} is prober-limited (scheduling lag p99 {}, max {}): its latency reflects \
         this machine, not the service (lower the rate or give the prober more CPU)",
        p.name,
        opt_duration(p.scheduling_lag.p99_ms),
        opt_duration(p.scheduling_lag.max_ms),
    )
}

/// One line on what an agent did for a fault: where, which id and mechanism, the lease.
pub(crate) fn agent_summary(a: &crate::report::AgentActionReport) -> String {
    let mut parts = vec![format!("agent {} ({})", a.agent, a.url)];
    if let Some(pod) = &a.pod {
        parts.insert(0, format!("pod {pod}"));
    }
    if let Some(id) = &a.fault_id {
        parts.push(format!("id {id}"));
    }
    if let Some(m) = &a.mechanism {
        parts.push(format!("via {m}"));
    }
    if !a.targets.is_empty() {
        parts.push(format!("targets {}", a.targets.join(", ")));
    }
    parts.push(format!("{} renewals", a.renewals));
    if a.renew_failures > 0 {
        parts.push(format!("{} failed renewals", a.renew_failures));
    }
    if let Some(e) = &a.error {
        parts.push(format!("error: {e}"));
    }
    parts.join(", ")
}

/// One line on a fault's pods: how many matched and were chosen, what was deleted, and
/// how long the workloads took to replace them.
pub(crate) fn pods_summary(p: &crate::report::PodFaultReport) -> String {
    let names: Vec<&str> = p.chosen.iter().map(|c| c.name.as_str()).collect();
    let mut selectors = vec![match p.selector.as_str() {
        "" => "every pod".to_owned(),
        s => format!("selector {s}"),
    }];
    if let Some(f) = &p.field_selector {
        selectors.push(format!("fieldSelector {f}"));
    }
    let mut parts = vec![format!(
        "pods in {} ({}; mode {}, run seed {}): {} of {} chosen: {}",
        p.namespace,
        selectors.join(", "),
        p.mode,
        p.seed,
        p.chosen.len(),
        p.matched,
        names.join(", ")
    )];
    let done = if p.evict { "evicted" } else { "deleted" };
    if p.dry_run {
        parts.push(format!("dry run: nothing {done}"));
    } else if p.deleted > 0 {
        parts.push(format!("{} {done}", p.deleted));
    }
    match p.recovery {
        Some(PodRecovery::Recovered) => parts.push(format!(
            "replacements Ready after {} ({}resolution {})",
            opt_duration(p.recovery_ms),
            match p.recovery_method.as_deref() {
                Some("watch") => "watched, ",
                Some("poll") => "polled, ",
                _ => "",
            },
            opt_duration(p.recovery_resolution_ms)
        )),
        Some(PodRecovery::NoOwner) => parts.push("no owner: nothing replaces them".into()),
        Some(PodRecovery::NotRecovered) => parts.push("replacements NOT Ready".into()),
        _ => {}
    }
    for b in p
        .disruption_budgets
        .iter()
        .filter(|b| !p.errors.contains(b))
    {
        parts.push(format!("budget: {b}"));
    }
    for e in &p.errors {
        parts.push(format!("error: {e}"));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_never_claims_full_or_zero_availability_it_did_not_have() {
        assert_eq!(percent(100.0), "100%");
        assert_eq!(percent(99.999), "99.99%");
        assert_eq!(percent(97.3), "97.30%");
        assert_eq!(percent(0.001), "0.01%");
        assert_eq!(percent(0.0), "0%");
    }

    #[test]
    fn errors_list_most_frequent_first_and_skip_zero_kinds() {
        let m = BTreeMap::from([
            ("refused".to_string(), 3),
            ("timeout".to_string(), 12),
            ("reset".to_string(), 0),
        ]);
        assert_eq!(errors(&m), "timeout 12, refused 3");
        assert_eq!(errors(&BTreeMap::new()), "-");
    }

    #[test]
    fn commands_quote_arguments_with_spaces() {
        let argv = ["sh", "-c", "kill -9 $(cat pid)"].map(String::from);
        assert_eq!(command(&argv), "sh -c 'kill -9 $(cat pid)'");
    }
}
