//! The controller driving real agents: the embedded one (pausing a supervised service,
//! and — as root — network latency through nfqueue), an in-process node agent whose
//! controller is SIGKILLed mid-fault (the lease expires and the agent reverts), the
//! `preflight` command, and an agent SIGKILLed mid-fault (the run exits 4 naming it).

#![allow(clippy::unwrap_used)] // test helpers: a failed setup should panic loudly

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::netns::Netns;
use common::{free_port, root_or_skip, self_signed, shakeout, start_agent};
use serde_json::Value;
use shakeout_agent::server::{serve, Limits, ServerConfig, Tokens};
use shakeout_agent::{Agent, AgentConfig};
use tokio_util::sync::CancellationToken;

const SECRET: &str = "test-secret-0123456789abcdef";

/// Process state letter from /proc/PID/stat (`S`, `T`, ...).
fn state(pid: u32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rfind(')')
        .and_then(|i| stat[i + 2..].chars().next())
        .unwrap_or('?')
}

fn wait_for(what: &str, limit: Duration, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A child to pause; killed on drop.
struct Sleeper(Child);

impl Sleeper {
    fn new() -> Self {
        Sleeper(Command::new("sleep").arg("60").spawn().unwrap())
    }
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT);
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A node agent served in-process from the test's own runtime.
struct LocalAgent {
    runtime: tokio::runtime::Runtime,
    url: String,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

impl LocalAgent {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let stop = CancellationToken::new();
        let url = runtime.block_on(async {
            let agent = Agent::start(AgentConfig::new(dir.path().join("state")))
                .await
                .unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let tokens = Tokens::parse(&format!("ci:{SECRET}")).unwrap();
            let config = ServerConfig {
                tokens,
                tls: None,
                limits: Limits::default(),
            };
            tokio::spawn(serve(listener, agent, config, stop.clone()));
            format!("http://{addr}")
        });
        LocalAgent {
            runtime,
            url,
            stop,
            _dir: dir,
        }
    }
}

impl Drop for LocalAgent {
    fn drop(&mut self) {
        self.stop.cancel();
        // Give the server a moment to close its listener before the runtime goes.
        self.runtime
            .block_on(async { tokio::time::sleep(Duration::from_millis(50)).await });
    }
}

struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new() -> Self {
        Case {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn write(&self, yaml: &str) -> PathBuf {
        let p = self.path("exp.yaml");
        std::fs::write(&p, yaml).unwrap();
        p
    }
    fn command(&self, file: &Path) -> Command {
        let mut cmd = shakeout();
        cmd.arg("run")
            .arg(file)
            .arg("--json")
            .arg(self.path("report.json"))
            .arg("--quiet")
            .env("SHAKEOUT_STATE_DIR", self.path("state"))
            .env("AGENT_TOKEN", SECRET)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }
    fn report(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.path("report.json")).unwrap()).unwrap()
    }
}

fn sample_service(port: u16) -> String {
    format!(
        r#"  services:
    - name: sample
      command: ["${{exe}}", sample-service, --listen, "127.0.0.1:{port}"]
      ready: {{ http: "http://127.0.0.1:{port}/health", within: 5s }}
  probes:
    - name: health
      http: {{ url: "http://127.0.0.1:{port}/health", timeout: 300ms }}
      rate: 100/s
"#
    )
}

#[test]
fn embedded_agent_pauses_a_service_and_the_outage_is_measured() {
    let case = Case::new();
    let port = free_port();
    let file = case.write(&format!(
        r#"apiVersion: shakeout/v1
kind: Experiment
metadata: {{ name: pause }}
spec:
  duration: 30s
{}  steadyState: {{ window: 1s, availability: {{ min: 99% }} }}
  faults:
    - name: freeze
      at: 1s
      duration: 1s
      process: {{ target: {{ service: sample }}, pause: {{}} }}
  objectives:
    rto: {{ max: 5s, stableFor: 500ms }}
"#,
        sample_service(port)
    ));
    let out = case.command(&file).output().unwrap();
    let report = case.report();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let fault = &report["faults"][0];
    assert_eq!(fault["status"], "reverted", "{fault:#}");
    assert_eq!(fault["agent"]["agent"], "embedded");
    assert!(
        fault["agent"]["targets"][0]
            .as_str()
            .unwrap()
            .contains("shakeout"),
        "{fault:#}"
    );
    // With a 300 ms timeout, sends due in all but the last 300 ms of the pause time out;
    // the later ones are answered after SIGCONT. The pause itself is the truth: SIGSTOP
    // came between the apply request (at 1 s) and its confirmation (`appliedMs`), SIGCONT
    // between the revert request (at 2 s) and its confirmation (`revertedMs`); on a
    // loaded machine either can lag. The RTO is exact to one 100 ms bucket at each end.
    let applied = fault["agent"]["appliedMs"].as_f64().unwrap();
    let reverted = fault["agent"]["revertedMs"].as_f64().unwrap();
    let (shortest, longest) = (2000.0 - applied, reverted - 1000.0);
    let rto = report["probes"][0]["rto"]["timeToRecoverMs"]
        .as_f64()
        .unwrap();
    assert!(
        rto >= shortest - 300.0 - 200.0 && rto <= longest - 300.0 + 200.0,
        "RTO {rto} ms for a pause between {shortest} and {longest} ms"
    );
    let faults = &report["probes"][0]["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["phase"] == "faults")
        .unwrap()["errors"];
    // At 100/s, one send per 10 ms of the pause (less its last 300 ms) timed out.
    let expected = ((shortest - 300.0 - 200.0) / 10.0).max(1.0);
    assert!(
        faults["timeout"].as_u64().unwrap_or(0) as f64 >= expected,
        "{faults}: expected at least {expected} timeouts"
    );
}

#[test]
fn a_killed_controller_leaves_nothing_behind_the_lease_expires() {
    let agent = LocalAgent::start();
    let target = Sleeper::new();
    let case = Case::new();
    let file = case.write(&format!(
        r#"apiVersion: shakeout/v1
kind: Experiment
metadata: {{ name: orphan }}
spec:
  duration: 60s
  agents:
    node: {{ url: "{}", tokenFrom: {{ env: AGENT_TOKEN }}, lease: 2s }}
  probes:
    - name: agent-port
      tcp: {{ address: "{}" }}
      rate: 10/s
  faults:
    - name: freeze
      at: 300ms
      duration: 50s
      process: {{ agent: node, target: {{ pid: {} }}, pause: {{}} }}
"#,
        agent.url,
        agent.url.trim_start_matches("http://"),
        target.pid()
    ));
    let mut controller = case.command(&file).spawn().unwrap();
    wait_for("the pause", Duration::from_secs(10), || {
        state(target.pid()) == 'T'
    });
    // Let it renew at least once, then kill it without a chance to revert.
    std::thread::sleep(Duration::from_millis(1000));
    controller.kill().unwrap();
    let killed = Instant::now();
    controller.wait().unwrap();
    wait_for(
        "the agent's revert at the lease deadline",
        Duration::from_secs(4),
        || state(target.pid()) != 'T',
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
fn preflight_reports_ready_wrong_token_and_unreachable() {
    let agent = LocalAgent::start();
    let case = Case::new();
    let yaml = |url: &str| {
        format!(
            r#"apiVersion: shakeout/v1
kind: Experiment
metadata: {{ name: pre }}
spec:
  duration: 10s
  agents:
    node: {{ url: "{url}", tokenFrom: {{ env: AGENT_TOKEN }} }}
  probes:
    - {{ name: p, tcp: {{ address: "127.0.0.1:9" }}, rate: 1/s }}
  faults:
    - name: slow
      at: 1s
      duration: 2s
      network: {{ agent: node, blackhole: true, to: {{ ports: [9] }} }}
"#
        )
    };
    let file = case.write(&yaml(&agent.url));
    let run = |token: &str| {
        shakeout()
            .arg("preflight")
            .arg(&file)
            .env("AGENT_TOKEN", token)
            .output()
            .unwrap()
    };
    let ok = run(SECRET);
    let text = String::from_utf8_lossy(&ok.stdout);
    let nft_ok = text.contains("nftables: available");
    // Ready when this machine has nftables (CI does); otherwise it must say why not.
    if nft_ok {
        assert_eq!(ok.status.code(), Some(0), "{text}");
        assert!(
            text.contains("agent node") && text.contains("ready"),
            "{text}"
        );
    } else {
        assert_eq!(ok.status.code(), Some(3), "{text}");
        assert!(text.contains("blackhole needs nftables"), "{text}");
    }
    let bad = run("not-the-secret-at-all");
    assert_eq!(bad.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&bad.stdout).contains("401 unauthorized"),
        "{}",
        String::from_utf8_lossy(&bad.stdout)
    );
    let file = case.write(&yaml(&format!("http://127.0.0.1:{}", free_port())));
    let down = shakeout()
        .arg("preflight")
        .arg(&file)
        .env("AGENT_TOKEN", SECRET)
        .output()
        .unwrap();
    assert_eq!(down.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&down.stdout).contains("unreachable"),
        "{}",
        String::from_utf8_lossy(&down.stdout)
    );
}

#[test]
fn an_agent_killed_mid_fault_makes_the_run_exit_4_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut agent, addr) = start_agent(dir.path(), &format!("ci:{SECRET}"), &[]);
    let target = Sleeper::new();
    let case = Case::new();
    let file = case.write(&format!(
        r#"apiVersion: shakeout/v1
kind: Experiment
metadata: {{ name: lost-agent }}
spec:
  duration: 8s
  agents:
    node: {{ url: "http://{addr}", tokenFrom: {{ env: AGENT_TOKEN }}, lease: 2s }}
  probes:
    - {{ name: p, tcp: {{ address: "{addr}" }}, rate: 10/s }}
  faults:
    - name: freeze
      at: 300ms
      duration: 3s
      process: {{ agent: node, target: {{ pid: {} }}, pause: {{}} }}
"#,
        target.pid()
    ));
    let controller = case.command(&file).spawn().unwrap();
    wait_for("the pause", Duration::from_secs(10), || {
        state(target.pid()) == 'T'
    });
    agent.kill().unwrap();
    agent.wait().unwrap();
    let out = controller.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}\n{}",
        std::fs::read_to_string(case.path("report.json")).unwrap_or_default(),
        String::from_utf8_lossy(&out.stdout)
    );
    let report = case.report();
    assert_eq!(report["run"]["status"], "revertUnconfirmed");
    let error = report["faults"][0]["agent"]["error"].as_str().unwrap();
    // Either the apply was answered (the fault id is known and named) or the agent died
    // before answering (the fault is named by experiment and fault name): both say where.
    match report["faults"][0]["agent"]["faultId"].as_str() {
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
    assert!(report["run"]["reason"].as_str().unwrap().contains("freeze"));
    // Still paused: nobody is left to revert it (until an agent restarts and sweeps).
    assert_eq!(state(target.pid()), 'T');
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
    let port = free_port();
    let file = case.write(&format!(
        r#"apiVersion: shakeout/v1
kind: Experiment
metadata: {{ name: slow-link }}
spec:
  duration: 30s
{}  steadyState: {{ window: 1500ms, availability: {{ min: 99% }} }}
  faults:
    - name: slow
      at: 1500ms
      duration: 2s
      network: {{ latency: {{ delay: 40ms }}, to: {{ ports: [{port}], protocol: tcp }} }}
"#,
        sample_service(port)
    ));
    let out = case.command(&file).output().unwrap();
    let report = case.report();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report["faults"][0]["agent"]["mechanism"], "nfqueue");
    let phase = |name: &str| {
        report["probes"][0]["phases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["phase"] == name)
            .unwrap()["latency"]["p50Ms"]
            .as_f64()
            .unwrap()
    };
    let (baseline, faults) = (phase("baseline"), phase("faults"));
    assert!(baseline < 10.0, "baseline p50 {baseline} ms");
    // Requests are delayed one way by 40 ms; the answer is not.
    assert!(
        (40.0..=55.0).contains(&faults),
        "p50 during the fault {faults} ms"
    );
    assert!(phase("steady") < 10.0, "latency did not come back");
    let rules = Command::new("iptables").arg("-S").output().unwrap();
    let rules = String::from_utf8_lossy(&rules.stdout);
    assert!(!rules.contains("shakeout:"), "rule left behind:\n{rules}");
}

/// `preflight` checks the embedded agent the way `run` uses it: it starts the guardian,
/// reads what it can do, and says what is missing. As root the demo is ready; the same
/// binary run as an unprivileged user (uid 65534) is not, and says it lacks CAP_NET_ADMIN.
#[test]
fn preflight_checks_the_embedded_agent_and_says_what_is_missing() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/demo.yaml");
    let case = Case::new();
    let out = shakeout()
        .arg("preflight")
        .arg(&demo)
        .env("SHAKEOUT_STATE_DIR", case.path("state"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("agent embedded (http://127.0.0.1:"), "{text}");
    if !root_or_skip(
        "preflight_checks_the_embedded_agent_and_says_what_is_missing (as root)",
        "root's capabilities, and an unprivileged user to compare",
    ) {
        return;
    }
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("ready") && text.contains("CAP_NET_ADMIN"),
        "{text}"
    );
    // No guardian is left once preflight has answered.
    assert!(
        !std::fs::read_dir(case.path("state/embedded"))
            .unwrap()
            .flatten()
            .any(|e| e.path().is_dir()),
        "a guardian state directory was left behind"
    );

    // The same, unprivileged: a copy of the binary and a state root it may use.
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let open = tempfile::tempdir().unwrap();
    std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let bin = open.path().join("shakeout");
    std::fs::copy(env!("CARGO_BIN_EXE_shakeout"), &bin).unwrap();
    let exp = open.path().join("demo.yaml");
    std::fs::copy(&demo, &exp).unwrap();
    let out = Command::new(&bin)
        .arg("preflight")
        .arg(&exp)
        .env("SHAKEOUT_STATE_DIR", open.path().join("state"))
        .env("HOME", open.path())
        .current_dir(open.path())
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("NOT READY")
            && text.contains("runs as uid 65534")
            && text.contains("network faults need CAP_NET_ADMIN"),
        "{text}"
    );
}

#[test]
fn preflight_over_tls_trusts_only_the_configured_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (Some((cert, key)), Some((other, _))) = (
        self_signed(dir.path(), "agent", "IP:127.0.0.1"),
        self_signed(dir.path(), "other", "IP:127.0.0.1"),
    ) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "the openssl CLI is needed to make test certificates"
        );
        eprintln!("skipped: the openssl CLI is needed to make test certificates");
        return;
    };
    let tls = [
        "--tls-cert".as_ref(),
        cert.as_os_str(),
        "--tls-key".as_ref(),
        key.as_os_str(),
    ];
    let (mut agent, addr) = start_agent(dir.path(), &format!("ci:{SECRET}"), &tls);
    let case = Case::new();
    let preflight = |ca: &Path| {
        let file = case.write(&format!(
            r#"apiVersion: shakeout/v1
kind: Experiment
metadata: {{ name: tls }}
spec:
  duration: 10s
  agents:
    node: {{ url: "https://{addr}", tokenFrom: {{ env: AGENT_TOKEN }}, ca: "{}" }}
  probes:
    - {{ name: p, tcp: {{ address: "{addr}" }}, rate: 1/s }}
  faults:
    - name: freeze
      at: 1s
      duration: 1s
      process: {{ agent: node, target: {{ pid: 1 }}, pause: {{}} }}
"#,
            ca.display()
        ));
        shakeout()
            .arg("preflight")
            .arg(&file)
            .env("AGENT_TOKEN", SECRET)
            .output()
            .unwrap()
    };
    let good = preflight(&cert);
    let text = String::from_utf8_lossy(&good.stdout);
    assert_eq!(good.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!("agent node (https://{addr}): ready")),
        "{text}"
    );
    let bad = preflight(&other);
    let text = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(3), "{text}");
    assert!(text.contains("TLS"), "{text}");
    agent.kill().unwrap();
    agent.wait().unwrap();
}

#[test]
fn sigint_during_an_agent_fault_reverts_it_and_exits_2() {
    let target = Sleeper::new();
    let case = Case::new();
    let file = case.write(&format!(
        r#"apiVersion: shakeout/v1
kind: Experiment
metadata: {{ name: interrupted }}
spec:
  duration: 60s
  probes:
    - {{ name: p, tcp: {{ address: "127.0.0.1:{}" }}, rate: 10/s }}
  faults:
    - name: freeze
      at: 300ms
      duration: 50s
      process: {{ target: {{ pid: {} }}, pause: {{}} }}
"#,
        free_port(),
        target.pid()
    ));
    let controller = case.command(&file).spawn().unwrap();
    wait_for("the pause", Duration::from_secs(10), || {
        state(target.pid()) == 'T'
    });
    let pid = nix::unistd::Pid::from_raw(controller.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let out = controller.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_ne!(
        state(target.pid()),
        'T',
        "still paused after the interrupted run"
    );
    let report = case.report();
    assert_eq!(report["run"]["status"], "interrupted");
    assert_eq!(report["faults"][0]["status"], "reverted");
}

fn start_agent_ci(dir: &Path) -> (Child, String) {
    let (agent, addr) = start_agent(dir, &format!("ci:{SECRET}"), &[]);
    (agent, addr.to_string())
}

/// An experiment with one long network fault (`network`: its effect and filter) on the
/// agent at `addr`, in the network namespace of process `pid`.
fn network_fault_on_agent(name: &str, fault: &str, addr: &str, network: &str, pid: u32) -> String {
    format!(
        r#"apiVersion: shakeout/v1
kind: Experiment
metadata: {{ name: {name} }}
spec:
  duration: 60s
  agents:
    node: {{ url: "http://{addr}", tokenFrom: {{ env: AGENT_TOKEN }}, lease: 30s }}
  probes:
    - {{ name: p, tcp: {{ address: "{addr}" }}, rate: 10/s }}
  faults:
    - name: {fault}
      at: 300ms
      duration: 50s
      network: {{ agent: node, {network}, namespace: {{ pid: {pid} }} }}
"#
    )
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
    let mut holder = Command::new("ip")
        .args(["netns", "exec", &ns.0, "sleep", "60"])
        .spawn()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mut agent, addr) = start_agent_ci(dir.path());
    let case = Case::new();
    let file = case.write(&network_fault_on_agent(
        "orphaned-rule",
        "cut",
        &addr,
        "blackhole: true, to: { ports: [9] }",
        holder.id(),
    ));
    let mut controller = case.command(&file).spawn().unwrap();
    wait_for("the rule in the namespace", Duration::from_secs(10), || {
        ns.has_shakeout_table()
    });
    // Both die without a chance to revert: the rule outlives them (until the sweep).
    agent.kill().unwrap();
    agent.wait().unwrap();
    controller.kill().unwrap();
    controller.wait().unwrap();
    assert!(
        ns.has_shakeout_table(),
        "the rule vanished before any sweep"
    );
    let (mut agent, _) = start_agent_ci(dir.path());
    // `listening` is printed after the start-up sweep, so the rule must be gone now.
    assert!(
        !ns.has_shakeout_table(),
        "the restarted agent's sweep left the rule behind"
    );
    agent.kill().unwrap();
    agent.wait().unwrap();
    holder.kill().unwrap();
    holder.wait().unwrap();
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
    let mut listener = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(env!("CARGO_BIN_EXE_shakeout"))
        .args(["sample-service", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the listener", Duration::from_secs(5), || {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns.0,
                "bash",
                "-c",
                &format!("exec 3<>/dev/tcp/127.0.0.1/{port}"),
            ])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    let dir = tempfile::tempdir().unwrap();
    let (mut agent, addr) = start_agent_ci(dir.path());
    let case = Case::new();
    let file = case.write(&network_fault_on_agent("fail-open", "slow", &addr, &format!("latency: {{ delay: 2s }}, to: {{ ports: [{port}], protocol: tcp }}, mechanism: nfqueue"), listener.id()));
    let mut controller = case.command(&file).spawn().unwrap();
    wait_for("the NFQUEUE rule", Duration::from_secs(10), || {
        ns.has_shakeout_iptables_rule()
    });
    // The fault works: the SYN waits its 2 s in the agent's queue.
    let slow = ns.connect_time(port);
    assert!(
        slow >= Duration::from_millis(1500),
        "connect took {slow:?} under a 2 s delay"
    );
    agent.kill().unwrap();
    agent.wait().unwrap();
    controller.kill().unwrap();
    controller.wait().unwrap();
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
    let (mut agent, _) = start_agent_ci(dir.path());
    assert!(
        !ns.has_shakeout_iptables_rule(),
        "the restarted agent's sweep left the NFQUEUE rule"
    );
    agent.kill().unwrap();
    agent.wait().unwrap();
    listener.kill().unwrap();
    listener.wait().unwrap();
}
