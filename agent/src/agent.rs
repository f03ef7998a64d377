//! The agent core, without HTTP: apply, renew, revert and list faults under leases,
//! with the ledger, audit and policy in the path of every call. The HTTP server and the
//! controller's embedded agent both drive this same type, so both get the same safety.

mod apply;
mod reaper;
mod state;
mod sweep;
mod undo;

pub use apply::is_valid_id;
pub use state::Caller;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use shakeout_api::{
    ApplyRequest, ApplyResponse, Capabilities, Dur, FaultStatus, RenewRequest, RevertResponse,
    SweepReport,
};
use tokio::sync::{Mutex, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::audit::{Action, Audit, Entry, Rotation};
use crate::error::{AgentError, Result};
use crate::fault::net::Net;
use crate::fault::target::ProcRoot;
use crate::lease::Lease;
use crate::ledger::Ledger;
use crate::policy::Policy;
use crate::telemetry::{FaultEvent, Metrics};

use state::{Active, Inner, State};
use undo::undo;

/// Everything the agent needs to start.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Ledger and mechanism state live here; must survive an agent restart.
    pub state_dir: PathBuf,
    pub policy: Policy,
    /// Default: `STATE_DIR/audit.jsonl`.
    pub audit_log: Option<PathBuf>,
    /// When the audit log rotates, and how many old files are kept.
    pub audit_rotation: Rotation,
    /// `/proc`, or a fixture tree in tests.
    pub proc_root: ProcRoot,
    /// Upper bound on `shutdown()`.
    pub shutdown_grace: Duration,
    /// Whether the start-up sweep deletes every agent-tagged rule in the host network
    /// namespace. Right for the one node agent of a host; an agent embedded in a
    /// controller sets it false and reverts only what its own ledger lists, so it never
    /// touches the rules of another live agent on the same host.
    pub sweep_tagged_network: bool,
}

impl AgentConfig {
    /// Defaults: default policy, audit log in the state dir, host `/proc`, 10 s grace.
    pub fn new(state_dir: impl Into<PathBuf>) -> AgentConfig {
        AgentConfig {
            state_dir: state_dir.into(),
            policy: Policy::default(),
            audit_log: None,
            audit_rotation: Rotation::default(),
            proc_root: ProcRoot::default(),
            shutdown_grace: Duration::from_secs(10),
            sweep_tagged_network: true,
        }
    }
}

/// What `shutdown()` managed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShutdownReport {
    pub reverted: Vec<String>,
    /// Faults that could not be reverted (or not within the grace), with why. They stay
    /// in the ledger for the next start-up sweep.
    pub failed: Vec<String>,
}

/// The agent: cheap to clone, every clone is the same agent.
#[derive(Clone)]
pub struct Agent {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent").finish_non_exhaustive()
    }
}

impl Agent {
    /// Open the state dir, run the start-up sweep (revert whatever a previous run left),
    /// then start the reaper. Must be called inside a tokio runtime.
    pub async fn start(config: AgentConfig) -> Result<Agent> {
        let internal = |what: &str, e: &dyn std::fmt::Display| {
            AgentError::Internal(format!("{what} {}: {e}", config.state_dir.display()))
        };
        crate::ledger::create_private_dir(&config.state_dir)
            .map_err(|e| internal("state dir", &e))?;
        let ledger = Ledger::open(&config.state_dir)?;
        let audit_path = config
            .audit_log
            .clone()
            .unwrap_or_else(|| config.state_dir.join("audit.jsonl"));
        let audit = Audit::open(&audit_path, config.audit_rotation)
            .map_err(|e| internal("audit log", &e))?;
        let metrics = Metrics::new();
        let net = Net::new(&config.state_dir);
        let (last_sweep, unreverted) = sweep::startup_sweep(
            &ledger,
            &net,
            &config.proc_root,
            &audit,
            &metrics,
            config.sweep_tagged_network,
        )
        .await;
        let inner = Arc::new(Inner {
            policy: config.policy,
            proc_root: config.proc_root,
            ledger,
            audit,
            metrics,
            net,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            last_sweep,
            stopping: AtomicBool::new(false),
            grace: config.shutdown_grace,
            cancel: CancellationToken::new(),
            self_pid: std::process::id(),
        });
        {
            // Ids the sweep reverted answer a late DELETE with 200, not 404.
            let mut state = inner.state.lock().await;
            for id in &inner.last_sweep.ledger_reverted {
                state.bury(id.clone());
            }
            // What the sweep could not revert is held like any fault, due at once: the
            // reaper retries it with backoff, `GET /v1/faults` lists it, and the metrics
            // count it, until it is reverted (it stays in the ledger meanwhile).
            for record in unreverted {
                let active = Active {
                    locks: apply::locks_of(&record),
                    target: apply::describe(&record.spec),
                    lease: Lease::due_now(),
                    attempts: 1,
                    record,
                };
                state.faults.insert(active.record.id.clone(), active);
            }
            inner.metrics.active(state.faults.len());
            inner.metrics.pending_reverts(state.faults.len());
        }
        let agent = Agent { inner };
        tokio::spawn(reaper::run(agent.inner.clone(), agent.inner.cancel.clone()));
        Ok(agent)
    }

    /// The caller for a token name, with its policy.
    pub fn caller(&self, token_name: &str) -> Caller {
        Caller {
            name: token_name.to_string(),
            policy: self.inner.policy.for_token(token_name),
            peer: None,
        }
    }

    /// Apply a fault (or, with `dryRun`, only say what it would touch).
    pub async fn apply(&self, caller: &Caller, req: ApplyRequest) -> Result<ApplyResponse> {
        let mut entry = Entry::new(Action::Apply, &caller.name).peer(caller.peer);
        entry.experiment = req.experiment.clone();
        entry.fault = req.fault.clone();
        let kind = req.spec.kind();
        let (result, id, target) = apply::apply(&self.inner, caller, req).await;
        entry.fault_id = id.unwrap_or_else(|| "-".into());
        entry.target = target;
        if let Err(e) = &result {
            if e.status() < 500 {
                entry.action = Action::Refuse;
            } else {
                self.inner.metrics.fault(FaultEvent::Failed, kind);
            }
            tracing::warn!(token = %caller.name, fault = %entry.fault, code = e.code(), error = %e, "apply refused");
        }
        self.inner.audit.record(entry.outcome(&result));
        result
    }

    /// Push a fault's lease deadline forward. Only its owner may renew it.
    pub async fn renew(&self, caller: &Caller, id: &str, req: RenewRequest) -> Result<FaultStatus> {
        let mut entry = Entry::new(Action::Renew, &caller.name).peer(caller.peer);
        entry.fault_id = id.to_string();
        let result = self.renew_inner(caller, id, req, &mut entry).await;
        if result.is_err() {
            entry.action = Action::Refuse;
        }
        self.inner.audit.record(entry.outcome(&result));
        result
    }

    async fn renew_inner(
        &self,
        caller: &Caller,
        id: &str,
        req: RenewRequest,
        entry: &mut Entry,
    ) -> Result<FaultStatus> {
        let mut state = self.inner.state.lock().await;
        let gone = state.tombstones.iter().any(|t| t == id);
        let Some(active) = state.faults.get_mut(id) else {
            return Err(AgentError::NotFound(if gone {
                format!(
                    "fault {id} was already reverted (expired, ended or deleted); apply it again"
                )
            } else {
                format!("no fault {id}")
            }));
        };
        entry.experiment = active.record.experiment.clone();
        entry.fault = active.record.fault.clone();
        entry.target = active.target.clone();
        if active.record.owner != caller.name {
            return Err(AgentError::Forbidden(format!(
                "fault {id} belongs to token {}; only its owner may renew it",
                active.record.owner
            )));
        }
        let length = match req.lease {
            Some(l) => apply::check_lease(l, &caller.policy)?,
            None => active.lease.length,
        };
        active.lease.renew(length);
        let status = active.status();
        drop(state);
        self.inner.wake.notify_one();
        Ok(status)
    }

    /// Revert a fault now. Idempotent: a fault already reverted answers
    /// `revertedNow: false`; an id the agent never issued (or forgot) is 404.
    /// Any token may revert: undoing a fault is always safe.
    pub async fn revert(&self, caller: &Caller, id: &str) -> Result<RevertResponse> {
        let mut entry = Entry::new(Action::Revert, &caller.name).peer(caller.peer);
        entry.fault_id = id.to_string();
        let mut state = self.inner.state.lock().await;
        let result = match state.faults.remove(id) {
            Some(active) => {
                entry.experiment = active.record.experiment.clone();
                entry.fault = active.record.fault.clone();
                entry.target = active.target.clone();
                undo(&self.inner, &mut state, active, None)
                    .await
                    .map(|()| RevertResponse {
                        id: id.to_string(),
                        reverted_now: true,
                    })
            }
            None if state.tombstones.iter().any(|t| t == id) => {
                entry = entry.note("already reverted");
                Ok(RevertResponse {
                    id: id.to_string(),
                    reverted_now: false,
                })
            }
            None => Err(AgentError::NotFound(format!("no fault {id}"))),
        };
        drop(state);
        self.inner.audit.record(entry.outcome(&result));
        result
    }

    /// Every fault the agent holds.
    pub async fn list(&self) -> Vec<FaultStatus> {
        let state = self.inner.state.lock().await;
        state.faults.values().map(Active::status).collect()
    }

    /// What this node offers, and what this caller may do.
    pub fn capabilities(&self, caller: &Caller) -> Capabilities {
        let read = |p: &str| std::fs::read_to_string(p).map(|s| s.trim().to_string());
        let cgroup = if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            "v2"
        } else if std::path::Path::new("/sys/fs/cgroup/unified").exists() {
            "hybrid"
        } else {
            "v1"
        };
        Capabilities {
            version: env!("CARGO_PKG_VERSION").to_string(),
            kernel: read("/proc/sys/kernel/osrelease").unwrap_or_else(|_| "unknown".into()),
            cgroup: cgroup.to_string(),
            mechanisms: self.inner.net.mechanisms(),
            binaries: self.inner.net.binaries(),
            fault_kinds: caller.policy.fault_kinds.clone(),
            max_duration: caller.policy.max_duration,
            last_sweep: self.inner.last_sweep.clone(),
            privileges: Some(privileges()),
            features: vec![shakeout_api::FEATURE_NETWORK_SEED.to_string()],
        }
    }

    /// Revert everything, within the configured grace, and stop the reaper. New applies
    /// are refused from the moment this is called.
    pub async fn shutdown(&self) -> ShutdownReport {
        self.drain(self.inner.grace).await
    }

    /// Refuse new faults, then revert every fault held, retrying failed reverts every
    /// second until none is left or `grace` has passed; what is still applied then stays
    /// in the ledger for the next start-up sweep. Stops the reaper.
    pub async fn drain(&self, grace: Duration) -> ShutdownReport {
        self.inner.stopping.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + grace;
        let mut report = ShutdownReport::default();
        let mut last_error: BTreeMap<String, String> = BTreeMap::new();
        loop {
            let pass = async {
                let mut state = self.inner.state.lock().await;
                let ids: Vec<String> = state.faults.keys().cloned().collect();
                for id in ids {
                    let Some(active) = state.faults.remove(&id) else {
                        continue;
                    };
                    let mut entry = Entry::new(Action::Revert, "-");
                    entry.experiment = active.record.experiment.clone();
                    entry.fault = active.record.fault.clone();
                    entry.fault_id = id.clone();
                    entry.target = active.target.clone();
                    let result = undo(&self.inner, &mut state, active, None).await;
                    match &result {
                        Ok(()) => {
                            last_error.remove(&id);
                            report.reverted.push(id);
                        }
                        Err(e) => {
                            last_error.insert(id, e.to_string());
                        }
                    }
                    self.inner
                        .audit
                        .record(entry.outcome(&result).note("agent shutdown"));
                }
                state.faults.is_empty()
            };
            let done = match tokio::time::timeout_at(deadline, pass).await {
                Ok(done) => done,
                Err(_) => {
                    report.failed.push(format!(
                        "shutdown grace of {} passed during a revert; what is left stays in the ledger",
                        Dur(grace)
                    ));
                    break;
                }
            };
            if done || Instant::now() + Duration::from_secs(1) > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        {
            let mut state = self.inner.state.lock().await;
            for id in state.faults.keys() {
                let why = last_error.get(id).map_or("not reverted", String::as_str);
                report.failed.push(format!(
                    "{id}: {why} (kept in the ledger for the next start-up sweep)"
                ));
            }
            // There is no later for them in this process.
            state.faults.clear();
        }
        self.inner.cancel.cancel();
        tracing::info!(reverted = ?report.reverted, failed = ?report.failed, "agent shut down");
        report
    }

    /// The start-up sweep's report.
    pub fn last_sweep(&self) -> &SweepReport {
        &self.inner.last_sweep
    }

    /// Prometheus text for `/metrics`.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Record a refusal that happened before the core saw the request (auth, size,
    /// JSON, route), from `peer`.
    pub fn audit_refusal(&self, token: &str, peer: Option<SocketAddr>, error: &AgentError) {
        self.inner.audit.record(
            Entry::new(Action::Refuse, token)
                .peer(peer)
                .outcome::<()>(&Err(error.clone())),
        );
    }

    /// The audit log, for lines the server composes itself (bounded summaries of
    /// unauthenticated refusals).
    pub fn audit(&self) -> &Audit {
        &self.inner.audit
    }
}

/// Capabilities faults use, by bit number in `CapEff`.
const CAPABILITIES: [(u32, &str); 4] = [
    (5, "CAP_KILL"),
    (12, "CAP_NET_ADMIN"),
    (19, "CAP_SYS_PTRACE"),
    (21, "CAP_SYS_ADMIN"),
];

/// This process's effective uid and the capabilities among [`CAPABILITIES`] it holds.
fn privileges() -> shakeout_api::Privileges {
    let eff = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0);
    shakeout_api::Privileges {
        uid: nix::unistd::geteuid().as_raw(),
        capabilities: CAPABILITIES
            .iter()
            .filter(|(bit, _)| eff & (1 << bit) != 0)
            .map(|(_, name)| name.to_string())
            .collect(),
    }
}
