//! Supervised local services (`spec.services`): started and made ready before probing,
//! restarted by policy, stopped after the run (SIGTERM, then SIGKILL after a grace).
//! Every start, exit and restart is a ground-truth event beside the measured RTO.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::events::Events;
use crate::experiment::spec::{ReadySpec, RestartPolicy, ServiceSpec};

const DEFAULT_READY_WITHIN: Duration = Duration::from_secs(10);
const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(5);
const READY_POLL: Duration = Duration::from_millis(20);

/// Current pid of each running service, for `${service.NAME.pid}` in exec commands.
pub type Pids = Arc<Mutex<BTreeMap<String, u32>>>;

/// The running services of one experiment.
pub struct Services {
    pids: Pids,
    stop: CancellationToken,
    supervisors: Vec<(String, JoinHandle<()>)>,
}

/// A service that could not be started or did not get ready (nothing else was started
/// after it; the ones before it were stopped).
#[derive(Debug, Clone, thiserror::Error)]
#[error("service `{service}`: {message}")]
pub struct ServiceError {
    pub service: String,
    pub message: String,
}

impl Services {
    /// Start every service in order and wait until each is ready. On failure, stop the
    /// ones already started and say which service failed and why.
    pub async fn start(
        specs: &[ServiceSpec],
        base_dir: &Path,
        events: &Events,
    ) -> Result<Services, ServiceError> {
        let mut services = Services {
            pids: Arc::new(Mutex::new(BTreeMap::new())),
            stop: CancellationToken::new(),
            supervisors: Vec::new(),
        };
        for spec in specs {
            match start_one(spec, base_dir, events).await {
                Ok(child) => {
                    let pid = child.id().unwrap_or(0);
                    lock(&services.pids).insert(spec.name.clone(), pid);
                    let sup = Supervisor {
                        spec: spec.clone(),
                        base_dir: base_dir.to_path_buf(),
                        events: events.clone(),
                        pids: services.pids.clone(),
                        stop: services.stop.clone(),
                    };
                    services
                        .supervisors
                        .push((spec.name.clone(), tokio::spawn(sup.run(child))));
                }
                Err(e) => {
                    services.stop_all().await;
                    return Err(ServiceError {
                        service: spec.name.clone(),
                        message: e,
                    });
                }
            }
        }
        Ok(services)
    }

    /// Current pids by service name.
    pub fn pids(&self) -> Pids {
        self.pids.clone()
    }

    /// Stop every service (SIGTERM, SIGKILL after its grace) and wait for them.
    pub async fn stop_all(self) {
        self.stop.cancel();
        for (name, task) in self.supervisors {
            if let Err(e) = task.await {
                tracing::warn!(service = %name, error = %e, "service supervisor ended abnormally");
            }
        }
    }
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

fn spawn(spec: &ServiceSpec, base_dir: &Path) -> Result<Child, String> {
    let argv: Vec<String> = spec.command.iter().map(|a| expand_exe(a)).collect();
    let (program, args) = argv.split_first().ok_or("empty command")?;
    let cwd = match &spec.cwd {
        Some(c) => base_dir.join(c),
        None => base_dir.to_path_buf(),
    };
    if !cwd.is_dir() {
        return Err(format!(
            "working directory {} does not exist",
            cwd.display()
        ));
    }
    Command::new(program)
        .args(args)
        .envs(&spec.env)
        .current_dir(&cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Own process group: Ctrl-C stops the run, which then stops the service itself.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start `{program}` in {}: {e}", cwd.display()))
}

async fn start_one(spec: &ServiceSpec, base_dir: &Path, events: &Events) -> Result<Child, String> {
    let mut child = spawn(spec, base_dir)?;
    let pid = child.id().unwrap_or(0);
    events.push("service", format!("{} started (pid {pid})", spec.name));
    if let Some(ready) = &spec.ready {
        let within = ready.within.map(|d| d.0).unwrap_or(DEFAULT_READY_WITHIN);
        tokio::select! {
            r = wait_ready(ready, within) => {
                if let Err(e) = r {
                    let _ = child.kill().await;
                    return Err(e);
                }
            }
            status = child.wait() => {
                let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                return Err(format!("exited before it was ready ({status})"));
            }
        }
        events.push("service", format!("{} ready", spec.name));
    }
    Ok(child)
}

/// Poll the readiness check until it passes or `within` elapses.
async fn wait_ready(ready: &ReadySpec, within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    let mut last = String::from("never checked");
    while Instant::now() < deadline {
        let result = match (&ready.http, &ready.tcp) {
            _ if ready.command.is_some() => {
                check_command(ready.command.as_deref().unwrap_or_default()).await
            }
            (Some(url), _) => check_http(url).await,
            (None, Some(addr)) => tokio::net::TcpStream::connect(addr)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            (None, None) => Ok(()),
        };
        match result {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
        tokio::time::sleep(READY_POLL).await;
    }
    Err(format!(
        "not ready within {} (last check: {last})",
        shakeout_api::Dur(within)
    ))
}

/// Run the readiness command once (bounded); ready means exit status 0.
async fn check_command(argv: &[String]) -> Result<(), String> {
    let argv: Vec<String> = argv.iter().map(|a| expand_exe(a)).collect();
    let report = super::exec::run_command(
        &argv,
        &Default::default(),
        Duration::from_secs(5),
        Instant::now(),
    )
    .await;
    if report.success {
        return Ok(());
    }
    let detail = report
        .error
        .clone()
        .unwrap_or_else(|| crate::verdict::describe_action(&report));
    let stderr = report.stderr.trim();
    Err(if stderr.is_empty() {
        format!("`{}`: {detail}", argv.join(" "))
    } else {
        format!("`{}`: {detail}: {stderr}", argv.join(" "))
    })
}

/// One GET; ready means a 2xx answer.
pub async fn check_http(url: &str) -> Result<(), String> {
    use http_body_util::Empty;
    use hyper_util::rt::TokioIo;
    let uri: hyper::Uri = url.parse().map_err(|e| format!("bad URL `{url}`: {e}"))?;
    let host = uri
        .host()
        .ok_or_else(|| format!("URL `{url}` has no host"))?;
    let addr = format!("{host}:{}", uri.port_u16().unwrap_or(80));
    let stream = tokio::net::TcpStream::connect(&addr)
        .await
        .map_err(|e| format!("{addr}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = hyper::Request::get(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
        .header(hyper::header::HOST, addr.as_str())
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("{url} answered {}", resp.status()))
    }
}

struct Supervisor {
    spec: ServiceSpec,
    base_dir: std::path::PathBuf,
    events: Events,
    pids: Pids,
    stop: CancellationToken,
}

impl Supervisor {
    async fn run(self, mut child: Child) {
        let name = &self.spec.name;
        loop {
            let status = tokio::select! {
                status = child.wait() => status,
                _ = self.stop.cancelled() => {
                    self.terminate(&mut child).await;
                    return;
                }
            };
            lock(&self.pids).remove(name);
            let how = match status {
                Ok(s) => describe_exit(s),
                Err(e) => format!("could not be waited for: {e}"),
            };
            self.events
                .push("service", format!("{name} exited ({how})"));
            let restart = self
                .spec
                .restart
                .as_ref()
                .filter(|r| r.policy == RestartPolicy::OnExit);
            let Some(restart) = restart else { return };
            let delay = restart.delay.map(|d| d.0).unwrap_or_default();
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.stop.cancelled() => return,
            }
            match spawn(&self.spec, &self.base_dir) {
                Ok(c) => {
                    child = c;
                    let pid = child.id().unwrap_or(0);
                    lock(&self.pids).insert(name.clone(), pid);
                    self.events
                        .push("service", format!("{name} restarted (pid {pid})"));
                    if let Some(ready) = &self.spec.ready {
                        let within = ready.within.map(|d| d.0).unwrap_or(DEFAULT_READY_WITHIN);
                        let (events, ready, name) =
                            (self.events.clone(), ready.clone(), name.clone());
                        tokio::spawn(async move {
                            match wait_ready(&ready, within).await {
                                Ok(()) => events.push("service", format!("{name} ready")),
                                Err(e) => events.push("service", format!("{name} {e}")),
                            }
                        });
                    }
                }
                Err(e) => {
                    self.events
                        .push("service", format!("{name} restart failed: {e}"));
                    return;
                }
            }
        }
    }

    async fn terminate(&self, child: &mut Child) {
        let grace = self
            .spec
            .stop_grace
            .map(|d| d.0)
            .unwrap_or(DEFAULT_STOP_GRACE);
        if let Some(pid) = child.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
        let status = match tokio::time::timeout(grace, child.wait()).await {
            Ok(s) => s,
            Err(_) => {
                let _ = child.kill().await;
                child.wait().await
            }
        };
        lock(&self.pids).remove(&self.spec.name);
        let how = status.map(describe_exit).unwrap_or_else(|e| e.to_string());
        self.events
            .push("service", format!("{} stopped ({how})", self.spec.name));
    }
}

fn describe_exit(status: std::process::ExitStatus) -> String {
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
