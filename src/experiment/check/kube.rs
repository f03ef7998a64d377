//! Rules for the Kubernetes parts: pod selectors that the API server will accept, modes
//! with the number they need, protected namespaces named explicitly, pod deletion as a
//! one-shot fault, and agent discovery with one token source.

use super::Checker;
use crate::experiment::selector;
use crate::experiment::spec::PROTECTED_NAMESPACES;
use crate::experiment::spec::{FaultSpec, PodMode, PodSelector, Spec};

pub(super) fn check(c: &mut Checker<'_>, spec: &Spec) {
    if let Some(o) = &spec.objectives.pod_recovery {
        let deletions: Vec<&str> = spec
            .faults
            .iter()
            .filter(|f| f.pod.as_ref().is_some_and(|p| p.delete.is_some()))
            .map(|f| f.name.as_str())
            .collect();
        match &o.fault {
            Some(name) if !deletions.contains(&name.as_str()) => c.report(
                "spec.objectives.podRecovery.fault",
                format!(
                    "`{name}` is not a pod deletion; pod deletions: {}",
                    super::listing(&deletions)
                ),
            ),
            None if deletions.is_empty() => c.report(
                "spec.objectives.podRecovery",
                "there is no pod deletion to time: add a fault with `pod: { delete: ... }` or remove this objective",
            ),
            _ => {}
        }
        c.positive("spec.objectives.podRecovery.max", Some(o.max), "like 60s");
    }
    if let Some(agents) = spec.kubernetes.as_ref().and_then(|k| k.agents.as_ref()) {
        let path = "spec.kubernetes.agents";
        if let Some(t) = &agents.token_from {
            if t.env.is_some() == t.file.is_some() {
                c.report(
                    &format!("{path}.tokenFrom"),
                    "set exactly one of `env: VARIABLE` or `file: PATH`",
                );
            }
        }
        if let Some(sel) = &agents.selector {
            if let Err(e) = selector::check_labels(sel) {
                c.report(&format!("{path}.selector"), e);
            }
        }
        if agents.port == Some(0) {
            c.report(
                &format!("{path}.port"),
                "port 0 is not a port: use 1-65535, like 7433",
            );
        }
        c.positive(&format!("{path}.lease"), agents.lease, "like 10s");
    }
}

/// The pod parts of one fault: `pod:`, `network.pods`, `process.target.pods`.
pub(super) fn check_fault(c: &mut Checker<'_>, spec: &Spec, path: &str, fault: &FaultSpec) {
    if let Some(pod) = &fault.pod {
        let p = format!("{path}.pod");
        match &pod.delete {
            None => c.report(
                &p,
                "has no action: add `delete: { namespace: shop, selector: app=checkout, mode: one }`",
            ),
            Some(del) => {
                pods(c, spec, &format!("{p}.delete"), &del.pods);
                if let Some(g) = del.grace_period.filter(|g| g.0.subsec_nanos() != 0) {
                    // The API takes whole seconds, and 0 means a forced delete.
                    c.report(
                        &format!("{p}.delete.gracePeriod"),
                        format!(
                            "`{g}` is not a whole number of seconds: the API server takes seconds \
                             (0s deletes at once, without waiting for the containers); use e.g. 1s or 30s"
                        ),
                    );
                }
                c.positive(
                    &format!("{p}.delete.recoveryTimeout"),
                    del.recovery_timeout,
                    "like 5m",
                );
                if fault.duration.is_some() {
                    c.report(
                        &format!("{path}.duration"),
                        format!(
                            "deleting pods in fault `{}` is one-shot: remove `duration` (the \
                             wait for replacements is bounded by `recoveryTimeout`)",
                            fault.name
                        ),
                    );
                }
            }
        }
    }
    if let Some(net) = &fault.network {
        if let Some(sel) = &net.pods {
            let p = format!("{path}.network");
            pods(c, spec, &format!("{p}.pods"), sel);
            if net.agent.is_some() || net.namespace.is_some() {
                c.report(
                    &format!("{p}.pods"),
                    "chooses the agent and the namespace itself (the agent on each pod's \
                     node, the pod's network namespace): remove `agent` and `namespace`",
                );
            }
        }
    }
    if let Some(proc) = &fault.process {
        if let Some(sel) = &proc.target.pods {
            let p = format!("{path}.process");
            pods(c, spec, &format!("{p}.target.pods"), sel);
            if proc.agent.is_some() {
                c.report(
                    &format!("{p}.agent"),
                    "a fault on `target.pods` goes to the agent on each pod's node: remove `agent`",
                );
            }
        }
    }
}

/// A pod selector: valid selectors, a mode with the number it needs, no protected
/// namespace unless named in `allowProtected`.
fn pods(c: &mut Checker<'_>, spec: &Spec, path: &str, sel: &PodSelector) {
    if sel.namespace.is_empty() {
        c.report(
            &format!("{path}.namespace"),
            "must name a namespace, like `shop`",
        );
    } else if let Err(e) = selector::check_name(&sel.namespace) {
        c.report(&format!("{path}.namespace"), e);
    }
    if let Some(labels) = &sel.selector {
        if let Err(e) = selector::check_labels(labels) {
            c.report(&format!("{path}.selector"), e);
        }
    }
    if let Some(fields) = &sel.field_selector {
        if let Err(e) = selector::check_fields(fields) {
            c.report(&format!("{path}.fieldSelector"), e);
        }
    }
    let mode = sel.mode.unwrap_or_default();
    match mode {
        PodMode::Fixed => match sel.count {
            None => c.report_key(
                &format!("{path}.count"),
                "`mode: fixed` needs `count: N`, like `count: 2`",
            ),
            Some(0) => c.report(&format!("{path}.count"), "must be at least 1"),
            Some(_) => {}
        },
        PodMode::Percent => match sel.percent {
            None => c.report_key(
                &format!("{path}.percent"),
                "`mode: percent` needs `percent: P%`, like `percent: 50%`",
            ),
            Some(p) if p.0 <= 0.0 => c.report(&format!("{path}.percent"), "must be above 0%"),
            Some(_) => {}
        },
        PodMode::One | PodMode::All => {}
    }
    if sel.count.is_some() && mode != PodMode::Fixed {
        c.report(
            &format!("{path}.count"),
            "only applies to `mode: fixed`: set `mode: fixed` or remove `count`",
        );
    }
    if sel.percent.is_some() && mode != PodMode::Percent {
        c.report(
            &format!("{path}.percent"),
            "only applies to `mode: percent`: set `mode: percent` or remove `percent`",
        );
    }
    let agents = spec.agent_namespace();
    let protected =
        PROTECTED_NAMESPACES.contains(&sel.namespace.as_str()) || sel.namespace == agents;
    if protected && !sel.allow_protected.iter().any(|n| n == &sel.namespace) {
        c.report(
            &format!("{path}.namespace"),
            format!(
                "`{}` is protected ({}, {} and the agents' own `{agents}`): name it in \
                 `allowProtected: [{}]` if you mean it",
                sel.namespace, PROTECTED_NAMESPACES[0], PROTECTED_NAMESPACES[1], sel.namespace
            ),
        );
    }
}
