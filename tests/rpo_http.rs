//! RPO through the HTTP backend against a small in-memory store started by the test on
//! 127.0.0.1:0 that can misbehave on purpose: replay (store a write twice), reorder
//! (swap adjacent writes), drop acknowledged writes while a fault's marker file exists,
//! stall reads. Each misbehaviour must show up exactly in the report.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup should panic loudly

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

mod kit;

use kit::exp::{fault, Experiment, Map};
use kit::{free_port, Case, Ran};

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

/// Runs `rpo-http` for 30 s (unless `duration` says otherwise) with `probe` and the rest
/// `more` adds.
fn run(case: &Case, duration: &str, more: impl FnOnce(Experiment) -> Experiment) -> Ran {
    case.run(&case.write(more(Experiment::new("rpo-http", duration))))
}

/// The write probe `name` at RATE through the HTTP backend: `write` holds the backend's
/// requests (`http`) and any other write settings.
fn write_probe(name: &str, write: Map) -> Map {
    Map::named(name)
        .with("rate", format!("{RATE}/s"))
        .with("write", write)
}

/// The requests of the store at `url` a write probe makes: a PUT of `{seq}` to
/// `/kv/{key}` and, per `read`, how it reads back.
fn http(url: &str, read: &str, read_url: String) -> Map {
    Map::default()
        .with(
            "write",
            format!(r#"{{ method: PUT, url: "{url}/kv/{{key}}", body: "{{seq}}" }}"#),
        )
        .with(read, format!(r#"{{ url: "{read_url}" }}"#))
}

#[test]
fn replayed_and_reordered_writes_are_counted_exactly() {
    let svc = Service::start(Faults {
        replay: true,
        reorder: true,
        ..Faults::default()
    });
    let url = svc.url();
    let log = format!("{url}/log?prefix={{run}}");
    let http = http(&url, "list", log.clone())
        .with("delete", format!(r#"{{ method: DELETE, url: "{log}" }}"#));
    let ran = run(&Case::new(), "30s", |e| {
        e.probe(write_probe("log-write", Map::default().with("http", http)))
            .steady_state("{ window: 2s }")
            .objective("rpo", "{ max: 0s, maxDuplicates: 0, maxOutOfOrder: 0 }")
    });
    let report = ran.report();
    let write = report.probe("log-write").write();
    let scheduled = write.scheduled;
    assert_eq!(
        write.acknowledged,
        scheduled,
        "{write:#?}\n{}",
        ran.explain()
    );
    let count = |rem: u64, below: u64| (0..below).filter(|s| s % 10 == rem).count() as u64;
    assert_eq!(write.duplicated, Some(count(3, scheduled)), "{write:#?}");
    // A 6 is stored after its 7, so only when the 7 was written.
    assert_eq!(
        write.out_of_order,
        Some(count(6, scheduled - 1)),
        "{write:#?}"
    );
    // The last write, if a held 6, never got stored.
    let lost = u64::from(scheduled % 10 == 7);
    assert_eq!(write.lost, Some(lost), "{write:#?}");
    assert_eq!(write.unacknowledged_present, Some(0));
    assert_eq!(report.verdict("rpo/log-write/duplicates").status, "fail");
    assert_eq!(report.verdict("rpo/log-write/outOfOrder").status, "fail");
    assert_eq!(ran.code(), Some(1), "{}", ran.explain());
    // The one delete removed the run's log.
    assert!(svc.store.lock().unwrap().log.is_empty());
}

#[test]
fn writes_dropped_during_a_fault_are_lost_and_the_window_matches_the_fault() {
    let case = Case::new();
    let marker = case.path("drop");
    let svc = Service::start(Faults {
        drop_while: Some(marker.clone()),
        ..Faults::default()
    });
    let url = svc.url();
    let key = format!("{url}/kv/{{key}}");
    let http = http(&url, "read", key.clone())
        .with("delete", format!(r#"{{ method: DELETE, url: "{key}" }}"#));
    let m = marker.display();
    let ran = run(&case, "30s", |e| {
        e.probe(write_probe(
            "kv-write",
            Map::default().with("timeout", "500ms").with("http", http),
        ))
        .steady_state("{ window: 1s, availability: { min: 90% } }")
        .fault(fault("lose-writes", "1500ms").with("duration", "1s").with(
            "exec",
            format!(r#"{{ command: [touch, "{m}"], revert: [rm, "{m}"] }}"#),
        ))
        .objective("rpo", "{ max: 0s }")
    });
    let report = ran.report();
    let write = report.probe("kv-write").write();
    let interval = 1000.0 / RATE;
    let fault = report.fault("lose-writes");
    let (apply, revert) = (fault.apply(), fault.revert());
    let window = write.loss_window.as_ref().unwrap();
    let (start, end) = (window.start_ms, window.end_ms);
    assert!(
        start >= apply.started_ms - 2.0 * interval && start <= apply.ended_ms + 2.0 * interval,
        "window starts at {start} ms; the marker appeared {}..{} ms\n{}",
        apply.started_ms,
        apply.ended_ms,
        ran.explain()
    );
    assert!(
        end >= revert.started_ms - 2.0 * interval && end <= revert.ended_ms + 2.0 * interval,
        "window ends at {end} ms; the marker went {}..{} ms",
        revert.started_ms,
        revert.ended_ms
    );
    // Every write in the window was dropped: lost = window / interval.
    let duration = window.duration_ms;
    assert_eq!(write.lost.unwrap() as f64, (duration / interval).round());
    assert_eq!(report.verdict("rpo/kv-write").status, "fail");
    // Per-key reads see no order: those counts are absent, not zero.
    assert!(write.duplicated.is_none(), "{write:#?}");
    // Cleanup deleted every key of the run.
    assert!(svc.store.lock().unwrap().kv.is_empty());
    assert!(
        ran.stdout().contains("faults: lose-writes at 1.50s"),
        "{}",
        ran.stdout()
    );
}

#[test]
fn a_stalled_read_back_is_not_measured_and_bounded_in_time() {
    let svc = Service::start(Faults {
        stall_reads: true,
        ..Faults::default()
    });
    let url = svc.url();
    let http = http(&url, "read", format!("{url}/kv/{{key}}"));
    let ran = run(&Case::new(), "30s", |e| {
        e.probe(write_probe(
            "kv-write",
            Map::default()
                .with("readBack", "{ timeout: 2s }")
                .with("http", http),
        ))
        .steady_state("{ window: 1s }")
        .objective("rpo", "{ max: 0s }")
    });
    let report = ran.report();
    let v = report.verdict("rpo/kv-write");
    assert_eq!(v.status, "notMeasured", "{v:#?}\n{}", ran.explain());
    assert!(
        v.note
            .as_ref()
            .unwrap()
            .contains("read-back timed out after 2s"),
        "{v:#?}"
    );
    let write = report.probe("kv-write").write();
    assert!(write.lost.is_none(), "{write:#?}");
    // No delete configured: the keys stay, and the report says so.
    assert!(write.keys_kept);
    // The run took its own duration, the 2s read-back, and startup: not the stall.
    let run_s = report.run.duration_ms / 1000.0;
    let over = ran.elapsed.as_secs_f64() - run_s;
    assert!(over < 2.0 + 5.0, "{over:.1}s past the run's end");
    assert!(
        ran.stdout().contains("read-back timed out"),
        "{}",
        ran.stdout()
    );
}

#[test]
fn an_unreachable_backend_is_exit_3_before_anything_runs() {
    let case = Case::new();
    let (up, down) = (free_port(), free_port());
    let d = case.dir().display();
    // A real service that must be stopped again: redis on `up`; the probe writes to `down`.
    let ran = run(&case, "10s", |e| {
        e.service(
            Map::named("redis")
                .with(
                    "command",
                    format!(r#"[redis-server, --port, "{up}", --bind, 127.0.0.1, --save, "", --dir, "{d}"]"#),
                )
                .with("ready", format!(r#"{{ tcp: "127.0.0.1:{up}", within: 10s }}"#)),
        )
        .probe(
            Map::named("kv-write").with("rate", "10/s").with(
                "write",
                format!(r#"{{ redis: {{ url: "redis://127.0.0.1:{down}/0" }} }}"#),
            ),
        )
        .fault(fault("marker", "1s").with(
            "exec",
            format!(r#"{{ command: [touch, "{d}/fault-ran"] }}"#),
        ))
    });
    assert_eq!(ran.code(), Some(3), "{}", ran.explain());
    let reason = ran.report().run.reason.clone().unwrap();
    assert!(
        reason.contains("probe `kv-write`: write backend unreachable before the run"),
        "{reason}"
    );
    assert!(!case.path("fault-ran").exists());
    assert!(
        !kit::process::listening(up),
        "the redis service was left running on port {up}"
    );
}
