//! Rules for agent-backed faults: agents reachable by a valid URL with a token source,
//! network faults that do something to a well-formed set of packets, process faults with
//! exactly one target and one action — and durations that match what each fault is.

use std::net::IpAddr;

use super::{listing, Checker};
use crate::experiment::spec::{FaultSpec, NetworkFaultSpec, ProcessFaultSpec, Spec};

/// `spec.agents`: URL scheme and host, exactly one token source.
pub(super) fn check(c: &mut Checker<'_>, spec: &Spec) {
    for (name, agent) in &spec.agents {
        let path = format!("spec.agents.{name}");
        match agent.url.parse::<hyper::Uri>() {
            Ok(uri)
                if matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some() =>
            {
                if uri.scheme_str() == Some("http") && agent.ca.is_some() {
                    c.report(
                        &format!("{path}.ca"),
                        "a CA only applies to https:// agent URLs",
                    );
                }
            }
            _ => c.report(
                &format!("{path}.url"),
                format!(
                    "`{}` is not an agent URL: use http://host:port or https://host:port",
                    agent.url
                ),
            ),
        }
        let t = &agent.token_from;
        if t.env.is_some() == t.file.is_some() {
            c.report(
                &format!("{path}.tokenFrom"),
                "set exactly one of `env: VARIABLE` or `file: PATH`",
            );
        }
    }
}

/// The agent-backed parts of one fault (exec is checked by the timeline rules).
pub(super) fn check_fault(c: &mut Checker<'_>, spec: &Spec, path: &str, fault: &FaultSpec) {
    if let Some(net) = &fault.network {
        let p = format!("{path}.network");
        agent_exists(c, spec, &p, net.agent.as_deref());
        network(c, spec, &p, net);
        if fault.duration.is_none() {
            c.report_key(
                &format!("{path}.duration"),
                format!(
                    "network fault `{}` needs a `duration`, like `duration: 30s`",
                    fault.name
                ),
            );
        }
    }
    if let Some(proc) = &fault.process {
        let p = format!("{path}.process");
        agent_exists(c, spec, &p, proc.agent.as_deref());
        process(c, spec, &p, proc);
        if proc.pause.is_some() && fault.duration.is_none() {
            c.report_key(
                &format!("{path}.duration"),
                format!(
                    "pausing in fault `{}` needs a `duration`, like `duration: 10s`",
                    fault.name
                ),
            );
        }
        if proc.kill.is_some() && fault.duration.is_some() {
            c.report(
                &format!("{path}.duration"),
                format!("kill in fault `{}` is one-shot: remove `duration` (use `pause` to stop a process for a while)", fault.name),
            );
        }
    }
}

fn agent_exists(c: &mut Checker<'_>, spec: &Spec, path: &str, agent: Option<&str>) {
    let Some(agent) = agent else { return };
    if !spec.agents.contains_key(agent) {
        let names: Vec<&str> = spec.agents.keys().map(String::as_str).collect();
        c.report(
            &format!("{path}.agent"),
            format!(
                "no agent named `{agent}` in spec.agents (agents: {}); leave `agent` out to use the embedded agent",
                listing(&names)
            ),
        );
    }
}

fn service_exists(c: &mut Checker<'_>, spec: &Spec, path: &str, service: &str) {
    if !spec.services.iter().any(|s| s.name == service) {
        let names: Vec<&str> = spec.services.iter().map(|s| s.name.as_str()).collect();
        c.report(
            path,
            format!(
                "no service named `{service}`; services: {}",
                listing(&names)
            ),
        );
    }
}

fn network(c: &mut Checker<'_>, spec: &Spec, path: &str, net: &NetworkFaultSpec) {
    if net.latency.is_none() && net.loss.is_none() && net.blackhole != Some(true) {
        c.report(
            path,
            "does nothing: set `latency: { delay: 100ms }`, `loss: 5%` or `blackhole: true`",
        );
    }
    if net.blackhole == Some(true) && (net.latency.is_some() || net.loss.is_some()) {
        c.report(
            &format!("{path}.blackhole"),
            "drops everything: latency or loss beside it would never apply; use one",
        );
    }
    if let Some(l) = &net.latency {
        c.positive(
            &format!("{path}.latency.delay"),
            Some(l.delay),
            "like 100ms",
        );
        if l.jitter.is_some_and(|j| j > l.delay) {
            c.report(
                &format!("{path}.latency.jitter"),
                "must not exceed the delay (packets cannot leave before they arrive)",
            );
        }
    }
    if net.loss.is_some_and(|l| l.0 <= 0.0) {
        c.report(&format!("{path}.loss"), "must be above 0%, like 5%");
    }
    if let Some(to) = &net.to {
        for (i, peer) in to.peers.iter().enumerate() {
            if !valid_cidr(peer) {
                c.report(
                    &format!("{path}.to.peers[{i}]"),
                    format!("`{peer}` is not an address or CIDR: use e.g. 10.0.0.5, 10.0.0.0/8 or fd00::/8"),
                );
            }
        }
        for (i, port) in to.ports.iter().enumerate() {
            if *port == 0 {
                c.report(
                    &format!("{path}.to.ports[{i}]"),
                    "port 0 matches nothing: use 1-65535",
                );
            }
        }
    }
    if let Some(ns) = &net.namespace {
        let set = [ns.pid.is_some(), ns.service.is_some(), ns.pod_uid.is_some()];
        if set.iter().filter(|s| **s).count() != 1 {
            c.report(
                &format!("{path}.namespace"),
                "set exactly one of `pid`, `service` or `podUid`",
            );
        }
        if let Some(s) = &ns.service {
            service_exists(c, spec, &format!("{path}.namespace.service"), s);
        }
    }
}

fn process(c: &mut Checker<'_>, spec: &Spec, path: &str, p: &ProcessFaultSpec) {
    let t = &p.target;
    let set = [
        t.pid.is_some(),
        t.name.is_some(),
        t.pattern.is_some(),
        t.service.is_some(),
        t.pod_uid.is_some(),
        t.pods.is_some(),
    ];
    if set.iter().filter(|s| **s).count() != 1 {
        c.report(
            &format!("{path}.target"),
            "set exactly one of `pid`, `name`, `pattern`, `service`, `podUid` or `pods`",
        );
    }
    if let Some(s) = &t.service {
        service_exists(c, spec, &format!("{path}.target.service"), s);
    }
    if let Some(pattern) = &t.pattern {
        if let Err(e) = regex_syntax_ok(pattern) {
            c.report(
                &format!("{path}.target.pattern"),
                format!("not a valid regular expression: {e}"),
            );
        }
    }
    if p.kill.is_some() == p.pause.is_some() {
        c.report(
            path,
            "set exactly one of `kill: { signal: KILL }` or `pause: {}`",
        );
    }
    if let Some(sig) = p.kill.as_ref().and_then(|k| k.signal.as_deref()) {
        match shakeout_agent::fault::process::parse_kill_signal(sig) {
            Ok(_) => {}
            Err(_) if !valid_signal(sig) => c.report(
                &format!("{path}.kill.signal"),
                format!("`{sig}` is not a signal: use a name like KILL, TERM, INT, HUP, or a number 1-64"),
            ),
            Err(_) => c.report(
                &format!("{path}.kill.signal"),
                format!(
                    "`{sig}` stops the process, and a one-shot kill would leave it stopped with nothing to continue it: \
                     use `pause: {{}}` with a `duration` (SIGSTOP under a lease, SIGCONT at its end)"
                ),
            ),
        }
    }
    if let Some(sel) = &p.select {
        if sel.count.is_some() == sel.percent.is_some() {
            c.report(
                &format!("{path}.select"),
                "set exactly one of `count: N` or `percent: P%`",
            );
        }
        if sel.count == Some(0) || sel.percent.is_some_and(|p| p.0 <= 0.0) {
            c.report(
                &format!("{path}.select"),
                "selects nothing: use a count of at least 1 or a percent above 0%",
            );
        }
    }
}

/// An IPv4/IPv6 address, optionally with a prefix length that fits it.
pub fn valid_cidr(text: &str) -> bool {
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let Ok(ip) = addr.parse::<IpAddr>() else {
        return false;
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    prefix.is_none_or(|p| p.parse::<u8>().is_ok_and(|n| n <= max))
}

/// A signal name (with or without `SIG`) or number: the agent's own parser, so the two
/// sides never disagree.
pub fn valid_signal(text: &str) -> bool {
    parse_signal(text).is_some()
}

/// The signal named by `text` (`KILL`, `SIGKILL`, `9`).
pub fn parse_signal(text: &str) -> Option<nix::sys::signal::Signal> {
    shakeout_agent::fault::process::parse_signal(text).ok()
}

/// The agent compiles the same pattern with the same crate; a typo fails here, before the run.
fn regex_syntax_ok(pattern: &str) -> Result<(), String> {
    regex::Regex::new(pattern)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_and_signals() {
        assert!(valid_cidr("10.0.0.5") && valid_cidr("10.0.0.0/8") && valid_cidr("fd00::/8"));
        assert!(
            !valid_cidr("10.0.0.0/33") && !valid_cidr("example.com") && !valid_cidr("10.0.0/8")
        );
        assert_eq!(
            parse_signal("KILL"),
            Some(nix::sys::signal::Signal::SIGKILL)
        );
        assert_eq!(
            parse_signal("sigterm"),
            Some(nix::sys::signal::Signal::SIGTERM)
        );
        assert_eq!(parse_signal("9"), Some(nix::sys::signal::Signal::SIGKILL));
        assert!(parse_signal("NOPE").is_none() && parse_signal("99").is_none());
        assert!(regex_syntax_ok("postgres: (writer|checkpointer)").is_ok());
        assert!(regex_syntax_ok("a(b").is_err() && regex_syntax_ok("[abc").is_err());
    }
}
