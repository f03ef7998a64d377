//! Shared helpers for the agent's integration tests: an in-process agent on
//! 127.0.0.1:0, the real binary on a temp state dir, a tiny HTTP client, and child
//! processes that are killed when the test ends, whatever the outcome.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

mod private_file;
pub use private_file::write_private;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use shakeout_agent::server::{self, Limits, ServerConfig, Tokens};
use shakeout_agent::{Agent, AgentConfig};
use tokio_util::sync::CancellationToken;

pub const SECRET: &str = "test-secret-0123456789";
pub const TOKENS: &str = "ci:test-secret-0123456789\n";

/// An agent in this process, served on a free port; stopped on drop.
pub struct InProcess {
    pub addr: SocketAddr,
    pub agent: Agent,
    pub dir: tempfile::TempDir,
    stop: CancellationToken,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl InProcess {
    pub async fn start() -> InProcess {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(edit: impl FnOnce(&mut AgentConfig)) -> InProcess {
        Self::start_full(edit, Limits::default()).await
    }

    /// With these server limits (connection cap, timeouts).
    pub async fn start_limits(limits: Limits) -> InProcess {
        Self::start_full(|_| {}, limits).await
    }

    pub async fn start_full(edit: impl FnOnce(&mut AgentConfig), limits: Limits) -> InProcess {
        let dir = tempfile::tempdir().unwrap();
        let mut config = AgentConfig::new(dir.path().join("state"));
        edit(&mut config);
        let agent = Agent::start(config).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let server_config = ServerConfig {
            tokens: Tokens::parse(TOKENS).unwrap(),
            tls: None,
            limits,
        };
        let server = tokio::spawn(server::serve(
            listener,
            agent.clone(),
            server_config,
            stop.clone(),
        ));
        InProcess {
            addr,
            agent,
            dir,
            stop,
            server: Some(server),
        }
    }

    /// Stop serving and wait until the server is done (its last audit lines written).
    pub async fn stop_server(&mut self) {
        self.stop.cancel();
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
    }

    pub fn audit(&self) -> Vec<Value> {
        audit_lines(&self.dir.path().join("state/audit.jsonl"))
    }

    pub fn ledger_files(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("state/ledger"))
            .unwrap()
            .count()
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub fn audit_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// One HTTP/1.1 request on a fresh connection: (status, JSON body or the text as a string).
pub async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
) -> (u16, Value) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "agent");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).to_string();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

/// Authenticated call with a JSON body.
pub async fn post(addr: SocketAddr, path: &str, body: Value) -> (u16, Value) {
    call(addr, "POST", path, Some(SECRET), Some(body.to_string())).await
}

pub async fn get(addr: SocketAddr, path: &str) -> (u16, Value) {
    call(addr, "GET", path, Some(SECRET), None).await
}

pub async fn delete(addr: SocketAddr, path: &str) -> (u16, Value) {
    call(addr, "DELETE", path, Some(SECRET), None).await
}

/// An apply request body.
pub fn apply_body(target: Value, action: Value, duration: &str, lease: &str) -> Value {
    serde_json::json!({
        "experiment": "test",
        "fault": "f1",
        "duration": duration,
        "lease": lease,
        "spec": { "process": { "target": target, "action": action } }
    })
}

/// A child process, SIGKILLed and reaped on drop.
pub struct Kid(pub Child);

impl Kid {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `sleep 60` under a unique name (a symlink, so `comm` is that name and no other
/// test's sleepers can match it). Returns the name and the children.
pub fn sleepers(n: usize) -> (tempfile::TempDir, String, Vec<Kid>) {
    let dir = tempfile::tempdir().unwrap();
    let name = format!("snz{:08x}", rand_u32());
    let link = dir.path().join(&name);
    let sleep = ["/usr/bin/sleep", "/bin/sleep"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap();
    std::os::unix::fs::symlink(sleep, &link).unwrap();
    let kids = (0..n)
        .map(|_| Kid(Command::new(&link).arg("60").spawn().unwrap()))
        .collect();
    for k in &kids {
        wait_state(k, 'S');
    }
    (dir, name, kids)
}

pub fn rand_u32() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    nanos ^ std::process::id().rotate_left(16)
}

/// `/proc/PID/stat` state letter, or `None` once the process is gone.
pub fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// Wait (bounded) until `kid` is in `want` state.
pub fn wait_state(kid: &Kid, want: char) {
    let pid = kid.pid();
    wait_until(
        Duration::from_secs(10),
        || state(pid) == Some(want),
        &format!("pid {pid} in state {want}"),
    );
}

/// Poll `cond` until true or panic after `limit`.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool, what: &str) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The real `shakeout-agent` binary on a state dir; SIGKILLed on drop if still running.
pub struct BinAgent {
    pub child: Kid,
    pub addr: SocketAddr,
}

/// `dir/tokens`, mode 0600 (the agent refuses a tokens file others may read).
pub fn tokens_file(dir: &Path) -> PathBuf {
    let path = dir.join("tokens");
    write_private(&path, TOKENS);
    path
}

impl BinAgent {
    pub fn start(dir: &Path) -> BinAgent {
        Self::start_with(dir, &[], None)
    }

    /// With `extra` arguments, and (`nofile`) under `ulimit -n N` (soft and hard), as a
    /// shell or a unit without LimitNOFILE would start it.
    pub fn start_with(dir: &Path, extra: &[&str], nofile: Option<u64>) -> BinAgent {
        let tokens = tokens_file(dir);
        let bin = env!("CARGO_BIN_EXE_shakeout-agent");
        let mut command = match nofile {
            None => Command::new(bin),
            Some(n) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(bin);
                c
            }
        };
        let mut child = command
            .args(["--listen", "127.0.0.1:0", "--state-dir"])
            .arg(dir.join("state"))
            .arg("--tokens")
            .arg(&tokens)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("agent did not start: {line:?}"))
            .parse()
            .unwrap();
        BinAgent {
            child: Kid(child),
            addr,
        }
    }

    /// SIGTERM, then wait (bounded) for a clean exit.
    pub fn stop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.pid() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let status = self.wait_exit(Duration::from_secs(30));
        assert!(status.success(), "agent exit after SIGTERM: {status}");
    }

    /// Wait (bounded) for the agent to exit; its exit status.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.0.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < limit,
                "agent still running after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A self-signed server certificate for 127.0.0.1, made in process (rcgen), as
/// `dir/cert.pem` and `dir/key.pem`.
pub fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "agent");
    // rustls refuses a CA certificate as a server certificate.
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    let pair = rcgen::KeyPair::generate().unwrap();
    let made = params.self_signed(&pair).unwrap();
    std::fs::write(&cert, made.pem()).unwrap();
    std::fs::write(&key, pair.serialize_pem()).unwrap();
    (cert, key)
}
