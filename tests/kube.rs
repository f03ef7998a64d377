//! Kubernetes end to end: the real `shakeout` binary against the fake API server in
//! `tests/fake_kube` (real REST paths, a ReplicaSet that replaces deleted pods and makes
//! them Ready after a delay, RBAC and throttling errors), a real sample service on
//! 127.0.0.1 and, for faults on pods, a real `shakeout-agent` reached through the fake's
//! port-forward.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup should panic loudly

mod common;
mod fake_kube;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, root_or_skip, shakeout};
use fake_kube::FakeCluster;
use serde_json::Value;

/// The recovery time is polled every 200 ms (`RECOVERY_POLL`): it may be late by one
/// poll plus one list round trip, which on a loaded 2-core machine we bound by 800 ms.
const POLL: Duration = Duration::from_millis(200);
const LIST_SLACK: Duration = Duration::from_millis(800);

struct Case {
    dir: tempfile::TempDir,
    port: u16,
    fake: FakeCluster,
}

impl Case {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeCluster::start();
        fake.write_kubeconfig(&dir.path().join("kubeconfig"), "fake");
        fake.add_node("node-1");
        fake.add_node("node-2");
        Case {
            dir,
            port: free_port(),
            fake,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// An experiment with a sample service probed over HTTP and `faults`/`rest` spliced
    /// in; `{port}` is the service's port.
    fn write(&self, faults: &str, rest: &str) -> PathBuf {
        let text = format!(
            r#"apiVersion: shakeout/v1
kind: Experiment
metadata: {{ name: kube-test }}
spec:
  duration: 30s
  seed: 42
  kubernetes: {{ kubeconfig: kubeconfig, context: fake }}
  services:
    - name: sample
      command: ["${{exe}}", sample-service, --listen, "127.0.0.1:{port}"]
      ready: {{ http: "http://127.0.0.1:{port}/health", within: 5s }}
  probes:
    - name: health
      http: {{ url: "http://127.0.0.1:{port}/health", timeout: 300ms }}
      rate: 50/s
  faults:
{faults}
{rest}"#,
            port = self.port
        );
        let p = self.path("exp.yaml");
        std::fs::write(&p, text).unwrap();
        p
    }

    /// The standard workload: ReplicaSet `checkout-7d9f` in `shop`, labelled app=checkout.
    fn checkout(&self, replicas: u32, nodes: &[&str], ready_delay: Duration) {
        self.fake.add_replicaset(
            "shop",
            "checkout-7d9f",
            &[("app", "checkout")],
            replicas,
            nodes,
            ready_delay,
        );
    }

    /// The agent DaemonSet as the Helm chart labels it; node i's agent is `ports[i]`.
    fn agent_pods(&self, nodes: &[&str], ports: &[u16]) {
        self.fake.add_daemonset(
            "shakeout",
            "shakeout-agent",
            &[("app.kubernetes.io/name", "shakeout-agent")],
            nodes,
            ports,
        );
    }

    /// Rewrite the experiment: no supervised service (the test plays the pod's
    /// containers), and with `agents`, the cluster agents' token and a short lease.
    fn edit(&self, file: &Path, services: bool, agents: bool) {
        let mut yaml = std::fs::read_to_string(file).unwrap();
        if !services {
            let from = yaml.find("  services:").unwrap();
            let to = yaml.find("  probes:").unwrap();
            yaml.replace_range(from..to, "");
        }
        if agents {
            yaml = yaml.replace(
                "kubeconfig, context: fake }",
                "kubeconfig, context: fake, agents: { tokenFrom: { env: KUBE_TEST_TOKEN }, lease: 3s } }",
            );
        }
        std::fs::write(file, yaml).unwrap();
    }

    fn run(&self, file: &Path, extra: &[&str]) -> (Output, Value) {
        let json = self.path("report.json");
        let _ = std::fs::remove_file(&json);
        let out = shakeout()
            .arg("run")
            .arg(file)
            .arg("--json")
            .arg(&json)
            .arg("--quiet")
            .args(extra)
            .env("KUBE_TEST_TOKEN", SECRET)
            .env_remove("KUBECONFIG")
            .output()
            .unwrap();
        let report = std::fs::read_to_string(&json)
            .map(|t| serde_json::from_str(&t).unwrap())
            .unwrap_or(Value::Null);
        (out, report)
    }
}

impl Case {
    /// `run`, while another thread checks `seen` every `every`: also returns whether it
    /// was ever true during the run (what a fault does is only visible while it lasts).
    fn run_watching(
        &self,
        file: &Path,
        every: Duration,
        seen: impl Fn() -> bool + Sync,
    ) -> (Output, Value, bool) {
        use std::sync::atomic::{AtomicBool, Ordering};
        let (done, hit) = (AtomicBool::new(false), AtomicBool::new(false));
        std::thread::scope(|s| {
            let w = s.spawn(|| {
                while !done.load(Ordering::SeqCst) {
                    if seen() {
                        hit.store(true, Ordering::SeqCst);
                    }
                    std::thread::sleep(every);
                }
            });
            let (out, report) = self.run(file, &[]);
            done.store(true, Ordering::SeqCst);
            w.join().unwrap();
            (out, report, hit.load(Ordering::SeqCst))
        })
    }
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn fault<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["faults"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no fault {name} in {report:#}"))
}

fn verdict<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == id)
        .unwrap_or_else(|| panic!("no verdict {id} in {:#}", report["verdicts"]))
}

fn delete_fault(mode: &str, ready_delay_ms: u64) -> (String, String) {
    (
        format!(
            "    - name: lose-pods\n      at: 500ms\n      pod: {{ delete: {{ namespace: shop, selector: app=checkout, {mode}, gracePeriod: 0s, recoveryTimeout: 20s }} }}\n"
        ),
        format!("  objectives:\n    podRecovery: {{ max: {}ms }}\n", ready_delay_ms + 5_000),
    )
}

#[test]
fn each_mode_deletes_the_right_number_and_times_the_replacements() {
    let ready_delay = Duration::from_millis(700);
    for (mode, expected) in [
        ("mode: one", 1),
        ("mode: all", 4),
        ("mode: fixed, count: 2", 2),
        ("mode: percent, percent: 50%", 2),
        ("mode: percent, percent: 10%", 1),
    ] {
        let case = Case::new();
        case.checkout(4, &["node-1", "node-2"], ready_delay);
        // A pod the selector does not match must never be touched.
        case.fake
            .add_pod("shop", "cart-0", &[("app", "cart")], "node-1", true);
        let (faults, objectives) = delete_fault(mode, ready_delay.as_millis() as u64);
        let file = case.write(&faults, &objectives);
        let (out, report) = case.run(&file, &[]);
        assert_eq!(out.status.code(), Some(0), "{mode}: {}", text(&out));
        let deleted = case.fake.deleted();
        assert_eq!(deleted.len(), expected, "{mode}: deleted {deleted:?}");
        assert!(deleted
            .iter()
            .all(|(ns, name)| ns == "shop" && name.starts_with("checkout-7d9f-")));
        let f = fault(&report, "lose-pods");
        assert_eq!(f["status"], "applied", "{mode}: {f:#}");
        assert_eq!(f["pods"]["deleted"], expected as u64);
        assert_eq!(f["pods"]["matched"], 4);
        assert_eq!(f["pods"]["recovery"], "recovered", "{mode}: {f:#}");
        // The truth: a replacement is Ready `ready_delay` after its pod was deleted.
        let measured = Duration::from_secs_f64(f["pods"]["recoveryMs"].as_f64().unwrap() / 1000.0);
        assert!(
            measured + Duration::from_millis(5) >= ready_delay,
            "{mode}: recovered in {measured:?}, before the replacements could be Ready ({ready_delay:?})"
        );
        assert!(
            measured <= ready_delay + POLL + LIST_SLACK,
            "{mode}: recovered in {measured:?}, more than one poll late ({ready_delay:?} + {POLL:?})"
        );
        assert_eq!(verdict(&report, "podRecovery/lose-pods")["status"], "pass");
        // Every owner is whole again, and the unmatched pod is untouched.
        let pods = case.fake.pods("shop");
        assert_eq!(
            pods.iter()
                .filter(|p| p.name.starts_with("checkout") && p.ready && !p.terminating)
                .count(),
            4
        );
        assert!(pods.iter().any(|p| p.name == "cart-0"));
    }
}

#[test]
fn the_same_seed_deletes_the_same_pods() {
    let mut chosen = Vec::new();
    for _ in 0..2 {
        let case = Case::new();
        // Pods get random names: compare by position in name order, via a bare set.
        for i in 0..6 {
            case.fake.add_pod(
                "shop",
                &format!("worker-{i}"),
                &[("app", "worker")],
                "node-1",
                true,
            );
        }
        let faults = "    - name: lose-pods\n      at: 500ms\n      pod: { delete: { namespace: shop, selector: app=worker, mode: fixed, count: 2 } }\n";
        let file = case.write(faults, "");
        let (out, report) = case.run(&file, &[]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        // Bare pods are not replaced: recovery is not applicable, and says why.
        assert_eq!(fault(&report, "lose-pods")["pods"]["recovery"], "noOwner");
        chosen.push(case.fake.deleted());
    }
    assert_eq!(chosen[0], chosen[1], "seed 42 must choose the same pods");
}

#[test]
fn dry_run_has_the_server_check_and_deletes_nothing() {
    let case = Case::new();
    case.checkout(3, &["node-1"], Duration::from_millis(100));
    let (faults, _) = delete_fault("mode: all", 100);
    let file = case.write(&faults, "");
    let (out, _) = case.run(&file, &["--dry-run"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        stdout.matches("would delete shop/checkout-7d9f-").count(),
        3,
        "{stdout}"
    );
    assert!(case.fake.deleted().is_empty());
    let dry: Vec<String> = case
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("DELETE"))
        .collect();
    assert_eq!(dry.len(), 3, "{dry:?}");
    assert_eq!(case.fake.pods("shop").len(), 3);

    // The same as a fault option during a real run.
    let faults = "    - name: lose-pods\n      at: 500ms\n      pod: { delete: { namespace: shop, selector: app=checkout, mode: all, dryRun: true } }\n";
    let file = case.write(faults, "  objectives:\n    podRecovery: { max: 10s }\n");
    let (out, report) = case.run(&file, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(case.fake.deleted().is_empty());
    let f = fault(&report, "lose-pods");
    assert_eq!(f["status"], "dryRun");
    assert_eq!(f["pods"]["dryRun"], true);
    assert_eq!(
        verdict(&report, "podRecovery/lose-pods")["status"],
        "notMeasured"
    );
}

#[test]
fn a_selector_that_matches_nothing_stops_the_run_before_it_starts() {
    let case = Case::new();
    case.fake
        .add_pod("shop", "cart-0", &[("app", "cart")], "node-1", true);
    let marker = case.path("service-ran");
    let faults = "    - name: lose-pods\n      at: 500ms\n      pod: { delete: { namespace: shop, selector: app=checkout } }\n";
    let file = case.write(faults, "");
    // The service would leave a trace if it started: it must not.
    let text_yaml = std::fs::read_to_string(&file).unwrap().replace(
        "command: [\"${exe}\", sample-service",
        &format!(
            "command: [sh, -c, 'touch {} && exec \"$0\" \"$@\"', \"${{exe}}\", sample-service",
            marker.display()
        ),
    );
    std::fs::write(&file, text_yaml).unwrap();
    let (out, report) = case.run(&file, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let all = text(&out) + &report.to_string();
    assert!(
        all.contains("no pod in namespace shop matches selector app=checkout"),
        "{all}"
    );
    assert!(
        !marker.exists(),
        "the service started although the run could not"
    );
    assert!(case.fake.deleted().is_empty());
}

/// Delete one of `replicas` checkout pods while the API server answers the first `times`
/// DELETEs with `status`.
fn delete_one_answered(replicas: u32, status: u16, times: u32) -> (Case, Output, Value) {
    let case = Case::new();
    case.checkout(replicas, &["node-1"], Duration::from_millis(100));
    case.fake
        .fail_next("DELETE", "/api/v1/namespaces/shop/pods", status, times);
    let (faults, _) = delete_fault("mode: one", 100);
    let file = case.write(&faults, "");
    let (out, report) = case.run(&file, &[]);
    (case, out, report)
}

#[test]
fn an_rbac_denial_reaches_the_user_and_fails_the_fault() {
    let (case, out, report) = delete_one_answered(2, 403, 1);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let f = fault(&report, "lose-pods");
    assert_eq!(f["status"], "failed");
    let v = verdict(&report, "fault/lose-pods");
    let measured = v["measured"].as_str().unwrap();
    assert!(
        measured.contains("403")
            && measured.contains("cannot delete resource \"pods\"")
            && measured.contains("RBAC"),
        "{measured}"
    );
    assert!(case.fake.deleted().is_empty());
}

#[test]
fn a_pod_gone_before_the_delete_is_said_so_and_not_counted() {
    let (case, out, report) = delete_one_answered(1, 404, 1);
    let f = fault(&report, "lose-pods");
    assert_eq!(f["status"], "failed", "nothing was deleted: {f:#}");
    assert_eq!(f["pods"]["deleted"], 0);
    let error = f["pods"]["errors"][0].as_str().unwrap();
    assert!(
        error.contains("was gone or replaced before the delete (404"),
        "{error}"
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(case.fake.deleted().is_empty());
}

#[test]
fn throttling_is_retried_with_backoff() {
    let (case, out, report) = delete_one_answered(2, 429, 2);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(fault(&report, "lose-pods")["pods"]["deleted"], 1);
    let deletes = case
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("DELETE"))
        .count();
    assert_eq!(
        deletes, 3,
        "two throttled attempts and one that went through"
    );
}

#[test]
fn a_protected_namespace_named_explicitly_may_be_used() {
    let case = Case::new();
    case.fake.add_replicaset(
        "kube-system",
        "coredns-5d78",
        &[("k8s-app", "kube-dns")],
        2,
        &["node-1"],
        Duration::from_millis(100),
    );
    let faults = "    - name: lose-dns\n      at: 500ms\n      pod: { delete: { namespace: kube-system, selector: k8s-app=kube-dns, allowProtected: [kube-system] } }\n";
    let file = case.write(faults, "");
    // The kubeconfig from KUBECONFIG this time, with no `kubeconfig:` in the file.
    let yaml = std::fs::read_to_string(&file).unwrap().replace(
        "kubernetes: { kubeconfig: kubeconfig, context: fake }",
        "kubernetes: { context: fake }",
    );
    std::fs::write(&file, yaml).unwrap();
    let out = shakeout()
        .arg("run")
        .arg(&file)
        .arg("--quiet")
        .env("KUBECONFIG", case.path("kubeconfig"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        case.fake.deleted(),
        [("kube-system".to_string(), case.fake.deleted()[0].1.clone())]
    );
    assert!(case.fake.deleted()[0].1.starts_with("coredns-5d78-"));
}

/// The fake's kubelet side, played by the test: the pod `pod_prefix*` is the sample
/// service; deleting it kills the process, and the replacement starts a new one, Ready
/// `ready_delay` later (as the fake marks the replacement pod).
fn kubelet(
    fake: &FakeCluster,
    port: u16,
    ready_delay: Duration,
    stop: &std::sync::atomic::AtomicBool,
) -> Vec<(Instant, Instant)> {
    use std::sync::atomic::Ordering;
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_shakeout"))
            .args(["sample-service", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut child: Child = start();
    let mut outages = Vec::new();
    let mut seen = 0;
    while !stop.load(Ordering::SeqCst) {
        if fake.deleted().len() > seen {
            seen = fake.deleted().len();
            let killed = Instant::now();
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(ready_delay);
            child = start();
            outages.push((killed, Instant::now()));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    outages
}

#[test]
fn pod_deletion_with_an_http_probe_gives_an_rto_verdict() {
    let case = Case::new();
    let ready_delay = Duration::from_millis(1500);
    case.checkout(1, &["node-1"], ready_delay);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (out, report, outages) = std::thread::scope(|s| {
        let k = s.spawn(|| kubelet(&case.fake, case.port, ready_delay, &stop));
        // Wait for the service, then run an experiment that does not supervise it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", case.port)).is_err() {
            assert!(Instant::now() < deadline, "sample service did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        let file = case.write(
            "    - name: lose-pods\n      at: 3s\n      pod: { delete: { namespace: shop, selector: app=checkout, gracePeriod: 0s } }\n",
            "  steadyState:\n    window: 2s\n    availability: { min: 99% }\n  objectives:\n    rto: { max: 10s }\n    podRecovery: { max: 10s }\n",
        );
        case.edit(&file, false, false);
        let (out, report) = case.run(&file, &[]);
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        (out, report, k.join().unwrap())
    });
    // What a person sees (shown with --nocapture).
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(outages.len(), 1);
    let rto = verdict(&report, "rto/health");
    assert_eq!(rto["status"], "pass", "{rto:#}");
    let probe = &report["probes"][0];
    let ttr = probe["rto"]["timeToRecoverMs"]
        .as_f64()
        .unwrap_or_else(|| panic!("{:#}", probe["rto"]));
    // The outage lasts the replacement's start delay (plus the restart itself).
    assert!(
        ttr + 200.0 >= ready_delay.as_millis() as f64
            && ttr <= ready_delay.as_millis() as f64 + 1_500.0,
        "time to recover {ttr}ms for an outage of {ready_delay:?}"
    );
    assert_eq!(verdict(&report, "podRecovery/lose-pods")["status"], "pass");
}

const SECRET: &str = "kube-test-secret-0123456789";

/// A real agent on 127.0.0.1, as the agent pod of one node; returns its port.
fn start_agent(dir: &Path) -> (Child, u16) {
    let (agent, addr) = common::start_agent(dir, &format!("controller:{SECRET}"), &[]);
    (agent, addr.port())
}

#[test]
fn shakeout_agents_lists_the_daemonset_through_port_forward() {
    let case = Case::new();
    let (mut agent, port) = start_agent(case.dir.path());
    case.agent_pods(&["node-1"], &[port]);
    let out = shakeout()
        .args(["agents", "--kubeconfig"])
        .arg(case.path("kubeconfig"))
        .args(["--context", "fake"])
        .env("SHAKEOUT_TOKEN", SECRET)
        .output()
        .unwrap();
    let _ = agent.kill();
    let _ = agent.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        stdout.contains("port-forward through the API server"),
        "{stdout}"
    );
    assert!(
        stdout.contains("node node-1: shakeout-agent-node-1 version"),
        "{stdout}"
    );
    assert!(
        case.fake
            .requests()
            .iter()
            .any(|r| r.contains("/pods/shakeout-agent-node-1/portforward")),
        "the agent was not reached through port-forward"
    );

    // A wrong token is refused by the agent, and said so.
    let (mut agent, port) = start_agent(case.dir.path());
    let case2 = Case::new();
    case2.agent_pods(&["node-1"], &[port]);
    let out = shakeout()
        .args(["agents", "--kubeconfig"])
        .arg(case2.path("kubeconfig"))
        .env("SHAKEOUT_TOKEN", "wrong")
        .output()
        .unwrap();
    let _ = agent.kill();
    let _ = agent.wait();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("NOT ANSWERING"),
        "{}",
        text(&out)
    );

    // An agent pod whose agent is not listening: the kubelet's dial fails inside the
    // tunnel, and that is said as unreachable (nothing was sent), not as a lost answer.
    let case3 = Case::new();
    case3.agent_pods(&["node-1"], &[free_port()]);
    let out = shakeout()
        .args(["agents", "--kubeconfig"])
        .arg(case3.path("kubeconfig"))
        .env("SHAKEOUT_TOKEN", SECRET)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        stdout.contains("unreachable: port-forward: error forwarding port")
            && stdout.contains("connection refused"),
        "{}",
        text(&out)
    );
}

/// A cgroup v1 (cgroupfs naming) or v2 directory named like a pod's, holding `pid`: what
/// the kubelet makes, so the agent finds the pod's processes by UID. Removed on drop.
struct PodCgroup(PathBuf);

impl PodCgroup {
    fn new(uid: &str, pid: u32) -> Option<PodCgroup> {
        let v1 = Path::new("/sys/fs/cgroup/pids");
        let base = if v1.join("cgroup.procs").exists() {
            v1.to_path_buf()
        } else {
            PathBuf::from("/sys/fs/cgroup")
        };
        let dir = base.join("kubepods/burstable").join(format!("pod{uid}"));
        std::fs::create_dir_all(&dir).ok()?;
        std::fs::write(dir.join("cgroup.procs"), pid.to_string()).ok()?;
        Some(PodCgroup(dir))
    }
}

impl Drop for PodCgroup {
    fn drop(&mut self) {
        // Move anything left back to the root, then remove the (now empty) directories.
        let root = self
            .0
            .parent()
            .and_then(Path::parent)
            .and_then(Path::parent);
        if let (Ok(procs), Some(root)) =
            (std::fs::read_to_string(self.0.join("cgroup.procs")), root)
        {
            for pid in procs.lines() {
                let _ = std::fs::write(root.join("cgroup.procs"), pid);
            }
        }
        let _ = std::fs::remove_dir(&self.0);
        if let Some(p) = self.0.parent() {
            let _ = std::fs::remove_dir(p);
            if let Some(pp) = p.parent() {
                let _ = std::fs::remove_dir(pp);
            }
        }
    }
}

fn proc_state(pid: u32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit(')')
        .next()
        .and_then(|r| r.trim().chars().next())
        .unwrap_or('?')
}

#[test]
fn a_pause_on_pods_goes_to_the_agent_of_their_node_through_port_forward() {
    if !root_or_skip(
        "a_pause_on_pods_goes_to_the_agent_of_their_node_through_port_forward",
        "a pod cgroup and the agent acting in it",
    ) {
        return;
    }
    let case = Case::new();
    let (mut agent, agent_port) = start_agent(case.dir.path());
    case.agent_pods(&["node-1", "node-2"], &[agent_port, agent_port]);
    // The pod's container: the sample service, in a cgroup named after the pod's UID.
    let mut service = Command::new(env!("CARGO_BIN_EXE_shakeout"))
        .args([
            "sample-service",
            "--listen",
            &format!("127.0.0.1:{}", case.port),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let uid = case
        .fake
        .add_pod("shop", "checkout-0", &[("app", "checkout")], "node-2", true);
    let cgroup = PodCgroup::new(&uid, service.id()).expect("cannot make a pod cgroup as root");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", case.port)).is_err() {
        assert!(Instant::now() < deadline, "sample service did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let file = case.write(
        "    - name: freeze-checkout\n      at: 1s\n      duration: 2s\n      process: { target: { pods: { namespace: shop, selector: app=checkout } }, pause: {} }\n",
        "  objectives:\n    availability: { during: baseline, min: 99% }\n",
    );
    case.edit(&file, false, true);
    let pid = service.id();
    let (out, report, paused) =
        case.run_watching(&file, Duration::from_millis(10), || proc_state(pid) == 'T');
    let state_after = proc_state(service.id());
    let _ = service.kill();
    let _ = service.wait();
    let _ = agent.kill();
    let _ = agent.wait();
    drop(cgroup);
    assert!(paused, "the pod's process was never paused: {}", text(&out));
    assert_ne!(state_after, 'T', "the pod's process was left paused");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let f = fault(&report, "freeze-checkout");
    assert_eq!(f["status"], "reverted", "{f:#}");
    let a = &f["agents"][0];
    assert_eq!(
        a["agent"], "shakeout-agent-node-2",
        "the agent of the pod's node: {f:#}"
    );
    assert_eq!(a["pod"], "shop/checkout-0");
    assert!(
        a["url"]
            .as_str()
            .unwrap()
            .starts_with("portforward://shakeout/shakeout-agent-node-2"),
        "{a:#}"
    );
    assert!(
        a["targets"][0]
            .as_str()
            .unwrap()
            .starts_with(&format!("{} ", service.id())),
        "{a:#}"
    );
    // The probe saw the freeze: a 2 s pause of the only server, probed with a 300 ms
    // timeout at 50/s, fails most of the fault's requests.
    let faults_phase = report["probes"][0]["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["phase"] == "faults")
        .unwrap();
    assert!(
        faults_phase["availabilityPercent"].as_f64().unwrap() < 90.0,
        "{faults_phase:#}"
    );
}

#[test]
fn preflight_checks_selectors_and_the_agent_on_each_pods_node() {
    let case = Case::new();
    let (mut agent, port) = start_agent(case.dir.path());
    case.agent_pods(&["node-1"], &[port]);
    case.fake
        .add_pod("shop", "checkout-0", &[("app", "checkout")], "node-1", true);
    let faults = "    - name: slow\n      at: 1s\n      duration: 2s\n      network: { latency: { delay: 50ms }, pods: { namespace: shop, selector: app=checkout } }\n    - name: lose\n      at: 1s\n      pod: { delete: { namespace: shop, selector: app=checkout } }\n";
    let file = case.write(faults, "");
    let preflight = |env_token: &str| {
        shakeout()
            .arg("preflight")
            .arg(&file)
            .env("SHAKEOUT_TOKEN", env_token)
            .env_remove("KUBECONFIG")
            .output()
            .unwrap()
    };
    let out = preflight(SECRET);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        stdout.contains("fault `slow`: 1 pods match in namespace shop"),
        "{stdout}"
    );
    assert!(
        stdout.contains("agent shakeout-agent-node-1 (node node-1) (portforward://shakeout/shakeout-agent-node-1:"),
        "{stdout}"
    );

    // A matching pod on a node without an agent: named, and nothing runs.
    case.fake
        .add_pod("shop", "checkout-1", &[("app", "checkout")], "node-2", true);
    let out = preflight(SECRET);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        stdout.contains("pod shop/checkout-1: no Ready shakeout agent on node `node-2`"),
        "{stdout}"
    );
    let _ = agent.kill();
    let _ = agent.wait();
    assert!(case.fake.deleted().is_empty());
}

/// A network namespace that stands for a pod's; deleted on drop.
struct PodNetns(String);

impl PodNetns {
    fn new() -> PodNetns {
        let name = format!("shk-pod-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap()
            .success();
        assert!(ok, "ip netns add {name}");
        PodNetns(name)
    }

    fn tables(&self) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.0, "nft", "list", "tables"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for PodNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn a_network_fault_on_pods_lands_in_the_pods_namespace_and_leaves_nothing() {
    if !root_or_skip(
        "a_network_fault_on_pods_lands_in_the_pods_namespace_and_leaves_nothing",
        "a pod cgroup and the agent acting in it",
    ) {
        return;
    }
    let case = Case::new();
    let (mut agent, agent_port) = start_agent(case.dir.path());
    case.agent_pods(&["node-1"], &[agent_port]);
    // The pod: a process in its own network namespace and in the pod's cgroup (what the
    // kubelet makes of a pod's pause container).
    let netns = PodNetns::new();
    let mut pause = Command::new("ip")
        .args(["netns", "exec", &netns.0, "sleep", "60"])
        .spawn()
        .unwrap();
    let uid = case
        .fake
        .add_pod("shop", "db-0", &[("app", "db")], "node-1", true);
    let cgroup = PodCgroup::new(&uid, pause.id()).expect("cannot make a pod cgroup as root");
    let faults = "    - name: cut-db\n      at: 1s\n      duration: 2s\n      network: { blackhole: true, pods: { namespace: shop, selector: app=db } }\n";
    let file = case.write(faults, "");
    case.edit(&file, true, true);
    let (out, report, seen) = case.run_watching(&file, Duration::from_millis(50), || {
        netns.tables().contains("table inet shakeout")
    });
    let after = netns.tables();
    let host = Command::new("nft")
        .args(["list", "tables"])
        .output()
        .unwrap();
    let _ = pause.kill();
    let _ = pause.wait();
    let _ = agent.kill();
    let _ = agent.wait();
    drop(cgroup);
    assert!(
        seen,
        "the rule never appeared in the pod's namespace: {}",
        text(&out)
    );
    assert!(
        !after.contains("shakeout"),
        "left in the pod's namespace: {after}"
    );
    assert!(
        !String::from_utf8_lossy(&host.stdout).contains("table inet shakeout"),
        "the fault went to the host namespace"
    );
    let f = fault(&report, "cut-db");
    assert_eq!(f["status"], "reverted", "{f:#}");
    assert_eq!(f["agents"][0]["mechanism"], "nftables");
    assert_eq!(f["agents"][0]["pod"], "shop/db-0");
}

/// A self-signed certificate for the name the chart's agent certificates carry.
fn agent_certificate(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    common::self_signed(dir, "shakeout-agent", "DNS:shakeout-agent")
}

#[test]
fn agents_are_reached_over_tls_through_port_forward_and_by_pod_ip() {
    let case = Case::new();
    let Some((cert, key)) = agent_certificate(case.dir.path()) else {
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
    let (mut agent, addr) =
        common::start_agent(case.dir.path(), &format!("controller:{SECRET}"), &tls);
    // The fake's agent pods have the pod IP 127.0.0.1, so `pod-ip` reaches the same agent.
    case.agent_pods(&["node-1"], &[addr.port()]);
    let agents = |reach: &str, ca: &Path| {
        shakeout()
            .args(["agents", "--kubeconfig"])
            .arg(case.path("kubeconfig"))
            .args(["--reach", reach, "--port", &addr.port().to_string(), "--ca"])
            .arg(ca)
            .env("SHAKEOUT_TOKEN", SECRET)
            .output()
            .unwrap()
    };
    for reach in ["port-forward", "pod-ip"] {
        let out = agents(reach, &cert);
        assert_eq!(out.status.code(), Some(0), "{reach}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout)
                .contains("node node-1: shakeout-agent-node-1 version"),
            "{reach}: {}",
            text(&out)
        );
    }
    // A CA that did not sign the agent's certificate: refused, over either path.
    let other = tempfile::tempdir().unwrap();
    let (wrong, _) = agent_certificate(other.path()).unwrap();
    for reach in ["port-forward", "pod-ip"] {
        let out = agents(reach, &wrong);
        assert_eq!(out.status.code(), Some(3), "{reach}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("NOT ANSWERING"),
            "{reach}: {}",
            text(&out)
        );
    }
    let _ = agent.kill();
    let _ = agent.wait();

    // Nothing listening behind the tunnel: the TLS handshake meets an early end, and the
    // kubelet's own error says why.
    let dead = Case::new();
    dead.agent_pods(&["node-1"], &[free_port()]);
    let out = shakeout()
        .args(["agents", "--kubeconfig"])
        .arg(dead.path("kubeconfig"))
        .arg("--ca")
        .arg(&cert)
        .env("SHAKEOUT_TOKEN", SECRET)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        stdout.contains("unreachable: TLS:")
            && stdout.contains("port-forward: error forwarding port"),
        "{}",
        text(&out)
    );
}
