//! Faults on Kubernetes pods: `pod.delete` (choose, delete or evict with a uid
//! precondition, say what that did to disruption budgets, time the workloads' Ready
//! replacements) and `network`/`process` faults on `pods` (one agent fault per chosen
//! pod, on the agent of its node).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::agent::agent_report;
use super::FaultTask;
use crate::experiment::spec::{PodDeleteSpec, PodMode, PodSelector};
use crate::fault::request;
use crate::kube::budget;
use crate::kube::pods::{self, Outcome, PodRef, Removal};
use crate::kube::recovery::{self, Recovery};
use crate::record::{
    ChosenPod, FaultRecord as FaultReport, FaultStatus, PodFaultRecord as PodFaultReport,
    PodRecovery,
};
use crate::text::{duration, ms};

impl FaultTask {
    /// A `network` or `process` fault on pods: choose the pods now, then drive the fault
    /// on the agent of each pod's node, all at once.
    pub(super) async fn run_on_pods(self, sel: PodSelector) -> FaultReport {
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
            Some(Err(e)) => return self.pods_failed(report, pr, e.to_string()),
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
                        (FaultStatus::Failed, ar)
                    }
                }
            }
        });
        let results = futures_util::future::join_all(runs).await;
        self.set_active(false);
        report.status = combined_status(results.iter().map(|(s, _)| *s));
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
        report.status = FaultStatus::Failed;
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
        let matched = pods::matching(cluster, sel)
            .await
            .map_err(|e| e.to_string())?;
        pr.matched = matched.len() as u64;
        // The same choice, and the same refusals, as its preflight and its dry run.
        let chosen = pods::select(&matched, sel, seed).map_err(|e| format!("{e} now"))?;
        pr.chosen = chosen.iter().map(chosen_pod).collect();
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
    pub(super) async fn run_pod_delete(self, del: PodDeleteSpec) -> FaultReport {
        let mut report = Self::blank(&self.spec);
        if !self.wait_for_start().await {
            return report;
        }
        let name = self.spec.name.clone();
        let sel = &del.pods;
        let seed = pods::fault_seed(self.ctx.seed, &name);
        let mut pr = pod_report(sel, self.ctx.seed);
        pr.dry_run = del.dry_run;
        pr.evict = del.evict;
        let chosen = match self
            .unless_cancelled(self.choose_pods(sel, seed, &mut pr))
            .await
        {
            None => return report,
            Some(Ok(c)) => c,
            Some(Err(e)) => return self.pods_failed(report, pr, e.to_string()),
        };
        let Some(cluster) = self.ctx.cluster.clone() else {
            return self.pods_failed(report, pr, "no Kubernetes cluster connection".into());
        };
        // Ready pods per owner before the deletion, over the fault's labels in its
        // namespace: what "recovered" means afterwards.
        let before = match self.unless_cancelled(pods::list_all(&cluster, sel)).await {
            None => return report,
            Some(Ok(all)) => pods::ready_by_owner(&all, &BTreeSet::new()),
            Some(Err(e)) => return self.pods_failed(report, pr, e.to_string()),
        };
        // What the deletion does to the disruption budgets, known before it is done (an
        // account that may not list them is said so, and the fault goes on).
        let how = Removal {
            evict: del.evict,
            grace: del.grace_period.map(|g| g.0),
            dry_run: del.dry_run,
        };
        let budgets = match self
            .unless_cancelled(budget::list(&cluster, &sel.namespace))
            .await
        {
            None => return report,
            Some(Ok(b)) => b,
            Some(Err(e)) => {
                self.events.push(
                    "fault",
                    format!("{name}: disruption budgets not checked: {e}"),
                );
                Vec::new()
            }
        };
        if !how.evict {
            for breach in budget::against(&budgets, &chosen, how.verb()) {
                self.events.push("fault", format!("{name}: {breach}"));
                pr.disruption_budgets.push(breach);
            }
        }
        // A deletion cannot be undone: an interrupt that came while choosing stops it here.
        if self.cancel.is_cancelled() {
            return report;
        }
        self.set_active(true);
        let t0 = Instant::now();
        pr.deleted_ms = Some(ms(self.origin.elapsed()));
        let results = pods::remove(&cluster, &chosen, how).await;
        self.set_active(false);
        let mut gone = Vec::new();
        let mut failed = false;
        for r in results {
            match r.outcome {
                Outcome::Removed => gone.push(r.pod),
                Outcome::AlreadyGone(e) => {
                    self.events.push("fault", format!("{name}: {e}"));
                    pr.errors.push(e);
                }
                Outcome::Blocked(e) => {
                    self.events.push("fault", format!("{name}: {e}"));
                    pr.disruption_budgets.push(e.clone());
                    pr.errors.push(e);
                }
                Outcome::Failed(e) => {
                    self.events.push("fault", format!("{name} FAILED: {e}"));
                    pr.errors.push(e);
                    failed = true;
                }
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
        let done = if how.evict { "evicted" } else { "deleted" };
        if del.dry_run {
            self.events.push(
                "fault",
                format!(
                    "{name}: dry run: the API server accepted {} {}; nothing was {done}",
                    how.verb(),
                    listing.join(", ")
                ),
            );
            pr.recovery = Some(PodRecovery::NotMeasured);
            report.status = if failed {
                FaultStatus::Failed
            } else {
                FaultStatus::DryRun
            };
            report.pods = Some(pr);
            return report;
        }
        if !listing.is_empty() {
            self.events
                .push("fault", format!("{name}: {done} {}", listing.join(", ")));
        }
        report.status = if failed || gone.is_empty() {
            FaultStatus::Failed
        } else {
            FaultStatus::Applied
        };
        if gone.is_empty() {
            pr.recovery = Some(PodRecovery::NotMeasured);
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
            pr.recovery = Some(PodRecovery::NotMeasured);
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
            .unwrap_or(recovery::DEFAULT_RECOVERY_TIMEOUT);
        self.watching.fetch_add(1, Ordering::SeqCst);
        let (recovery, method) =
            recovery::wait_replaced(&cluster, sel, &before, &deleted, t0, timeout, &self.cancel)
                .await;
        self.watching.fetch_sub(1, Ordering::SeqCst);
        let measured = !matches!(recovery, Recovery::NoOwner);
        if let (true, recovery::Method::Poll { why }) = (measured, &method) {
            self.events.push(
                "fault",
                format!(
                    "{name}: replacements polled every {} (a watch was not possible: {why})",
                    duration(recovery::RECOVERY_POLL)
                ),
            );
        }
        if measured {
            pr.recovery_resolution_ms = Some(ms(method.resolution()));
            pr.recovery_method = Some(method.name().to_owned());
        }
        match recovery {
            Recovery::Recovered(d) => {
                self.events.push(
                    "fault",
                    format!(
                        "{name}: replacements Ready {} after the deletion ({})",
                        duration(d),
                        before
                            .iter()
                            .map(|(o, n)| format!("{o} {n}/{n}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
                pr.recovery = Some(PodRecovery::Recovered);
                pr.recovery_ms = Some(ms(d));
            }
            Recovery::NoOwner => {
                self.events.push(
                    "fault",
                    format!("{name}: the deleted pods had no owner; nothing replaces them"),
                );
                pr.recovery = Some(PodRecovery::NoOwner);
            }
            Recovery::NotRecovered(why) => {
                self.events
                    .push("fault", format!("{name}: replacements {why}"));
                pr.recovery = Some(PodRecovery::NotRecovered);
                pr.errors.push(format!("replacements {why}"));
            }
        }
        report.pods = Some(pr);
        report
    }
}

/// The report of a fault's pods before anything is known.
fn pod_report(sel: &PodSelector, seed: u64) -> PodFaultReport {
    PodFaultReport {
        namespace: sel.namespace.clone(),
        selector: sel.selector.clone().unwrap_or_default(),
        field_selector: sel.field_selector.clone(),
        mode: mode_name(sel),
        seed,
        matched: 0,
        chosen: Vec::new(),
        dry_run: false,
        evict: false,
        deleted: 0,
        disruption_budgets: Vec::new(),
        deleted_ms: None,
        recovery: None,
        recovery_ms: None,
        recovery_resolution_ms: None,
        recovery_method: None,
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
fn combined_status(statuses: impl Iterator<Item = FaultStatus>) -> FaultStatus {
    let all: Vec<FaultStatus> = statuses.collect();
    if all.contains(&FaultStatus::RevertFailed) {
        FaultStatus::RevertFailed
    } else if all.is_empty() || all.contains(&FaultStatus::Failed) {
        FaultStatus::Failed
    } else if all.iter().all(|s| *s == FaultStatus::Reverted) {
        FaultStatus::Reverted
    } else {
        FaultStatus::Applied
    }
}

/// How the report shows a chosen pod (the report does not depend on the API's types).
fn chosen_pod(p: &PodRef) -> ChosenPod {
    ChosenPod {
        namespace: p.namespace.clone(),
        name: p.name.clone(),
        uid: p.uid.clone(),
        node: p.node.clone(),
        owner: p.owner.clone(),
    }
}

/// The dry-run plan of a pod deletion.
pub(super) fn plan(head: &str, d: &PodDeleteSpec) -> String {
    format!(
        "{head}: {} pods in namespace {} ({}, mode {}){}\n",
        if d.evict { "evict" } else { "delete" },
        d.pods.namespace,
        pods::describe_selector(&d.pods),
        pods::mode_word(&d.pods),
        if d.dry_run {
            ", server-side dry run"
        } else {
            ""
        }
    )
}
