//! The agent cannot be flooded: unauthenticated requests cost the audit log a bounded
//! number of bytes, idle and half-open connections cannot starve an authenticated caller,
//! over the cap with only authenticated connections a new one gets 503, the audit log
//! rotates, and the files that hold secrets or records are private. Real sockets, and
//! the real binary where the start-up path matters (limits, flags, file modes).
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use shakeout_agent::server::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Raise this test process's open-files limit (soft and hard; we are root) to `n`.
fn raise_own_nofile(n: u64) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < n {
        let hard = hard.max(n);
        setrlimit(Resource::RLIMIT_NOFILE, n, hard).unwrap_or_else(|e| {
            panic!("cannot raise RLIMIT_NOFILE to {n} (hard {hard}): {e}; run as root")
        });
    }
}

/// A connection from `src` (any 127.x.y.z is a local address on Linux).
async fn connect_from(src: IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(src, 0))?;
    socket.connect(addr).await
}

/// Send `request` raw and read the answer until the agent closes (bounded).
async fn exchange(mut s: TcpStream, request: &[u8]) -> String {
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the agent kept the connection open");
    String::from_utf8_lossy(&out).into_owned()
}

fn audit_bytes(dir: &Path) -> u64 {
    std::fs::metadata(dir.join("state/audit.jsonl"))
        .map(|m| m.len())
        .unwrap_or(0)
}

/// Unauthenticated refusal lines (full and summary) in the audit log.
fn refusal_lines(dir: &Path) -> Vec<Value> {
    audit_lines(&dir.join("state/audit.jsonl"))
        .into_iter()
        .filter(|l| l["token"] == "-" && l["code"] == "unauthorized")
        .collect()
}

/// 10,000 unauthenticated requests with 8 KB paths from `addresses` source addresses
/// (round robin, 32 at a time) to the real binary; then SIGTERM, so the last summaries
/// are written. Returns (audit growth in bytes, the refusal lines, seconds taken).
async fn unauthenticated_flood(addresses: u32) -> (u64, Vec<Value>, f64) {
    const REQUESTS: u32 = 10_000;
    const WORKERS: u32 = 32;
    let dir = tempfile::tempdir().unwrap();
    let mut agent = BinAgent::start(dir.path());
    let addr = agent.addr;
    let before = audit_bytes(dir.path());
    let path = format!("/v1/faults/{}", "x".repeat(8192));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..WORKERS {
        let path = path.clone();
        workers.spawn(async move {
            let mut unauthorized = 0;
            for i in (w..REQUESTS).step_by(WORKERS as usize) {
                let n = i % addresses;
                // 127.0.0.1, 127.0.0.2, …: every one a local address.
                let src = IpAddr::V4(Ipv4Addr::from(0x7f00_0001 + n));
                let s = connect_from(src, addr).await.unwrap();
                let request = format!("DELETE {path} HTTP/1.1\r\nhost: a\r\n\r\n");
                let answer = exchange(s, request.as_bytes()).await;
                assert!(answer.starts_with("HTTP/1.1 401"), "{answer:.200}");
                assert!(
                    answer.to_ascii_lowercase().contains("connection: close"),
                    "{answer:.300}"
                );
                unauthorized += 1;
            }
            unauthorized
        });
    }
    let answered: u32 = workers.join_all().await.into_iter().sum();
    let took = started.elapsed().as_secs_f64();
    assert_eq!(answered, REQUESTS);
    agent.stop();
    let growth = audit_bytes(dir.path()) - before;
    (growth, refusal_lines(dir.path()), took)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_flood_grows_the_audit_log_by_at_most_1_mib() {
    for addresses in [8, 4000] {
        let (growth, lines, took) = unauthenticated_flood(addresses).await;
        eprintln!(
            "10000 unauthenticated requests (8 KB paths) from {addresses} addresses in \
             {took:.1}s: audit log +{growth} bytes ({:.1} bytes/request), {} lines",
            growth as f64 / 10_000.0,
            lines.len()
        );
        assert!(
            growth <= 1024 * 1024,
            "{addresses} addresses: +{growth} bytes"
        );
        let counted: u64 = lines.iter().map(|l| l["count"].as_u64().unwrap_or(1)).sum();
        assert_eq!(
            counted, 10_000,
            "every refusal is in the log, alone or counted"
        );
        for line in &lines {
            let message = line["message"].as_str().unwrap();
            assert!(
                message.len() < 400,
                "a line repeats the path whole: {message}"
            );
            if line.get("count").is_none() {
                let cut = format!("…[{} bytes]", "/v1/faults/".len() + 8192);
                assert!(message.contains(&cut), "{message}");
            }
        }
        if addresses == 8 {
            for n in 0..8u32 {
                let ip = format!("127.0.0.{}", n + 1);
                assert!(
                    lines.iter().any(|l| {
                        let peer = l["peer"].as_str().unwrap_or("");
                        peer == ip || peer.starts_with(&format!("{ip}:"))
                    }),
                    "{ip} is not in the audit log"
                );
            }
        }
    }
}

/// A plain authenticated GET on a fresh connection: its status, or why there was none.
async fn authenticated_get(addr: SocketAddr, path: &str) -> Result<u16, String> {
    let attempt = async {
        let s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nhost: a\r\nauthorization: Bearer {SECRET}\r\nconnection: close\r\n\r\n"
        );
        let mut s = s;
        s.write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out);
        text.get(9..12)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("no status in {text:?}"))
    };
    tokio::time::timeout(Duration::from_secs(30), attempt)
        .await
        .unwrap_or_else(|_| Err("no answer in 30s".into()))
}

/// `n` connections that send nothing or (every other one) half a request head.
async fn idle_connections(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut open = Vec::with_capacity(n);
    let mut connecting = tokio::task::JoinSet::new();
    for i in 0..n {
        connecting.spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            if i % 2 == 1 {
                s.write_all(b"GET /v1/faults HTTP/1.1\r\nhost: a\r\n")
                    .await
                    .unwrap();
            }
            s
        });
        // Bounded concurrency: a connect storm bigger than the backlog only adds SYN
        // retransmits (seconds), not a different test.
        if connecting.len() >= 256 {
            open.push(connecting.join_next().await.unwrap().unwrap());
        }
    }
    open.extend(connecting.join_all().await);
    open
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticated_requests_are_served_with_5000_idle_connections_open() {
    raise_own_nofile(16_384);
    let dir = tempfile::tempdir().unwrap();
    // As measured on main: `ulimit -n 1024`, the unit's old default.
    let agent = BinAgent::start_with(dir.path(), &[], Some(1024));
    let started = Instant::now();
    let idle = idle_connections(agent.addr, 5000).await;
    let opened = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut answered = 0;
    let mut failures = Vec::new();
    for _ in 0..20 {
        match authenticated_get(agent.addr, "/v1/faults").await {
            Ok(200) => answered += 1,
            other => failures.push(format!("{other:?}")),
        }
    }
    let took = started.elapsed().as_secs_f64();
    let (status, metrics) = call(agent.addr, "GET", "/metrics", Some(SECRET), None).await;
    assert_eq!(status, 200);
    let metrics = metrics.as_str().unwrap().to_string();
    let evicted = metric(&metrics, "shakeout_agent_connections_evicted_total");
    eprintln!(
        "5000 idle connections (half with a partial head) opened in {opened:.1}s; \
         then {answered}/20 authenticated requests answered 200 in {took:.2}s; \
         {evicted} idle connections evicted"
    );
    assert_eq!(answered, 20, "{failures:?}");
    // The cap was reached (idle ones that outlived the 10 s header timeout closed
    // without being evicted, so how many were depends on the machine's speed).
    assert!(evicted > 0.0, "the cap (512) was never reached");
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_cap_with_only_authenticated_connections_is_503_and_close() {
    let agent = InProcess::start_limits(Limits {
        max_connections: 3,
        ..Limits::default()
    })
    .await;
    // Three kept-alive connections, each authenticated by one request.
    let mut held = Vec::new();
    for _ in 0..3 {
        let stream = TcpStream::connect(agent.addr).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        let req = hyper::Request::get("/v1/faults")
            .header("host", "a")
            .header("authorization", format!("Bearer {SECRET}"))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        assert_eq!(sender.send_request(req).await.unwrap().status(), 200);
        held.push(sender);
    }
    let request =
        format!("GET /v1/faults HTTP/1.1\r\nhost: a\r\nauthorization: Bearer {SECRET}\r\n\r\n");
    let answer = exchange(
        TcpStream::connect(agent.addr).await.unwrap(),
        request.as_bytes(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["code"], "unavailable", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("3 connections"),
        "{body}"
    );
    // One authenticated caller leaves: the next one gets its place.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = exchange(
            TcpStream::connect(agent.addr).await.unwrap(),
            request
                .replace("\r\n\r\n", "\r\nconnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await;
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        // The agent sees the close when the socket's FIN arrives; until then, 503.
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(Instant::now() < deadline, "no place freed in 10s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Asked on a connection already held: a new one could still find the agent full
    // until it sees the FIN of the exchange above, and get a 503.
    let sender = held.last_mut().unwrap();
    let req = hyper::Request::get("/metrics")
        .header("host", "a")
        .header("authorization", format!("Bearer {SECRET}"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    let metrics = String::from_utf8_lossy(&body);
    assert!(metric(&metrics, "shakeout_agent_connections_refused_total") >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_half_sent_and_oldest_idle_connections_are_closed() {
    let agent = InProcess::start_limits(Limits {
        max_connections: 3,
        header_timeout: Duration::from_secs(1),
        ..Limits::default()
    })
    .await;
    // The header timeout closes a connection that never sends a byte, and one that
    // stops in the middle of its head.
    for head in [&b""[..], b"GET /v1/faults HTTP/1.1\r\nhost:"] {
        let mut s = TcpStream::connect(agent.addr).await.unwrap();
        s.write_all(head).await.unwrap();
        let started = Instant::now();
        let mut out = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
        assert!(read.is_ok(), "{head:?}: still open after 10s");
        let waited = started.elapsed();
        let shown = String::from_utf8_lossy(head);
        eprintln!("{shown:?}: closed after {waited:?} (header timeout 1s)");
        assert!(
            waited >= Duration::from_millis(500),
            "{head:?}: closed at once"
        );
    }
    // And a kept-alive connection that goes quiet after its answer.
    let mut s = TcpStream::connect(agent.addr).await.unwrap();
    let request =
        format!("GET /v1/faults HTTP/1.1\r\nhost: a\r\nauthorization: Bearer {SECRET}\r\n\r\n");
    s.write_all(request.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "kept-alive connection still open after 10s");
    assert!(
        out.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    eprintln!(
        "kept-alive, quiet after its answer: closed after {:?}",
        started.elapsed()
    );
    assert!(started.elapsed() >= Duration::from_millis(500));
    // At the cap (3), a new connection closes the oldest unauthenticated one.
    let mut oldest = TcpStream::connect(agent.addr).await.unwrap();
    let _second = TcpStream::connect(agent.addr).await.unwrap();
    let _third = TcpStream::connect(agent.addr).await.unwrap();
    assert_eq!(get(agent.addr, "/v1/faults").await.0, 200);
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_millis(900), oldest.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the oldest idle connection was not closed: {read:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_rotates_by_size_and_keeps_n_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut agent = BinAgent::start_with(
        dir.path(),
        &["--audit-max-size", "8KiB", "--audit-keep", "2"],
        None,
    );
    // Authenticated 404s: one audit line each (~250 bytes), 40 KB in all.
    for i in 0..160 {
        let path = format!("/v1/faults/f-{i:016x}");
        assert_eq!(
            call(agent.addr, "DELETE", &path, Some(SECRET), None)
                .await
                .0,
            404
        );
    }
    agent.stop();
    let state = dir.path().join("state");
    let mut names: Vec<String> = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("audit"))
        .collect();
    names.sort();
    assert_eq!(names, ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]);
    let mut ids = Vec::new();
    for name in ["audit.jsonl.2", "audit.jsonl.1", "audit.jsonl"] {
        let path = state.join(name);
        let meta = std::fs::metadata(&path).unwrap();
        assert!(meta.len() <= 8192, "{name}: {} bytes", meta.len());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
        for line in audit_lines(&path) {
            if let Some(id) = line["faultId"].as_str().filter(|id| id.starts_with("f-")) {
                ids.push(u64::from_str_radix(&id[2..], 16).unwrap());
            }
        }
    }
    // Whole lines, in order, the newest kept, nothing in between lost.
    assert_eq!(ids.last(), Some(&159));
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");
    eprintln!(
        "rotation at 8KiB, keep 2: {} of 160 lines kept in 3 files",
        ids.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_readable_tokens_file_is_refused_and_records_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = tokens_file(dir.path());
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shakeout-agent"))
        .args(["--listen", "127.0.0.1:0", "--state-dir"])
        .arg(dir.path().join("state"))
        .arg("--tokens")
        .arg(&tokens)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("mode 0644") && stderr.contains(&format!("chmod 600 {}", tokens.display())),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"));

    // 0600 (what tokens_file writes) starts; the records it writes are 0600 in 0700.
    let mut agent = BinAgent::start(dir.path());
    let (_d, _name, kids) = sleepers(1);
    let body = apply_body(json!({"pid": kids[0].pid()}), json!("pause"), "30s", "30s");
    let (status, applied) = post(agent.addr, "/v1/faults", body).await;
    assert_eq!(status, 201, "{applied}");
    let state = dir.path().join("state");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let id = applied["id"].as_str().unwrap();
    assert_eq!(mode(&state.join(format!("ledger/{id}.json"))), 0o600);
    assert_eq!(mode(&state.join("ledger")), 0o700);
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("audit.jsonl")), 0o600);
    agent.stop();
    assert_eq!(state_of(&kids[0]), Some('S'), "reverted at shutdown");
}

/// One authenticated GET over TLS on a fresh connection: its status, or why none.
async fn tls_get(
    connector: &tokio_rustls::TlsConnector,
    addr: SocketAddr,
    path: &str,
) -> Result<u16, String> {
    let attempt = async {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nhost: a\r\nauthorization: Bearer {SECRET}\r\nconnection: close\r\n\r\n"
        );
        tls.write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        // The agent closes without close_notify after `Connection: close`; what was
        // read until then is the answer.
        let _ = tls.read_to_end(&mut out).await;
        let text = String::from_utf8_lossy(&out);
        text.get(9..12)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("no status in {text:?}"))
    };
    tokio::time::timeout(Duration::from_secs(30), attempt)
        .await
        .unwrap_or_else(|_| Err("no answer in 30s".into()))
}

/// A TLS handshake counts as unauthenticated: connections that never finish theirs
/// cannot starve a caller with a token either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_tls_handshakes_do_not_starve_authenticated_callers() {
    use rustls::pki_types::pem::PemObject;
    raise_own_nofile(16_384);
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let tls_args = [
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    let agent = BinAgent::start_with(dir.path(), &tls_args, Some(1024));
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_file(&cert).unwrap())
        .unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    // Half send nothing, half the first bytes of a ClientHello record and then nothing.
    let mut stalled = Vec::new();
    for i in 0..2000 {
        let mut s = TcpStream::connect(agent.addr).await.unwrap();
        if i % 2 == 1 {
            s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
                .await
                .unwrap();
        }
        stalled.push(s);
    }
    let started = Instant::now();
    let mut answered = 0;
    let mut failures = Vec::new();
    for _ in 0..10 {
        match tls_get(&connector, agent.addr, "/v1/faults").await {
            Ok(200) => answered += 1,
            other => failures.push(format!("{other:?}")),
        }
    }
    eprintln!(
        "2000 stalled TLS handshakes: {answered}/10 authenticated TLS requests answered \
         200 in {:.2}s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(answered, 10, "{failures:?}");
    drop(stalled);
}

fn state_of(kid: &Kid) -> Option<char> {
    state(kid.pid())
}
