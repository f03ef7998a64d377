//! `network` and `process` faults through a node agent (named, embedded, or the agent
//! of a pod's node): apply, renew the lease while the fault lasts, revert and insist on
//! a confirmation; an apply whose answer was lost is looked up and reverted.

use std::time::{Duration, Instant};

use super::FaultTask;
use crate::experiment::model::{Fault, FaultAction, Route};
use crate::fault::{request, AgentClient};
use crate::record::{
    AgentActionRecord as AgentActionReport, FaultRecord as FaultReport, FaultStatus,
};
use crate::text::ms;

/// Least time the controller keeps trying to get a revert confirmed (it tries for one
/// lease: past that, a live agent has reverted on its own, and a dead one cannot answer).
pub const MIN_REVERT_CONFIRM: Duration = Duration::from_secs(2);

impl FaultTask {
    /// Apply through the agent, renew the lease while the fault lasts, then revert and
    /// insist on a confirmation. One-shot kills hold nothing, so they need no revert.
    pub(super) async fn run_agent(self) -> FaultReport {
        let mut report = Self::blank(&self.spec);
        let agent_name = match self.spec.route() {
            Some(Route::Named(name)) => Some(name.to_owned()),
            _ => None,
        };
        let label = agent_name.clone().unwrap_or_else(|| "embedded".into());
        let Some(client) = self.ctx.agents.get(agent_name.as_deref()) else {
            report.status = FaultStatus::Failed;
            report.agent = Some(agent_report(
                &label,
                "-",
                Some(format!("agent `{label}` is not available")),
            ));
            return report;
        };
        if !self.wait_for_start().await {
            return report;
        }
        self.set_active(true);
        let (status, ar) = self.drive(&client, &label, &self.spec, None).await;
        self.set_active(false);
        report.status = status;
        report.agent = Some(ar);
        report
    }

    /// One agent fault on one agent, from apply to confirmed revert: returns the status
    /// (`applied`, `reverted`, `failed`, `revertFailed`) and what the agent did.
    pub(super) async fn drive(
        &self,
        client: &AgentClient,
        label: &str,
        spec: &Fault,
        pod: Option<String>,
    ) -> (FaultStatus, AgentActionReport) {
        let name = spec.name.clone();
        let mut ar = agent_report(label, &client.url, None);
        ar.pod = pod;
        let pids = self.pids.clone();
        let pid_of = move |s: &str| {
            pids.lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(s)
                .copied()
        };
        let req = match request::apply_request(
            &self.ctx.experiment,
            spec,
            self.ctx.seed,
            client.lease,
            &pid_of,
            false,
        ) {
            Ok(r) => r,
            Err(e) => {
                self.events
                    .push("fault", format!("{name} apply FAILED: {e}"));
                ar.error = Some(e.to_string());
                return (FaultStatus::Failed, ar);
            }
        };
        let applied = match client.apply(&req).await {
            Ok(resp) => resp,
            Err(e) if e.outcome_unknown() => {
                // The agent may have applied it: find it by name and revert it, or say
                // exactly what may be left.
                let msg = self.recover_unknown_apply(client, label, &e, &name).await;
                self.events.push("fault", format!("{name}: {msg}"));
                let status = if msg.starts_with("reverted") {
                    FaultStatus::Failed
                } else {
                    FaultStatus::RevertFailed
                };
                ar.error = Some(msg);
                return (status, ar);
            }
            Err(e) => {
                self.events
                    .push("fault", format!("{name} apply FAILED: {e}"));
                ar.error = Some(e.to_string());
                return (FaultStatus::Failed, ar);
            }
        };
        ar.fault_id = Some(applied.id.clone());
        ar.mechanism = applied.mechanism.map(|m| format!("{m:?}").to_lowercase());
        ar.targets = applied
            .targets
            .iter()
            .map(|t| format!("{} {}", t.pid, t.name))
            .collect();
        ar.applied_ms = Some(ms(self.origin.elapsed()));
        let mech = ar
            .mechanism
            .as_deref()
            .map(|m| format!(" via {m}"))
            .unwrap_or_default();
        self.events.push(
            "fault",
            format!("{name} applied by agent {label}{mech} (id {})", applied.id),
        );
        if !spec.holds_state() {
            return (FaultStatus::Applied, ar);
        }
        let end = self.origin + spec.at.0 + spec.duration.map(|d| d.0).unwrap_or_default();
        self.keep_alive(client, &applied.id, end, &mut ar, &name)
            .await;
        let confirmed = match self.confirm_revert(client, &applied.id, &name).await {
            Err(_) if self.ctx.agents.swept_by_controller(&applied.id) => {
                self.events.push(
                    "fault",
                    format!(
                        "{name}: reverted by the controller's sweep of the dead guardian's ledger"
                    ),
                );
                Ok(())
            }
            other => other,
        };
        match confirmed {
            Ok(()) => {
                ar.reverted_ms = Some(ms(self.origin.elapsed()));
                self.events
                    .push("fault", format!("{name} reverted by agent {label}"));
                (FaultStatus::Reverted, ar)
            }
            Err(e) => {
                let msg = format!(
                    "revert of fault id {} on agent {label} ({}) not confirmed: {e}; if the agent is alive it reverts at its lease deadline (within {})",
                    applied.id,
                    client.url,
                    shakeout_api::Dur(client.lease)
                );
                self.events.push("fault", format!("{name}: {msg}"));
                ar.error = Some(msg);
                (FaultStatus::RevertFailed, ar)
            }
        }
    }

    /// After an apply whose answer was lost: look for the fault on the agent (by
    /// experiment and fault name) and revert it. Returns what happened, for the report.
    async fn recover_unknown_apply(
        &self,
        client: &AgentClient,
        label: &str,
        error: &crate::fault::AgentError,
        name: &str,
    ) -> String {
        let deadline = Instant::now() + client.lease.max(MIN_REVERT_CONFIRM);
        loop {
            match client.list().await {
                Ok(held) => {
                    let ours: Vec<_> = held
                        .into_iter()
                        .filter(|f| f.experiment == self.ctx.experiment && f.fault == name)
                        .collect();
                    let mut reverted = Vec::new();
                    for f in &ours {
                        if self.confirm_revert(client, &f.id, name).await.is_ok() {
                            reverted.push(f.id.clone());
                        }
                    }
                    if reverted.len() == ours.len() {
                        return format!("reverted after an apply whose answer was lost ({error}); ids reverted: {reverted:?}");
                    }
                    if Instant::now() >= deadline {
                        let left: Vec<&str> = ours
                            .iter()
                            .map(|f| f.id.as_str())
                            .filter(|id| !reverted.iter().any(|r| r == id))
                            .collect();
                        return format!(
                            "apply outcome was unknown ({error}); agent {label} ({}) still holds fault ids {left:?} and did not confirm their revert",
                            client.url
                        );
                    }
                }
                Err(e) if Instant::now() >= deadline => {
                    return format!(
                        "apply outcome unknown ({error}) and agent {label} ({}) cannot be asked ({e}): fault `{}` of experiment `{}` may be applied there; if the agent is alive it reverts it at its lease deadline (within {})",
                        client.url,
                        name,
                        self.ctx.experiment,
                        shakeout_api::Dur(client.lease)
                    );
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }

    /// Renew the lease every third of it until the fault's end or a cancel.
    async fn keep_alive(
        &self,
        client: &AgentClient,
        id: &str,
        end: Instant,
        ar: &mut AgentActionReport,
        name: &str,
    ) {
        let mut next = Instant::now() + client.lease / 3;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(end.into()) => return,
                _ = self.cancel.cancelled() => {
                    self.events.push("fault", format!("{name}: reverting early"));
                    return;
                }
                _ = tokio::time::sleep_until(next.into()) => {}
            }
            match client.renew(id, client.lease).await {
                Ok(_) => ar.renewals += 1,
                Err(e) => {
                    ar.renew_failures += 1;
                    tracing::warn!(error = %e, fault = %name, "lease renewal failed");
                    if e.status() == Some(404) {
                        self.events.push(
                            "fault",
                            format!("{name}: the agent no longer holds it (lease lost): {e}"),
                        );
                        return;
                    }
                }
            }
            next = Instant::now() + client.lease / 3;
        }
    }

    /// DELETE until the agent confirms (a 404 confirms too), for one lease (at least
    /// [`MIN_REVERT_CONFIRM`]).
    async fn confirm_revert(
        &self,
        client: &AgentClient,
        id: &str,
        name: &str,
    ) -> Result<(), String> {
        let deadline = Instant::now() + client.lease.max(MIN_REVERT_CONFIRM);
        loop {
            match client.revert(id).await {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() >= deadline => return Err(e.to_string()),
                // The embedded agent died and the controller's sweep reverted it.
                Err(e) if self.ctx.agents.swept_by_controller(id) => return Err(e.to_string()),
                Err(e) => {
                    tracing::warn!(error = %e, fault = %name, "revert not confirmed yet; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
}

pub(super) fn agent_report(agent: &str, url: &str, error: Option<String>) -> AgentActionReport {
    AgentActionReport {
        agent: agent.into(),
        url: url.into(),
        pod: None,
        fault_id: None,
        mechanism: None,
        targets: Vec::new(),
        applied_ms: None,
        reverted_ms: None,
        renewals: 0,
        renew_failures: 0,
        error,
    }
}

/// The dry-run plan of a network or process fault: what it does, and through which agent.
pub(super) fn plan(head: &str, dur: &str, f: &Fault) -> String {
    let on = match f.route() {
        Some(Route::Pods(sel)) => format!(
            "on pods in namespace {} ({}, mode {}) through the agent on each pod's node",
            sel.namespace,
            crate::kube::pods::describe_selector(sel),
            crate::kube::pods::mode_word(sel)
        ),
        Some(Route::Named(a)) => format!("through agent {a}"),
        Some(Route::Embedded) | None => "through the embedded agent".into(),
    };
    let what = match &f.action {
        FaultAction::Network(n) => {
            let effects = [
                n.latency.as_ref().map(|l| format!("latency {}", l.delay)),
                n.loss.map(|l| format!("loss {l}")),
                n.blackhole.filter(|b| *b).map(|_| "blackhole".to_owned()),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", ");
            format!("network {effects}")
        }
        FaultAction::Process(p) if p.pause.is_some() => "process pause".into(),
        FaultAction::Process(_) => "process kill".into(),
        FaultAction::Exec(_) | FaultAction::PodDelete(_) => "not an agent fault".into(),
    };
    format!("{head}{dur}: {what} {on}\n")
}
