//! The harness chaos-tested like the services it tests (issue 9): the controller of a
//! run with embedded-agent faults (nfqueue latency, an nftables blackhole, a pause) is
//! SIGKILLed, or its whole process group SIGSTOPped (Ctrl-Z), at seeded random instants
//! across apply, renew and revert; after the lease + 2 s nothing may be left: no nft table
//! or iptables rule of ours in the run's network namespace, no paused process, an empty
//! ledger. A fault applied in one namespace and swept from another is reverted where it
//! was applied (or reported gone), never in the sweeper's namespace.
//!
//! Each run happens in a network namespace of the test's own. The number of instants
//! and the seed come from `SHAKEOUT_CHAOS_INSTANTS` (default 5) and `SHAKEOUT_CHAOS_SEED`
//! (default fixed); `benches/chaos.py` runs this with 50 instants and tabulates the
//! `chaos:` lines each case prints.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup should panic loudly

mod kit;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use kit::netns::{host_has_shakeout_table, Netns};
use kit::process::BIN;
use kit::report::Report;
use kit::wait::within;
use kit::{root_or_skip, shakeout, state, wait_for, Owned};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rand::{Rng, SeedableRng};

/// The embedded agent's lease (`src/fault/embedded.rs`).
const LEASE: Duration = Duration::from_secs(5);
/// What the issue allows past the lease for everything to be gone.
const SLACK: Duration = Duration::from_secs(2);
/// The sample service's port inside the test's namespace (its port space is its own).
const PORT: u16 = 18600;
/// The blackholed port (nothing needs to listen on it).
const CUT_PORT: u16 = 18601;
/// How long a run lasts; kill instants fall in [0, RUN_SPAN).
const RUN_SPAN: Duration = Duration::from_millis(4400);

/// The seed of `case`, and the instants into a run at which to strike, drawn from it.
fn instants(case: u64) -> (u64, Vec<Duration>) {
    let n = std::env::var("SHAKEOUT_CHAOS_INSTANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let seed = seed(case);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let at = (0..n)
        .map(|_| Duration::from_micros(rng.random_range(0..RUN_SPAN.as_micros() as u64)))
        .collect();
    (seed, at)
}

/// `SHAKEOUT_CHAOS_KEEP_GOING=1` (the benchmark script): count an instant that left
/// something, wait for it to clear, and go on; fail at the end. Otherwise fail at once.
fn keep_going() -> bool {
    std::env::var_os("SHAKEOUT_CHAOS_KEEP_GOING").is_some_and(|v| v == "1")
}

fn seed(case: u64) -> u64 {
    let base = std::env::var("SHAKEOUT_CHAOS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_c4a0_5000);
    base ^ case
}

/// One namespace, its service and a process to pause, and a state root for the
/// embedded agents of every run in it.
struct Lab {
    ns: Netns,
    service: Owned,
    sleeper: Owned,
    state: tempfile::TempDir,
    dir: tempfile::TempDir,
}

/// What every test here needs, as root.
const NEEDS: &str = "network namespaces, nftables, iptables";

impl Lab {
    /// The lab of `test` (namespace `tag`) and its experiment; `None` when the test
    /// skips (not root, outside CI).
    fn for_test(test: &str, tag: &str) -> Option<(Lab, PathBuf)> {
        if !root_or_skip(test, NEEDS) {
            return None;
        }
        let lab = Lab::new(tag);
        let file = lab.experiment(tag);
        Some((lab, file))
    }

    fn new(tag: &str) -> Lab {
        let ns = Netns::new(tag);
        let service = Owned::spawn(&mut ns.sample_service(PORT));
        wait_for(
            "the sample service to listen",
            Duration::from_secs(10),
            || ns.connects(PORT),
        );
        let sleeper = Owned::sleeper();
        Lab {
            ns,
            service,
            sleeper,
            state: tempfile::tempdir().unwrap(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The experiment: latency on the service's port, then a blackhole (one network fault
    /// at a time: they are exclusive per namespace), and a pause across both.
    fn experiment(&self, name: &str) -> PathBuf {
        let file = self.dir.path().join(format!("{name}.yaml"));
        std::fs::write(
            &file,
            format!(
                r#"apiVersion: shakeout/v1
kind: Experiment
metadata: {{ name: {name} }}
spec:
  duration: 4500ms
  probes:
    - {{ name: web, http: {{ url: "http://127.0.0.1:{PORT}/health", timeout: 1s }}, rate: 50/s }}
  faults:
    - name: slow
      at: 300ms
      duration: 1800ms
      network: {{ latency: {{ delay: 60ms }}, to: {{ ports: [{PORT}], protocol: tcp }} }}
    - name: cut
      at: 2300ms
      duration: 1800ms
      network: {{ blackhole: true, to: {{ ports: [{CUT_PORT}], protocol: tcp }} }}
    - name: freeze
      at: 300ms
      duration: 3800ms
      process: {{ target: {{ pid: {} }}, pause: {{}} }}
"#,
                self.sleeper.pid()
            ),
        )
        .unwrap();
        file
    }

    /// The seed of `case`, and one run of `file` per instant drawn from it, each started
    /// as the iterator reaches it: (instant number, instant, run).
    fn runs_at_instants<'a>(
        &'a self,
        file: &'a Path,
        case: u64,
    ) -> (u64, impl Iterator<Item = (usize, Duration, Owned)> + 'a) {
        let (seed, at) = instants(case);
        let runs = at
            .into_iter()
            .enumerate()
            .map(move |(i, at)| (i, at, self.start_run(file)));
        (seed, runs)
    }

    /// `shakeout run FILE` inside the namespace with this lab's state root, writing
    /// `report.json` in the lab's directory.
    fn start_run(&self, file: &Path) -> Owned {
        start_run_in(&self.ns, file, self.state.path(), Some(&self.report_path()))
    }

    fn report_path(&self) -> PathBuf {
        self.dir.path().join("report.json")
    }

    /// Ledger entries of every embedded agent under the state root.
    fn ledger_entries(&self) -> Vec<PathBuf> {
        ledger_entries(self.state.path())
    }

    /// Live (non-zombie) guardians of this lab's state root.
    fn guardians(&self) -> Vec<u32> {
        guardians_of(self.state.path())
    }

    /// What is still left: empty when nothing is.
    fn leftovers(&self) -> Vec<String> {
        let mut left = Vec::new();
        if self.ns.has_shakeout_table() {
            left.push("nft table inet shakeout".into());
        }
        if self.ns.has_shakeout_iptables_rule() {
            left.push("iptables rule or chain".into());
        }
        if state(self.sleeper.pid()) == Some('T') {
            left.push(format!("pid {} stopped", self.sleeper.pid()));
        }
        let ledger = self.ledger_entries();
        if !ledger.is_empty() {
            left.push(format!("ledger entries {ledger:?}"));
        }
        left
    }

    /// Waits until nothing is left: the time from `since` until then, or what was
    /// still left `limit` after `since`.
    fn wait_clean(&self, since: Instant, limit: Duration) -> Result<Duration, Vec<String>> {
        let mut left = Vec::new();
        within(since, limit, || {
            left = self.leftovers();
            left.is_empty()
        })
        .ok_or(left)
    }

    /// Waits until no guardian of this lab is alive; `after` says after what, if one is.
    fn wait_no_guardian(&self, limit: Duration, after: &str) {
        if within(Instant::now(), limit, || self.guardians().is_empty()).is_none() {
            panic!(
                "guardian {:?} still alive {limit:?} {after}",
                self.guardians()
            );
        }
    }

    /// True when the service answers an HTTP request inside the namespace within
    /// `limit`; returns how long it took.
    fn http_time(&self, limit: Duration) -> Option<Duration> {
        let started = Instant::now();
        let ok = self
            .ns
            .command("timeout")
            .arg(format!("{}", limit.as_secs_f64()))
            .args(["bash", "-c"])
            .arg(format!(
                "exec 3<>/dev/tcp/127.0.0.1/{PORT}; printf 'GET /health HTTP/1.0\\r\\n\\r\\n' >&3; head -c 12 <&3 | grep -q 200"
            ))
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| started.elapsed())
    }
}

fn ledger_entries(root: &Path) -> Vec<PathBuf> {
    let Ok(dirs) = std::fs::read_dir(root.join("embedded")) else {
        return Vec::new();
    };
    dirs.flatten()
        .filter_map(|d| std::fs::read_dir(d.path().join("ledger")).ok())
        .flat_map(|l| l.flatten().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect()
}

/// Pids of live guardians whose command line names `root` (zombies are gone: nobody
/// may be left to reap a guardian whose controller was killed).
fn guardians_of(root: &Path) -> Vec<u32> {
    let wanted = root.join("embedded").display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline.contains("guardian") && cmdline.contains(&wanted) && state(*pid) != Some('Z')
        })
        .collect()
}

/// `shakeout run FILE` inside `ns` with the state root `state` (and a JSON report if
/// asked), in a process group of its own (as a shell starts a job), its output discarded.
fn start_run_in(ns: &Netns, file: &Path, state: &Path, json: Option<&Path>) -> Owned {
    use std::os::unix::process::CommandExt;
    let mut run = ns.command(BIN);
    run.args(["run", "-q"]).arg(file);
    if let Some(json) = json {
        run.arg("--json").arg(json);
    }
    Owned::spawn(
        run.env("SHAKEOUT_STATE_DIR", state)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0),
    )
}

/// Prints the `chaos:` line of instant `i` of `case` (benches/chaos.py tabulates them):
/// what was held at the instant, `extra` fields, whether everything was cleaned, and how
/// long after `since` that took (or how long was waited).
#[allow(clippy::too_many_arguments)]
fn chaos_line(
    case: &str,
    seed: u64,
    i: usize,
    at: Duration,
    held: &[String],
    extra: &str,
    cleaned: &Result<Duration, Vec<String>>,
    since: Instant,
) {
    eprintln!(
        "chaos: case={case} seed={seed} instant={i} at_ms={} held=[{}] {extra}clean={} revert_ms={}",
        at.as_millis(),
        held.join("; "),
        cleaned.is_ok(),
        cleaned.as_ref().map_or(since.elapsed(), |d| *d).as_millis()
    );
}

/// Waits, bounded, for a signalled run to end (reaping it).
fn reap(run: &mut Owned, limit: Duration, what: &str) {
    wait_for(what, limit, || run.try_wait().is_some());
}

#[test]
fn controller_sigkilled_at_random_instants_leaves_nothing() {
    let Some((lab, file)) = Lab::for_test(
        "controller_sigkilled_at_random_instants_leaves_nothing",
        "chaos-kill",
    ) else {
        return;
    };
    let (seed, runs) = lab.runs_at_instants(&file, 1);
    let mut worst = Duration::ZERO;
    let mut failures = 0;
    for (i, at, mut run) in runs {
        std::thread::sleep(at);
        let held = lab.leftovers();
        run.signal(Signal::SIGKILL);
        let killed = Instant::now();
        reap(&mut run, Duration::from_secs(10), "the killed run to end");
        let cleaned = lab.wait_clean(killed, LEASE + SLACK);
        let took = killed.elapsed();
        chaos_line("sigkill", seed, i, at, &held, "", &cleaned, killed);
        match cleaned {
            Ok(d) => worst = worst.max(d),
            Err(left) if keep_going() => {
                eprintln!("chaos: case=sigkill instant={i} LEFT {left:?}");
                failures += 1;
                let _ = lab.wait_clean(Instant::now(), Duration::from_secs(60));
            }
            Err(left) => panic!(
                "SIGKILL at {at:?} (instant {i}, seed {seed}): after {took:?} still left: {left:?}"
            ),
        }
        // The guardian exits once it has reverted.
        lab.wait_no_guardian(Duration::from_secs(10), "after its controller was killed");
    }
    eprintln!(
        "chaos: case=sigkill seed={seed} worst_revert_ms={}",
        worst.as_millis()
    );
    assert_eq!(failures, 0, "instants that left something behind");
    assert!(lab.service.pid() > 0);
}

#[test]
fn controller_process_group_stopped_at_random_instants_is_reverted_at_lease() {
    let Some((lab, file)) = Lab::for_test(
        "controller_process_group_stopped_at_random_instants_is_reverted_at_lease",
        "chaos-stop",
    ) else {
        return;
    };
    let (seed, runs) = lab.runs_at_instants(&file, 2);
    let mut failures = 0;
    for (i, at, mut run) in runs {
        let group = Pid::from_raw(-(run.pid() as i32));
        std::thread::sleep(at);
        kill(group, Signal::SIGSTOP).unwrap();
        let stopped = Instant::now();
        let held = lab.leftovers();
        // A latency fault must stay latency while its controller is stopped: the guardian's
        // queue reader keeps releasing packets (it was a blackhole when it froze with the
        // controller).
        let latency_ok = if held.iter().any(|h| h.contains("iptables")) {
            let took = lab.http_time(Duration::from_secs(3));
            assert!(
                took.is_some(),
                "a request to the service under a latency fault got no answer while the controller was stopped (instant {i}, seed {seed})"
            );
            format!("{}ms", took.unwrap().as_millis())
        } else {
            "-".into()
        };
        let cleaned = lab.wait_clean(stopped, LEASE + SLACK);
        let extra = format!("request_under_latency={latency_ok} ");
        chaos_line("sigstop", seed, i, at, &held, &extra, &cleaned, stopped);
        if let Err(left) = cleaned {
            if !keep_going() {
                let _ = kill(group, Signal::SIGKILL);
                panic!(
                    "SIGSTOP at {at:?} (instant {i}, seed {seed}): after {:?} still left: {left:?}",
                    stopped.elapsed()
                );
            }
            eprintln!("chaos: case=sigstop instant={i} LEFT {left:?}");
            failures += 1;
        }
        // The guardian is alive (its controller may come back) and holds nothing.
        kill(group, Signal::SIGCONT).unwrap();
        reap(
            &mut run,
            Duration::from_secs(30),
            "the resumed controller to finish",
        );
        let left = lab.wait_clean(Instant::now(), Duration::from_secs(5));
        assert!(left.is_ok(), "after the resumed run ended: {left:?}");
        lab.wait_no_guardian(Duration::from_secs(10), "after its controller finished");
    }
    assert_eq!(failures, 0, "instants that left something behind");
}

/// A run in namespace `ns` whose embedded blackhole is applied, then the guardian and the
/// controller SIGKILLed (guardian first, so nobody reverts): the rule stays in `ns` and
/// the record in the ledger under `state`.
fn orphan_a_rule_in(ns: &Netns, state: &Path, dir: &Path) -> PathBuf {
    let file = dir.join(format!("{}.yaml", ns.0));
    std::fs::write(
        &file,
        format!(
            r#"apiVersion: shakeout/v1
kind: Experiment
metadata: {{ name: orphan }}
spec:
  duration: 60s
  probes:
    - {{ name: p, tcp: {{ address: "127.0.0.1:{PORT}" }}, rate: 5/s }}
  faults:
    - name: cut
      at: 200ms
      duration: 50s
      network: {{ blackhole: true, to: {{ ports: [{CUT_PORT}], protocol: tcp }} }}
"#
        ),
    )
    .unwrap();
    let mut run = start_run_in(ns, &file, state, None);
    wait_for(
        &format!("the blackhole in {}", ns.0),
        Duration::from_secs(20),
        || ns.has_shakeout_table(),
    );
    for g in guardians_of(state) {
        kill(Pid::from_raw(g as i32), Signal::SIGKILL).unwrap();
    }
    run.signal(Signal::SIGKILL);
    reap(&mut run, Duration::from_secs(10), "the killed run to end");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        ns.has_shakeout_table(),
        "the rule vanished before any sweep"
    );
    assert_eq!(ledger_entries(state).len(), 1, "one fault in the ledger");
    file
}

/// `shakeout preflight FILE` from the test's own (host) namespace on `state`: its
/// guardian sweeps what dead guardians left. Returns stdout and stderr.
fn sweep_from_host(file: &Path, state: &Path) -> String {
    let out = shakeout()
        .arg("preflight")
        .arg(file)
        .env("SHAKEOUT_STATE_DIR", state)
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_fault_left_in_another_namespace_is_swept_there_or_reported_gone() {
    if !root_or_skip(
        "a_fault_left_in_another_namespace_is_swept_there_or_reported_gone",
        NEEDS,
    ) {
        return;
    }
    let host_before = host_has_shakeout_table();
    let state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();

    // Swept from the host namespace, reverted in namespace A, where it was applied.
    let a = Netns::new("sweep-a");
    let file = orphan_a_rule_in(&a, state.path(), dir.path());
    let started = Instant::now();
    let said = sweep_from_host(&file, state.path());
    let took = started.elapsed();
    assert!(
        said.contains("reverted f-"),
        "the sweep did not say it reverted the fault:\n{said}"
    );
    assert!(
        !a.has_shakeout_table(),
        "the sweep left the rule in {} (reverted elsewhere?):\n{said}",
        a.0
    );
    assert!(ledger_entries(state.path()).is_empty(), "{said}");
    assert_eq!(
        host_has_shakeout_table(),
        host_before,
        "the sweep touched the host namespace"
    );
    eprintln!(
        "chaos: case=other-namespace revert_ms={} said={:?}",
        took.as_millis(),
        said.lines().find(|l| l.contains("reverted"))
    );

    // The namespace is deleted before the sweep: reported gone, never "reverted", and
    // the entry leaves the ledger (there is nothing to revert, ever).
    let b = Netns::new("sweep-b");
    let file = orphan_a_rule_in(&b, state.path(), dir.path());
    drop(b);
    let said = sweep_from_host(&file, state.path());
    assert!(said.contains("is gone"), "not reported as gone:\n{said}");
    assert!(
        !said.contains("reverted f-"),
        "a gone namespace reported as reverted:\n{said}"
    );
    assert!(ledger_entries(state.path()).is_empty(), "{said}");
    assert_eq!(
        host_has_shakeout_table(),
        host_before,
        "the sweep touched the host namespace"
    );
    eprintln!(
        "chaos: case=namespace-gone said={:?}",
        said.lines().find(|l| l.contains("gone"))
    );
}

#[test]
fn a_guardian_killed_mid_run_is_swept_at_once_by_its_living_controller() {
    let Some((lab, file)) = Lab::for_test(
        "a_guardian_killed_mid_run_is_swept_at_once_by_its_living_controller",
        "chaos-guard",
    ) else {
        return;
    };
    let mut run = lab.start_run(&file);
    // Kill the guardian while the latency fault and the pause are held.
    wait_for("the faults", Duration::from_secs(20), || {
        lab.ns.has_shakeout_iptables_rule() && state(lab.sleeper.pid()) == Some('T')
    });
    let guardians = lab.guardians();
    assert_eq!(guardians.len(), 1, "{guardians:?}");
    kill(Pid::from_raw(guardians[0] as i32), Signal::SIGKILL).unwrap();
    let killed = Instant::now();
    let cleaned = lab.wait_clean(killed, SLACK);
    eprintln!(
        "chaos: case=guardian-sigkill clean={} revert_ms={}",
        cleaned.is_ok(),
        cleaned
            .as_ref()
            .map_or(killed.elapsed(), |d| *d)
            .as_millis()
    );
    assert!(cleaned.is_ok(), "after the guardian died: {cleaned:?}");
    reap(
        &mut run,
        Duration::from_secs(30),
        "the controller to finish",
    );
    let status = run.wait();
    let report = Report::read(&lab.report_path()).unwrap();
    assert!(
        report.has_event("guardian") && report.has_event("swept the dead guardian's ledger"),
        "{:#}",
        report.json()["events"]
    );
    // The faults it held were reverted (by the sweep), not left unconfirmed (exit 4).
    assert_ne!(status.code(), Some(4), "{}", report.json()["faults"]);
    for name in ["slow", "freeze"] {
        let f = report.fault(name);
        assert_eq!(f.status, "reverted", "{f:#?}");
    }
}
