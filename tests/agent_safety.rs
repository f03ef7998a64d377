//! A fault never outlives its owner, whoever dies mid-fault: a SIGKILLed controller's
//! fault is reverted by its node agent when the lease expires; a SIGINTed run reverts
//! and exits 2; a SIGKILLed agent makes the run exit 4 naming it, and (as root) the
//! network rule it held is swept when it restarts, while nfqueue fails open meanwhile.
//! Real processes and real signals: the `shakeout` binary, an agent in-process or the
//! real `shakeout-agent`, a `sleep` to pause.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup should panic loudly

use std::net::SocketAddr;
use std::time::{Duration, Instant};

mod kit;

use kit::agent::{start_agent, LocalAgent, SECRET};
use kit::exp::{fault, node_agent, tcp_probe, Experiment, Map};
use kit::netns::Netns;
use kit::{free_port, root_or_skip, state, wait_for, Case, Owned};
use nix::sys::signal::Signal;

/// A case whose runs get the agents' token in `AGENT_TOKEN`.
fn case() -> Case {
    Case::new().env("AGENT_TOKEN", SECRET)
}

/// The fault `freeze`: pause process `pid` from `at` for `duration`, through the agent
/// `node` or, without one, the embedded agent.
fn pause(pid: u32, at: &str, duration: &str, agent: Option<&str>) -> Map {
    let agent = agent.map(|a| format!("agent: {a}, ")).unwrap_or_default();
    fault("freeze", at).with("duration", duration).with(
        "process",
        format!("{{ {agent}target: {{ pid: {pid} }}, pause: {{}} }}"),
    )
}

fn paused(pid: u32) -> bool {
    state(pid) == Some('T')
}

#[test]
fn a_killed_controller_leaves_nothing_behind_the_lease_expires() {
    let agent = LocalAgent::start();
    let target = Owned::sleeper();
    let case = case();
    let file = case.write(
        Experiment::new("orphan", "60s")
            .agent("node", node_agent(&agent.url).with("lease", "2s"))
            .probe(tcp_probe("agent-port", agent.address(), "10/s"))
            .fault(pause(target.pid(), "300ms", "50s", Some("node"))),
    );
    let mut controller = case.spawn(&file);
    wait_for("the pause", Duration::from_secs(10), || {
        paused(target.pid())
    });
    // Let it renew at least once, then kill it without a chance to revert.
    std::thread::sleep(Duration::from_millis(1000));
    controller.signal(Signal::SIGKILL);
    let killed = Instant::now();
    controller.wait();
    wait_for(
        "the agent's revert at the lease deadline",
        Duration::from_secs(4),
        || !paused(target.pid()),
    );
    let after = killed.elapsed();
    // The last renewal was at most a third of a lease before the kill; the reaper ticks
    // every 100 ms. So the revert comes between 2/3 and 1 lease after, plus the tick.
    assert!(
        after >= Duration::from_millis(1200),
        "reverted only {after:?} after the kill: not by the lease"
    );
    assert!(
        after <= Duration::from_millis(2400),
        "reverted {after:?} after the kill"
    );
}

#[test]
fn an_agent_killed_mid_fault_makes_the_run_exit_4_naming_it() {
    let case = case();
    let (mut agent, addr) = start_agent(&case.path("agent"), "ci", &[]);
    let target = Owned::sleeper();
    let file = case.write(
        Experiment::new("lost-agent", "8s")
            .agent(
                "node",
                node_agent(format!("http://{addr}")).with("lease", "2s"),
            )
            .probe(tcp_probe("p", addr, "10/s"))
            .fault(pause(target.pid(), "300ms", "3s", Some("node"))),
    );
    let controller = case.spawn(&file);
    wait_for("the pause", Duration::from_secs(10), || {
        paused(target.pid())
    });
    agent.kill();
    let out = controller.wait_with_output();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}\n{}",
        std::fs::read_to_string(case.path("report.json")).unwrap_or_default(),
        String::from_utf8_lossy(&out.stdout)
    );
    let report = case.report();
    assert_eq!(report.run.status, "revertUnconfirmed");
    let agent = report.fault("freeze").agent();
    let error = agent.error.as_deref().unwrap();
    // Either the apply was answered (the fault id is known and named) or the agent died
    // before answering (the fault is named by experiment and fault name): both say where.
    match agent.fault_id.as_deref() {
        Some(id) => assert!(
            error.contains(id) && error.contains(&addr.to_string()),
            "{error}"
        ),
        None => assert!(
            error.contains("outcome unknown")
                && error.contains("`freeze`")
                && error.contains(&addr.to_string()),
            "{error}"
        ),
    }
    assert!(report.run.reason.as_ref().unwrap().contains("freeze"));
    // Still paused: nobody is left to revert it (until an agent restarts and sweeps).
    assert_eq!(state(target.pid()), Some('T'));
}

#[test]
fn sigint_during_an_agent_fault_reverts_it_and_exits_2() {
    let target = Owned::sleeper();
    let case = case();
    let file = case.write(
        Experiment::new("interrupted", "60s")
            .probe(tcp_probe("p", format!("127.0.0.1:{}", free_port()), "10/s"))
            .fault(pause(target.pid(), "300ms", "50s", None)),
    );
    let controller = case.spawn(&file);
    wait_for("the pause", Duration::from_secs(10), || {
        paused(target.pid())
    });
    controller.signal(Signal::SIGINT);
    let out = controller.wait_with_output();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        !paused(target.pid()),
        "still paused after the interrupted run"
    );
    let report = case.report();
    assert_eq!(report.run.status, "interrupted");
    assert_eq!(report.fault("freeze").status, "reverted");
}

/// An experiment with one long network fault `fault_name` (`network`: its effect and
/// filter) on the agent at `addr`, in the network namespace of process `pid`.
fn network_fault_on_agent(
    name: &str,
    fault_name: &str,
    addr: SocketAddr,
    network: &str,
    pid: u32,
) -> Experiment {
    Experiment::new(name, "60s")
        .agent(
            "node",
            node_agent(format!("http://{addr}")).with("lease", "30s"),
        )
        .probe(tcp_probe("p", addr, "10/s"))
        .fault(fault(fault_name, "300ms").with("duration", "50s").with(
            "network",
            format!("{{ agent: node, {network}, namespace: {{ pid: {pid} }} }}"),
        ))
}

/// The agent and the controller both SIGKILLed: nobody is left to revert.
fn kill_both(agent: &mut Owned, controller: &mut Owned) {
    agent.kill();
    controller.kill();
}

#[test]
fn agent_killed_holding_a_network_fault_sweeps_it_on_restart() {
    if !root_or_skip(
        "agent_killed_holding_a_network_fault_sweeps_it_on_restart",
        "iptables NFQUEUE in the host namespace",
    ) {
        return;
    }
    let ns = Netns::new("kill9");
    // A process living in the namespace names it for the agent.
    let holder = ns.holder();
    let case = case();
    let (mut agent, addr) = start_agent(&case.path("agent"), "ci", &[]);
    let file = case.write(network_fault_on_agent(
        "orphaned-rule",
        "cut",
        addr,
        "blackhole: true, to: { ports: [9] }",
        holder.pid(),
    ));
    let mut controller = case.spawn(&file);
    wait_for("the rule in the namespace", Duration::from_secs(10), || {
        ns.has_shakeout_table()
    });
    // Both die without a chance to revert: the rule outlives them (until the sweep).
    kill_both(&mut agent, &mut controller);
    assert!(
        ns.has_shakeout_table(),
        "the rule vanished before any sweep"
    );
    let _agent = start_agent(&case.path("agent"), "ci", &[]);
    // `listening` is printed after the start-up sweep, so the rule must be gone now.
    assert!(
        !ns.has_shakeout_table(),
        "the restarted agent's sweep left the rule behind"
    );
}

#[test]
fn nfqueue_fails_open_when_the_agent_process_is_killed() {
    if !root_or_skip(
        "nfqueue_fails_open_when_the_agent_process_is_killed",
        "iptables NFQUEUE in the host namespace",
    ) {
        return;
    }
    let ns = Netns::new("bypass");
    // A fixed port is safe here: the namespace, and so its port space, is the test's own.
    let port = 18555;
    // The listener inside the namespace is also the process that names it for the agent.
    let listener = Owned::spawn(&mut ns.sample_service(port));
    wait_for("the listener", Duration::from_secs(5), || ns.connects(port));
    let case = case();
    let (mut agent, addr) = start_agent(&case.path("agent"), "ci", &[]);
    let file = case.write(network_fault_on_agent(
        "fail-open",
        "slow",
        addr,
        &format!("latency: {{ delay: 2s }}, to: {{ ports: [{port}], protocol: tcp }}, mechanism: nfqueue"),
        listener.pid(),
    ));
    let mut controller = case.spawn(&file);
    wait_for("the NFQUEUE rule", Duration::from_secs(10), || {
        ns.has_shakeout_iptables_rule()
    });
    // The fault works: the SYN waits its 2 s in the agent's queue.
    let slow = ns.connect_time(port);
    assert!(
        slow >= Duration::from_millis(1500),
        "connect took {slow:?} under a 2 s delay"
    );
    kill_both(&mut agent, &mut controller);
    // No reader any more: --queue-bypass lets packets through at once, rule or not.
    assert!(
        ns.has_shakeout_iptables_rule(),
        "the rule vanished before any sweep"
    );
    let fast = ns.connect_time(port);
    assert!(
        fast < Duration::from_millis(1000),
        "connect took {fast:?} after the agent died: not failing open"
    );
    let _agent = start_agent(&case.path("agent"), "ci", &[]);
    assert!(
        !ns.has_shakeout_iptables_rule(),
        "the restarted agent's sweep left the NFQUEUE rule"
    );
}
