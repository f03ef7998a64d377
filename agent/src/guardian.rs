//! The guardian: the agent a controller starts for its embedded faults, as a separate
//! process of the same binary (`shakeout guardian`), so those faults outlive neither the
//! controller nor its lease, whatever happens to the controller.
//!
//! - It runs in a session and process group of its own, with the terminal's stop
//!   signals blocked, so a terminal's Ctrl-C and Ctrl-Z, a SIGSTOP of the controller's
//!   process group, or a SIGKILL of the controller never reach it.
//! - It serves the agent's HTTP API on 127.0.0.1 with a token it reads from its stdin
//!   (never from argv, which `ps` shows), and says on stdout where it listens.
//! - Its stdin is a pipe from the controller. End of file means the controller is gone
//!   (exited, or killed: the kernel closes the pipe): every fault is reverted at once,
//!   failed reverts are retried within the grace, and the guardian exits. A controller that
//!   is alive but stopped stops renewing, so its faults are reverted at lease expiry.
//! - Same core, ledger, leases and sweep as the node agent: one state directory per
//!   guardian (`ROOT/<pid>-<start time>`, held with `flock` while it lives); at start it
//!   sweeps the directories of guardians (and older in-process embedded agents) that are
//!   gone, so even a guardian killed with SIGKILL is cleaned up by the next one.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow, Signal};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::agent::{Agent, AgentConfig};
use crate::server::{serve, Limits, ServerConfig, Tokens};

/// What the controller writes on the guardian's stdin, as one JSON line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Hello {
    /// The bearer secret the controller will use (token name `controller`).
    pub token: String,
}

/// What the guardian writes on its stdout, one JSON line each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "camelCase")]
pub enum Said {
    /// Serving: where, and what the start-up sweep of dead guardians cleaned.
    #[serde(rename_all = "camelCase")]
    Ready {
        url: String,
        pid: u32,
        state_dir: String,
        swept: Vec<String>,
    },
    /// Could not start (nothing was applied).
    Error { message: String },
    /// The controller is gone and the guardian is exiting: what it reverted, and what it
    /// could not (left in its ledger for the next guardian's sweep).
    Stopped {
        reverted: Vec<String>,
        failed: Vec<String>,
    },
}

/// Longest time a guardian keeps retrying reverts after its controller is gone.
pub const DRAIN_GRACE: Duration = Duration::from_secs(30);

/// How long a start-up sweep of a dead guardian's directory retries a failed revert.
const STALE_GRACE: Duration = Duration::from_secs(2);

/// Name of the lock file a live guardian holds in its state directory.
const LOCK: &str = "lock";

/// The guardian's whole life; returns the process exit code (0: nothing left applied).
/// `root` holds one state directory per guardian and the shared audit log.
pub fn main(root: PathBuf) -> i32 {
    // First, before anything can be delivered: a session of our own (no controlling
    // terminal, own process group), and the terminal's job-control and interrupt signals
    // blocked for good. Children (iptables, nft) get a clean mask from std's spawn.
    let _ = nix::unistd::setsid();
    let mut blocked = SigSet::empty();
    for s in [
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGHUP,
        Signal::SIGTSTP,
        Signal::SIGTTIN,
        Signal::SIGTTOU,
    ] {
        blocked.add(s);
    }
    let _ = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&blocked), None);
    let _ = nix::sys::prctl::set_name(c"shakeout-guard");
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .try_init();
    // Runtime threads inherit the blocked mask from this thread.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            say(&Said::Error {
                message: format!("guardian: cannot start its runtime: {e}"),
            });
            return 1;
        }
    };
    runtime.block_on(life(root))
}

/// One JSON line on stdout. A controller that is gone cannot read it; that is fine.
fn say(what: &Said) {
    if let Ok(line) = serde_json::to_string(what) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

async fn life(root: PathBuf) -> i32 {
    let hello = match tokio::task::spawn_blocking(read_hello).await {
        Ok(Ok(h)) => h,
        Ok(Err(message)) => {
            say(&Said::Error { message });
            return 1;
        }
        Err(e) => {
            say(&Said::Error {
                message: format!("guardian: {e}"),
            });
            return 1;
        }
    };
    let started = match start(&root, &hello).await {
        Ok(s) => s,
        Err(message) => {
            say(&Said::Error { message });
            return 1;
        }
    };
    let Started {
        agent,
        listener,
        tokens,
        state_dir,
        lock,
        swept,
    } = started;
    let url = match listener.local_addr() {
        Ok(a) => format!("http://{a}"),
        Err(e) => {
            say(&Said::Error {
                message: format!("guardian: {e}"),
            });
            agent.shutdown().await;
            return 1;
        }
    };
    let stop_serving = CancellationToken::new();
    let config = ServerConfig {
        tokens,
        tls: None,
        limits: Limits::default(),
    };
    let server = tokio::spawn(serve(listener, agent.clone(), config, stop_serving.clone()));
    say(&Said::Ready {
        url,
        pid: std::process::id(),
        state_dir: state_dir.display().to_string(),
        swept,
    });
    tracing::info!(state_dir = %state_dir.display(), "guardian serving");

    let why = owner_gone().await;
    tracing::info!(why, "controller gone: reverting everything");
    let report = agent.drain(DRAIN_GRACE).await;
    stop_serving.cancel();
    let _ = server.await;
    let clean = report.failed.is_empty();
    if clean {
        // Nothing applied any more: the directory has nothing a sweep would need.
        let _ = std::fs::remove_dir_all(&state_dir);
    }
    drop(lock);
    say(&Said::Stopped {
        reverted: report.reverted,
        failed: report.failed,
    });
    i32::from(!clean)
}

/// The first stdin line. End of input before it: the controller died while starting us.
fn read_hello() -> Result<Hello, String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .take_line(&mut line)
        .map_err(|e| format!("guardian: reading its stdin: {e}"))?;
    if line.trim().is_empty() {
        return Err("guardian: its controller closed stdin before saying hello".into());
    }
    serde_json::from_str(line.trim()).map_err(|e| format!("guardian: bad hello line: {e}"))
}

/// `BufRead::read_line`, bounded: a hello is a few dozen bytes.
trait TakeLine {
    fn take_line(&mut self, line: &mut String) -> std::io::Result<usize>;
}

impl<R: BufRead> TakeLine for R {
    fn take_line(&mut self, line: &mut String) -> std::io::Result<usize> {
        std::io::Read::take(self, 4096).read_line(line)
    }
}

/// Resolves when the controller is gone (its end of our stdin closed) or when we are
/// told to stop with SIGTERM; says which.
async fn owner_gone() -> &'static str {
    // A plain thread, not `spawn_blocking`: after a SIGTERM it is still blocked in
    // `read`, and the runtime must not wait for it when it shuts down.
    let (eof_tx, eof) = tokio::sync::oneshot::channel::<()>();
    let reader = std::thread::Builder::new()
        .name("owner-pipe".into())
        .spawn(move || {
            // Anything after the hello is ignored; only the end of the pipe matters.
            let mut sink = [0u8; 256];
            let mut stdin = std::io::stdin().lock();
            loop {
                match std::io::Read::read(&mut stdin, &mut sink) {
                    Ok(0) => break,
                    Ok(_) => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
            let _ = eof_tx.send(());
        });
    if reader.is_err() {
        return "cannot watch its stdin (no thread)";
    }
    let term = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = eof => "its end of the pipe closed",
        _ = term => "SIGTERM",
    }
}

struct Started {
    agent: Agent,
    listener: tokio::net::TcpListener,
    tokens: Tokens,
    state_dir: PathBuf,
    lock: Flock<File>,
    swept: Vec<String>,
}

/// Sweep what dead guardians left, then take a state directory of our own and start.
async fn start(root: &Path, hello: &Hello) -> Result<Started, String> {
    make_private_dir(root)?;
    let me = std::process::id();
    let state_dir = root.join(format!("{me}-{}", start_time(me).unwrap_or(0)));
    make_private_dir(&state_dir)?;
    let lock = lock_dir(&state_dir)
        .map_err(|e| format!("guardian: cannot lock {}: {e}", state_dir.display()))?;
    let swept = sweep_stale(root, Some(&state_dir)).await.lines;
    let agent = Agent::start(config_for(root, state_dir.clone()))
        .await
        .map_err(|e| format!("guardian: {e}"))?;
    let tokens = Tokens::parse(&format!("controller:{}", hello.token))
        .map_err(|(_, e)| format!("guardian: token: {e}"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("guardian: cannot listen on 127.0.0.1: {e}"))?;
    Ok(Started {
        agent,
        listener,
        tokens,
        state_dir,
        lock,
        swept,
    })
}

/// A guardian reverts only what its own ledger lists: other agents may be live on this
/// host. Its audit lines go to `ROOT/audit.jsonl`, which outlives each guardian.
pub fn config_for(root: &Path, state_dir: PathBuf) -> AgentConfig {
    let mut config = AgentConfig::new(state_dir);
    config.sweep_tagged_network = false;
    config.audit_log = Some(root.join("audit.jsonl"));
    config
}

fn make_private_dir(dir: &Path) -> Result<(), String> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("guardian: cannot create {}: {e}", dir.display()))
}

/// Hold `DIR/lock` exclusively (non-blocking): Ok while nobody else holds it. The lock
/// goes with the process, however it dies.
fn lock_dir(dir: &Path) -> Result<Flock<File>, String> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(dir.join(LOCK))
        .map_err(|e| e.to_string())?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| errno.to_string())
}

/// `/proc/PID/stat` field 22 (start time), to tell a live owner from a recycled pid.
pub fn start_time(pid: u32) -> Option<u64> {
    stat(pid).map(|(_, started)| started)
}

/// State letter and start time of a process.
fn stat(pid: u32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = after.split_whitespace();
    let state = fields.next()?.chars().next()?;
    Some((state, fields.nth(18)?.parse().ok()?))
}

/// Whether the process a state directory is named after (`<pid>-<start time>`) lives.
/// A zombie does not: it can revert nothing (and nobody may be left to reap it).
fn owner_alive(dir_name: &str) -> bool {
    let Some((pid, started)) = dir_name.split_once('-') else {
        return false;
    };
    match (pid.parse::<u32>(), started.parse::<u64>()) {
        (Ok(pid), Ok(started)) => {
            stat(pid).is_some_and(|(state, t)| t == started && !matches!(state, 'Z' | 'X'))
        }
        _ => false,
    }
}

/// What a sweep of dead guardians' directories did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StaleSweep {
    /// Fault ids reverted.
    pub reverted: Vec<String>,
    /// One line per thing done or not done, naming the directory.
    pub lines: Vec<String>,
}

/// Sweep the state directories under `root` whose owner is gone (not alive, and its
/// lock free): their ledgers are reverted (each in the namespace it was applied in) and
/// a directory left with nothing to revert is removed. `mine` is skipped.
pub async fn sweep_stale(root: &Path, mine: Option<&Path>) -> StaleSweep {
    let mut swept = StaleSweep::default();
    let Ok(entries) = std::fs::read_dir(root) else {
        return swept;
    };
    let lines = &mut swept.lines;
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if Some(path.as_path()) == mine || !path.is_dir() || owner_alive(&name) {
            continue;
        }
        // Held: its guardian lives (or another guardian is sweeping it right now).
        let Ok(lock) = lock_dir(&path) else {
            continue;
        };
        let mut config = config_for(root, path.clone());
        // What cannot be reverted now stays for the next start: do not hold this one up.
        config.shutdown_grace = STALE_GRACE;
        match Agent::start(config).await {
            Ok(agent) => {
                let report = agent.last_sweep().clone();
                agent.shutdown().await;
                let pending = std::fs::read_dir(path.join("ledger"))
                    .map(|d| {
                        d.flatten()
                            .any(|e| e.file_name().to_string_lossy().ends_with(".json"))
                    })
                    .unwrap_or(false);
                if report.errors.is_empty() && !pending {
                    let _ = std::fs::remove_dir_all(&path);
                }
                lines.extend(
                    report
                        .ledger_reverted
                        .iter()
                        .map(|f| format!("{name}: reverted {f}")),
                );
                swept
                    .reverted
                    .extend(report.ledger_reverted.iter().cloned());
                lines.extend(report.gone.iter().map(|f| format!("{name}: {f}")));
                lines.extend(report.errors.iter().map(|e| format!("{name}: {e}")));
            }
            Err(e) => lines.push(format!("{name}: sweep failed: {e}")),
        }
        drop(lock);
    }
    swept
}
