//! The fault timeline: one task per fault applies it at `at` and reverts it when its
//! duration ends — or at once on abort, interrupt or the run's end. A revert always runs
//! for a fault whose apply started, whether the apply succeeded or not.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

mod agent;
mod exec;
mod pods;

use exec::expand_pids;

use super::events::Events;
use super::service::Pids;
use crate::experiment::model::{Fault, FaultAction, Route};
use crate::fault::cluster::ClusterAgents;
use crate::fault::Agents;
use crate::kube::Cluster;
use crate::record::{FaultRecord as FaultReport, FaultStatus};
use crate::text::ms;

/// Every fault of a run and what became of it.
pub struct FaultSet {
    specs: Vec<Fault>,
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
        specs: &[Fault],
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
                report.status = FaultStatus::Failed;
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

/// The dry-run plan's line(s) for fault `f`: each kind says what it would do.
pub fn plan(f: &Fault) -> String {
    let head = format!("  at {} fault {}", f.at, f.name);
    let dur = f.duration.map(|d| format!(" for {d}")).unwrap_or_default();
    if let Some(why) = &f.skip {
        return format!("{head}{dur}: skipped ({why})\n");
    }
    match &f.action {
        FaultAction::Exec(e) => exec::plan(&head, &dur, e),
        FaultAction::Network(_) | FaultAction::Process(_) => agent::plan(&head, &dur, f),
        FaultAction::PodDelete(d) => pods::plan(&head, d),
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
    spec: Fault,
    origin: Instant,
    pids: Pids,
    events: Events,
    cancel: CancellationToken,
    active: Arc<Mutex<BTreeSet<String>>>,
    ctx: Arc<AgentContext>,
    watching: Arc<AtomicUsize>,
}

impl FaultTask {
    fn blank(spec: &Fault) -> FaultReport {
        FaultReport {
            agent: None,
            name: spec.name.clone(),
            kind: spec.kind().into(),
            at_ms: ms(spec.at.0),
            planned_duration_ms: spec.duration.map(|d| ms(d.0)),
            status: FaultStatus::Pending,
            apply: None,
            revert: None,
            agents: Vec::new(),
            pods: None,
            error: None,
            reason: None,
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

    /// Run the fault by its kind, to its record.
    async fn run(self) -> FaultReport {
        if let Some(why) = self.spec.skip.clone() {
            return self.skipped(why).await;
        }
        match (self.spec.action.clone(), self.spec.route()) {
            (FaultAction::Exec(exec), _) => self.run_exec(exec).await,
            (FaultAction::PodDelete(del), _) => self.run_pod_delete(del).await,
            (_, Some(Route::Pods(sel))) => {
                let sel = sel.clone();
                self.run_on_pods(sel).await
            }
            (FaultAction::Network(_) | FaultAction::Process(_), _) => self.run_agent().await,
        }
    }

    /// A skipped fault: said at its planned time, recorded with the reason.
    async fn skipped(self, why: String) -> FaultReport {
        let mut report = Self::blank(&self.spec);
        if !self.wait_for_start().await {
            return report;
        }
        self.events
            .push("fault", format!("{} skipped: {why}", self.spec.name));
        report.status = FaultStatus::Skipped;
        report.reason = Some(why);
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

    /// Expand `${service.NAME.pid}` with the service's current pid.
    fn expand(&self, argv: &[String]) -> Result<Vec<String>, String> {
        argv.iter().map(|a| expand_pids(a, &self.pids)).collect()
    }
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
        let exp = crate::experiment::parse(
            yaml,
            std::path::Path::new("panics.yaml"),
            &crate::experiment::Vars::new(),
        )
        .unwrap();
        let events = Events::new(Arc::new(crate::progress::Quiet));
        let ctx = AgentContext {
            agents: Agents::default(),
            experiment: "panics".into(),
            seed: 1,
            cluster: None,
            cluster_agents: None,
        };
        let specs = &exp.faults;
        let mut set = FaultSet::new(specs, Instant::now(), Pids::default(), events.clone(), ctx);
        set.spawn(0, async { panic!("boom in the fault task") });
        let mut fine = FaultTask::blank(&specs[1]);
        fine.status = FaultStatus::Applied;
        set.spawn(1, async move { fine });
        let reports = set.finish().await;
        assert_eq!(reports[0].name, "doomed");
        assert_eq!(reports[0].status, FaultStatus::Failed);
        let error = reports[0].error.as_deref().unwrap();
        assert!(error.contains("boom in the fault task"), "{error}");
        assert_eq!(reports[1].status, FaultStatus::Applied);
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
