//! Supervised local services (`spec.services`): started and made ready before probing,
//! restarted by policy with backoff until they crash-loop, stopped after the run
//! (SIGTERM, then SIGKILL after a grace). Every start, exit and restart is a ground-truth
//! event beside the measured RTO, and the record keeps each service's last output.

mod holder;
mod output;
mod ready;
mod supervise;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

pub use ready::check_http;

use super::events::{signed_secs, Events};
use crate::experiment::spec::ServiceSpec;
use crate::record::{ServiceExit, ServiceFailure, ServiceRecord, ServiceStart};
use output::Output;
use supervise::Supervisor;

/// Current pid of each running service, for `${service.NAME.pid}` in exec commands.
pub type Pids = Arc<Mutex<BTreeMap<String, u32>>>;

/// Starts and exits kept per service; a long run of kills must not grow without bound.
const MAX_HISTORY: usize = 1000;

/// The supervised services of one experiment.
pub struct Services {
    events: Events,
    pids: Pids,
    stop: CancellationToken,
    /// Dropping the services (an early return) stops them too.
    _stop_on_drop: DropGuard,
    tracked: Vec<Arc<Tracked>>,
    supervisors: Vec<(String, JoinHandle<()>)>,
}

/// A service that could not be started or did not get ready (nothing else was started
/// after it).
#[derive(Debug, Clone, thiserror::Error)]
#[error("service `{service}`: {message}")]
pub struct ServiceError {
    pub service: String,
    pub message: String,
}

/// What the runner and the report see of one service while its supervisor runs it.
struct Tracked {
    name: String,
    command: Vec<String>,
    log: Option<String>,
    output: Arc<Output>,
    history: Mutex<History>,
}

#[derive(Default)]
struct History {
    /// (when, pid, when it was ready)
    starts: Vec<(Instant, u32, Option<Instant>)>,
    /// (when, pid, status, stopped by shakeout)
    exits: Vec<(Instant, u32, Option<std::process::ExitStatus>, bool)>,
    restarts: u64,
    failed: Option<(Instant, String)>,
}

impl Tracked {
    fn history(&self) -> std::sync::MutexGuard<'_, History> {
        lock(&self.history)
    }

    fn started(&self, pid: u32) {
        let mut h = self.history();
        if !h.starts.is_empty() {
            h.restarts += 1;
        }
        if h.starts.len() < MAX_HISTORY {
            h.starts.push((Instant::now(), pid, None));
        }
    }

    fn ready(&self) {
        if let Some(last) = self.history().starts.last_mut() {
            last.2 = Some(Instant::now());
        }
    }

    fn exited(&self, pid: u32, status: Option<std::process::ExitStatus>, stopped: bool) {
        let mut h = self.history();
        if h.exits.len() < MAX_HISTORY {
            h.exits.push((Instant::now(), pid, status, stopped));
        }
    }

    fn failed(&self, reason: String) {
        self.history().failed = Some((Instant::now(), reason));
    }

    fn record(&self, origin: Instant) -> ServiceRecord {
        use std::os::unix::process::ExitStatusExt;
        let at = |t: Instant| signed_secs(origin, t) * 1000.0;
        let h = self.history();
        ServiceRecord {
            name: self.name.clone(),
            command: self.command.clone(),
            starts: h
                .starts
                .iter()
                .map(|(t, pid, ready)| ServiceStart {
                    at_ms: at(*t),
                    pid: *pid,
                    ready_ms: ready.map(at),
                })
                .collect(),
            exits: h
                .exits
                .iter()
                .map(|(t, pid, status, stopped)| ServiceExit {
                    at_ms: at(*t),
                    pid: *pid,
                    exit_code: status.and_then(|s| s.code()),
                    signal: status.and_then(|s| s.signal()),
                    stopped: *stopped,
                })
                .collect(),
            restarts: h.restarts,
            failed: h.failed.as_ref().map(|(t, reason)| ServiceFailure {
                at_ms: at(*t),
                reason: reason.clone(),
            }),
            stdout: self.output.stdout(),
            stderr: self.output.stderr(),
            log: self.log.clone(),
        }
    }
}

impl Services {
    /// No service yet; [`Services::start`] starts them.
    pub fn new(events: &Events) -> Services {
        let stop = CancellationToken::new();
        Services {
            events: events.clone(),
            pids: Arc::new(Mutex::new(BTreeMap::new())),
            _stop_on_drop: stop.clone().drop_guard(),
            stop,
            tracked: Vec::new(),
            supervisors: Vec::new(),
        }
    }

    /// Start every service in order and wait until each is ready; stop at the first that
    /// fails, saying which and why ([`Services::stop_all`] stops the ones started).
    pub async fn start(
        &mut self,
        specs: &[ServiceSpec],
        base_dir: &Path,
    ) -> Result<(), ServiceError> {
        for spec in specs {
            let error = |message: String| ServiceError {
                service: spec.name.clone(),
                message,
            };
            let (log, file) = match &spec.log {
                Some(name) => {
                    let path = base_dir.join(name);
                    let file = open_log(&path).map_err(|e| {
                        error(format!("cannot open its log {}: {e}", path.display()))
                    })?;
                    (Some(path.display().to_string()), Some(file))
                }
                None => (None, None),
            };
            let tracked = Arc::new(Tracked {
                name: spec.name.clone(),
                command: spec.command.iter().map(|a| expand_exe(a)).collect(),
                log,
                output: Output::new(file),
                history: Mutex::default(),
            });
            self.tracked.push(tracked.clone());
            let (started, is_started) = tokio::sync::oneshot::channel();
            let supervisor = Supervisor {
                spec: spec.clone(),
                base_dir: base_dir.to_path_buf(),
                events: self.events.clone(),
                pids: self.pids.clone(),
                stop: self.stop.clone(),
                tracked,
            };
            self.supervisors
                .push((spec.name.clone(), tokio::spawn(supervisor.run(started))));
            match is_started.await {
                Ok(Ok(())) => {}
                Ok(Err(message)) => return Err(error(message)),
                Err(_) => return Err(error("its supervisor ended before it started".into())),
            }
        }
        Ok(())
    }

    /// Current pids by service name.
    pub fn pids(&self) -> Pids {
        self.pids.clone()
    }

    /// The first service the supervisor gave up on (crash loop, or it could not be
    /// restarted), and why: from then on the steady state cannot hold.
    pub fn failure(&self) -> Option<String> {
        self.tracked
            .iter()
            .find_map(|t| t.history().failed.as_ref().map(|(_, why)| why.clone()))
    }

    /// Stop every service (SIGTERM, SIGKILL after its grace), wait for them, and say what
    /// each did, with times from `origin`.
    pub async fn stop_all(self, origin: Instant) -> Vec<ServiceRecord> {
        self.stop.cancel();
        for (name, task) in self.supervisors {
            if let Err(e) = task.await {
                tracing::warn!(service = %name, error = %e, "service supervisor ended abnormally");
            }
        }
        self.tracked.iter().map(|t| t.record(origin)).collect()
    }
}

/// The `log` file, appended to, created with mode 0644.
fn open_log(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o644)
        .open(path)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Expand `${exe}` (the running shakeout binary) in a service command.
pub fn expand_exe(arg: &str) -> String {
    if !arg.contains("${exe}") {
        return arg.to_owned();
    }
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "shakeout".into());
    arg.replace("${exe}", &exe)
}
