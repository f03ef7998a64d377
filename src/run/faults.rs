//! The fault timeline: one task per fault applies it at `at` and reverts it when its
//! duration ends — or at once on abort, interrupt or the run's end. A revert always runs
//! for a fault whose apply started, whether the apply succeeded or not.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::events::Events;
use super::exec::run_command;
use super::service::Pids;
use crate::experiment::spec::{FaultSpec, PodDeleteSpec, PodMode, PodSelector};
use crate::fault::cluster::ClusterAgents;
use crate::fault::request;
use crate::fault::{AgentClient, Agents};
use crate::kube::pods::{self, PodRef, Recovery};
use crate::kube::Cluster;
use crate::report::{ms, ActionReport, AgentActionReport, FaultReport, PodFaultReport};
use crate::verdict::{describe_action, human};

/// Least time the controller keeps trying to get a revert confirmed (it tries for one
/// lease: past that, a live agent has reverted on its own, and a dead one cannot answer).
pub const MIN_REVERT_CONFIRM: Duration = Duration::from_secs(2);

/// Deadline of each exec command unless the fault sets one.
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(30);

/// Every fault of a run and what became of it.
pub struct FaultSet {
    specs: Vec<FaultSpec>,
    origin: Instant,
    pids: Pids,
    events: Events,
    cancel: CancellationToken,
    tasks: JoinSet<(usize, FaultReport)>,
    /// Which fault each task runs, to name one that panicked.
    task_faults: std::collections::HashMap<tokio::task::Id, usize>,
    reports: Vec<Option<FaultReport>>,
    active: Arc<Mutex<BTreeSet<String>>>,
    ctx: Arc<AgentContext>,
    /// Pod deletions done and still waiting for their replacements.
    watching: Arc<AtomicUsize>,
}

/// What agent-backed faults need from the run.
pub struct AgentContext {
    pub agents: Agents,
    pub experiment: String,
    pub seed: u64,
    /// The cluster, when a fault needs it.
    pub cluster: Option<Cluster>,
    /// The cluster's node agents, when a fault targets pods.
    pub cluster_agents: Option<Arc<ClusterAgents>>,
}

impl FaultSet {
    pub fn new(
        specs: &[FaultSpec],
        origin: Instant,
        pids: Pids,
        events: Events,
        ctx: AgentContext,
    ) -> Self {
        FaultSet {
            ctx: Arc::new(ctx),
            specs: specs.to_vec(),
            origin,
            pids,
            events,
            cancel: CancellationToken::new(),
            tasks: JoinSet::new(),
            task_faults: Default::default(),
            reports: vec![None; specs.len()],
            active: Arc::default(),
            watching: Arc::default(),
        }
    }

    /// Schedule every fault; each waits for its own `at`.
    pub fn start_all(&mut self) {
        let specs = self.specs.clone();
        for (i, spec) in specs.iter().enumerate() {
            let task = FaultTask {
                spec: spec.clone(),
                origin: self.origin,
                pids: self.pids.clone(),
                events: self.events.clone(),
                cancel: self.cancel.clone(),
                active: self.active.clone(),
                ctx: self.ctx.clone(),
                watching: self.watching.clone(),
            };
            self.spawn(i, task.run());
        }
    }

    /// Run fault `i`'s task, remembering which fault it is.
    fn spawn(
        &mut self,
        i: usize,
        task: impl std::future::Future<Output = FaultReport> + Send + 'static,
    ) {
        let handle = self.tasks.spawn(async move { (i, task.await) });
        self.task_faults.insert(handle.id(), i);
    }

    fn collect_finished(&mut self) {
        while let Some(joined) = self.tasks.try_join_next() {
            self.store(joined);
        }
    }

    fn store(&mut self, joined: Result<(usize, FaultReport), tokio::task::JoinError>) {
        match joined {
            Ok((i, report)) => self.reports[i] = Some(report),
            Err(e) => {
                let Some(&i) = self.task_faults.get(&e.id()) else {
                    tracing::error!(error = %e, "a fault task failed, and no fault is known by its id");
                    return;
                };
                let name = self.specs[i].name.clone();
                let why = panic_message(e);
                tracing::error!(fault = %name, %why, "fault task failed");
                self.events.push(
                    "fault",
                    format!("{name} FAILED: its task ended abnormally: {why}"),
                );
                let mut report = FaultTask::blank(&self.specs[i]);
                report.status = "failed".into();
                report.error = Some(format!(
                    "the fault's task ended abnormally ({why}); an agent fault it applied is \
                     reverted by its agent at the lease deadline"
                ));
                self.reports[i] = Some(report);
            }
        }
    }

    /// True when every scheduled fault has ended (applied and, if it lasts, reverted);
    /// pod deletions count as ended once deleted, while their recovery is watched.
    pub fn all_done(&mut self) -> bool {
        self.collect_finished();
        self.tasks.len() <= self.watching.load(Ordering::SeqCst)
    }

    /// Pod deletions still waiting for their workloads' replacements to be Ready.
    pub fn watching(&self) -> usize {
        self.watching.load(Ordering::SeqCst)
    }

    /// Names of faults applied and not yet reverted.
    pub fn active_names(&self) -> Vec<String> {
        self.active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Stop injecting: faults not yet started never start; applied ones are reverted now.
    /// Waits for every revert (each bounded by its timeout) and returns every fault's report.
    pub async fn finish(mut self) -> Vec<FaultReport> {
        self.cancel.cancel();
        while let Some(joined) = self.tasks.join_next().await {
            self.store(joined);
        }
        self.specs
            .iter()
            .zip(self.reports)
            .map(|(spec, r)| r.unwrap_or_else(|| FaultTask::blank(spec)))
            .collect()
    }
}

/// What a task that did not finish normally said: its panic message, or why it stopped.
fn panic_message(e: tokio::task::JoinError) -> String {
    if !e.is_panic() {
        return e.to_string();
    }
    let payload = e.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .map_or_else(|| "panicked".into(), |m| format!("panicked: {m}"))
}

struct FaultTask {
    spec: FaultSpec,
    origin: Instant,
    pids: Pids,
    events: Events,
    cancel: CancellationToken,
    active: Arc<Mutex<BTreeSet<String>>>,
    ctx: Arc<AgentContext>,
    watching: Arc<AtomicUsize>,
}

impl FaultTask {
    fn blank(spec: &FaultSpec) -> FaultReport {
        let kind = if spec.network.is_some() {
            "network"
        } else if spec.process.is_some() {
            "process"
        } else if spec.pod.is_some() {
            "pod"
        } else {
            "exec"
        };
        FaultReport {
            agent: None,
            name: spec.name.clone(),
            kind: kind.into(),
            at_ms: ms(spec.at.0),
            planned_duration_ms: spec.duration.map(|d| ms(d.0)),
            status: "pending".into(),
            apply: None,
            revert: None,
            agents: Vec::new(),
            pods: None,
            error: None,
        }
    }

    fn set_active(&self, on: bool) {
        let mut a = self.active.lock().unwrap_or_else(|p| p.into_inner());
        if on {
            a.insert(self.spec.name.clone());
        } else {
            a.remove(&self.spec.name);
        }
    }

    async fn run(self) -> FaultReport {
        if let Some(del) = self.spec.pod.as_ref().and_then(|p| p.delete.clone()) {
            return self.run_pod_delete(del).await;
        }
        if let Some(sel) = request::pod_targets(&self.spec).cloned() {
            return self.run_on_pods(sel).await;
        }
        if request::is_agent_fault(&self.spec) {
            return self.run_agent().await;
        }
        let mut report = Self::blank(&self.spec);
        let Some(exec) = &self.spec.exec else {
            return report;
        };
        let timeout = exec.timeout.map(|d| d.0).unwrap_or(DEFAULT_EXEC_TIMEOUT);
        let start = self.origin + self.spec.at.0;
        tokio::select! {
            _ = tokio::time::sleep_until(start.into()) => {}
            _ = self.cancel.cancelled() => return report,
        }
        self.set_active(true);
        let argv = self.expand(&exec.command);
        let apply = match argv {
            Ok(argv) => run_command(&argv, &exec.env, timeout, self.origin).await,
            Err(e) => not_run(&exec.command, e, self.origin),
        };
        let name = &self.spec.name;
        let applied_ok = apply.success;
        self.events.push(
            "fault",
            if applied_ok {
                format!("{name} applied: {}", apply.command.join(" "))
            } else {
                format!(
                    "{name} apply FAILED ({}): {}",
                    describe_action(&apply),
                    apply.command.join(" ")
                )
            },
        );
        report.status = if applied_ok { "applied" } else { "failed" }.into();
        report.apply = Some(apply);
        if let Some(d) = self.spec.duration {
            tokio::select! {
                _ = tokio::time::sleep_until((start + d.0).into()) => {}
                _ = self.cancel.cancelled() => {
                    self.events.push("fault", format!("{name}: reverting early"));
                }
            }
        }
        if let Some(revert) = &exec.revert {
            let result = match self.expand(revert) {
                Ok(argv) => run_command(&argv, &exec.env, timeout, self.origin).await,
                Err(e) => not_run(revert, e, self.origin),
            };
            if result.success {
                self.events.push(
                    "fault",
                    format!("{name} reverted: {}", result.command.join(" ")),
                );
                if applied_ok {
                    report.status = "reverted".into();
                }
            } else {
                self.events.push(
                    "fault",
                    format!(
                        "{name} revert FAILED ({}): {}",
                        describe_action(&result),
                        result.command.join(" ")
                    ),
                );
                report.status = "revertFailed".into();
            }
            report.revert = Some(result);
        }
        self.set_active(false);
        report
    }

    /// Apply through the agent, renew the lease while the fault lasts, then revert and
    /// insist on a confirmation. One-shot kills hold nothing, so they need no revert.
    async fn run_agent(self) -> FaultReport {
        let mut report = Self::blank(&self.spec);
        let agent_name = self
            .spec
            .network
            .as_ref()
            .map(|n| n.agent.clone())
            .or(self.spec.process.as_ref().map(|p| p.agent.clone()))
            .flatten();
        let label = agent_name.clone().unwrap_or_else(|| "embedded".into());
        let Some(client) = self.ctx.agents.get(agent_name.as_deref()) else {
            report.status = "failed".into();
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

    /// `f`, unless the run is cancelled first (then nothing more may start).
    async fn unless_cancelled<T>(&self, f: impl std::future::Future<Output = T>) -> Option<T> {
        tokio::select! {
            r = f => Some(r),
            _ = self.cancel.cancelled() => None,
        }
    }

    /// Sleep until the fault's `at`; false when the run was cancelled first.
    async fn wait_for_start(&self) -> bool {
        let start = self.origin + self.spec.at.0;
        tokio::select! {
            _ = tokio::time::sleep_until(start.into()) => true,
            _ = self.cancel.cancelled() => false,
        }
    }

    /// One agent fault on one agent, from apply to confirmed revert: returns the status
    /// (`applied`, `reverted`, `failed`, `revertFailed`) and what the agent did.
    async fn drive(
        &self,
        client: &AgentClient,
        label: &str,
        spec: &FaultSpec,
        pod: Option<String>,
    ) -> (String, AgentActionReport) {
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
                ar.error = Some(e);
                return ("failed".into(), ar);
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
                    "failed"
                } else {
                    "revertFailed"
                };
                ar.error = Some(msg);
                return (status.into(), ar);
            }
            Err(e) => {
                self.events
                    .push("fault", format!("{name} apply FAILED: {e}"));
                ar.error = Some(e.to_string());
                return ("failed".into(), ar);
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
        if !request::holds_state(spec) {
            return ("applied".into(), ar);
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
                ("reverted".into(), ar)
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
                ("revertFailed".into(), ar)
            }
        }
    }

    /// A `network` or `process` fault on pods: choose the pods now, then drive the fault
    /// on the agent of each pod's node, all at once.
    async fn run_on_pods(self, sel: PodSelector) -> FaultReport {
        let mut report = Self::blank(&self.spec);
        if !self.wait_for_start().await {
            return report;
        }
        let name = self.spec.name.clone();
        let seed = pods::fault_seed(self.ctx.seed, &name);
        let mut pr = pod_report(&sel, self.ctx.seed);
        let chosen = match self
            .unless_cancelled(self.choose_pods(&sel, seed, &mut pr))
            .await
        {
            None => return report,
            Some(Ok(c)) => c,
            Some(Err(e)) => return self.pods_failed(report, pr, e),
        };
        if self.cancel.is_cancelled() {
            return report;
        }
        self.set_active(true);
        let this = &self;
        let name = &name;
        let runs = chosen.iter().map(|pod| {
            let target = self
                .ctx
                .cluster_agents
                .as_ref()
                .ok_or_else(|| "no node agents were found in the cluster".to_owned())
                .and_then(|a| a.on_node(&pod.node));
            async move {
                match target {
                    Ok(client) => {
                        let spec = request::for_pod(&this.spec, pod);
                        let label = client.name.clone();
                        this.drive(&client, &label, &spec, Some(pod.key())).await
                    }
                    Err(e) => {
                        this.events
                            .push("fault", format!("{name}@{} apply FAILED: {e}", pod.name));
                        let mut ar = agent_report("-", "-", Some(e));
                        ar.pod = Some(pod.key());
                        ("failed".to_owned(), ar)
                    }
                }
            }
        });
        let results = futures_util::future::join_all(runs).await;
        self.set_active(false);
        report.status = combined_status(results.iter().map(|(s, _)| s.as_str())).into();
        report.agents = results.into_iter().map(|(_, ar)| ar).collect();
        report.pods = Some(pr);
        report
    }

    /// A pod fault that could not go on: say why, and report it failed.
    fn pods_failed(
        &self,
        mut report: FaultReport,
        mut pr: PodFaultReport,
        error: String,
    ) -> FaultReport {
        self.events
            .push("fault", format!("{} FAILED: {error}", self.spec.name));
        pr.errors.push(error);
        report.status = "failed".into();
        report.pods = Some(pr);
        report
    }

    /// List and choose the fault's pods, filling the report; an error when none match.
    async fn choose_pods(
        &self,
        sel: &PodSelector,
        seed: u64,
        pr: &mut PodFaultReport,
    ) -> Result<Vec<PodRef>, String> {
        let cluster = self
            .ctx
            .cluster
            .as_ref()
            .ok_or_else(|| "no Kubernetes cluster connection".to_owned())?;
        let matched = pods::matching(cluster, sel).await?;
        let chosen = pods::choose(&matched, sel, seed);
        pr.matched = matched.len() as u64;
        pr.chosen = chosen.clone();
        if chosen.is_empty() {
            return Err(format!(
                "no pod in namespace {} matches {} now",
                sel.namespace,
                pods::describe_selector(sel)
            ));
        }
        let names: Vec<String> = chosen.iter().map(|p| p.name.clone()).collect();
        self.events.push(
            "fault",
            format!(
                "{}: chose {} of {} pods ({}; run seed {}): {}",
                self.spec.name,
                chosen.len(),
                matched.len(),
                mode_name(sel),
                self.ctx.seed,
                names.join(", ")
            ),
        );
        Ok(chosen)
    }

    /// Delete the chosen pods (or have the server check it, for a dry run), then wait
    /// until their workloads have Ready replacements: the pod recovery time.
    async fn run_pod_delete(self, del: PodDeleteSpec) -> FaultReport {
        let mut report = Self::blank(&self.spec);
        if !self.wait_for_start().await {
            return report;
        }
        let name = self.spec.name.clone();
        let sel = &del.pods;
        let seed = pods::fault_seed(self.ctx.seed, &name);
        let mut pr = pod_report(sel, self.ctx.seed);
        pr.dry_run = del.dry_run;
        let chosen = match self
            .unless_cancelled(self.choose_pods(sel, seed, &mut pr))
            .await
        {
            None => return report,
            Some(Ok(c)) => c,
            Some(Err(e)) => return self.pods_failed(report, pr, e),
        };
        let Some(cluster) = self.ctx.cluster.clone() else {
            return self.pods_failed(report, pr, "no Kubernetes cluster connection".into());
        };
        // Ready pods per owner before the deletion, over the fault's labels in its
        // namespace: what "recovered" means afterwards.
        let before = match self.unless_cancelled(pods::list_all(&cluster, sel)).await {
            None => return report,
            Some(Ok(all)) => pods::ready_by_owner(&all, &BTreeSet::new()),
            Some(Err(e)) => return self.pods_failed(report, pr, e),
        };
        // A deletion cannot be undone: an interrupt that came while choosing stops it here.
        if self.cancel.is_cancelled() {
            return report;
        }
        self.set_active(true);
        let t0 = Instant::now();
        pr.deleted_ms = Some(ms(self.origin.elapsed()));
        let grace = del.grace_period.map(|g| g.0);
        let results = pods::delete(&cluster, &chosen, grace, del.dry_run).await;
        self.set_active(false);
        let mut gone = Vec::new();
        let mut failed = false;
        for d in results {
            match d.error {
                Some(e) if d.already_gone => {
                    self.events.push("fault", format!("{name}: {e}"));
                    pr.errors.push(e);
                }
                Some(e) => {
                    self.events.push("fault", format!("{name} FAILED: {e}"));
                    pr.errors.push(e);
                    failed = true;
                }
                None => gone.push(d.pod),
            }
        }
        pr.deleted = if del.dry_run { 0 } else { gone.len() as u64 };
        let listing: Vec<String> = gone
            .iter()
            .map(|p| {
                format!(
                    "{} (node {}, {})",
                    p.key(),
                    if p.node.is_empty() { "-" } else { &p.node },
                    p.owner.as_deref().unwrap_or("no owner")
                )
            })
            .collect();
        if del.dry_run {
            self.events.push(
                "fault",
                format!(
                    "{name}: dry run: the API server accepted deleting {}; nothing was deleted",
                    listing.join(", ")
                ),
            );
            pr.recovery = Some("notMeasured".into());
            report.status = if failed { "failed" } else { "dryRun" }.into();
            report.pods = Some(pr);
            return report;
        }
        if !listing.is_empty() {
            self.events
                .push("fault", format!("{name}: deleted {}", listing.join(", ")));
        }
        report.status = if failed || gone.is_empty() {
            "failed"
        } else {
            "applied"
        }
        .into();
        if gone.is_empty() {
            pr.recovery = Some("notMeasured".into());
            report.pods = Some(pr);
            return report;
        }
        // Recovery means the Ready count is back: only Ready pods that were deleted take
        // something away to recover (a Running but unready pod's owner was short already).
        let owners: BTreeSet<&str> = gone
            .iter()
            .filter(|p| p.ready)
            .filter_map(|p| p.owner.as_deref())
            .collect();
        if owners.is_empty() && gone.iter().any(|p| p.owner.is_some()) {
            pr.recovery = Some("notMeasured".into());
            pr.errors
                .push("none of the deleted pods was Ready: no Ready count to recover".into());
            report.pods = Some(pr);
            return report;
        }
        let before: BTreeMap<String, usize> = before
            .into_iter()
            .filter(|(o, _)| owners.contains(o.as_str()))
            .collect();
        let deleted: BTreeSet<String> = gone.iter().map(|p| p.uid.clone()).collect();
        let timeout = del
            .recovery_timeout
            .map(|d| d.0)
            .unwrap_or(pods::DEFAULT_RECOVERY_TIMEOUT);
        self.watching.fetch_add(1, Ordering::SeqCst);
        let recovery =
            pods::wait_replaced(&cluster, sel, &before, &deleted, t0, timeout, &self.cancel).await;
        self.watching.fetch_sub(1, Ordering::SeqCst);
        pr.recovery_resolution_ms = Some(ms(pods::RECOVERY_POLL));
        match recovery {
            Recovery::Recovered(d) => {
                self.events.push(
                    "fault",
                    format!(
                        "{name}: replacements Ready {} after the deletion ({})",
                        human(d),
                        before
                            .iter()
                            .map(|(o, n)| format!("{o} {n}/{n}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
                pr.recovery = Some("recovered".into());
                pr.recovery_ms = Some(ms(d));
            }
            Recovery::NoOwner => {
                self.events.push(
                    "fault",
                    format!("{name}: the deleted pods had no owner; nothing replaces them"),
                );
                pr.recovery = Some("noOwner".into());
            }
            Recovery::NotRecovered(why) => {
                self.events
                    .push("fault", format!("{name}: replacements {why}"));
                pr.recovery = Some("notRecovered".into());
                pr.errors.push(format!("replacements {why}"));
            }
        }
        report.pods = Some(pr);
        report
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

    /// Expand `${service.NAME.pid}` with the service's current pid.
    fn expand(&self, argv: &[String]) -> Result<Vec<String>, String> {
        argv.iter().map(|a| expand_pids(a, &self.pids)).collect()
    }
}

fn agent_report(agent: &str, url: &str, error: Option<String>) -> AgentActionReport {
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

/// The report of a fault's pods before anything is known.
fn pod_report(sel: &PodSelector, seed: u64) -> PodFaultReport {
    PodFaultReport {
        namespace: sel.namespace.clone(),
        selector: pods::describe_selector(sel),
        mode: mode_name(sel),
        seed,
        matched: 0,
        chosen: Vec::new(),
        dry_run: false,
        deleted: 0,
        deleted_ms: None,
        recovery: None,
        recovery_ms: None,
        recovery_resolution_ms: None,
        errors: Vec::new(),
    }
}

/// `one`, `all`, `fixed 2`, `percent 50%`.
fn mode_name(sel: &PodSelector) -> String {
    match sel.mode.unwrap_or_default() {
        PodMode::One => "one".into(),
        PodMode::All => "all".into(),
        PodMode::Fixed => format!("fixed {}", sel.count.unwrap_or(1)),
        PodMode::Percent => format!(
            "percent {}",
            sel.percent.map(|p| p.to_string()).unwrap_or_default()
        ),
    }
}

/// The worst of several placements' statuses: an unconfirmed revert, then a failure.
fn combined_status<'a>(statuses: impl Iterator<Item = &'a str>) -> &'static str {
    let all: Vec<&str> = statuses.collect();
    if all.contains(&"revertFailed") {
        "revertFailed"
    } else if all.is_empty() || all.contains(&"failed") {
        "failed"
    } else if all.iter().all(|s| *s == "reverted") {
        "reverted"
    } else {
        "applied"
    }
}

fn not_run(argv: &[String], error: String, origin: Instant) -> ActionReport {
    let now = ms(origin.elapsed());
    ActionReport {
        command: argv.to_vec(),
        started_ms: now,
        ended_ms: now,
        exit_code: None,
        signal: None,
        success: false,
        stdout: String::new(),
        stderr: String::new(),
        error: Some(error),
    }
}

/// Replace every `${service.NAME.pid}` in `arg`.
pub fn expand_pids(arg: &str, pids: &Pids) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = arg;
    while let Some(start) = rest.find("${service.") {
        out.push_str(&rest[..start]);
        let after = &rest[start + "${service.".len()..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed `${{` in `{arg}`"))?;
        let inner = &after[..end];
        let name = inner.strip_suffix(".pid").ok_or_else(|| {
            format!("`${{service.{inner}}}`: only `${{service.NAME.pid}}` is supported")
        })?;
        let pid = pids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .copied();
        let pid = pid.ok_or_else(|| {
            format!("service `{name}` is not running, so `${{service.{name}.pid}}` has no value")
        })?;
        out.push_str(&pid.to_string());
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fault task that panics fails its fault, by name, with the panic's message, and
    /// the `fault/NAME` verdict fails; the other faults keep their reports.
    #[tokio::test]
    async fn a_panicked_fault_task_fails_its_verdict_by_name() {
        let yaml = r#"apiVersion: shakeout/v1
kind: Experiment
metadata: { name: panics }
spec:
  duration: 10s
  probes:
    - { name: p, tcp: { address: "127.0.0.1:9" }, rate: 1/s }
  faults:
    - { name: doomed, at: 1s, exec: { command: ["true"] } }
    - { name: fine, at: 1s, exec: { command: ["true"] } }
"#;
        let exp = crate::experiment::parse(yaml, std::path::Path::new("panics.yaml")).unwrap();
        let events = Events::new(Arc::new(crate::progress::Quiet));
        let ctx = AgentContext {
            agents: Agents::default(),
            experiment: "panics".into(),
            seed: 1,
            cluster: None,
            cluster_agents: None,
        };
        let specs = &exp.file.spec.faults;
        let mut set = FaultSet::new(specs, Instant::now(), Pids::default(), events.clone(), ctx);
        set.spawn(0, async { panic!("boom in the fault task") });
        let mut fine = FaultTask::blank(&specs[1]);
        fine.status = "applied".into();
        set.spawn(1, async move { fine });
        let reports = set.finish().await;
        assert_eq!(reports[0].name, "doomed");
        assert_eq!(reports[0].status, "failed");
        let error = reports[0].error.as_deref().unwrap();
        assert!(error.contains("boom in the fault task"), "{error}");
        assert_eq!(reports[1].status, "applied");
        let verdicts = crate::verdict::evaluate(&exp, &[], &reports);
        let v = verdicts.iter().find(|v| v.id == "fault/doomed").unwrap();
        assert_eq!(v.status, crate::report::VerdictStatus::Fail);
        assert!(
            v.measured
                .as_deref()
                .unwrap()
                .contains("boom in the fault task"),
            "{v:?}"
        );
        assert!(!verdicts.iter().any(|v| v.id == "fault/fine"));
        let said = events.drain(Instant::now());
        assert!(
            said.iter().any(|e| e.message.contains("doomed FAILED")),
            "{said:?}"
        );
    }

    #[test]
    fn pids_expand_and_missing_services_are_named() {
        let pids: Pids = Arc::default();
        pids.lock().unwrap().insert("db".into(), 4242);
        assert_eq!(
            expand_pids("kill -9 ${service.db.pid}", &pids).unwrap(),
            "kill -9 4242"
        );
        assert_eq!(expand_pids("plain", &pids).unwrap(), "plain");
        let err = expand_pids("${service.web.pid}", &pids).unwrap_err();
        assert!(err.contains("service `web` is not running"), "{err}");
        assert!(expand_pids("${service.db.port}", &pids).is_err());
    }
}
