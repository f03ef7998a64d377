//! RPO against a real `redis-server` (started by shakeout as a supervised service on a
//! free 127.0.0.1 port, with its own data directory), killed with SIGKILL mid-run:
//! `appendfsync always` loses no acknowledged write; without persistence every write
//! acknowledged before the kill is lost, and the loss window says when.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup should panic loudly

use std::path::PathBuf;
use std::process::Output;

mod common;

use common::{free_port, shakeout};
use serde_json::Value;

/// Writes per second: margins below are in write intervals (50 ms here).
const RATE: f64 = 20.0;

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

    fn run(&self, persistence: &[&str], mode: &str) -> (Output, Value) {
        let dir = self.dir.path().display().to_string();
        let port = self.port;
        let persistence: Vec<String> = persistence.iter().map(|a| format!("{a:?}")).collect();
        let yaml = format!(
            r#"apiVersion: shakeout/v1
kind: Experiment
metadata: {{ name: rpo-redis }}
spec:
  duration: 30s
  services:
    - name: redis
      command: [redis-server, --port, "{port}", --bind, 127.0.0.1, --dir, "{dir}", --daemonize, "no", {persistence}]
      ready: {{ tcp: "127.0.0.1:{port}", within: 10s }}
      restart: {{ policy: onExit, delay: 200ms }}
  probes:
    - name: orders-write
      rate: {RATE}/s
      write:
        timeout: 500ms
        readBack: {{ rate: 1000/s, timeout: 20s }}
        redis: {{ url: "redis://127.0.0.1:{port}/0", mode: {mode} }}
  steadyState: {{ window: 1s, availability: {{ min: 90% }} }}
  faults:
    - name: kill-redis
      at: 2s
      exec: {{ command: [kill, -KILL, "${{service.redis.pid}}"] }}
  objectives:
    rpo: {{ max: 0s, probe: orders-write }}
    rto: {{ max: 20s, stableFor: 500ms }}
"#,
            persistence = persistence.join(", ")
        );
        let file = self.dir.path().join("exp.yaml");
        std::fs::write(&file, yaml).unwrap();
        let json: PathBuf = self.dir.path().join("report.json");
        let out = shakeout()
            .arg("run")
            .arg(&file)
            .arg("--json")
            .arg(&json)
            .arg("--quiet")
            .output()
            .unwrap();
        let report = std::fs::read_to_string(&json)
            .map(|t| serde_json::from_str(&t).unwrap())
            .unwrap_or(Value::Null);
        (out, report)
    }
}

fn verdict<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == id)
        .unwrap_or_else(|| panic!("no verdict {id} in {:#}", report["verdicts"]))
}

fn explain(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn append_only_fsync_always_loses_no_acknowledged_write() {
    let case = Case::new();
    let (out, report) = case.run(
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
    let write = &report["probes"][0]["write"];
    assert_eq!(write["lost"], 0, "{write:#}\n{}", explain(&out));
    assert!(write["acknowledged"].as_u64().unwrap() > 40, "{write:#}");
    assert!(write.get("lossWindow").is_none(), "{write:#}");
    assert_eq!(verdict(&report, "rpo/orders-write")["status"], "pass");
    // The kill really happened: the supervisor restarted redis.
    let events = report["events"].to_string();
    assert!(events.contains("redis restarted"), "{events}");
    assert_eq!(write["keysKept"], false);
    assert!(write.get("cleanupError").is_none(), "{write:#}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("RPO: loss window 0"), "{stdout}");
}

#[test]
fn without_persistence_every_write_acknowledged_before_the_kill_is_lost() {
    let case = Case::new();
    let (out, report) = case.run(&["--appendonly", "no", "--save", ""], "list");
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    let probe = &report["probes"][0];
    let write = &probe["write"];
    let interval = 1000.0 / RATE;
    let apply = &report["faults"][0]["apply"];
    let (killed_from, killed_by) = (
        apply["startedMs"].as_f64().unwrap(),
        apply["endedMs"].as_f64().unwrap(),
    );
    // Acknowledged writes in buckets wholly before the kill command started must all be
    // lost; at most those of the buckets up to its end can be.
    let bucket = report["run"]["bucketMs"].as_f64().unwrap();
    let ok_before = |t: f64| -> u64 {
        probe["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["startMs"].as_f64().unwrap() + bucket <= t)
            .map(|b| b["ok"].as_u64().unwrap())
            .sum()
    };
    let lost = write["lost"].as_u64().unwrap();
    assert!(
        lost >= ok_before(killed_from) && lost <= ok_before(killed_by + bucket),
        "lost {lost}; ok before the kill {}..{}\n{write:#}",
        ok_before(killed_from),
        ok_before(killed_by + bucket)
    );
    let window = &write["lossWindow"];
    let (start, end, duration) = (
        window["startMs"].as_f64().unwrap(),
        window["endMs"].as_f64().unwrap(),
        window["durationMs"].as_f64().unwrap(),
    );
    assert_eq!(start, 0.0, "the first write is lost too: {window:#}");
    assert!(
        end >= killed_from - 2.0 * interval && end <= killed_by + 2.0 * interval,
        "window ends at {end} ms, the kill ran {killed_from}..{killed_by} ms"
    );
    assert!(
        (duration - (end - start + interval)).abs() < 1e-6,
        "{window:#}"
    );
    // A list shows order and duplicates: the writes after the restart are clean.
    assert_eq!(write["duplicated"], 0, "{write:#}");
    assert_eq!(write["outOfOrder"], 0, "{write:#}");
    let v = verdict(&report, "rpo/orders-write");
    assert_eq!(v["status"], "fail");
    assert!(v["measured"]
        .as_str()
        .unwrap()
        .contains(&format!("{lost} of")));
}
