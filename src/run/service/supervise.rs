//! One service's supervisor: one loop from the first start to the last exit. Before each
//! start its readiness address must not already answer; readiness is raced against the
//! process's own exit; an exit is described with the service's last output; restarts
//! back off (doubling from `delay`, at most `maxDelay`) and stop when it crash-loops
//! (`maxRestarts` in a row, none up for `resetAfter`), which the run then fails on.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::output::Readers;
use super::{expand_exe, lock, ready, Pids, Tracked};
use crate::experiment::spec::{RestartPolicy, ServiceSpec};
use crate::run::events::Events;
use crate::text::duration;

const DEFAULT_READY_WITHIN: Duration = Duration::from_secs(10);
const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(5);
/// After an exit, how long the pipes may take to reach end of file (the last lines).
const DRAIN_WITHIN: Duration = Duration::from_millis(250);
/// Lines of output in a message that says why a service did not start.
const SAID_LINES: usize = 5;

pub(super) struct Supervisor {
    pub spec: ServiceSpec,
    pub base_dir: PathBuf,
    pub events: Events,
    pub pids: Pids,
    pub stop: CancellationToken,
    pub tracked: Arc<Tracked>,
}

/// How waiting for readiness ended.
enum Readiness {
    Ready,
    NotReady(String),
    Exited(std::io::Result<ExitStatus>),
    Stopped,
}

/// Restarts in a row of a service that never stayed up for `resetAfter`.
struct Streak {
    restarts: u32,
    /// The exit that began it.
    since: Instant,
}

impl Supervisor {
    /// Run the service until the run stops it or the supervisor gives up. `started` is
    /// told once the first start is ready, or why it failed (then nothing is left running).
    pub async fn run(self, started: oneshot::Sender<Result<(), String>>) {
        let name = self.spec.name.clone();
        let mut started = Some(started);
        let mut streak: Option<Streak> = None;
        loop {
            let first = started.is_some();
            if let Some(t) = self.address_taken().await {
                let (address, held) = (&t.address, t.held());
                let why = if first {
                    format!(
                        "{address} already answers before the service started{held}; \
                         stop it or choose another port"
                    )
                } else {
                    format!(
                        "service `{name}` cannot be restarted: {address} already answers \
                         while it is down{held}; stop it or choose another port"
                    )
                };
                return self.give_up(started, why);
            }
            let (mut child, readers) = match self.spawn() {
                Ok(c) => c,
                Err(e) if first => return self.give_up(started, e),
                Err(e) => {
                    return self.give_up(
                        started,
                        format!("service `{name}` cannot be restarted: {e}"),
                    )
                }
            };
            let pid = child.id().unwrap_or(0);
            let since = Instant::now();
            self.tracked.started(pid);
            lock(&self.pids).insert(name.clone(), pid);
            let verb = if first { "started" } else { "restarted" };
            self.events
                .push("service", format!("{name} {verb} (pid {pid})"));

            let status = match self.until_ready(&mut child).await {
                Readiness::Ready => {
                    if self.spec.ready.is_some() {
                        self.tracked.ready();
                        self.events.push("service", format!("{name} ready"));
                    }
                    if let Some(tx) = started.take() {
                        let _ = tx.send(Ok(()));
                    }
                    None
                }
                Readiness::NotReady(e) if first => {
                    self.terminate(&mut child, readers).await;
                    return self.give_up(started, format!("{e}{}", self.said()));
                }
                Readiness::NotReady(e) => {
                    self.events.push("service", format!("{name} {e}"));
                    None
                }
                Readiness::Exited(status) => Some(status),
                Readiness::Stopped => return self.terminate(&mut child, readers).await,
            };
            let status = match status {
                Some(s) => s,
                None => tokio::select! {
                    s = child.wait() => s,
                    _ = self.stop.cancelled() => return self.terminate(&mut child, readers).await,
                },
            };
            readers.finish(DRAIN_WITHIN).await;
            lock(&self.pids).remove(&name);
            self.tracked
                .exited(pid, status.as_ref().ok().copied(), false);
            let how = match &status {
                Ok(s) => describe_exit(*s),
                Err(e) => format!("could not be waited for: {e}"),
            };
            if started.is_some() {
                let why = format!("exited before it was ready ({how}){}", self.said());
                return self.give_up(started, why);
            }
            // Its last stderr line: where a program says why it stopped (stdout is often a
            // request log, which says nothing about the exit).
            let complaint = match self.tracked.output.stderr().last() {
                Some(line) => format!("; last output: {line}"),
                None => String::new(),
            };
            self.events
                .push("service", format!("{name} exited ({how}){complaint}"));

            let Some(restart) = self
                .spec
                .restart
                .as_ref()
                .filter(|r| r.policy == RestartPolicy::OnExit)
            else {
                return;
            };
            if since.elapsed() >= restart.reset_after() {
                streak = None;
            }
            let s = streak.get_or_insert(Streak {
                restarts: 0,
                since: Instant::now(),
            });
            if s.restarts >= restart.max_restarts() {
                let why = format!(
                    "service `{name}` is crash-looping: {} restarts in {}, none up for {}; \
                     not restarted again{}",
                    s.restarts,
                    duration(s.since.elapsed()),
                    duration(restart.reset_after()),
                    self.last_words(),
                );
                return self.give_up(None, why);
            }
            s.restarts += 1;
            tokio::select! {
                _ = tokio::time::sleep(restart.backoff(s.restarts)) => {}
                _ = self.stop.cancelled() => return,
            }
        }
    }

    /// What is answering at the readiness address before a start, if anything.
    async fn address_taken(&self) -> Option<ready::Taken> {
        ready::taken(self.spec.ready.as_ref()?).await
    }

    /// Wait for the readiness check (none: ready at once), unless the process exits or the
    /// run stops first.
    async fn until_ready(&self, child: &mut Child) -> Readiness {
        let Some(check) = &self.spec.ready else {
            return Readiness::Ready;
        };
        let within = check.within.map(|d| d.0).unwrap_or(DEFAULT_READY_WITHIN);
        tokio::select! {
            r = ready::wait_ready(check, within) => match r {
                Ok(()) => Readiness::Ready,
                Err(e) => Readiness::NotReady(e),
            },
            status = child.wait() => Readiness::Exited(status),
            _ = self.stop.cancelled() => Readiness::Stopped,
        }
    }

    /// The first start failed (tell the runner) or a later one did (record it as the
    /// service's failure, which fails the run's steady state).
    fn give_up(&self, started: Option<oneshot::Sender<Result<(), String>>>, why: String) {
        match started {
            Some(tx) => {
                let _ = tx.send(Err(why));
            }
            None => {
                self.events.push("service", why.clone());
                self.tracked.failed(why);
            }
        }
    }

    fn spawn(&self) -> Result<(Child, Readers), String> {
        let spec = &self.spec;
        let argv: Vec<String> = spec.command.iter().map(|a| expand_exe(a)).collect();
        let (program, args) = argv.split_first().ok_or("empty command")?;
        let cwd = match &spec.cwd {
            Some(c) => self.base_dir.join(c),
            None => self.base_dir.clone(),
        };
        if !cwd.is_dir() {
            return Err(format!(
                "working directory {} does not exist",
                cwd.display()
            ));
        }
        let mut child = Command::new(program)
            .args(args)
            .envs(&spec.env)
            .current_dir(&cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Own process group: Ctrl-C stops the run, which then stops the service itself.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start `{program}` in {}: {e}", cwd.display()))?;
        let readers = self.tracked.output.read(&mut child);
        Ok((child, readers))
    }

    /// SIGTERM, then SIGKILL after the grace; recorded as a stop.
    async fn terminate(&self, child: &mut Child, readers: Readers) {
        let grace = self
            .spec
            .stop_grace
            .map(|d| d.0)
            .unwrap_or(DEFAULT_STOP_GRACE);
        let pid = child.id().unwrap_or(0);
        if pid != 0 {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
        let status = match tokio::time::timeout(grace, child.wait()).await {
            Ok(s) => s,
            Err(_) => {
                let _ = child.kill().await;
                child.wait().await
            }
        };
        readers.finish(DRAIN_WITHIN).await;
        lock(&self.pids).remove(&self.spec.name);
        self.tracked
            .exited(pid, status.as_ref().ok().copied(), true);
        let how = status.map(describe_exit).unwrap_or_else(|e| e.to_string());
        self.events
            .push("service", format!("{} stopped ({how})", self.spec.name));
    }

    /// `; its last output: ...` (up to a few lines, stderr first), or nothing.
    fn said(&self) -> String {
        self.tracked.output.said(SAID_LINES)
    }

    /// `; last output: LINE` (its last line, stderr's if it has one), or nothing: for an
    /// event or a reason, which are one line.
    fn last_words(&self) -> String {
        match self.tracked.output.last(1).first() {
            Some(line) => format!("; last output: {line}"),
            None => String::new(),
        }
    }
}

fn describe_exit(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => match Signal::try_from(sig) {
            Ok(s) => format!("signal {}", s.as_str()),
            Err(_) => format!("signal {sig}"),
        },
        _ => status.to_string(),
    }
}
