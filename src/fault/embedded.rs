//! The embedded agent: when a fault names no agent, the controller starts a guardian,
//! the agent in a process of its own (`shakeout guardian`, the same binary), and talks
//! to it over 127.0.0.1 with a fresh random token: the same code and safety (ledger,
//! leases, sweep) as a node agent, no daemon to install, and faults that outlive neither
//! the controller nor its lease. `shakeout_agent::guardian` has the guardian's side.
//!
//! The controller holds the write end of the guardian's stdin. Closing it (at the end
//! of a run, or by dying: the kernel closes it on SIGKILL) tells the guardian to revert
//! everything and exit; a controller that is stopped (SIGSTOP, Ctrl-Z) stops renewing
//! its leases, and the guardian reverts each fault at its lease deadline.

use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shakeout_agent::guardian::{Hello, Said, DRAIN_GRACE};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use super::AgentClient;

/// Where the embedded agent reports what happened to it on its own (its guardian died,
/// what the sweep of its ledger did): the run's event log, or nothing.
pub type Notices = Arc<dyn Fn(String) + Send + Sync>;

/// Lease of each embedded fault. The guardian is on this host, so renewals (every third
/// of it) cannot be lost to a network; a controller stopped by SIGSTOP or Ctrl-Z has its
/// faults reverted within this (a dead one at once).
pub const LEASE: Duration = Duration::from_secs(5);

/// How long the guardian may take to say it is ready: it sweeps what dead guardians
/// left first, each within its shutdown grace.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// The guardian's log is renamed to `guardian.log.1` when it grows past this at a start.
const LOG_LIMIT: u64 = 8 << 20;

/// A running guardian.
pub struct Embedded {
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    /// The guardian's exit status, once it has exited (set by the watcher task).
    exited: tokio::sync::watch::Receiver<Option<std::process::ExitStatus>>,
    /// Set by `stop`: from then on the guardian's exit is expected.
    stopping: Arc<AtomicBool>,
    pub client: Arc<AgentClient>,
    /// The guardian's pid (for messages).
    pub pid: u32,
    /// Fault ids that were reverted by sweeping the guardian's ledger after it died
    /// (its controller lives on, so it reverts what its guardian left, at once).
    pub swept: Arc<Mutex<BTreeSet<String>>>,
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

impl Embedded {
    /// Start the guardian (which first sweeps what dead guardians left) and wait until
    /// it serves. Returns it and what its sweep cleaned. Should the guardian die before
    /// `stop`, what its ledger holds is swept at once, and `notices` (when given) hears so.
    pub async fn start(notices: Option<Notices>) -> Result<(Embedded, Vec<String>), String> {
        let root = state_root().join("embedded");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&root)
            .map_err(|e| format!("embedded agent: cannot create {}: {e}", root.display()))?;
        let log_path = root.join("guardian.log");
        if std::fs::metadata(&log_path).is_ok_and(|m| m.len() > LOG_LIMIT) {
            let _ = std::fs::rename(&log_path, root.join("guardian.log.1"));
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&log_path)
            .map_err(|e| format!("embedded agent: cannot open {}: {e}", log_path.display()))?;
        // `/proc/self/exe`, not the path we were started by: that file may have been
        // replaced or deleted since (a rebuild), the running image cannot.
        let mut child = tokio::process::Command::new("/proc/self/exe")
            .arg0("shakeout-guardian")
            .arg("guardian")
            .arg("--state-root")
            .arg(&root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(false)
            .spawn()
            .map_err(|e| format!("embedded agent: cannot start its guardian process: {e}"))?;
        let pid = child.id().unwrap_or(0);
        let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("embedded agent: guardian started without its pipes".into());
        };
        let secret: String = (0..32)
            .map(|_| format!("{:x}", rand::random::<u8>() & 0xf))
            .collect();
        let hello = serde_json::to_string(&Hello {
            token: secret.clone(),
        })
        .map_err(|e| format!("embedded agent: {e}"))?;
        stdin
            .write_all(format!("{hello}\n").as_bytes())
            .await
            .map_err(|e| {
                format!("embedded agent: guardian (pid {pid}) did not take its token: {e}")
            })?;
        let mut stdout = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(READY_WITHIN, stdout.next_line()).await;
        let said = match first {
            Ok(Ok(Some(line))) => serde_json::from_str::<Said>(&line)
                .map_err(|e| format!("embedded agent: guardian (pid {pid}) said `{line}`: {e}"))?,
            Ok(Ok(None)) => {
                let status = child
                    .wait()
                    .await
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                return Err(format!(
                    "embedded agent: guardian (pid {pid}) ended before it was ready ({status}); see {}",
                    log_path.display()
                ));
            }
            Ok(Err(e)) => return Err(format!("embedded agent: guardian (pid {pid}): {e}")),
            Err(_) => {
                return Err(format!(
                    "embedded agent: guardian (pid {pid}) not ready within {}; see {}",
                    humantime::format_duration(READY_WITHIN),
                    log_path.display()
                ))
            }
        };
        let (url, swept) = match said {
            Said::Ready { url, swept, .. } => (url, swept),
            Said::Error { message } => return Err(format!("embedded agent: {message}")),
            Said::Stopped { .. } => {
                return Err(format!(
                    "embedded agent: guardian (pid {pid}) stopped before it was ready"
                ))
            }
        };
        let mut client =
            AgentClient::new("embedded", &url, &secret, None).map_err(|e| e.to_string())?;
        client.lease = LEASE;
        let stopping = Arc::new(AtomicBool::new(false));
        let reverted = Arc::new(Mutex::new(BTreeSet::new()));
        let (tell, exited) = tokio::sync::watch::channel(None);
        tokio::spawn(watch(
            child,
            tell,
            stopping.clone(),
            root,
            reverted.clone(),
            notices,
        ));
        Ok((
            Embedded {
                stdin: Some(stdin),
                stdout,
                exited,
                stopping,
                client: Arc::new(client),
                pid,
                swept: reverted,
            },
            swept,
        ))
    }

    /// Tell the guardian its controller is done (close its stdin): it reverts whatever
    /// is still applied and exits. Returns what it could not revert.
    pub async fn stop(mut self) -> Vec<String> {
        self.stopping.store(true, Ordering::SeqCst);
        drop(self.stdin.take());
        let pid = self.pid;
        let bound = DRAIN_GRACE + Duration::from_secs(5);
        let said = tokio::time::timeout(bound, async {
            while let Ok(Some(line)) = self.stdout.next_line().await {
                if let Ok(said @ Said::Stopped { .. }) = serde_json::from_str::<Said>(&line) {
                    return Some(said);
                }
            }
            None
        })
        .await;
        let mut failed = match said {
            Ok(Some(Said::Stopped { failed, .. })) => failed,
            Ok(_) => vec![format!(
                "the guardian (pid {pid}) ended without saying what it reverted"
            )],
            Err(_) => vec![format!(
                "the guardian (pid {pid}) is still reverting after {}; it keeps trying, and what it cannot revert stays in its ledger for the next run's sweep",
                humantime::format_duration(bound)
            )],
        };
        // It exits right after saying so; never kill it: it may still hold a fault.
        let status = tokio::time::timeout(
            Duration::from_secs(5),
            self.exited.wait_for(Option::is_some),
        )
        .await;
        if let Ok(Ok(status)) = status {
            match *status {
                Some(s) if !s.success() && failed.is_empty() => {
                    failed.push(format!("the guardian (pid {pid}) exited with {s}"))
                }
                _ => {}
            }
        }
        failed
    }
}

/// Waits for the guardian to exit. An exit nobody asked for (the guardian was killed):
/// the controller, alive, sweeps the guardian's directory itself right away, on a
/// thread of its own (the sweep spawns `nft`/`iptables`; the prober must not stall).
async fn watch(
    mut child: Child,
    tell: tokio::sync::watch::Sender<Option<std::process::ExitStatus>>,
    stopping: Arc<AtomicBool>,
    root: PathBuf,
    reverted: Arc<Mutex<BTreeSet<String>>>,
    notices: Option<Notices>,
) {
    let pid = child.id().unwrap_or(0);
    let status = child.wait().await.ok();
    if stopping.load(Ordering::SeqCst) {
        let _ = tell.send(status);
        return;
    }
    let how = status.map_or_else(|| "unknown status".to_string(), |s| s.to_string());
    if let Some(say) = &notices {
        say(format!(
            "embedded agent's guardian (pid {pid}) died ({how}); sweeping its ledger now"
        ));
    }
    let (done_tx, done) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("guardian-sweep".into())
        .spawn(move || {
            let swept = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|rt| rt.block_on(shakeout_agent::guardian::sweep_stale(&root, None)));
            let _ = done_tx.send(swept);
        });
    let swept = match spawned {
        Ok(_) => done.await.ok().and_then(Result::ok),
        Err(_) => None,
    };
    match swept {
        Some(swept) => {
            reverted
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(swept.reverted.iter().cloned());
            if let Some(say) = &notices {
                let what = match swept.lines.is_empty() {
                    true => "nothing was left to revert".to_string(),
                    false => swept.lines.join("; "),
                };
                say(format!("swept the dead guardian's ledger: {what}"));
            }
        }
        None => {
            if let Some(say) = &notices {
                say("could not sweep the dead guardian's ledger; the next run's sweep will".into());
            }
        }
    }
    tracing::warn!(pid, %how, "embedded agent's guardian died");
    let _ = tell.send(status);
}
