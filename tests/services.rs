//! Supervised services as a user meets them: a port someone else already answers on, a
//! service that says why it failed, a chatty one, a crash loop before and after the
//! faults, a restart onto a port taken meanwhile, and the `log` file. Real processes on
//! 127.0.0.1 (ephemeral ports); the probes point at a healthy server of the test's own
//! where the point is that they cannot tell a service failed.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup should panic loudly

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

mod kit;

use kit::exp::{fault, health_probe, quoted, sample_service, Experiment, Map};
use kit::process::{listening, wait_listening};
use kit::{wait_for, Case, Owned};

/// The sample service on 127.0.0.1:`port`, started by the test (not by shakeout).
fn other_server(port: u16) -> Owned {
    let server = Owned::spawn(&mut kit::process::sample_service(port));
    wait_listening(port);
    server
}

/// A service running `script` with `sh -c`.
fn shell(name: &str, script: &str) -> Map {
    Map::named(name).with("command", format!("[sh, -c, {}]", quoted(script)))
}

#[test]
fn a_port_that_already_answers_is_refused_naming_its_holder() {
    let case = Case::new();
    let holder = other_server(case.port);
    let file = case.write(
        Experiment::new("taken", "10s")
            .service(sample_service(case.port))
            .probe(health_probe(case.port, "50/s")),
    );
    let ran = case.run(&file);
    assert_eq!(ran.code(), Some(3), "{}", ran.explain());
    let reason = ran.report().run.reason.clone().unwrap();
    assert_eq!(
        reason,
        format!(
            "service `sample`: 127.0.0.1:{} already answers before the service started \
             (held by pid {} `shakeout`); stop it or choose another port",
            case.port,
            holder.pid()
        )
    );
    assert!(ran.stdout().contains(&reason), "{}", ran.explain());
    // Nothing was started: the probes would have measured the other server.
    let sample = ran.report().service("sample");
    assert!(
        sample.starts.is_empty(),
        "{:#}",
        ran.report().json()["services"]
    );
}

#[test]
fn a_service_that_cannot_listen_says_why_in_its_own_words() {
    // A readiness command has no address to check first: the service starts, cannot
    // bind, and its own message is the reason.
    let case = Case::new();
    let _holder = other_server(case.port);
    let file = case.write(
        Experiment::new("taken", "10s")
            .service(
                sample_service(case.port)
                    .with("ready", "{ command: [test, -f, never], within: 5s }"),
            )
            .probe(health_probe(case.port, "50/s")),
    );
    let ran = case.run(&file);
    assert_eq!(ran.code(), Some(3), "{}", ran.explain());
    let said = format!(
        "sample-service: cannot listen on 127.0.0.1:{}: Address already in use (os error 98)",
        case.port
    );
    let reason = ran.report().run.reason.clone().unwrap();
    assert_eq!(
        reason,
        format!(
            "service `sample`: exited before it was ready (exit code 3); its last output: {said}"
        )
    );
    assert!(ran.stdout().contains(&reason), "{}", ran.explain());
    let sample = ran.report().service("sample");
    assert_eq!(sample.stderr, [said]);
    assert_eq!(sample.exits.len(), 1);
    assert_eq!(sample.exits[0].exit_code, Some(3));
    assert!(!sample.exits[0].stopped);
}

#[test]
fn a_service_that_prints_and_exits_leaves_its_last_lines_in_the_event_and_report() {
    let case = Case::new();
    let _server = other_server(case.port);
    let file = case.write(
        Experiment::new("printer", "2s")
            .service(shell(
                "printer",
                "echo starting up; echo 'printer: out of paper' >&2; sleep 0.3; exit 4",
            ))
            .probe(health_probe(case.port, "50/s")),
    );
    let ran = case.run(&file);
    assert_eq!(ran.code(), Some(0), "{}", ran.explain());
    let report = ran.report();
    assert!(
        report.has_event("printer exited (exit code 4); last output: printer: out of paper"),
        "{:#}",
        report.json()["events"]
    );
    let printer = report.service("printer");
    assert_eq!(printer.stdout, ["starting up"]);
    assert_eq!(printer.stderr, ["printer: out of paper"]);
    assert_eq!(printer.starts.len(), 1);
    assert_eq!(printer.exits.len(), 1);
    assert_eq!(printer.exits[0].exit_code, Some(4));
    assert_eq!(printer.exits[0].pid, printer.starts[0].pid);
    // It crashed, so the terminal shows it with its words.
    let stdout = ran.stdout();
    assert!(
        stdout.contains("\nservices\n  printer: 1 start (0 restarts), last exit 4 at"),
        "{stdout}"
    );
    assert!(
        stdout.contains("    | printer: out of paper\n    | starting up\n"),
        "{stdout}"
    );
}

#[test]
fn a_chatty_service_never_blocks_and_its_output_stays_bounded() {
    let case = Case::new();
    let _server = other_server(case.port);
    let done = case.path("done");
    // 28 MB on stderr, then 28 MB on stdout: a pipe nobody reads fills at 64 KiB and
    // blocks the writer, and reading stdout to its end first would never reach stderr.
    let script = format!(
        "yes 'chatty stderr line' | head -n 1500000 >&2; \
         yes 'chatty stdout line' | head -n 1500000; \
         echo 'last words'; touch {}; exec sleep 60",
        done.display()
    );
    let file = case.write(
        Experiment::new("chatty", "60s")
            .service(shell("chatty", &script).with("stopGrace", "1s"))
            .probe(health_probe(case.port, "20/s")),
    );
    let mut run = case.spawn(&file);
    wait_for(
        "56 MB of output to be read",
        Duration::from_secs(45),
        || done.exists(),
    );
    // Peak memory of the controller with all of it read: the rings hold 16 KiB.
    let status = std::fs::read_to_string(format!("/proc/{}/status", run.pid())).unwrap();
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert!(
        peak_kib < 48 * 1024,
        "peak RSS {peak_kib} KiB after 56 MB of output"
    );
    run.signal(nix::sys::signal::Signal::SIGINT);
    assert_eq!(run.wait().code(), Some(2));
    let report = case.report();
    let chatty = report.service("chatty");
    assert_eq!(chatty.stdout.len(), 50);
    assert_eq!(chatty.stdout.last().unwrap(), "last words");
    assert_eq!(chatty.stdout[0], "chatty stdout line");
    assert_eq!(chatty.stderr.len(), 50);
    assert!(chatty.stderr.iter().all(|l| l == "chatty stderr line"));
}

#[test]
fn a_crash_loop_before_the_faults_backs_off_stops_and_fails_the_steady_state() {
    let case = Case::new();
    let _server = other_server(case.port);
    let file = case.write(
        Experiment::new("crash-loop", "30s")
            .service(
                shell(
                    "crashy",
                    "echo 'crashy: cannot read /etc/crashy.toml' >&2; exit 1",
                )
                .with(
                    "restart",
                    "{ policy: onExit, delay: 300ms, maxDelay: 1200ms }",
                ),
            )
            // The probes see a healthy server: only the supervisor knows.
            .probe(health_probe(case.port, "50/s"))
            .steady_state("{ window: 1s, availability: { min: 99% } }")
            .fault(fault("never", "10s").with("exec", "{ command: [\"true\"] }")),
    );
    let ran = case.run(&file);
    assert_eq!(ran.code(), Some(1), "{}", ran.explain());
    let report = ran.report();
    let crashy = report.service("crashy");
    // Five restarts (the default limit), then given up: six starts, six exits.
    assert_eq!(crashy.restarts, 5, "{:#}", report.json()["services"]);
    assert_eq!((crashy.starts.len(), crashy.exits.len()), (6, 6));
    // Each restart waited its backoff: 300ms doubling, at most 1.2s. The margin is below
    // the smallest step, so a doubling too many or too few shows.
    for (k, want) in [300.0, 600.0, 1200.0, 1200.0, 1200.0]
        .into_iter()
        .enumerate()
    {
        let waited = crashy.starts[k + 1].at_ms - crashy.exits[k].at_ms;
        assert!(
            waited >= want && waited < want + 250.0,
            "restart {}: waited {waited} ms, configured {want} ms",
            k + 1
        );
    }
    let failed = crashy.failed.as_ref().unwrap();
    assert!(
        failed
            .reason
            .starts_with("service `crashy` is crash-looping: 5 restarts in ")
            && failed
                .reason
                .ends_with("; last output: crashy: cannot read /etc/crashy.toml"),
        "{}",
        failed.reason
    );
    // The run stopped before its first fault, on a failed steady state.
    assert_eq!(report.run.status, "failed");
    let reason = report.run.reason.clone().unwrap();
    assert_eq!(
        reason,
        format!(
            "steady state did not hold before the first fault ({}); no fault was injected",
            failed.reason
        )
    );
    assert_eq!(report.fault("never").status, "pending");
    let before = report.verdict("steadyState/before/availability/health");
    assert_eq!(before.status, "fail");
    assert_eq!(before.measured.as_deref(), Some(failed.reason.as_str()));
    assert_eq!(report.verdict("service/crashy").status, "fail");
    assert!(report.has_event("service `crashy` is crash-looping"));
}

#[test]
fn a_crash_loop_after_the_faults_fails_the_steady_state_after_them() {
    let case = Case::new();
    let _server = other_server(case.port);
    let broken = case.path("broken");
    let script = format!(
        "if [ -f {0} ]; then echo 'flaky: database is gone' >&2; exit 1; fi; exec sleep 60",
        broken.display()
    );
    let file = case.write(
        Experiment::new("crash-loop-after", "30s")
            .service(shell("flaky", &script).with(
                "restart",
                "{ policy: onExit, delay: 100ms, maxDelay: 400ms }",
            ))
            .probe(health_probe(case.port, "50/s"))
            .steady_state("{ window: 1s, availability: { min: 99% } }")
            // Recovery is judged 5 s after the fault at the earliest: the crash loop,
            // given up on within about 2 s, comes first.
            .objective("rto", "{ max: 10s, stableFor: 5s }")
            .fault(fault("break-it", "1s").with(
                "exec",
                format!(
                    r#"{{ command: [sh, -c, "touch {} && kill -KILL ${{service.flaky.pid}}"] }}"#,
                    broken.display()
                ),
            )),
    );
    let ran = case.run(&file);
    assert_eq!(ran.code(), Some(1), "{}", ran.explain());
    let report = ran.report();
    let flaky = report.service("flaky");
    let failed = flaky.failed.as_ref().unwrap();
    assert!(
        failed.reason.contains("is crash-looping: 5 restarts"),
        "{}",
        failed.reason
    );
    assert!(failed
        .reason
        .ends_with("last output: flaky: database is gone"));
    assert_eq!(report.fault("break-it").status, "applied");
    assert_eq!(
        report
            .verdict("steadyState/before/availability/health")
            .status,
        "pass"
    );
    let after = report.verdict("steadyState/after/availability/health");
    assert_eq!(after.status, "fail", "{:#}", report.json()["verdicts"]);
    assert_eq!(after.measured.as_deref(), Some(failed.reason.as_str()));
    let reason = report.run.reason.clone().unwrap();
    assert!(
        reason.starts_with(&failed.reason) && reason.contains("the run stopped"),
        "{reason}"
    );
    // Stopped when it gave up, not at the experiment's 30 s.
    assert!(
        report.run.duration_ms < failed.at_ms + 1000.0,
        "{}",
        report.run.duration_ms
    );
}

#[test]
fn a_restart_onto_a_port_someone_took_meanwhile_is_refused() {
    let case = Case::new();
    let file = case.write(
        Experiment::new("stolen", "30s")
            .service(sample_service(case.port).with("restart", "{ policy: onExit, delay: 2s }"))
            .probe(health_probe(case.port, "50/s"))
            .steady_state("{ window: 1s, availability: { min: 50% } }")
            .fault(fault("kill", "1s").with(
                "exec",
                r#"{ command: [kill, -KILL, "${service.sample.pid}"] }"#,
            )),
    );
    let mut run = case.spawn(&file);
    wait_listening(case.port);
    wait_for("the kill", Duration::from_secs(20), || {
        !listening(case.port)
    });
    // In the 2 s before the restart, another server takes the port.
    let thief = other_server(case.port);
    let status = run.wait();
    assert_eq!(status.code(), Some(1));
    let report = case.report();
    let sample = report.service("sample");
    assert_eq!(sample.starts.len(), 1, "restarted onto a taken port");
    let failed = sample.failed.as_ref().unwrap();
    assert_eq!(
        failed.reason,
        format!(
            "service `sample` cannot be restarted: 127.0.0.1:{} already answers while it is \
             down (held by pid {} `shakeout`); stop it or choose another port",
            case.port,
            thief.pid()
        )
    );
    let after = report.verdict("steadyState/after/availability/health");
    assert_eq!(after.status, "fail");
    assert!(report.has_event("cannot be restarted"));
}

#[test]
fn the_log_file_gets_everything_the_service_printed() {
    let case = Case::new();
    let _server = other_server(case.port);
    std::fs::write(case.path("svc.log"), "from an earlier run\n").unwrap();
    let file = case.write(
        Experiment::new("logged", "1s")
            .service(
                shell(
                    "logged",
                    "for i in $(seq 1 200); do echo out $i; done; echo oops >&2; exec sleep 60",
                )
                .with("log", "svc.log")
                .with("stopGrace", "1s"),
            )
            .probe(health_probe(case.port, "20/s")),
    );
    let ran = case.run(&file);
    assert_eq!(ran.code(), Some(0), "{}", ran.explain());
    let log = std::fs::read_to_string(case.path("svc.log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    // Appended, every line of both streams (the report keeps only the last 50).
    assert_eq!(lines[0], "from an earlier run");
    assert_eq!(lines.len(), 1 + 200 + 1, "{log}");
    let out: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("out "))
        .collect();
    assert_eq!(out.first(), Some(&"out 1"));
    assert_eq!(out.last(), Some(&"out 200"));
    assert!(lines.contains(&"oops"));
    let logged = ran.report().service("logged");
    assert_eq!(logged.stdout.len(), 50);
    assert_eq!(logged.stdout[0], "out 151");
    assert_eq!(logged.stderr, ["oops"]);
    assert_eq!(
        logged.log.as_deref(),
        Some(case.path("svc.log").to_str().unwrap())
    );
    // A new log file is rw-r--r--.
    let fresh = Case::new();
    let _server = other_server(fresh.port);
    let file = fresh.write(
        Experiment::new("logged", "500ms")
            .service(shell("logged", "echo hi; exec sleep 60").with("log", "new.log"))
            .probe(health_probe(fresh.port, "20/s")),
    );
    let ran = fresh.run(&file);
    assert_eq!(ran.code(), Some(0), "{}", ran.explain());
    let meta = std::fs::metadata(fresh.path("new.log")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o644);
    assert_eq!(
        std::fs::read_to_string(fresh.path("new.log")).unwrap(),
        "hi\n"
    );
}
