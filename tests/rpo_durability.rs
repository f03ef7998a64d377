//! The durability demo (`experiments/durability.yaml`) through the real binary: the write
//! probe finds no loss on the `sync` store, and on the `flush:500ms` store a loss window
//! equal to the truth — the time from the store's last flush tick to the kill — within two
//! write intervals.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup should panic loudly

mod common;

use std::time::UNIX_EPOCH;

use common::{free_port, shakeout};
use serde_json::Value;

#[test]
fn sync_loses_nothing_and_flush_loses_exactly_since_its_last_tick() {
    let dir = tempfile::tempdir().unwrap();
    let (p1, p2) = (free_port(), free_port());
    let yaml = include_str!("../experiments/durability.yaml")
        .replace("18091", &p1.to_string())
        .replace("18092", &p2.to_string())
        .replace(
            "/tmp/shakeout-durability",
            &dir.path().display().to_string(),
        )
        // This test is about loss: a loaded machine must not fail the steady-state gate
        // (which would skip the kill) nor time writes out.
        .replace("availability: { min: 99% }", "availability: { min: 0% }")
        .replace("timeout: 500ms", "timeout: 2s");
    let file = dir.path().join("durability.yaml");
    std::fs::write(&file, yaml).unwrap();
    let json = dir.path().join("report.json");
    let out = shakeout()
        .arg("run")
        .arg(&file)
        .arg("--quiet")
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    // The steady-state and RTO verdicts depend on this machine's load; this test is about
    // the loss, so it checks the RPO verdict and the truth, and shows everything on failure.
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(matches!(out.status.code(), Some(0 | 1)), "{stdout}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let probe = |name: &str| {
        report["probes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()
            .clone()
    };

    let sync = probe("writes-sync");
    assert_eq!(sync["write"]["lost"], 0, "{:#}", sync["write"]);
    let rpo = report["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == "rpo/writes-sync")
        .unwrap();
    assert_eq!(rpo["status"], "pass", "{stdout}");
    assert!(sync["write"]["acknowledged"].as_u64().unwrap() > 300);

    // The truth: the killed instance's flush ticks and the moment of the kill, both in unix ms.
    let origin: f64 = std::fs::read_to_string(dir.path().join("flush/flush.origin"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let started = humantime::parse_rfc3339(report["run"]["startedAt"].as_str().unwrap()).unwrap();
    let started_ms = started.duration_since(UNIX_EPOCH).unwrap().as_secs_f64() * 1000.0;
    let fault = report["faults"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "kill-flush")
        .unwrap();
    let kill_ms = started_ms
        + fault["apply"]["startedMs"]
            .as_f64()
            .unwrap_or_else(|| panic!("the kill did not run:\n{stdout}"));
    let flush = 500.0;
    let last_tick = origin + ((kill_ms - origin) / flush).floor() * flush;
    let truth = kill_ms - last_tick;

    let write = &probe("writes-flush")["write"];
    let measured = write["lossWindow"]["durationMs"].as_f64().unwrap_or(0.0);
    let interval = 10.0; // 100 writes/s
                         // Two write intervals, as the issue asks, plus the clock mapping (wall anchor vs the
                         // monotonic offsets, and the kill command's start-up).
    assert!(
        (measured - truth).abs() <= 2.0 * interval + 5.0,
        "measured loss window {measured} ms, truth {truth:.1} ms (kill at {kill_ms:.1}, last tick {last_tick:.1}); {write:#}"
    );
    if truth > 2.0 * interval + 5.0 {
        let end = write["lossWindow"]["endMs"].as_f64().unwrap();
        let kill_offset = fault["apply"]["startedMs"].as_f64().unwrap();
        assert!(
            (end - kill_offset).abs() <= 2.0 * interval,
            "window ends at {end} ms, kill at {kill_offset} ms"
        );
    }
}
