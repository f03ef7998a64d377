//! The open-model prober against real sockets on 127.0.0.1: no coordinated omission,
//! exact counts, and every failure classified as what a user would call it.
#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

mod support {
    //! A controllable HTTP target: answers with a configured status and body, holds every
    //! response while "stalled", and can be killed with its connections open. Runs on the
    //! test's runtime, on `127.0.0.1:0`.

    use std::convert::Infallible;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicU16, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper::{Response, StatusCode};
    use hyper_util::rt::TokioIo;
    use shakeout::experiment::spec::ConnectionMode;
    use shakeout::probe::{
        self, HttpTarget, Pace, ProbeConfig, ProbeRecording, ProbeStats, Recorder, Target,
        TcpTarget,
    };
    use tokio::net::TcpListener;
    use tokio::sync::watch;
    use tokio::task::{JoinHandle, JoinSet};
    use tokio_util::sync::CancellationToken;

    pub struct Server {
        pub addr: SocketAddr,
        status: Arc<AtomicU16>,
        stalled: watch::Sender<bool>,
        kill: CancellationToken,
        task: JoinHandle<()>,
    }

    impl Server {
        /// Serve `body` with status 200 until killed.
        pub async fn start(body: &'static str) -> Server {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let status = Arc::new(AtomicU16::new(200));
            let (stalled, _) = watch::channel(false);
            let kill = CancellationToken::new();
            let task = tokio::spawn(serve(
                listener,
                body,
                Arc::clone(&status),
                stalled.clone(),
                kill.clone(),
            ));
            Server {
                addr,
                status,
                stalled,
                kill,
                task,
            }
        }

        pub fn url(&self) -> String {
            format!("http://{}/health", self.addr)
        }

        pub fn set_status(&self, status: u16) {
            self.status.store(status, Ordering::Release);
        }

        /// While stalled, every response (pending or new) is held; clearing releases them.
        pub fn set_stalled(&self, stalled: bool) {
            self.stalled.send_replace(stalled);
        }

        /// Drop the listener and every open connection, like a killed process.
        pub async fn kill(self) {
            self.kill.cancel();
            self.task.await.unwrap();
        }
    }

    async fn serve(
        listener: TcpListener,
        body: &'static str,
        status: Arc<AtomicU16>,
        stalled: watch::Sender<bool>,
        kill: CancellationToken,
    ) {
        let mut connections = JoinSet::new();
        loop {
            let stream = tokio::select! {
                _ = kill.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => continue,
                },
            };
            let status = Arc::clone(&status);
            let stalled = stalled.subscribe();
            connections.spawn(async move {
                let service = service_fn(move |_req| {
                    let status = status.load(Ordering::Acquire);
                    let mut stalled = stalled.clone();
                    async move {
                        let _ = stalled.wait_for(|s| !*s).await;
                        let mut response =
                            Response::new(Full::new(Bytes::from_static(body.as_bytes())));
                        *response.status_mut() = StatusCode::from_u16(status).unwrap();
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
        drop(listener);
        // Aborting drops every connection's socket: the kernel closes them under the clients.
        connections.shutdown().await;
    }

    /// An HTTP probe of `url` with the given pace, bound and deadline.
    pub fn http_probe(
        url: &str,
        connection: ConnectionMode,
        pace: Pace,
        max_in_flight: usize,
        timeout: Duration,
    ) -> ProbeConfig {
        ProbeConfig {
            name: "test".into(),
            pace,
            max_in_flight,
            target: Target::Http(
                HttpTarget::get(url.parse().unwrap(), timeout, connection).unwrap(),
            ),
            tls: None,
        }
    }

    /// A TCP probe (connect only) of `address` at `rate`, with its bound and deadline.
    pub fn tcp_probe(
        address: SocketAddr,
        rate: f64,
        max_in_flight: usize,
        timeout: Duration,
    ) -> ProbeConfig {
        ProbeConfig {
            name: "tcp".into(),
            pace: Pace::Rate(rate),
            max_in_flight,
            target: Target::Tcp(TcpTarget {
                address: address.to_string(),
                timeout,
            }),
            tls: None,
        }
    }

    /// A started probe with its clock.
    pub struct Run {
        pub origin: Instant,
        recorder: Arc<Recorder>,
        running: probe::RunningProbe,
    }

    impl Run {
        pub fn start(config: ProbeConfig) -> Run {
            let origin = Instant::now();
            let recorder = Arc::new(Recorder::new("test", Duration::from_millis(100)));
            let running = probe::start(
                config,
                origin,
                Arc::clone(&recorder),
                CancellationToken::new(),
            );
            Run {
                origin,
                recorder,
                running,
            }
        }

        /// Sleep until `at` after the origin.
        pub async fn until(&self, at: Duration) {
            tokio::time::sleep_until((self.origin + at).into()).await;
        }

        pub async fn stop(self) -> (ProbeStats, ProbeRecording) {
            let stats = self.running.stop().await;
            let recording = self.recorder.finish(stats.stopped_at);
            (stats, recording)
        }
    }

    /// Probe for `duration` and stop.
    pub async fn run_for(config: ProbeConfig, duration: Duration) -> (ProbeStats, ProbeRecording) {
        let run = Run::start(config);
        run.until(duration).await;
        run.stop().await
    }
}

use std::time::{Duration, Instant};

use shakeout::experiment::spec::ConnectionMode;
use shakeout::probe::{Outcome, Pace, ProbeConfig, ProbeRecording, Target};
use support::{http_probe, run_for, tcp_probe, Run, Server};

const MS: Duration = Duration::from_millis(1);

/// Sends with an ok latency of at least `at_least`.
fn slow_count(recording: &ProbeRecording, at_least: Duration) -> u64 {
    let latency = recording.total().latency;
    latency.count_between(at_least.as_micros() as u64, latency.max())
}

fn count(recording: &ProbeRecording, outcome: Outcome) -> u64 {
    recording.total().counts.get(outcome)
}

/// Run a probe while the server stalls every response for `stall`, from 300 ms in.
/// Returns the recording and the stall as the server saw it.
async fn probe_through_stall(
    server: &Server,
    config: ProbeConfig,
    stall: Duration,
) -> (ProbeRecording, Duration) {
    let run = Run::start(config);
    run.until(300 * MS).await;
    server.set_stalled(true);
    let stalled_at = Instant::now();
    tokio::time::sleep(stall).await;
    server.set_stalled(false);
    let stalled_for = stalled_at.elapsed();
    run.until(300 * MS + stalled_for + 300 * MS).await;
    let (stats, recording) = run.stop().await;
    assert_eq!(recording.total().counts.scheduled(), stats.scheduled);
    (recording, stalled_for)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_shows_in_full_in_every_send_it_delayed() {
    let server = Server::start("ok").await;
    let rate = 200.0;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let stall = 500 * MS;
    let open = http_probe(
        &server.url(),
        ConnectionMode::KeepAlive,
        Pace::Rate(rate),
        256,
        2000 * MS,
    );
    let (recording, s) = probe_through_stall(&server, open, stall).await;
    assert_eq!(
        count(&recording, Outcome::Ok),
        recording.total().counts.scheduled()
    );

    // The first send held is at most one interval younger than the stall, so its latency
    // from the intended time is the whole stall, minus that interval and the histogram's
    // 0.1 % resolution; no send waits much longer than the stall.
    let max = Duration::from_micros(recording.total().latency.max());
    assert!(
        max + interval + 2 * MS >= s,
        "max latency {max:?} for a {s:?} stall"
    );
    assert!(max <= s + 250 * MS, "max latency {max:?} for a {s:?} stall");

    // Every send intended in the first half of the stall waited at least half of it:
    // rate × S/2 of them, within 25 % (and at least two sends) of slack.
    let slow = slow_count(&recording, s / 2) as f64;
    let expected = rate * s.as_secs_f64() / 2.0;
    let margin = (expected * 0.25).max(2.0);
    assert!(
        (slow - expected).abs() <= margin,
        "{slow} sends ≥ S/2, expected {expected} ± {margin}"
    );

    // The same stall measured closed-loop (one connection, the next send waits for the
    // previous answer) shows one slow sample: coordinated omission hides the rest.
    let closed = http_probe(
        &server.url(),
        ConnectionMode::KeepAlive,
        Pace::Max,
        1,
        2000 * MS,
    );
    let (recording, s) = probe_through_stall(&server, closed, stall).await;
    let closed_slow = slow_count(&recording, s / 2);
    assert!(
        (1..=2).contains(&closed_slow),
        "closed loop: {closed_slow} slow"
    );
    assert!(
        slow >= 10.0 * closed_slow as f64,
        "open {slow} vs closed {closed_slow}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_are_exact_and_every_send_has_one_outcome() {
    let server = Server::start("ok").await;
    let rate = 100.0;
    let config = http_probe(
        &server.url(),
        ConnectionMode::KeepAlive,
        Pace::Rate(rate),
        8,
        1000 * MS,
    );
    let (stats, recording) = run_for(config, 1000 * MS).await;
    // Sends 0..=floor(T × R) are due by the stop time T.
    let due = (stats.stopped_at.as_secs_f64() * rate).floor() as u64 + 1;
    assert!(stats.scheduled.abs_diff(due) <= 1, "{stats:?}, due {due}");
    assert!((100..=103).contains(&stats.scheduled), "{stats:?}");
    assert_eq!(recording.total().counts.scheduled(), stats.scheduled);
    assert_eq!(count(&recording, Outcome::Ok), stats.scheduled);
    // Every send in a closed bucket is accounted for in its bucket too.
    let in_buckets: u64 = recording.buckets.iter().map(|b| b.counts.scheduled()).sum();
    assert_eq!(in_buckets, stats.scheduled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_is_refused_or_reset_not_timed_out() {
    for mode in [ConnectionMode::New, ConnectionMode::KeepAlive] {
        let server = Server::start("ok").await;
        let config = http_probe(&server.url(), mode, Pace::Rate(200.0), 32, 1000 * MS);
        let run = Run::start(config);
        run.until(300 * MS).await;
        server.kill().await;
        run.until(600 * MS).await;
        let (stats, recording) = run.stop().await;
        let c = recording.total().counts;
        assert_eq!(c.scheduled(), stats.scheduled, "{mode:?}");
        assert!(c.ok() > 0, "{mode:?}: {c:?}");
        assert!(c.get(Outcome::Refused) > 0, "{mode:?}: {c:?}");
        // Every failure says "process gone", none says "hung" or "unknown".
        let gone = c.get(Outcome::Refused) + c.get(Outcome::Reset);
        assert_eq!(gone, c.failed(), "{mode:?}: {c:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_is_refused_for_http_and_tcp() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = format!("http://{addr}/");
    let tcp = tcp_probe(addr, 100.0, 4, 500 * MS);
    let configs = [
        http_probe(&url, ConnectionMode::New, Pace::Rate(100.0), 4, 500 * MS),
        http_probe(
            &url,
            ConnectionMode::KeepAlive,
            Pace::Rate(100.0),
            4,
            500 * MS,
        ),
        tcp,
    ];
    for config in configs {
        let kind = config.target.describe();
        let (stats, recording) = run_for(config, 200 * MS).await;
        assert!(stats.scheduled >= 20, "{kind}: {stats:?}");
        assert_eq!(
            count(&recording, Outcome::Refused),
            stats.scheduled,
            "{kind}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    // Accept and hold every connection without reading or writing.
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let config = http_probe(
        &url,
        ConnectionMode::KeepAlive,
        Pace::Rate(50.0),
        16,
        200 * MS,
    );
    let (stats, recording) = run_for(config, 300 * MS).await;
    assert!(stats.scheduled >= 15, "{stats:?}");
    assert_eq!(count(&recording, Outcome::Timeout), stats.scheduled);
    holder.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_accept_queue_is_a_connect_timeout() {
    // A listener nobody accepts from, with its accept queue filled: the kernel drops
    // further SYNs, which is what a blackhole looks like to the client.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut queued = Vec::new();
    let mut full = false;
    for _ in 0..16 {
        match std::net::TcpStream::connect_timeout(&addr, 100 * MS) {
            Ok(stream) => queued.push(stream),
            Err(_) => {
                full = true;
                break;
            }
        }
    }
    assert!(full, "accept queue never filled");
    let tcp = tcp_probe(addr, 50.0, 16, 200 * MS);
    let mut http = http_probe(
        &format!("http://{addr}/"),
        ConnectionMode::New,
        Pace::Rate(50.0),
        16,
        300 * MS,
    );
    if let Target::Http(h) = &mut http.target {
        h.connect_timeout = 100 * MS;
    }
    for config in [tcp, http] {
        let kind = config.target.describe();
        let (stats, recording) = run_for(config, 200 * MS).await;
        assert!(stats.scheduled >= 10, "{kind}: {stats:?}");
        let c = recording.total().counts;
        assert_eq!(
            c.get(Outcome::ConnectTimeout),
            stats.scheduled,
            "{kind}: {c:?}"
        );
    }
    drop(listener);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_status_and_missing_body_text_are_their_own_outcomes() {
    let server = Server::start("hello").await;
    let probe = |contains: Option<&str>| {
        let mut config = http_probe(
            &server.url(),
            ConnectionMode::KeepAlive,
            Pace::Rate(100.0),
            4,
            500 * MS,
        );
        if let Target::Http(h) = &mut config.target {
            h.body_contains = contains.map(str::to_string);
        }
        config
    };
    let (stats, recording) = run_for(probe(Some("ell")), 150 * MS).await;
    assert_eq!(count(&recording, Outcome::Ok), stats.scheduled);
    let (stats, recording) = run_for(probe(Some("world")), 150 * MS).await;
    assert_eq!(count(&recording, Outcome::Body), stats.scheduled);
    server.set_status(503);
    let (stats, recording) = run_for(probe(None), 150 * MS).await;
    assert_eq!(count(&recording, Outcome::Status), stats.scheduled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_beyond_the_in_flight_bound_are_missed_not_dropped() {
    let server = Server::start("ok").await;
    server.set_stalled(true);
    let config = http_probe(
        &server.url(),
        ConnectionMode::KeepAlive,
        Pace::Rate(100.0),
        2,
        100 * MS,
    );
    let (stats, recording) = run_for(config, 500 * MS).await;
    let c = recording.total().counts;
    assert!(stats.workers <= 2, "{stats:?}");
    assert_eq!(c.scheduled(), stats.scheduled, "{c:?}");
    assert!((50..=53).contains(&stats.scheduled), "{stats:?}");
    // Two slots, each busy for one 100 ms timeout at a time: about 2 sends per 100 ms go
    // out and time out; the rest wait past their deadline and are missed.
    assert!(c.get(Outcome::Timeout) >= 4, "{c:?}");
    assert!(c.get(Outcome::Missed) >= stats.scheduled / 2, "{c:?}");
    assert_eq!(
        c.get(Outcome::Timeout) + c.get(Outcome::Missed),
        stats.scheduled,
        "{c:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_the_token_stops_the_probe() {
    let server = Server::start("ok").await;
    let config = http_probe(
        &server.url(),
        ConnectionMode::KeepAlive,
        Pace::Rate(100.0),
        4,
        500 * MS,
    );
    let cancel = tokio_util::sync::CancellationToken::new();
    let recorder = std::sync::Arc::new(shakeout::probe::Recorder::new("c", 100 * MS));
    let origin = Instant::now();
    let running = shakeout::probe::start(config, origin, recorder.clone(), cancel.clone());
    tokio::time::sleep_until((origin + 200 * MS).into()).await;
    cancel.cancel();
    let cancelled_at = origin.elapsed();
    // Nothing is released after the cancel, even though `stop` is called later.
    tokio::time::sleep(200 * MS).await;
    let stats = running.stop().await;
    assert!(stats.stopped_at <= cancelled_at + 50 * MS, "{stats:?}");
    assert!(stats.scheduled <= 100 * (cancelled_at.as_millis() as u64 + 50) / 1000 + 1);
    let recording = recorder.finish(stats.stopped_at);
    assert_eq!(recording.total().counts.ok(), stats.scheduled);
}
