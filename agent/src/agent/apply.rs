//! Apply: check the caller's policy, resolve and protect targets, take the target's
//! exclusive lock, write the ledger, and only then touch anything. Every early return
//! happens before the first signal or rule, so a refused request leaves nothing behind.

use std::time::Duration;

use nix::sys::signal::Signal;
use shakeout_api::{
    ApplyRequest, ApplyResponse, Dur, FaultSpec, NetNamespace, NetworkFault, ProcessAction,
    ProcessFault, ProcessTarget,
};

use crate::error::{AgentError, Result};
use crate::fault::process;
use crate::fault::target::{self, Proc};
use crate::lease::{unix_ms_now, Lease, DEFAULT_LEASE};
use crate::ledger::{Done, PausedPid, Record};
use crate::policy::TokenPolicy;
use crate::telemetry::FaultEvent;

use super::state::{Active, Caller, Inner, State};

/// Apply, returning the result, the fault id if one was issued, and the target as the
/// audit log shows it.
pub(super) async fn apply(
    inner: &Inner,
    caller: &Caller,
    req: ApplyRequest,
) -> (Result<ApplyResponse>, Option<String>, String) {
    let target = describe(&req.spec);
    let mut id = None;
    let result = checked_apply(inner, caller, req, &mut id).await;
    (result, id, target)
}

async fn checked_apply(
    inner: &Inner,
    caller: &Caller,
    req: ApplyRequest,
    id_out: &mut Option<String>,
) -> Result<ApplyResponse> {
    if inner.stopping.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(AgentError::Unavailable("agent is shutting down".into()));
    }
    let kind = req.spec.kind();
    if !caller.policy.fault_kinds.iter().any(|k| k == kind) {
        return Err(AgentError::Forbidden(format!(
            "token {} may not apply {kind} faults (allowed: {})",
            caller.name,
            caller.policy.fault_kinds.join(", ")
        )));
    }
    let lease = check_lease(req.lease.unwrap_or(Dur(DEFAULT_LEASE)), &caller.policy)?;
    let ctx = Ctx {
        inner,
        caller,
        req: &req,
        lease,
    };
    match &req.spec {
        FaultSpec::Process(p) => ctx.process(p, id_out).await,
        FaultSpec::Network(n) => ctx.network(n, id_out).await,
    }
}

/// A lease length the caller may hold.
pub(super) fn check_lease(lease: Dur, policy: &TokenPolicy) -> Result<Duration> {
    if lease.0.is_zero() {
        return Err(AgentError::bad_spec(
            "lease",
            "must be above 0s (default 10s)",
        ));
    }
    if lease > policy.max_duration {
        return Err(AgentError::bad_spec(
            "lease",
            format!(
                "{lease} is over this token's maxDuration {}",
                policy.max_duration
            ),
        ));
    }
    Ok(lease.0)
}

fn check_duration(duration: Dur, policy: &TokenPolicy) -> Result<Duration> {
    if duration.0.is_zero() {
        return Err(AgentError::bad_spec(
            "duration",
            "must be above 0s for a pause or network fault",
        ));
    }
    if duration > policy.max_duration {
        return Err(AgentError::Forbidden(format!(
            "duration {duration} is over this token's maxDuration {}",
            policy.max_duration
        )));
    }
    Ok(duration.0)
}

pub(super) fn describe(spec: &FaultSpec) -> String {
    match spec {
        FaultSpec::Process(p) => {
            let action = match &p.action {
                ProcessAction::Kill { signal } => format!("kill {signal}"),
                ProcessAction::Pause => "pause".into(),
            };
            format!("{action} {}", describe_target(&p.target))
        }
        FaultSpec::Network(n) => format!("network {}", ns_label(&n.namespace)),
    }
}

fn describe_target(t: &ProcessTarget) -> String {
    let parts = [
        t.pid.map(|p| format!("pid={p}")),
        t.name.as_ref().map(|n| format!("name={n}")),
        t.pattern.as_ref().map(|p| format!("pattern={p}")),
        t.pod_uid.as_ref().map(|u| format!("podUid={u}")),
    ];
    parts.into_iter().flatten().collect::<Vec<_>>().join(" ")
}

fn ns_label(ns: &NetNamespace) -> String {
    match ns {
        NetNamespace::Host => "host".into(),
        NetNamespace::Pid(p) => format!("pid:{p}"),
        NetNamespace::PodUid(u) => format!("pod:{}", u.to_ascii_lowercase()),
    }
}

fn new_id() -> String {
    format!("f-{:016x}", rand::random::<u64>())
}

/// Only ids this agent could have issued; they name ledger files, so nothing else may.
pub fn is_valid_id(id: &str) -> bool {
    id.len() == 18 && id.starts_with("f-") && id[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

struct Ctx<'a> {
    inner: &'a Inner,
    caller: &'a Caller,
    req: &'a ApplyRequest,
    lease: Duration,
}

impl Ctx<'_> {
    async fn process(
        &self,
        spec: &ProcessFault,
        id_out: &mut Option<String>,
    ) -> Result<ApplyResponse> {
        let inner = self.inner;
        let signal = match &spec.action {
            ProcessAction::Kill { signal } => {
                let signal = process::parse_kill_signal(signal)?;
                if !self.caller.policy.allows_signal(signal) {
                    return Err(AgentError::Forbidden(format!(
                        "token {} may not send {signal} (allowed: {})",
                        self.caller.name,
                        self.caller
                            .policy
                            .signals
                            .as_deref()
                            .unwrap_or_default()
                            .join(", ")
                    )));
                }
                Some(signal)
            }
            ProcessAction::Pause => None,
        };
        let duration = match signal {
            Some(_) => Duration::ZERO,
            None => check_duration(self.req.duration, &self.caller.policy)?,
        };
        let matches = target::resolve(&inner.proc_root, &spec.target)?;
        self.refuse_protected(&matches)
            .map_err(|e| match (e, spec.target.pid) {
                // Say so when the id given was a thread: the check was on its process.
                (AgentError::ProtectedTarget(m), Some(tid))
                    if matches.iter().all(|p| p.pid != tid) =>
                {
                    AgentError::ProtectedTarget(format!(
                    "{tid} is a thread of process {}, and signals act on the whole process: {m}",
                    matches.first().map_or(0, |p| p.pid)
                ))
                }
                (e, _) => e,
            })?;
        let seed = spec.seed.unwrap_or_else(rand::random);
        let chosen = target::select(matches, spec.select.as_ref(), seed)?;
        let targets = chosen.iter().map(Proc::info).collect();
        if chosen.is_empty() && !self.req.dry_run {
            return Err(AgentError::bad_spec(
                "spec.process.target",
                format!(
                    "no running process matches {}",
                    describe_target(&spec.target)
                ),
            ));
        }
        let lease = Lease::start(self.lease, duration);
        let mut response = ApplyResponse {
            id: String::new(),
            deadline_unix_ms: lease.deadline_unix_ms,
            ends_unix_ms: lease.ends_unix_ms,
            mechanism: None,
            targets,
            dry_run: self.req.dry_run,
        };
        if let Some(signal) = signal {
            if self.req.dry_run {
                return Ok(response);
            }
            let id = new_id();
            *id_out = Some(id.clone());
            response.id = id;
            // A kill is one-shot: nothing to revert, so no ledger entry and no lease.
            response.deadline_unix_ms = unix_ms_now();
            response.ends_unix_ms = response.deadline_unix_ms;
            response.targets = self.kill(&chosen, signal)?;
            inner.metrics.fault(FaultEvent::Applied, "process");
            return Ok(response);
        }
        let locks: Vec<String> = chosen
            .iter()
            .map(|p| format!("pid {} (started at tick {})", p.pid, p.start_time))
            .collect();
        let Some((mut state, id)) = self.claim(&locks, id_out).await? else {
            return Ok(response);
        };
        response.id = id.clone();
        let pids: Vec<PausedPid> = chosen.iter().map(PausedPid::from).collect();
        let record = self.record(&id, Done::Paused { pids: pids.clone() }, &lease);
        // Ledger first: if the agent dies between here and the SIGSTOPs, the sweep
        // sends a harmless SIGCONT; the other order could leave a process stopped forever.
        inner.ledger.write(&record)?;
        let mut stopped = Vec::new();
        for p in &pids {
            match process::signal_if_same(&inner.proc_root, p.pid, p.start_time, Signal::SIGSTOP) {
                Ok(true) => stopped.push(*p),
                Ok(false) => {}
                Err(e) => {
                    process::continue_all(&inner.proc_root, &stopped);
                    inner.ledger.remove(&id)?;
                    return Err(e);
                }
            }
        }
        response
            .targets
            .retain(|t| stopped.iter().any(|s| s.pid == t.pid));
        tracing::info!(%id, token = %self.caller.name, pids = ?stopped.iter().map(|p| p.pid).collect::<Vec<_>>(), "paused");
        self.hold(&mut state, record, lease, locks);
        Ok(response)
    }

    fn kill(&self, chosen: &[Proc], signal: Signal) -> Result<Vec<shakeout_api::ProcessInfo>> {
        let root = &self.inner.proc_root;
        let mut hit = Vec::new();
        for p in chosen {
            if process::signal_if_same(root, p.pid, p.start_time, signal)? {
                hit.push(p.info());
            }
        }
        tracing::info!(token = %self.caller.name, %signal, pids = ?hit.iter().map(|p| p.pid).collect::<Vec<_>>(), "signalled");
        Ok(hit)
    }

    async fn network(
        &self,
        spec: &NetworkFault,
        id_out: &mut Option<String>,
    ) -> Result<ApplyResponse> {
        let inner = self.inner;
        let duration = check_duration(self.req.duration, &self.caller.policy)?;
        let lock = self.netns_lock(&spec.namespace)?;
        let lease = Lease::start(self.lease, duration);
        let mut response = ApplyResponse {
            id: String::new(),
            deadline_unix_ms: lease.deadline_unix_ms,
            ends_unix_ms: lease.ends_unix_ms,
            mechanism: spec.mechanism,
            targets: Vec::new(),
            dry_run: self.req.dry_run,
        };
        let locks = vec![lock];
        let Some((mut state, id)) = self.claim(&locks, id_out).await? else {
            return Ok(response);
        };
        response.id = id.clone();
        // Everything short of touching the namespace first, so the one ledger write
        // below already holds the complete record (rules, queue, devices): a crash at
        // any instant after it is reverted from the record alone. Before it, nothing
        // outlives the process (an nfqueue reader is only a socket).
        // The controller sends the run's seed, so `--seed` replays nfqueue's loss and
        // jitter; a controller from before the field sends none, and gets a fresh one.
        let seed = spec.seed.unwrap_or_else(rand::random);
        let prepared = inner.net.prepare(&id, spec, seed).await?;
        let record = self.record(
            &id,
            Done::Net {
                applied: prepared.record().clone(),
            },
            &lease,
        );
        inner.ledger.write(&record)?;
        let applied = match inner.net.install(prepared).await {
            Ok(a) => a,
            Err(e) => {
                inner.ledger.remove(&id)?;
                return Err(e.into());
            }
        };
        response.mechanism = Some(applied.mechanism());
        self.hold(&mut state, record, lease, locks);
        Ok(response)
    }

    /// Refuse the whole request if any match is protected, naming each one.
    fn refuse_protected(&self, matches: &[Proc]) -> Result<()> {
        let inner = self.inner;
        let lineage = inner.proc_root.lineage(inner.self_pid);
        let hits: Vec<String> = matches
            .iter()
            .filter_map(|p| {
                let why = if p.pid == 1 {
                    "pid 1".to_string()
                } else if p.pid == inner.self_pid {
                    "the agent itself".to_string()
                } else if lineage.contains(&p.pid) {
                    "an ancestor of the agent".to_string()
                } else {
                    let pattern = inner.policy.protected_name(&self.caller.policy, &p.comm)?;
                    format!("protected name `{pattern}`")
                };
                Some(format!("pid {} `{}` ({why})", p.pid, p.comm))
            })
            .collect();
        if hits.is_empty() {
            return Ok(());
        }
        Err(AgentError::ProtectedTarget(format!(
            "{} of {} matching processes are protected: {}",
            hits.len(),
            matches.len(),
            hits.join(", ")
        )))
    }

    /// The namespace's lock key (its inode when readable, so `host` and a pid in the host
    /// namespace collide), after refusing protected namespaces.
    fn netns_lock(&self, ns: &NetNamespace) -> Result<String> {
        let inner = self.inner;
        let label = ns_label(ns);
        let link = |pid: u32| {
            std::fs::read_link(inner.proc_root.path().join(pid.to_string()).join("ns/net"))
                .ok()
                .map(|p| p.display().to_string())
        };
        let pid = match ns {
            NetNamespace::Host => Some(inner.self_pid),
            NetNamespace::Pid(p) => Some(*p),
            NetNamespace::PodUid(uid) => {
                let t = ProcessTarget {
                    pod_uid: Some(uid.clone()),
                    ..Default::default()
                };
                target::resolve(&inner.proc_root, &t)?
                    .first()
                    .map(|p| p.pid)
            }
        };
        let inode = pid.and_then(link);
        let protected = &inner.policy.protected_namespaces;
        let is_host = inode.is_some() && inode == link(inner.self_pid);
        if protected.contains(&label) || (is_host && protected.iter().any(|p| p == "host")) {
            return Err(AgentError::ProtectedTarget(format!(
                "network namespace {label} is protected by the agent's policy"
            )));
        }
        Ok(format!("netns {}", inode.unwrap_or(label)))
    }

    /// Take the state lock for a new fault on `locks`: refused while the agent stops or
    /// when another fault holds one of them; `None` for a dry run (nothing more to do).
    /// Otherwise the guard, held until the fault is recorded, and the fault's new id.
    async fn claim(
        &self,
        locks: &[String],
        id_out: &mut Option<String>,
    ) -> Result<Option<(tokio::sync::MutexGuard<'_, State>, String)>> {
        let state = self.inner.state.lock().await;
        self.admit()?;
        conflicts(&state, locks)?;
        if self.req.dry_run {
            return Ok(None);
        }
        let id = new_id();
        *id_out = Some(id.clone());
        Ok(Some((state, id)))
    }

    /// Re-checked under the state lock: `shutdown()` sets the flag before it takes the
    /// lock, so no fault can slip in after shutdown has reverted everything.
    fn admit(&self) -> Result<()> {
        if self
            .inner
            .stopping
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Err(AgentError::Unavailable("agent is shutting down".into()));
        }
        Ok(())
    }

    fn record(&self, id: &str, done: Done, lease: &Lease) -> Record {
        Record {
            id: id.to_string(),
            owner: self.caller.name.clone(),
            experiment: self.req.experiment.clone(),
            fault: self.req.fault.clone(),
            spec: self.req.spec.clone(),
            applied_unix_ms: unix_ms_now(),
            ends_unix_ms: lease.ends_unix_ms,
            done,
        }
    }

    fn hold(&self, state: &mut State, record: Record, lease: Lease, locks: Vec<String>) {
        let inner = self.inner;
        let kind = record.spec.kind();
        let target = describe(&record.spec);
        state.faults.insert(
            record.id.clone(),
            Active {
                record,
                lease,
                locks,
                target,
                attempts: 0,
            },
        );
        inner.metrics.fault(FaultEvent::Applied, kind);
        inner.metrics.active(state.faults.len());
        inner.wake.notify_one();
    }
}

/// The exclusive-target keys of a ledger record, as `apply` takes them: its paused
/// processes, or the network namespace it changed.
pub(super) fn locks_of(record: &Record) -> Vec<String> {
    match &record.done {
        Done::Paused { pids } => pids
            .iter()
            .map(|p| format!("pid {} (started at tick {})", p.pid, p.start_time))
            .collect(),
        Done::Net { applied } => match applied.namespace() {
            Some(ns) => vec![format!("netns net:[{}]", ns.inode)],
            None => Vec::new(),
        },
        Done::NetPending => Vec::new(),
    }
}

/// 409 when any of `locks` is held by an active fault.
fn conflicts(state: &State, locks: &[String]) -> Result<()> {
    for active in state.faults.values() {
        if let Some(held) = active.locks.iter().find(|l| locks.contains(l)) {
            return Err(AgentError::Conflict(format!(
                "{held} already has fault {} ({} / {}, owner {})",
                active.record.id,
                active.record.experiment,
                active.record.fault,
                active.record.owner
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(json: &str) -> Record {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_ledger_record_locks_what_its_apply_locked() {
        let net = record(include_str!(
            "../../tests/fixtures/ledger/nfqueue-iptables.json"
        ));
        assert_eq!(locks_of(&net), ["netns net:[4026532174]"]);
        let paused = record(include_str!("../../tests/fixtures/ledger/paused.json"));
        assert_eq!(locks_of(&paused), ["pid 9130 (started at tick 397745)"]);
        // No namespace named (an old host record) or none confirmed: nothing to lock.
        let old = record(include_str!(
            "../../tests/fixtures/ledger/old-nftables-host-null-namespace.json"
        ));
        assert!(locks_of(&old).is_empty());
        let pending = record(include_str!(
            "../../tests/fixtures/ledger/old-net-pending.json"
        ));
        assert!(locks_of(&pending).is_empty());
    }
}
