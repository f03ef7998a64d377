//! Rules for the fault timeline and the steady-state window: every fault has an action,
//! starts and ends inside the run, and leaves room for the baseline window before it.
//! These are the mistakes that would otherwise surface minutes into a run.

use shakeout_api::Dur;

use super::{listing, Checker};
use crate::experiment::spec::{LatencyBounds, Spec};

pub(super) fn check(c: &mut Checker<'_>, spec: &Spec) {
    let services: Vec<&str> = spec.services.iter().map(|s| s.name.as_str()).collect();
    c.unique_names(
        "fault",
        spec.faults
            .iter()
            .enumerate()
            .map(|(i, f)| (format!("spec.faults[{i}]"), f.name.as_str())),
    );
    let run = spec.duration;
    let window = spec.steady_state.as_ref().map(|s| s.window);
    for (i, fault) in spec.faults.iter().enumerate() {
        let path = format!("spec.faults[{i}]");
        let name = &fault.name;
        let actions = [
            fault.exec.is_some(),
            fault.network.is_some(),
            fault.process.is_some(),
            fault.pod.is_some(),
        ];
        match actions.iter().filter(|a| **a).count() {
            0 => c.report(
                &path,
                format!(
                    "fault `{name}` has no action: add one of `exec`, `network`, `process` or `pod`, \
                     like `exec: {{ command: [systemctl, stop, cache] }}`"
                ),
            ),
            1 => {}
            _ => c.report(
                &path,
                format!(
                    "fault `{name}` has more than one action: use exactly one of `exec`, \
                     `network`, `process` or `pod` per fault (split it into several faults)"
                ),
            ),
        }
        super::agents::check_fault(c, spec, &path, fault);
        super::kube::check_fault(c, spec, &path, fault);
        match &fault.exec {
            None => {}
            Some(exec) => {
                let exec_path = format!("{path}.exec");
                if exec.command.first().is_none_or(|p| p.is_empty()) {
                    c.report(
                        &format!("{exec_path}.command"),
                        format!(
                            "fault `{name}` needs a program to run, like [systemctl, stop, cache]"
                        ),
                    );
                }
                if exec
                    .revert
                    .as_ref()
                    .is_some_and(|r| r.first().is_none_or(|p| p.is_empty()))
                {
                    c.report(
                        &format!("{exec_path}.revert"),
                        "needs a program to run, like [systemctl, start, cache]; or leave `revert` out",
                    );
                }
                let has_revert = exec
                    .revert
                    .as_ref()
                    .is_some_and(|r| r.first().is_some_and(|p| !p.is_empty()));
                if has_revert && fault.duration.is_none() {
                    c.report(
                        &format!("{exec_path}.revert"),
                        format!(
                            "fault `{name}` has a revert but no `duration`; the revert runs when the \
                             duration ends, so add one (like `duration: 30s`) or leave `revert` out"
                        ),
                    );
                }
                c.positive(&format!("{exec_path}.timeout"), exec.timeout, "like 30s");
                let args = exec.command.iter().chain(exec.revert.iter().flatten());
                for missing in args
                    .flat_map(|a| service_refs(a))
                    .filter(|s| !services.contains(s))
                {
                    c.report(
                        &exec_path,
                        format!(
                            "`${{service.{missing}.pid}}` names no service; services: {}",
                            listing(&services)
                        ),
                    );
                }
            }
        }
        if fault.duration == Some(Dur::ZERO) {
            c.report(
                &format!("{path}.duration"),
                "must be greater than 0s; leave it out for a one-shot fault",
            );
        }
        if run == Dur::ZERO {
            // Already reported on spec.duration; every fault would repeat it.
        } else if fault.at >= run {
            c.report(
                &format!("{path}.at"),
                format!(
                    "fault `{name}` starts at {}, not before the end of the run \
                     (spec.duration: {run}): `at` must be less than {run}",
                    fault.at
                ),
            );
        } else if let Some(d) = fault.duration {
            let end = Dur(fault.at.0 + d.0);
            if end > run {
                c.report(
                    &format!("{path}.duration"),
                    format!(
                        "fault `{name}` ends at {end}, after the experiment's duration of {run}: \
                         its duration can be at most {} here, or raise spec.duration",
                        Dur(run.0 - fault.at.0)
                    ),
                );
            }
        }
        if let Some(window) = window.filter(|w| *w > Dur::ZERO && fault.at < *w) {
            c.report(
                &format!("{path}.at"),
                format!(
                    "fault `{name}` starts at {}, inside the {window} steady-state window: the \
                     baseline window must fit before the first fault, so `at` must be at least \
                     {window} (or shorten spec.steadyState.window)",
                    fault.at
                ),
            );
        }
    }
    if let Some(steady) = &spec.steady_state {
        c.positive("spec.steadyState.window", Some(steady.window), "like 10s");
        if let Some(latency) = &steady.latency {
            percentiles(c, "spec.steadyState.latency", latency);
        }
    }
}

/// A latency bound without any percentile would check nothing.
pub(super) fn percentiles(c: &mut Checker<'_>, path: &str, bounds: &LatencyBounds) {
    if bounds.bounds().is_empty() {
        c.report(
            path,
            "set at least one percentile: p50, p90, p95, p99 or p999, like `p99: { max: 200ms }`",
        );
    }
}

/// Service names in `${service.NAME.pid}` placeholders of one argument.
fn service_refs(arg: &str) -> Vec<&str> {
    arg.split("${service.")
        .skip(1)
        .filter_map(|rest| rest.split_once(".pid}").map(|(name, _)| name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::tests::{one, problems, BASE};
    use super::*;

    fn with_faults(faults: &str) -> String {
        format!("{BASE}  faults:\n{faults}")
    }

    #[test]
    fn a_valid_timeline_passes() {
        let text = with_faults(
            "    - { name: a, at: 10s, duration: 50s, exec: { command: [x], revert: [y], timeout: 5s } }\n    - { name: b, at: 59s, exec: { command: [x] } }\n",
        );
        assert_eq!(problems(&text), vec![]);
    }

    #[test]
    fn fault_names_unique() {
        let text = with_faults(
            "    - { name: a, at: 1s, exec: { command: [x] } }\n    - { name: a, at: 2s, exec: { command: [x] } }\n",
        );
        assert!(one(&text).starts_with(
            "13:15: spec.faults[1].name: fault name `a` is already used by spec.faults[0] at line 12, column 15"
        ));
    }

    #[test]
    fn fault_needs_an_action_with_a_program() {
        let text = with_faults("    - { name: a, at: 1s }\n");
        assert!(one(&text).starts_with("12:7: spec.faults[0]: fault `a` has no action"));
        let text = with_faults(
            "    - { name: a, at: 1s, exec: { command: [], revert: [], timeout: 0s } }\n",
        );
        let found: Vec<String> = problems(&text).into_iter().map(|d| d.message).collect();
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(found[0].contains("exec.command: fault `a` needs a program"));
        assert!(found[1].contains("exec.revert: needs a program"));
        assert!(found[2].contains("exec.timeout: must be greater than 0s"));
    }

    #[test]
    fn a_revert_needs_a_duration() {
        let text = with_faults("    - { name: a, at: 1s, exec: { command: [x], revert: [y] } }\n");
        let msg = one(&text);
        assert!(
            msg.contains("exec.revert: fault `a` has a revert but no `duration`"),
            "{msg}"
        );
    }

    #[test]
    fn fault_inside_the_run() {
        let text = with_faults("    - { name: late, at: 60s, exec: { command: [x] } }\n");
        assert_eq!(
            one(&text),
            "12:25: spec.faults[0].at: fault `late` starts at 1m, not before the end of the run \
             (spec.duration: 1m): `at` must be less than 1m"
        );
        let text =
            with_faults("    - { name: long, at: 50s, duration: 20s, exec: { command: [x] } }\n");
        assert_eq!(
            one(&text),
            "12:40: spec.faults[0].duration: fault `long` ends at 70s, after the experiment's \
             duration of 1m: its duration can be at most 10s here, or raise spec.duration"
        );
        let text = with_faults("    - { name: z, at: 5s, duration: 0s, exec: { command: [x] } }\n");
        assert!(one(&text).contains("duration: must be greater than 0s; leave it out"));
    }

    #[test]
    fn faults_wait_for_the_steady_state_window() {
        let text = with_faults(
            "    - { name: early, at: 5s, exec: { command: [x] } }\n    - { name: ok, at: 10s, exec: { command: [x] } }\n  steadyState: { window: 10s }\n",
        );
        assert_eq!(
            one(&text),
            "12:26: spec.faults[0].at: fault `early` starts at 5s, inside the 10s steady-state \
             window: the baseline window must fit before the first fault, so `at` must be at \
             least 10s (or shorten spec.steadyState.window)"
        );
        let text = format!("{BASE}  steadyState: {{ window: 0s, latency: {{}} }}\n");
        let found: Vec<String> = problems(&text).into_iter().map(|d| d.message).collect();
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(found[0].contains("window: must be greater than 0s"));
        assert!(found[1].contains("latency: set at least one percentile"));
    }

    #[test]
    fn service_placeholders_name_services() {
        let text = with_faults(
            "    - { name: k, at: 1s, exec: { command: [kill, \"${service.db.pid}\"] } }\n",
        );
        assert!(one(&text).contains("`${service.db.pid}` names no service; services: (none)"));
        assert_eq!(
            service_refs("a${service.x.pid}b${service.y.pid}"),
            vec!["x", "y"]
        );
    }
}
