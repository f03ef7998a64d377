//! RPO through the HTTP backend against a small in-memory store started by the test on
//! 127.0.0.1:0 that can misbehave on purpose: replay (store a write twice), reorder
//! (swap adjacent writes), drop acknowledged writes while a fault's marker file exists,
//! stall reads. Each misbehaviour must show up exactly in the report.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup should panic loudly

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;

mod common;

use common::{free_port, shakeout};

/// How the store misbehaves.
#[derive(Clone, Default)]
struct Faults {
    /// Store writes whose seq % 10 == 3 twice.
    replay: bool,
    /// Store a write whose seq % 10 == 6 after the next one.
    reorder: bool,
    /// Acknowledge but do not store writes while this file exists.
    drop_while: Option<PathBuf>,
    /// Never answer reads of single keys.
    stall_reads: bool,
}

#[derive(Default)]
struct Store {
    /// Keys in stored order (the `list` endpoint).
    log: Vec<String>,
    kv: HashMap<String, String>,
    held: Option<String>,
}

/// The store, served on 127.0.0.1:0 until dropped.
struct Service {
    addr: std::net::SocketAddr,
    store: Arc<Mutex<Store>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Service {
    fn start(faults: Faults) -> Service {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let store = Arc::new(Mutex::new(Store::default()));
        let shared = (Arc::clone(&store), Arc::new(faults));
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (store, faults) = (Arc::clone(&shared.0), Arc::clone(&shared.1));
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        handle(req, Arc::clone(&store), Arc::clone(&faults))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Service {
            addr,
            store,
            runtime: Some(runtime),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn handle(
    req: Request<Incoming>,
    store: Arc<Mutex<Store>>,
    faults: Arc<Faults>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body).into_owned();
    let reply = |status: StatusCode, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        Ok(r)
    };
    let key = path.strip_prefix("/kv/").map(str::to_owned);
    match (method, key) {
        (Method::PUT, Some(key)) => {
            let dropping = faults.drop_while.as_ref().is_some_and(|p| p.exists());
            let seq: u64 = body.trim().parse().unwrap();
            let mut s = store.lock().unwrap();
            if !dropping {
                let put = |s: &mut Store, key: String| {
                    s.kv.insert(key.clone(), seq.to_string());
                    s.log.push(key);
                };
                if faults.reorder && seq % 10 == 6 {
                    s.held = Some(key);
                } else {
                    put(&mut s, key.clone());
                    if faults.replay && seq % 10 == 3 {
                        put(&mut s, key);
                    }
                    if faults.reorder && seq % 10 == 7 {
                        if let Some(held) = s.held.take() {
                            s.kv.insert(held.clone(), (seq - 1).to_string());
                            s.log.push(held);
                        }
                    }
                }
            }
            reply(StatusCode::OK, String::new())
        }
        (Method::GET, Some(key)) => {
            if faults.stall_reads {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            match store.lock().unwrap().kv.get(&key) {
                Some(v) => reply(StatusCode::OK, v.clone()),
                None => reply(StatusCode::NOT_FOUND, String::new()),
            }
        }
        (Method::DELETE, Some(key)) => {
            let mut s = store.lock().unwrap();
            s.kv.remove(&key);
            s.log.retain(|k| *k != key);
            reply(StatusCode::OK, String::new())
        }
        (Method::GET, None) if path == "/log" => {
            let prefix = query.strip_prefix("prefix=").unwrap_or_default();
            let s = store.lock().unwrap();
            let lines: Vec<&str> = s
                .log
                .iter()
                .filter(|k| k.starts_with(prefix))
                .map(String::as_str)
                .collect();
            reply(StatusCode::OK, lines.join("\n"))
        }
        (Method::DELETE, None) if path == "/log" => {
            let prefix = query.strip_prefix("prefix=").unwrap_or_default();
            let mut s = store.lock().unwrap();
            s.log.retain(|k| !k.starts_with(prefix));
            s.kv.retain(|k, _| !k.starts_with(prefix));
            reply(StatusCode::OK, String::new())
        }
        _ => reply(StatusCode::NOT_FOUND, String::new()),
    }
}

/// Writes per second: margins are in write intervals (50 ms).
const RATE: f64 = 20.0;

fn run(dir: &Path, spec: &str) -> (Output, Value, Duration) {
    let yaml = format!(
        "apiVersion: shakeout/v1\nkind: Experiment\nmetadata: {{ name: rpo-http }}\nspec:\n{spec}"
    );
    let file = dir.join("exp.yaml");
    std::fs::write(&file, yaml).unwrap();
    let json = dir.join("report.json");
    let started = Instant::now();
    let out = shakeout()
        .arg("run")
        .arg(&file)
        .arg("--json")
        .arg(&json)
        .arg("--quiet")
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    let report = std::fs::read_to_string(&json)
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or(Value::Null);
    (out, report, elapsed)
}

fn explain(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
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
fn replayed_and_reordered_writes_are_counted_exactly() {
    let svc = Service::start(Faults {
        replay: true,
        reorder: true,
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let url = svc.url();
    let (out, report, _) = run(
        dir.path(),
        &format!(
            r#"  duration: 30s
  probes:
    - name: log-write
      rate: {RATE}/s
      write:
        http:
          write: {{ method: PUT, url: "{url}/kv/{{key}}", body: "{{seq}}" }}
          list: {{ url: "{url}/log?prefix={{run}}" }}
          delete: {{ method: DELETE, url: "{url}/log?prefix={{run}}" }}
  steadyState: {{ window: 2s }}
  objectives:
    rpo: {{ max: 0s, maxDuplicates: 0, maxOutOfOrder: 0 }}
"#
        ),
    );
    let write = &report["probes"][0]["write"];
    let scheduled = write["scheduled"].as_u64().unwrap();
    assert_eq!(
        write["acknowledged"],
        scheduled,
        "{write:#}\n{}",
        explain(&out)
    );
    let count = |rem: u64, below: u64| (0..below).filter(|s| s % 10 == rem).count() as u64;
    assert_eq!(write["duplicated"], count(3, scheduled), "{write:#}");
    // A 6 is stored after its 7, so only when the 7 was written.
    assert_eq!(write["outOfOrder"], count(6, scheduled - 1), "{write:#}");
    // The last write, if a held 6, never got stored.
    let lost = u64::from(scheduled % 10 == 7);
    assert_eq!(write["lost"], lost, "{write:#}");
    assert_eq!(write["unacknowledgedPresent"], 0);
    assert_eq!(
        verdict(&report, "rpo/log-write/duplicates")["status"],
        "fail"
    );
    assert_eq!(
        verdict(&report, "rpo/log-write/outOfOrder")["status"],
        "fail"
    );
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    // The one delete removed the run's log.
    assert!(svc.store.lock().unwrap().log.is_empty());
}

#[test]
fn writes_dropped_during_a_fault_are_lost_and_the_window_matches_the_fault() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("drop");
    let svc = Service::start(Faults {
        drop_while: Some(marker.clone()),
        ..Faults::default()
    });
    let url = svc.url();
    let m = marker.display();
    let (out, report, _) = run(
        dir.path(),
        &format!(
            r#"  duration: 30s
  probes:
    - name: kv-write
      rate: {RATE}/s
      write:
        timeout: 500ms
        http:
          write: {{ method: PUT, url: "{url}/kv/{{key}}", body: "{{seq}}" }}
          read: {{ url: "{url}/kv/{{key}}" }}
          delete: {{ method: DELETE, url: "{url}/kv/{{key}}" }}
  steadyState: {{ window: 1s, availability: {{ min: 90% }} }}
  faults:
    - name: lose-writes
      at: 1500ms
      duration: 1s
      exec: {{ command: [touch, "{m}"], revert: [rm, "{m}"] }}
  objectives:
    rpo: {{ max: 0s }}
"#
        ),
    );
    let write = &report["probes"][0]["write"];
    let interval = 1000.0 / RATE;
    let fault = &report["faults"][0];
    let at = |action: &str, field: &str| fault[action][field].as_f64().unwrap();
    let window = &write["lossWindow"];
    let (start, end) = (
        window["startMs"].as_f64().unwrap(),
        window["endMs"].as_f64().unwrap(),
    );
    assert!(
        start >= at("apply", "startedMs") - 2.0 * interval
            && start <= at("apply", "endedMs") + 2.0 * interval,
        "window starts at {start} ms; the marker appeared {}..{} ms\n{}",
        at("apply", "startedMs"),
        at("apply", "endedMs"),
        explain(&out)
    );
    assert!(
        end >= at("revert", "startedMs") - 2.0 * interval
            && end <= at("revert", "endedMs") + 2.0 * interval,
        "window ends at {end} ms; the marker went {}..{} ms",
        at("revert", "startedMs"),
        at("revert", "endedMs")
    );
    // Every write in the window was dropped: lost = window / interval.
    let duration = window["durationMs"].as_f64().unwrap();
    assert_eq!(
        write["lost"].as_f64().unwrap(),
        (duration / interval).round()
    );
    assert_eq!(verdict(&report, "rpo/kv-write")["status"], "fail");
    // Per-key reads see no order: those counts are absent, not zero.
    assert!(write.get("duplicated").is_none(), "{write:#}");
    // Cleanup deleted every key of the run.
    assert!(svc.store.lock().unwrap().kv.is_empty());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("faults: lose-writes at 1.50s"), "{stdout}");
}

#[test]
fn a_stalled_read_back_is_not_measured_and_bounded_in_time() {
    let svc = Service::start(Faults {
        stall_reads: true,
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let url = svc.url();
    let (out, report, elapsed) = run(
        dir.path(),
        &format!(
            r#"  duration: 30s
  probes:
    - name: kv-write
      rate: {RATE}/s
      write:
        readBack: {{ timeout: 2s }}
        http:
          write: {{ method: PUT, url: "{url}/kv/{{key}}", body: "{{seq}}" }}
          read: {{ url: "{url}/kv/{{key}}" }}
  steadyState: {{ window: 1s }}
  objectives:
    rpo: {{ max: 0s }}
"#
        ),
    );
    let v = verdict(&report, "rpo/kv-write");
    assert_eq!(v["status"], "notMeasured", "{v:#}\n{}", explain(&out));
    assert!(
        v["note"]
            .as_str()
            .unwrap()
            .contains("read-back timed out after 2s"),
        "{v:#}"
    );
    let write = &report["probes"][0]["write"];
    assert!(write.get("lost").is_none(), "{write:#}");
    // No delete configured: the keys stay, and the report says so.
    assert_eq!(write["keysKept"], true);
    // The run took its own duration, the 2s read-back, and startup: not the stall.
    let run_s = report["run"]["durationMs"].as_f64().unwrap() / 1000.0;
    let over = elapsed.as_secs_f64() - run_s;
    assert!(over < 2.0 + 5.0, "{over:.1}s past the run's end");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("read-back timed out"), "{stdout}");
}

#[test]
fn an_unreachable_backend_is_exit_3_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (up, down) = (free_port(), free_port());
    let d = dir.path().display();
    // A real service that must be stopped again: redis on `up`; the probe writes to `down`.
    let (out, report, _) = run(
        dir.path(),
        &format!(
            r#"  duration: 10s
  services:
    - name: redis
      command: [redis-server, --port, "{up}", --bind, 127.0.0.1, --save, "", --dir, "{d}"]
      ready: {{ tcp: "127.0.0.1:{up}", within: 10s }}
  probes:
    - name: kv-write
      rate: 10/s
      write:
        redis: {{ url: "redis://127.0.0.1:{down}/0" }}
  faults:
    - name: marker
      at: 1s
      exec: {{ command: [touch, "{d}/fault-ran"] }}
"#
        ),
    );
    assert_eq!(out.status.code(), Some(3), "{}", explain(&out));
    let reason = report["run"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("probe `kv-write`: write backend unreachable before the run"),
        "{reason}"
    );
    assert!(!dir.path().join("fault-ran").exists());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", up)).is_err(),
        "the redis service was left running on port {up}"
    );
}
