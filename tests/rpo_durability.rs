//! The durability demo (`experiments/durability.yaml`) through the real binary: the write
//! probe finds no loss on the `sync` store, and on the `flush:500ms` store a loss window
//! equal to the truth — the time from the store's last flush tick to the kill — within two
//! write intervals.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup should panic loudly

mod kit;

use std::time::UNIX_EPOCH;

use kit::process::flush_origin;
use kit::{free_port, Case};

#[test]
fn sync_loses_nothing_and_flush_loses_exactly_since_its_last_tick() {
    let case = Case::new();
    let (p1, p2) = (free_port(), free_port());
    let yaml = include_str!("../experiments/durability.yaml")
        .replace("18091", &p1.to_string())
        .replace("18092", &p2.to_string())
        .replace(
            "/tmp/shakeout-durability",
            &case.dir().display().to_string(),
        )
        // This test is about loss: a loaded machine must not fail the steady-state gate
        // (which would skip the kill) nor time writes out.
        .replace("availability: { min: 99% }", "availability: { min: 0% }")
        .replace("timeout: 500ms", "timeout: 2s");
    let ran = case.run(&case.write(yaml));
    // The steady-state and RTO verdicts depend on this machine's load; this test is about
    // the loss, so it checks the RPO verdict and the truth, and shows everything on failure.
    let stdout = ran.stdout();
    assert!(matches!(ran.code(), Some(0 | 1)), "{stdout}");
    let report = ran.report();

    let sync = report.probe("writes-sync").write();
    assert_eq!(sync.lost, Some(0), "{sync:#?}");
    assert_eq!(report.verdict("rpo/writes-sync").status, "pass", "{stdout}");
    assert!(sync.acknowledged > 300);

    // The truth: the killed instance's flush ticks and the moment of the kill, both in unix ms.
    let origin = flush_origin(&case.path("flush")) as f64;
    let started = humantime::parse_rfc3339(&report.run.started_at).unwrap();
    let started_ms = started.duration_since(UNIX_EPOCH).unwrap().as_secs_f64() * 1000.0;
    let kill_offset = report
        .fault("kill-flush")
        .apply
        .as_ref()
        .map(|a| a.started_ms)
        .unwrap_or_else(|| panic!("the kill did not run:\n{stdout}"));
    let kill_ms = started_ms + kill_offset;
    let flush = 500.0;
    let last_tick = origin + ((kill_ms - origin) / flush).floor() * flush;
    let truth = kill_ms - last_tick;

    let write = report.probe("writes-flush").write();
    let measured = write.loss_window.as_ref().map_or(0.0, |w| w.duration_ms);
    let interval = 10.0; // 100 writes/s
                         // Two write intervals, as the issue asks, plus the clock mapping (wall anchor vs the
                         // monotonic offsets, and the kill command's start-up).
    assert!(
        (measured - truth).abs() <= 2.0 * interval + 5.0,
        "measured loss window {measured} ms, truth {truth:.1} ms (kill at {kill_ms:.1}, last tick {last_tick:.1}); {write:#?}"
    );
    if truth > 2.0 * interval + 5.0 {
        let end = write.loss_window.as_ref().unwrap().end_ms;
        assert!(
            (end - kill_offset).abs() <= 2.0 * interval,
            "window ends at {end} ms, kill at {kill_offset} ms"
        );
    }
}
