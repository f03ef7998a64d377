//! The embedded agent: when a fault names no agent, the controller runs the agent's own
//! core and HTTP server in-process on 127.0.0.1 with a fresh random token — the same code
//! and the same safety (ledger, leases, sweep) as a node agent, no daemon to install.
//!
//! Each controller process gets its own state directory (`embedded/<pid>-<start time>`), so
//! concurrent runs never sweep each other's faults; directories left by controllers
//! that died are swept (their ledgers reverted) and removed at the next start.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use shakeout_agent::server::{serve, Limits, ServerConfig};
use shakeout_agent::{Agent, AgentConfig};
use tokio_util::sync::CancellationToken;

use crate::fault::AgentClient;

/// A running embedded agent. It lives on a thread and runtime of its own: applying a
/// fault spawns and waits for `iptables`/`nft`, which must never stall the prober.
pub struct Embedded {
    shutdown: CancellationToken,
    done: tokio::sync::oneshot::Receiver<Vec<String>>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub client: Arc<AgentClient>,
}

/// Where embedded agents keep their ledgers: `SHAKEOUT_STATE_DIR`, else
/// `/var/lib/shakeout` for root, else `$XDG_STATE_HOME/shakeout` or `~/.local/state/shakeout`.
pub fn state_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("SHAKEOUT_STATE_DIR") {
        return PathBuf::from(dir);
    }
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/lib/shakeout");
    }
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME") {
        return PathBuf::from(dir).join("shakeout");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".local/state/shakeout")
}

/// `/proc/PID/stat` field 22 (start time), to tell a live owner from a recycled pid.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    after.split_whitespace().nth(19)?.parse().ok()
}

fn owner_alive(dir_name: &str) -> bool {
    let Some((pid, started)) = dir_name.split_once('-') else {
        return false;
    };
    match (pid.parse::<u32>(), started.parse::<u64>()) {
        (Ok(pid), Ok(started)) => start_time(pid) == Some(started),
        _ => false,
    }
}

/// An embedded agent reverts only its own ledger: other agents may be live on this host.
fn embedded_config(state_dir: PathBuf) -> AgentConfig {
    let mut config = AgentConfig::new(state_dir);
    config.sweep_tagged_network = false;
    config
}

/// Sweep the state directories of controllers that are gone.
async fn sweep_stale(root: &Path) -> Vec<String> {
    let mut cleaned = Vec::new();
    let Ok(entries) = std::fs::read_dir(root) else {
        return cleaned;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if owner_alive(&name) || !entry.path().is_dir() {
            continue;
        }
        // Starting an agent on the directory runs its sweep: it reverts what the ledger lists.
        match Agent::start(embedded_config(entry.path())).await {
            Ok(agent) => {
                let report = agent.last_sweep().clone();
                agent.shutdown().await;
                if report.errors.is_empty() {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
                cleaned.extend(
                    report
                        .ledger_reverted
                        .iter()
                        .map(|f| format!("{name}: reverted {f}")),
                );
                cleaned.extend(report.errors.iter().map(|e| format!("{name}: {e}")));
            }
            Err(e) => cleaned.push(format!("{name}: sweep failed: {e}")),
        }
    }
    cleaned
}

impl Embedded {
    /// Start the embedded agent (after sweeping what dead controllers left).
    pub async fn start() -> Result<(Embedded, Vec<String>), String> {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (done_tx, done) = tokio::sync::oneshot::channel();
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let thread = std::thread::Builder::new()
            .name("embedded-agent".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("embedded agent: runtime: {e}")));
                        return;
                    }
                };
                runtime.block_on(run(ready_tx, done_tx, stop));
            })
            .map_err(|e| format!("embedded agent: cannot start its thread: {e}"))?;
        let (client, swept) = match ready_rx.await {
            Ok(Ok(ready)) => ready,
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("embedded agent: its thread ended before it was ready".into()),
        };
        Ok((
            Embedded {
                shutdown,
                done,
                thread: Some(thread),
                client: Arc::new(client),
            },
            swept,
        ))
    }

    /// Stop serving and revert whatever is still applied; returns what could not be reverted.
    pub async fn stop(mut self) -> Vec<String> {
        self.shutdown.cancel();
        let failed = (&mut self.done)
            .await
            .unwrap_or_else(|_| vec!["embedded agent thread ended abnormally".into()]);
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        failed
    }
}

type Ready = Result<(AgentClient, Vec<String>), String>;

/// The embedded agent's life on its own runtime: sweep, start, serve, shut down.
async fn run(
    ready: tokio::sync::oneshot::Sender<Ready>,
    done: tokio::sync::oneshot::Sender<Vec<String>>,
    stop: CancellationToken,
) {
    let started = async {
        let root = state_root().join("embedded");
        std::fs::create_dir_all(&root)
            .map_err(|e| format!("embedded agent: cannot create {}: {e}", root.display()))?;
        let swept = sweep_stale(&root).await;
        let me = std::process::id();
        let state_dir = root.join(format!("{me}-{}", start_time(me).unwrap_or(0)));
        let agent = Agent::start(embedded_config(state_dir.clone()))
            .await
            .map_err(|e| format!("embedded agent: {e}"))?;
        let secret: String = (0..32)
            .map(|_| format!("{:x}", rand::random::<u8>() & 0xf))
            .collect();
        let tokens = shakeout_agent::server::Tokens::parse(&format!("controller:{secret}"))
            .map_err(|(_, e)| format!("embedded agent token: {e}"))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("embedded agent: cannot listen on 127.0.0.1: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("embedded agent: {e}"))?;
        let client = AgentClient::new("embedded", &format!("http://{addr}"), &secret, None)
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((agent, listener, tokens, client, swept, state_dir))
    };
    let (agent, listener, tokens, client, swept, state_dir) = match started.await {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(Err(e));
            let _ = done.send(Vec::new());
            return;
        }
    };
    let config = ServerConfig {
        tokens,
        tls: None,
        limits: Limits::default(),
    };
    let server = tokio::spawn(serve(listener, agent.clone(), config, stop.clone()));
    let _ = ready.send(Ok((client, swept)));
    stop.cancelled().await;
    let _ = server.await;
    let report = agent.shutdown().await;
    if report.failed.is_empty() {
        let _ = std::fs::remove_dir_all(&state_dir);
    }
    let _ = done.send(report.failed);
}
