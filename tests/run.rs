//! End-to-end runs of the real `shakeout` binary against the real sample service on
//! 127.0.0.1 (ephemeral ports): measured RTO against the ground truth, every exit code,
//! a real SIGINT, and the reports it writes.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup should panic loudly

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{free_port, shakeout};
use serde_json::Value;

struct Case {
    dir: tempfile::TempDir,
    port: u16,
}

impl Case {
    fn new() -> Self {
        Case {
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
        }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    /// Write an experiment; `{port}` and `{dir}` are substituted.
    fn write(&self, yaml: &str) -> PathBuf {
        let text = yaml
            .replace("{port}", &self.port.to_string())
            .replace("{dir}", &self.dir.path().display().to_string());
        let p = self.path("exp.yaml");
        std::fs::write(&p, text).unwrap();
        p
    }
    fn run(&self, file: &Path) -> (Output, Value) {
        let json = self.path("report.json");
        let out = shakeout()
            .arg("run")
            .arg(file)
            .arg("--json")
            .arg(&json)
            .arg("--junit")
            .arg(self.path("junit.xml"))
            .arg("--quiet")
            .output()
            .unwrap();
        let report = std::fs::read_to_string(&json)
            .map(|t| serde_json::from_str(&t).unwrap())
            .unwrap_or(Value::Null);
        (out, report)
    }
}

const SERVICE: &str = r#"
  services:
    - name: sample
      command: ["${exe}", sample-service, --listen, "127.0.0.1:{port}"]
      ready: { http: "http://127.0.0.1:{port}/health", within: 5s }
      restart: { policy: onExit, delay: 1s }
"#;

fn experiment(body: &str) -> String {
    format!(
        "apiVersion: shakeout/v1\nkind: Experiment\nmetadata: {{ name: test }}\nspec:\n{SERVICE}{body}"
    )
}

const PROBE: &str = r#"
  probes:
    - name: health
      http: { url: "http://127.0.0.1:{port}/health", timeout: 300ms }
      rate: 200/s
"#;

/// Time of the last event whose message contains `needle`.
fn event_ms(report: &Value, needle: &str) -> f64 {
    report["events"]
        .as_array()
        .unwrap()
        .iter()
        .rfind(|e| e["message"].as_str().unwrap().contains(needle))
        .unwrap_or_else(|| panic!("no event `{needle}` in {:#}", report["events"]))["atMs"]
        .as_f64()
        .unwrap()
}

fn verdict<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == id)
        .unwrap_or_else(|| panic!("no verdict {id} in {:#}", report["verdicts"]))
}

#[test]
fn killed_and_restarted_service_rto_matches_the_truth() {
    let case = Case::new();
    let file = case.write(&experiment(&format!(
        r#"  duration: 30s
{PROBE}
  steadyState: {{ window: 1s, availability: {{ min: 99.9% }} }}
  faults:
    - name: kill
      at: 1500ms
      exec: {{ command: [kill, -KILL, "${{service.sample.pid}}"] }}
  objectives:
    rto: {{ max: 10s, stableFor: 500ms }}
"#
    )));
    let (out, report) = case.run(&file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Ground truth from the supervisor: the process died, and answered again when ready.
    let died = event_ms(&report, "sample exited");
    let ready = event_ms(&report, "sample ready");
    let restarted = event_ms(&report, "sample restarted");
    let rto = &report["probes"][0]["rto"];
    let measured = rto["timeToRecoverMs"].as_f64().unwrap();
    let resolution = rto["resolutionMs"].as_f64().unwrap();
    assert_eq!(resolution, 100.0);
    // The service is back somewhere between its restart and the readiness poll seeing it.
    let (truth_lo, truth_hi) = (restarted - died, ready - died);
    let margin = 2.0 * resolution;
    assert!(
        measured >= truth_lo - margin && measured <= truth_hi + margin,
        "measured RTO {measured} ms, truth between {truth_lo} and {truth_hi} ms (±{margin})"
    );
    // Detection: the first failed bucket is the one holding the kill.
    let first = rto["firstFailureMs"].as_f64().unwrap();
    assert!(
        (first - died).abs() <= resolution + 20.0,
        "first failure {first}, died {died}"
    );
    assert_eq!(verdict(&report, "rto/health")["status"], "pass");
    assert_eq!(report["run"]["status"], "met");
    assert!(stdout.contains("RESULT"), "{stdout}");
}

#[test]
fn exit_code_1_when_an_objective_fails() {
    let case = Case::new();
    let file = case.write(&experiment(&format!(
        r#"  duration: 30s
{PROBE}
  steadyState: {{ window: 1s, availability: {{ min: 99% }} }}
  faults:
    - name: kill
      at: 1s
      exec: {{ command: [kill, -KILL, "${{service.sample.pid}}"] }}
  objectives:
    availability: {{ during: run, min: 100% }}
    rto: {{ max: 200ms, stableFor: 300ms }}
"#
    )));
    let (out, report) = case.run(&file);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(report["run"]["status"], "failed");
    assert_eq!(
        verdict(&report, "availability/health/run")["status"],
        "fail"
    );
    assert_eq!(verdict(&report, "rto/health")["status"], "fail");
    let junit = std::fs::read_to_string(case.path("junit.xml")).unwrap();
    assert!(junit.contains("<failure"), "{junit}");
}

#[test]
fn exit_code_0_for_a_healthy_steady_state_and_reports_are_valid() {
    let case = Case::new();
    let file = case.write(&experiment(&format!(
        r#"  duration: 10s
{PROBE}
  steadyState: {{ window: 1s, availability: {{ min: 99% }}, latency: {{ p99: {{ max: 100ms }} }} }}
"#
    )));
    let (out, report) = case.run(&file);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let scheduled = report["probes"][0]["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["phase"] == "run")
        .unwrap()["scheduled"]
        .as_u64()
        .unwrap();
    // 1 s at 200/s, plus however long the runner took to notice the window ended.
    assert!((200..=260).contains(&scheduled), "scheduled {scheduled}");
    let schema = shakeout::report::report_schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&report)
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "report does not match its schema: {errors:?}"
    );
}

#[test]
fn exit_code_2_when_a_stop_condition_fires_and_reverts_still_run() {
    let case = Case::new();
    let file = case.write(&experiment(&format!(
        r#"  duration: 30s
{PROBE}
  faults:
    - name: stop-it
      at: 1s
      duration: 20s
      exec: {{ command: [kill, -STOP, "${{service.sample.pid}}"], revert: [sh, -c, "kill -CONT ${{service.sample.pid}} && touch {{dir}}/reverted"] }}
  abort:
    availability: {{ below: 50%, for: 1s }}
"#
    )));
    let started = Instant::now();
    let (out, report) = case.run(&file);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "abort took {:?}",
        started.elapsed()
    );
    assert_eq!(report["run"]["status"], "aborted");
    assert!(case.path("reverted").exists(), "the revert did not run");
    assert_eq!(report["faults"][0]["status"], "reverted");
}

#[test]
fn exit_code_4_when_a_revert_fails() {
    let case = Case::new();
    let file = case.write(&experiment(&format!(
        r#"  duration: 20s
{PROBE}
  faults:
    - name: bad-revert
      at: 500ms
      duration: 500ms
      exec: {{ command: ["true"], revert: [sh, -c, "echo cannot undo >&2; exit 7"] }}
"#
    )));
    let (out, report) = case.run(&file);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(report["run"]["status"], "revertUnconfirmed");
    assert!(report["run"]["reason"]
        .as_str()
        .unwrap()
        .contains("bad-revert"));
    assert_eq!(report["faults"][0]["revert"]["exitCode"], 7);
    assert!(report["faults"][0]["revert"]["stderr"]
        .as_str()
        .unwrap()
        .contains("cannot undo"));
}

#[test]
fn exit_code_3_when_a_service_never_gets_ready_and_nothing_is_left_running() {
    let case = Case::new();
    let port = free_port();
    let file = case.write(&format!(
        r#"apiVersion: shakeout/v1
kind: Experiment
metadata: {{ name: test }}
spec:
  duration: 10s
  services:
    - name: sleeper
      command: [sh, -c, "echo $$ > {{dir}}/pid; exec sleep 30"]
      ready: {{ tcp: "127.0.0.1:{port}", within: 500ms }}
  probes:
    - name: p
      tcp: {{ address: "127.0.0.1:{port}" }}
      rate: 10/s
"#
    ));
    let (out, report) = case.run(&file);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report["run"]["status"], "error");
    assert!(report["run"]["reason"]
        .as_str()
        .unwrap()
        .contains("service `sleeper`: not ready within 500ms"));
    let pid: i32 = std::fs::read_to_string(case.path("pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists() || is_zombie(pid),
        "service {pid} left running"
    );
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.contains(") Z "))
        .unwrap_or(true)
}

#[test]
fn sigint_interrupts_reverts_and_exits_2() {
    let case = Case::new();
    let file = case.write(&experiment(&format!(
        r#"  duration: 60s
{PROBE}
  faults:
    - name: long
      at: 500ms
      duration: 50s
      exec: {{ command: [touch, "{{dir}}/applied"], revert: [touch, "{{dir}}/reverted"] }}
"#
    )));
    let mut child = shakeout()
        .arg("run")
        .arg(&file)
        .arg("--json")
        .arg(case.path("report.json"))
        .arg("--quiet")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !case.path("applied").exists() {
        assert!(Instant::now() < deadline, "fault never applied");
        std::thread::sleep(Duration::from_millis(20));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let started = Instant::now();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(2));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?} to stop",
        started.elapsed()
    );
    assert!(
        case.path("reverted").exists(),
        "revert did not run on SIGINT"
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(case.path("report.json")).unwrap()).unwrap();
    assert_eq!(report["run"]["status"], "interrupted");
    assert_eq!(report["faults"][0]["status"], "reverted");
}

#[test]
fn dry_run_applies_nothing() {
    let case = Case::new();
    let file = case.write(&experiment(&format!(
        r#"  duration: 10s
{PROBE}
  faults:
    - name: marker
      at: 1s
      exec: {{ command: [touch, "{{dir}}/ran"] }}
"#
    )));
    let out = shakeout()
        .arg("run")
        .arg(&file)
        .arg("--dry-run")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("at 1s fault marker"), "{text}");
    assert!(!case.path("ran").exists());
}

#[test]
fn the_demo_runs_and_meets_its_objectives() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("demo.json");
    let started = Instant::now();
    // From a directory that is not the checkout: the demo must not depend on it.
    let out = shakeout()
        .current_dir(dir.path())
        .env("SHAKEOUT_STATE_DIR", dir.path().join("state"))
        .args(["demo", "--quiet", "--port"])
        .arg(free_port().to_string())
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "demo took {:?}",
        started.elapsed()
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rto = report["probes"][0]["rto"]["timeToRecoverMs"]
        .as_f64()
        .unwrap();
    // The supervisor restarts the sample 2 s after the kill.
    assert!((1800.0..=3000.0).contains(&rto), "demo RTO {rto} ms");
}

#[test]
fn a_readiness_command_gates_the_start_and_its_failure_is_exit_3() {
    let case = Case::new();
    let port = case.port;
    let yaml = |ready_file: &str| {
        format!(
            r#"apiVersion: shakeout/v1
kind: Experiment
metadata: {{ name: ready-cmd }}
spec:
  duration: 5s
  services:
    - name: slow-start
      command: [sh, -c, "sleep 0.3; touch {{dir}}/{ready_file}; exec sleep 30"]
      ready: {{ command: [test, -f, "{{dir}}/ready"], within: 3s }}
      stopGrace: 1s
  probes:
    - {{ name: p, tcp: {{ address: "127.0.0.1:{port}" }}, rate: 10/s }}
  steadyState: {{ window: 500ms }}
"#
        )
    };
    // Ready once the service has made its file: the run goes ahead.
    let file = case.write(&yaml("ready"));
    let (out, report) = case.run(&file);
    assert_ne!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let events = report["events"].to_string();
    assert!(events.contains("slow-start ready"), "{events}");
    // A check that never passes (in a fresh directory): exit 3, naming the command.
    let case = Case::new();
    let file = case.write(&yaml("elsewhere"));
    let (out, report) = case.run(&file);
    assert_eq!(out.status.code(), Some(3));
    let reason = report["run"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("not ready within 3s") && reason.contains("test -f"),
        "{reason}"
    );
}
