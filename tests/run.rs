//! End-to-end runs of the real `shakeout` binary against the real sample service on
//! 127.0.0.1 (ephemeral ports): measured RTO against the ground truth, every exit code,
//! a real SIGINT, and the reports it writes.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup should panic loudly

use std::time::{Duration, Instant};

mod kit;

use kit::exp::{fault, health_probe, sample_service, tcp_probe, Experiment, Map};
use kit::report::Report;
use kit::{free_port, shakeout, state, wait_for, Case};
use nix::sys::signal::Signal;

/// The demo judges latency against fixed objectives (p99 <= 50 ms in steady state): it
/// runs alone, while the other runs here (each probing at 200/s) share the CPU among
/// themselves. Other runs' verdicts do not depend on a lightly loaded machine.
static CPU: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn shared_cpu() -> std::sync::RwLockReadGuard<'static, ()> {
    CPU.read().unwrap_or_else(|e| e.into_inner())
}

fn whole_cpu() -> std::sync::RwLockWriteGuard<'static, ()> {
    CPU.write().unwrap_or_else(|e| e.into_inner())
}

/// A case whose runs also write a JUnit report, `junit.xml`.
fn case() -> Case {
    let case = Case::new();
    let junit = case.path("junit.xml");
    case.arg("--junit").arg(junit)
}

/// `test`: the sample service on the case's port, restarted 1 s after it exits, probed
/// at 200/s.
fn experiment(case: &Case, duration: &str) -> Experiment {
    Experiment::new("test", duration)
        .service(sample_service(case.port).with("restart", "{ policy: onExit, delay: 1s }"))
        .probe(health_probe(case.port, "200/s"))
}

/// The fault `name`: SIGKILL to the sample service `at`.
fn kill_sample(name: &str, at: &str) -> Map {
    fault(name, at).with(
        "exec",
        r#"{ command: [kill, -KILL, "${service.sample.pid}"] }"#,
    )
}

#[test]
fn killed_and_restarted_service_rto_matches_the_truth() {
    let _cpu = shared_cpu();
    let case = case();
    let file = case.write(
        experiment(&case, "30s")
            .steady_state("{ window: 1s, availability: { min: 99.9% } }")
            .fault(kill_sample("kill", "1500ms"))
            .objective("rto", "{ max: 10s, stableFor: 500ms }"),
    );
    let ran = case.run(&file);
    assert_eq!(ran.code(), Some(0), "{}", ran.explain());
    let report = ran.report();
    // Ground truth from the supervisor: the process died, and answered again when ready.
    let died = report.event_ms("sample exited");
    let ready = report.event_ms("sample ready");
    let restarted = report.event_ms("sample restarted");
    let rto = report.probe("health").rto();
    let measured = rto.time_to_recover_ms.unwrap();
    let resolution = rto.resolution_ms;
    assert_eq!(resolution, 100.0);
    // The service is back somewhere between its restart and the readiness poll seeing it.
    let (truth_lo, truth_hi) = (restarted - died, ready - died);
    let margin = 2.0 * resolution;
    assert!(
        measured >= truth_lo - margin && measured <= truth_hi + margin,
        "measured RTO {measured} ms, truth between {truth_lo} and {truth_hi} ms (±{margin})"
    );
    // Detection: the first failed bucket is the one holding the kill.
    let first = rto.first_failure_ms.unwrap();
    assert!(
        (first - died).abs() <= resolution + 20.0,
        "first failure {first}, died {died}"
    );
    assert_eq!(report.verdict("rto/health").status, "pass");
    assert_eq!(report.run.status, "met");
    assert!(ran.stdout().contains("RESULT"), "{}", ran.stdout());
}

#[test]
fn exit_code_1_when_an_objective_fails() {
    let _cpu = shared_cpu();
    let case = case();
    let file = case.write(
        experiment(&case, "30s")
            .steady_state("{ window: 1s, availability: { min: 99% } }")
            .fault(kill_sample("kill", "1s"))
            .objective("availability", "{ during: run, min: 100% }")
            .objective("rto", "{ max: 200ms, stableFor: 300ms }"),
    );
    let ran = case.run(&file);
    assert_eq!(ran.code(), Some(1), "{}", ran.explain());
    let report = ran.report();
    assert_eq!(report.run.status, "failed");
    assert_eq!(report.verdict("availability/health/run").status, "fail");
    assert_eq!(report.verdict("rto/health").status, "fail");
    let junit = std::fs::read_to_string(case.path("junit.xml")).unwrap();
    assert!(junit.contains("<failure"), "{junit}");
    // The dry run listed these very verdicts, with the same requirements.
    let plan = case.path("plan.json");
    let dry = shakeout()
        .arg("run")
        .arg(&file)
        .args(["--dry-run", "--json"])
        .arg(&plan)
        .output()
        .unwrap();
    assert_eq!(dry.status.code(), Some(0), "{}", kit::explain(&dry));
    let plan: serde_json::Value = serde_json::from_slice(&std::fs::read(&plan).unwrap()).unwrap();
    let planned: Vec<(String, String)> = plan["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["id"].as_str().unwrap().to_owned(),
                v["required"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let judged: Vec<(String, String)> = report
        .verdicts
        .iter()
        .filter(|v| !v.id.starts_with("fault/"))
        .map(|v| (v.id.clone(), v.required.clone()))
        .collect();
    assert_eq!(planned, judged);
    let text = String::from_utf8_lossy(&dry.stdout);
    assert!(
        text.contains("rto/health") && text.contains("<= 200ms"),
        "{text}"
    );
}

#[test]
fn exit_code_0_for_a_healthy_steady_state_and_reports_are_valid() {
    let _cpu = shared_cpu();
    let case = case();
    let file = case.write(experiment(&case, "10s").steady_state(
        "{ window: 1s, availability: { min: 99% }, latency: { p99: { max: 100ms } } }",
    ));
    let ran = case.run(&file);
    assert_eq!(ran.code(), Some(0), "{}", ran.explain());
    let report = ran.report();
    let scheduled = report.probe("health").phase("run").scheduled;
    // 1 s at 200/s, plus however long the runner took to notice the window ended.
    assert!((200..=260).contains(&scheduled), "scheduled {scheduled}");
    let schema = shakeout::report::report_schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(report.json())
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "report does not match its schema: {errors:?}"
    );
}

#[test]
fn exit_code_2_when_a_stop_condition_fires_and_reverts_still_run() {
    let _cpu = shared_cpu();
    let case = case();
    let reverted = case.path("reverted");
    let file = case.write(
        experiment(&case, "30s")
            .fault(fault("stop-it", "1s").with("duration", "20s").with(
                "exec",
                format!(
                    r#"{{ command: [kill, -STOP, "${{service.sample.pid}}"], revert: [sh, -c, "kill -CONT ${{service.sample.pid}} && touch {}"] }}"#,
                    reverted.display()
                ),
            ))
            .abort("availability", "{ below: 50%, for: 1s }"),
    );
    let ran = case.run(&file);
    assert_eq!(ran.code(), Some(2), "{}", ran.explain());
    assert!(
        ran.elapsed < Duration::from_secs(15),
        "abort took {:?}",
        ran.elapsed
    );
    let report = ran.report();
    assert_eq!(report.run.status, "aborted");
    assert!(reverted.exists(), "the revert did not run");
    assert_eq!(report.fault("stop-it").status, "reverted");
}

#[test]
fn exit_code_4_when_a_revert_fails() {
    let _cpu = shared_cpu();
    let case = case();
    let file = case.write(experiment(&case, "20s").fault(
        fault("bad-revert", "500ms").with("duration", "500ms").with(
            "exec",
            r#"{ command: ["true"], revert: [sh, -c, "echo cannot undo >&2; exit 7"] }"#,
        ),
    ));
    let ran = case.run(&file);
    assert_eq!(ran.code(), Some(4), "{}", ran.explain());
    let report = ran.report();
    assert_eq!(report.run.status, "revertUnconfirmed");
    assert!(report.run.reason.as_ref().unwrap().contains("bad-revert"));
    let revert = report.fault("bad-revert").revert();
    assert_eq!(revert.exit_code, Some(7));
    assert!(revert.stderr.contains("cannot undo"));
}

#[test]
fn exit_code_3_when_a_service_never_gets_ready_and_nothing_is_left_running() {
    let _cpu = shared_cpu();
    let case = case();
    let port = free_port();
    let pid_file = case.path("pid");
    let file = case.write(
        Experiment::new("test", "10s")
            .service(
                Map::named("sleeper")
                    .with(
                        "command",
                        format!(
                            r#"[sh, -c, "echo $$ > {}; exec sleep 30"]"#,
                            pid_file.display()
                        ),
                    )
                    .with(
                        "ready",
                        format!(r#"{{ tcp: "127.0.0.1:{port}", within: 500ms }}"#),
                    ),
            )
            .probe(tcp_probe("p", format!("127.0.0.1:{port}"), "10/s")),
    );
    let ran = case.run(&file);
    assert_eq!(ran.code(), Some(3), "{}", ran.explain());
    let report = ran.report();
    assert_eq!(report.run.status, "error");
    assert!(report
        .run
        .reason
        .as_ref()
        .unwrap()
        .contains("service `sleeper`: not ready within 500ms"));
    // The summary says the run never started rather than timing a run of nothing.
    let text = ran.stdout();
    assert!(text.contains("did not start"), "{text}");
    assert!(!text.contains("ran 0"), "{text}");
    let pid: u32 = std::fs::read_to_string(pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        matches!(state(pid), None | Some('Z')),
        "service {pid} left running"
    );
}

#[test]
fn sigint_interrupts_reverts_and_exits_2() {
    let _cpu = shared_cpu();
    let case = Case::new();
    let (applied, reverted) = (case.path("applied"), case.path("reverted"));
    // A second fault scheduled after the interrupt: the run never reaches it, so a
    // recovery from the whole fault plan was never seen and the RTO cannot pass.
    let file = case.write(
        experiment(&case, "60s")
            .fault(fault("long", "500ms").with("duration", "50s").with(
                "exec",
                format!(
                    r#"{{ command: [touch, "{}"], revert: [touch, "{}"] }}"#,
                    applied.display(),
                    reverted.display()
                ),
            ))
            .fault(kill_sample("later", "55s"))
            .objective("rto", "{ max: 10s }"),
    );
    let mut run = case.spawn(&file);
    wait_for("the fault to be applied", Duration::from_secs(20), || {
        applied.exists()
    });
    run.signal(Signal::SIGINT);
    let started = Instant::now();
    let status = run.wait();
    assert_eq!(status.code(), Some(2));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?} to stop",
        started.elapsed()
    );
    assert!(reverted.exists(), "revert did not run on SIGINT");
    let report = case.report();
    assert_eq!(report.run.status, "interrupted");
    assert_eq!(report.fault("long").status, "reverted");
    assert_eq!(report.fault("later").status, "pending");
    let rto = report.verdict("rto/health");
    assert_eq!(rto.status, "notMeasured", "{rto:?}");
    let note = rto.note.as_deref().unwrap_or_default();
    assert!(
        note.contains("interrupted") && note.contains("`later`"),
        "{note}"
    );
}

#[test]
fn dry_run_applies_nothing() {
    let _cpu = shared_cpu();
    let case = case();
    let ran = case.path("ran");
    let file = case.write(experiment(&case, "10s").fault(fault("marker", "1s").with(
        "exec",
        format!(r#"{{ command: [touch, "{}"] }}"#, ran.display()),
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
    assert!(!ran.exists());
}

#[test]
fn the_demo_runs_and_meets_its_objectives() {
    let _cpu = whole_cpu();
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
    assert_eq!(out.status.code(), Some(0), "{}", kit::explain(&out));
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "demo took {:?}",
        started.elapsed()
    );
    let report = Report::read(&json).unwrap();
    let rto = report.probes[0].rto().time_to_recover_ms.unwrap();
    // The supervisor restarts the sample 2 s after the kill.
    assert!((1800.0..=3000.0).contains(&rto), "demo RTO {rto} ms");
}

/// Without CAP_NET_ADMIN the demo cannot slow the network: the fault is skipped, not
/// dropped — it stays in the JSON, JUnit and Markdown reports with its reason, and the
/// kill and its RTO still run. (Needs root to run the copy as uid 65534.)
#[test]
fn the_demo_without_root_skips_the_network_fault_in_every_report() {
    let _cpu = whole_cpu();
    if !kit::root_or_skip(
        "the_demo_without_root_skips_the_network_fault_in_every_report",
        "root, to run the demo as an unprivileged user",
    ) {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let open = tempfile::tempdir().unwrap();
    std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let bin = open.path().join("shakeout");
    std::fs::copy(kit::process::BIN, &bin).unwrap();
    let (json, junit, markdown) = (
        open.path().join("demo.json"),
        open.path().join("demo.xml"),
        open.path().join("demo.md"),
    );
    let mut command = std::process::Command::new(&bin);
    command
        .current_dir(open.path())
        .env("SHAKEOUT_STATE_DIR", open.path().join("state"))
        .env("HOME", open.path())
        .args(["demo", "--quiet", "--port"])
        .arg(free_port().to_string())
        .arg("--json")
        .arg(&json)
        .arg("--junit")
        .arg(&junit)
        .arg("--markdown")
        .arg(&markdown)
        .uid(65534)
        .gid(65534);
    let out = kit::process::output_of_fresh_copy(&mut command);
    assert_eq!(out.status.code(), Some(0), "{}", kit::explain(&out));
    let report = Report::read(&json).unwrap();
    let slow = report.fault("slow-sample");
    assert_eq!(slow.status, "skipped");
    let reason = slow.reason.as_deref().unwrap_or_default();
    assert!(reason.contains("CAP_NET_ADMIN"), "{reason}");
    let verdict = report.verdict("fault/slow-sample");
    assert_eq!(verdict.status, "notMeasured", "{verdict:?}");
    assert_eq!(report.fault("kill-sample").status, "applied");
    assert!(report.probes[0].rto().time_to_recover_ms.is_some());
    let junit = std::fs::read_to_string(&junit).unwrap();
    assert!(
        junit.contains("fault/slow-sample") && junit.contains("<skipped"),
        "{junit}"
    );
    let markdown = std::fs::read_to_string(&markdown).unwrap();
    assert!(
        markdown.contains("slow-sample") && markdown.contains("skipped"),
        "{markdown}"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("slow-sample") && text.contains("skipped"),
        "{text}"
    );
}

#[test]
fn a_readiness_command_gates_the_start_and_its_failure_is_exit_3() {
    let _cpu = shared_cpu();
    // The service makes `made` in the case's directory; it is ready once `ready` exists.
    let experiment = |case: &Case, made: &str| {
        let dir = case.dir().display();
        let port = case.port;
        Experiment::new("ready-cmd", "5s")
            .service(
                Map::named("slow-start")
                    .with(
                        "command",
                        format!(r#"[sh, -c, "sleep 0.3; touch {dir}/{made}; exec sleep 30"]"#),
                    )
                    .with(
                        "ready",
                        format!(r#"{{ command: [test, -f, "{dir}/ready"], within: 3s }}"#),
                    )
                    .with("stopGrace", "1s"),
            )
            .probe(tcp_probe("p", format!("127.0.0.1:{port}"), "10/s"))
            .steady_state("{ window: 500ms }")
    };
    // Ready once the service has made its file: the run goes ahead.
    let first = case();
    let ran = first.run(&first.write(experiment(&first, "ready")));
    assert_ne!(ran.code(), Some(3), "{}", ran.explain());
    assert!(
        ran.report().has_event("slow-start ready"),
        "{:#}",
        ran.report().json()["events"]
    );
    // A check that never passes (in a fresh directory): exit 3, naming the command.
    let fresh = case();
    let ran = fresh.run(&fresh.write(experiment(&fresh, "elsewhere")));
    assert_eq!(ran.code(), Some(3));
    let reason = ran.report().run.reason.clone().unwrap();
    assert!(
        reason.contains("not ready within 3s") && reason.contains("test -f"),
        "{reason}"
    );
}
