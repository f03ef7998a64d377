//! Faults through the embedded agent (no `agents:` in the file), driven by the real
//! `shakeout` binary: pausing a supervised service, with the outage it causes measured
//! against the pause itself, and (as root) network latency through nfqueue whose rule is
//! gone after the run.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup should panic loudly

mod kit;

use std::process::Command;

use kit::exp::{fault, health_probe, sample_service, Experiment};
use kit::{root_or_skip, Case};

/// `name`: the sample service on the case's port, probed at 100/s, `duration` long.
fn experiment(case: &Case, name: &str, duration: &str) -> Experiment {
    Experiment::new(name, duration)
        .service(sample_service(case.port))
        .probe(health_probe(case.port, "100/s"))
}

#[test]
fn embedded_agent_pauses_a_service_and_the_outage_is_measured() {
    let case = Case::new();
    let file = case.write(
        experiment(&case, "pause", "30s")
            .steady_state("{ window: 1s, availability: { min: 99% } }")
            .fault(
                fault("freeze", "1s")
                    .with("duration", "1s")
                    .with("process", "{ target: { service: sample }, pause: {} }"),
            )
            .objective("rto", "{ max: 5s, stableFor: 500ms }"),
    );
    let ran = case.run(&file);
    assert_eq!(ran.code(), Some(0), "{}", ran.explain());
    let report = ran.report();
    let fault = report.fault("freeze");
    assert_eq!(fault.status, "reverted", "{fault:#?}");
    let agent = fault.agent();
    assert_eq!(agent.agent, "embedded");
    assert!(agent.targets[0].contains("shakeout"), "{fault:#?}");
    // With a 300 ms timeout, sends due in all but the last 300 ms of the pause time out;
    // the later ones are answered after SIGCONT. The pause itself is the truth: SIGSTOP
    // came between the apply request (at 1 s) and its confirmation (`appliedMs`), SIGCONT
    // between the revert request (at 2 s) and its confirmation (`revertedMs`); on a
    // loaded machine either can lag. The RTO is exact to one 100 ms bucket at each end.
    let applied = agent.applied_ms.unwrap();
    let reverted = agent.reverted_ms.unwrap();
    let (shortest, longest) = (2000.0 - applied, reverted - 1000.0);
    let probe = report.probe("health");
    let rto = probe.rto().time_to_recover_ms.unwrap();
    assert!(
        rto >= shortest - 300.0 - 200.0 && rto <= longest - 300.0 + 200.0,
        "RTO {rto} ms for a pause between {shortest} and {longest} ms"
    );
    let faults = probe.phase("faults");
    // At 100/s, one send per 10 ms of the pause (less its last 300 ms) timed out.
    let expected = ((shortest - 300.0 - 200.0) / 10.0).max(1.0);
    assert!(
        faults.errors("timeout") as f64 >= expected,
        "{:?}: expected at least {expected} timeouts",
        faults.errors
    );
}

#[test]
fn embedded_agent_adds_network_latency_and_removes_its_rule() {
    if !root_or_skip(
        "embedded_agent_adds_network_latency_and_removes_its_rule",
        "iptables NFQUEUE in the host namespace",
    ) {
        return;
    }
    let case = Case::new();
    let file = case.write(
        experiment(&case, "slow-link", "30s")
            .steady_state("{ window: 1500ms, availability: { min: 99% } }")
            .fault(fault("slow", "1500ms").with("duration", "2s").with(
                "network",
                format!(
                    "{{ latency: {{ delay: 40ms }}, to: {{ ports: [{}], protocol: tcp }} }}",
                    case.port
                ),
            )),
    );
    let ran = case.run(&file);
    assert_eq!(ran.code(), Some(0), "{}", ran.explain());
    let report = ran.report();
    assert_eq!(
        report.fault("slow").agent().mechanism.as_deref(),
        Some("nfqueue")
    );
    let p50 = |phase: &str| report.probe("health").phase(phase).latency.p50_ms.unwrap();
    let (baseline, faults) = (p50("baseline"), p50("faults"));
    assert!(baseline < 10.0, "baseline p50 {baseline} ms");
    // Requests are delayed one way by 40 ms; the answer is not.
    assert!(
        (40.0..=55.0).contains(&faults),
        "p50 during the fault {faults} ms"
    );
    assert!(p50("steady") < 10.0, "latency did not come back");
    let rules = Command::new("iptables").arg("-S").output().unwrap();
    let rules = String::from_utf8_lossy(&rules.stdout);
    assert!(!rules.contains("shakeout:"), "rule left behind:\n{rules}");
}
