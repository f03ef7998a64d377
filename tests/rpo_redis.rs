//! RPO against a real `redis-server` (started by shakeout as a supervised service on a
//! free 127.0.0.1 port, with its own data directory), killed with SIGKILL mid-run:
//! `appendfsync always` loses no acknowledged write; without persistence every write
//! acknowledged before the kill is lost, and the loss window says when.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup should panic loudly

mod kit;

use kit::exp::{fault, Experiment, Map};
use kit::{Case, Ran};

/// Writes per second: margins below are in write intervals (50 ms here).
const RATE: f64 = 20.0;

/// Runs `rpo-redis`: redis on the case's port with its data in the case's directory and
/// `persistence` arguments, written to by the probe `orders-write` in `mode` and
/// SIGKILLed 2 s in; restarted 200 ms after it exits.
fn run(case: &Case, persistence: &[&str], mode: &str) -> Ran {
    let (port, dir) = (case.port, case.dir().display());
    let persistence: Vec<String> = persistence.iter().map(|a| format!("{a:?}")).collect();
    let redis = Map::named("redis")
        .with(
            "command",
            format!(
                r#"[redis-server, --port, "{port}", --bind, 127.0.0.1, --dir, "{dir}", --daemonize, "no", {}]"#,
                persistence.join(", ")
            ),
        )
        .with("ready", format!(r#"{{ tcp: "127.0.0.1:{port}", within: 10s }}"#))
        .with("restart", "{ policy: onExit, delay: 200ms }");
    let writes = Map::named("orders-write").with("rate", format!("{RATE}/s")).with(
        "write",
        format!(
            r#"{{ timeout: 500ms, readBack: {{ rate: 1000/s, timeout: 20s }}, redis: {{ url: "redis://127.0.0.1:{port}/0", mode: {mode} }} }}"#
        ),
    );
    let file = case.write(
        Experiment::new("rpo-redis", "30s")
            .service(redis)
            .probe(writes)
            .steady_state("{ window: 1s, availability: { min: 90% } }")
            .fault(fault("kill-redis", "2s").with(
                "exec",
                r#"{ command: [kill, -KILL, "${service.redis.pid}"] }"#,
            ))
            .objective("rpo", "{ max: 0s, probe: orders-write }")
            .objective("rto", "{ max: 20s, stableFor: 500ms }"),
    );
    case.run(&file)
}

#[test]
fn append_only_fsync_always_loses_no_acknowledged_write() {
    let ran = run(
        &Case::new(),
        &[
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
        ],
        "set",
    );
    let report = ran.report();
    let write = report.probe("orders-write").write();
    assert_eq!(write.lost, Some(0), "{write:#?}\n{}", ran.explain());
    assert!(write.acknowledged > 40, "{write:#?}");
    assert!(write.loss_window.is_none(), "{write:#?}");
    assert_eq!(report.verdict("rpo/orders-write").status, "pass");
    // The kill really happened: the supervisor restarted redis.
    assert!(
        report.has_event("redis restarted"),
        "{:#}",
        report.json()["events"]
    );
    assert!(!write.keys_kept);
    assert!(write.cleanup_error.is_none(), "{write:#?}");
    assert!(
        ran.stdout().contains("RPO: loss window 0"),
        "{}",
        ran.stdout()
    );
}

#[test]
fn without_persistence_every_write_acknowledged_before_the_kill_is_lost() {
    let ran = run(&Case::new(), &["--appendonly", "no", "--save", ""], "list");
    assert_eq!(ran.code(), Some(1), "{}", ran.explain());
    let report = ran.report();
    let probe = report.probe("orders-write");
    let write = probe.write();
    let interval = 1000.0 / RATE;
    let apply = report.fault("kill-redis").apply();
    let (killed_from, killed_by) = (apply.started_ms, apply.ended_ms);
    // Acknowledged writes in buckets wholly before the kill command started must all be
    // lost; at most those of the buckets up to its end can be.
    let bucket = report.run.bucket_ms;
    let ok_before = |t: f64| -> u64 {
        probe
            .timeline
            .iter()
            .filter(|b| b.start_ms + bucket <= t)
            .map(|b| b.ok)
            .sum()
    };
    let lost = write.lost.unwrap();
    assert!(
        lost >= ok_before(killed_from) && lost <= ok_before(killed_by + bucket),
        "lost {lost}; ok before the kill {}..{}\n{write:#?}",
        ok_before(killed_from),
        ok_before(killed_by + bucket)
    );
    let window = write.loss_window.as_ref().unwrap();
    let (start, end, duration) = (window.start_ms, window.end_ms, window.duration_ms);
    assert_eq!(start, 0.0, "the first write is lost too: {window:#?}");
    assert!(
        end >= killed_from - 2.0 * interval && end <= killed_by + 2.0 * interval,
        "window ends at {end} ms, the kill ran {killed_from}..{killed_by} ms"
    );
    assert!(
        (duration - (end - start + interval)).abs() < 1e-6,
        "{window:#?}"
    );
    // A list shows order and duplicates: the writes after the restart are clean.
    assert_eq!(write.duplicated, Some(0), "{write:#?}");
    assert_eq!(write.out_of_order, Some(0), "{write:#?}");
    let v = report.verdict("rpo/orders-write");
    assert_eq!(v.status, "fail");
    assert!(v.measured.as_ref().unwrap().contains(&format!("{lost} of")));
}
