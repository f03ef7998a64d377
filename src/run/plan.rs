//! What a run would do, without doing it (`--dry-run`): the plan read from the file, and
//! with a cluster, the pods the run would choose (same seed, same refusals), the API
//! server's own check of each deletion or eviction (`dryRun=All`), and what they would do
//! to the PodDisruptionBudgets. Data only: `cmd` prints it.

use crate::experiment::model::FaultAction;
use crate::experiment::Experiment;
use crate::kube::budget;
use crate::kube::pods::{self, Outcome, Removal};
use crate::probe::ProbeConfig;
use crate::text::duration;

/// The plan `--dry-run` prints: what would run, when.
pub fn plan(exp: &Experiment) -> String {
    let spec = &exp.file.spec;
    let mut out = format!(
        "experiment {} ({}), at most {}\n",
        exp.file.metadata.name,
        exp.source.display(),
        spec.duration
    );
    for s in &spec.services {
        out.push_str(&format!("  service {}: {}\n", s.name, s.command.join(" ")));
        let restart = s
            .restart
            .as_ref()
            .filter(|r| r.policy == crate::experiment::spec::RestartPolicy::OnExit);
        if let Some(r) = restart {
            out.push_str(&format!(
                "    restarted when it exits, after {} doubling to {}; crash-looping after \
                 {} restarts in a row none up for {}\n",
                duration(r.delay()),
                duration(r.max_delay()),
                r.max_restarts(),
                duration(r.reset_after())
            ));
        }
        if let Some(log) = &s.log {
            out.push_str(&format!("    output appended to {log}\n"));
        }
    }
    for p in &exp.probes {
        match ProbeConfig::from_model(p, "{run}") {
            Ok(c) => out.push_str(&format!(
                "  probe {}: {} at {}/s\n",
                p.name,
                c.target.describe(),
                p.rate
            )),
            Err(e) => out.push_str(&format!("  probe {}: {e}\n", p.name)),
        }
    }
    if let Some(ss) = &spec.steady_state {
        out.push_str(&format!(
            "  steady state checked over {} before the first fault and after recovery\n",
            ss.window
        ));
    }
    for f in &exp.faults {
        out.push_str(&super::faults::plan(f));
    }
    if let Some(a) = spec.abort.as_ref().and_then(|a| a.availability.as_ref()) {
        out.push_str(&format!(
            "  stops early (reverting every fault) when {} stays below {} for {}\n",
            a.probe
                .as_deref()
                .map_or("a probe's availability".to_owned(), |p| format!(
                    "the availability of {p}"
                )),
            a.below,
            a.for_
        ));
    }
    for a in spec.abort.iter().flat_map(|a| &a.promql) {
        out.push_str(&format!(
            "  stops early (reverting every fault) when `{}` {} {} (promql {}, every {})\n",
            a.query,
            a.comparator.as_str(),
            a.threshold,
            a.name,
            a.every.unwrap_or(crate::experiment::spec::DEFAULT_EVERY)
        ));
    }
    if let Some(p) = &spec.prometheus {
        out.push_str(&format!(
            "  Prometheus at {}: every query is tried before anything starts\n",
            p.url
        ));
    }
    if let Some(a) = &spec.alertmanager {
        out.push_str(&format!("  Alertmanager at {}\n", a.url));
    }
    let verdicts = crate::verdict::planned(exp);
    if !verdicts.is_empty() {
        out.push_str("  verdicts the run will give (any that fails fails the run):\n");
        let width = verdicts.iter().map(|v| v.id.len()).max().unwrap_or(0);
        for v in &verdicts {
            out.push_str(&format!("    {:width$}  {}\n", v.id, v.required));
        }
    }
    out
}

/// `--dry-run --json FILE`: the plan for machines, schema `shakeout.dryRun/v1`.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DryRun {
    pub schema: &'static str,
    pub experiment: String,
    pub file: String,
    pub duration_ms: f64,
    /// The seed the run would use: `--seed`, else the file's; none when it would draw one.
    pub seed: Option<u64>,
    /// The plan as printed, one line each.
    pub plan: Vec<String>,
    pub faults: Vec<PlannedFault>,
    /// Every verdict the run will give, unjudged (`fault/NAME` only appears when a fault
    /// fails, so it is not here).
    pub verdicts: Vec<crate::verdict::Verdict>,
    /// With a cluster: the pods chosen and the API server's check of each action.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterDoc>,
    /// False when the run would refuse (the same as exit 3).
    pub ok: bool,
}

/// One fault of the plan.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedFault {
    pub name: String,
    pub kind: &'static str,
    pub at_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<f64>,
    /// Why it would be skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// The cluster side of the plan.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterDoc {
    pub source: String,
    pub seed: u64,
    pub faults: Vec<ClusterFaultDoc>,
}

/// What the dry run found for one fault on pods.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterFaultDoc {
    pub fault: String,
    /// Pods matching the selector.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched: Option<usize>,
    /// Why no pod could be chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub pods: Vec<PodDoc>,
    pub budgets: Vec<String>,
    pub notes: Vec<String>,
}

/// One chosen pod: what would be done to it, and whether the check passed.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodDoc {
    pub pod: String,
    pub node: String,
    /// `delete`, `evict`, or `agent` (a fault through the node's agent).
    pub action: &'static str,
    /// The agent that would act (`agent` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    pub accepted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The plan of `exp` for machines; `cluster` from [`cluster`] when it needs one.
pub fn document(exp: &Experiment, seed: Option<u64>, cluster: Option<&ClusterPlan>) -> DryRun {
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    DryRun {
        schema: "shakeout.dryRun/v1",
        experiment: exp.file.metadata.name.clone(),
        file: exp.source.display().to_string(),
        duration_ms: ms(exp.file.spec.duration.0),
        seed: seed.or(exp.file.spec.seed),
        plan: plan(exp).lines().map(str::to_owned).collect(),
        faults: exp
            .faults
            .iter()
            .map(|f| PlannedFault {
                name: f.name.clone(),
                kind: f.kind(),
                at_ms: ms(f.at.0),
                duration_ms: f.duration.map(|d| ms(d.0)),
                skipped: f.skip.clone(),
            })
            .collect(),
        verdicts: crate::verdict::planned(exp),
        cluster: cluster.map(|c| ClusterDoc {
            source: c.source.clone(),
            seed: c.seed,
            faults: c.faults.iter().map(cluster_fault).collect(),
        }),
        ok: cluster.is_none_or(ClusterPlan::ok),
    }
}

fn cluster_fault(f: &FaultPlan) -> ClusterFaultDoc {
    let (matched, error, pods) = match &f.chosen {
        Err(e) => (None, Some(e.clone()), Vec::new()),
        Ok((pods, matched)) => (Some(*matched), None, pods.iter().map(pod_doc).collect()),
    };
    ClusterFaultDoc {
        fault: f.fault.clone(),
        matched,
        error,
        pods,
        budgets: f.budgets.clone(),
        notes: f.notes.clone(),
    }
}

fn pod_doc(p: &PodPlan) -> PodDoc {
    match p {
        PodPlan::Delete {
            verb,
            pod,
            node,
            checked,
        } => PodDoc {
            pod: pod.clone(),
            node: node.clone(),
            action: verb,
            agent: None,
            accepted: checked.is_ok(),
            error: checked.as_ref().err().cloned(),
        },
        PodPlan::Agent { pod, node, agent } => PodDoc {
            pod: pod.clone(),
            node: node.clone(),
            action: "agent",
            agent: agent
                .as_ref()
                .ok()
                .map(|(name, url)| format!("{name} ({url})")),
            accepted: agent.is_ok(),
            error: agent.as_ref().err().cloned(),
        },
    }
}

/// One pod a fault would act on, and what the dry run found for it.
#[derive(Debug, Clone)]
pub enum PodPlan {
    /// A deletion (or eviction) the API server checked: `Ok` when it accepted it, and
    /// no disruption budget would refuse it in the run's order.
    Delete {
        /// `delete` or `evict`.
        verb: &'static str,
        pod: String,
        node: String,
        checked: Result<(), String>,
    },
    /// A fault on the pod through the agent of its node (name, url), or why none.
    Agent {
        pod: String,
        node: String,
        agent: Result<(String, String), String>,
    },
}

/// What the dry run found for one fault on pods.
#[derive(Debug, Clone)]
pub struct FaultPlan {
    pub fault: String,
    /// The pods chosen and how many matched, or why none could be.
    pub chosen: Result<(Vec<PodPlan>, usize), String>,
    /// For plain deletions: each PodDisruptionBudget they would go against (they ignore
    /// budgets; the run does them anyway).
    pub budgets: Vec<String>,
    /// What else the person should know (budgets that could not be read).
    pub notes: Vec<String>,
}

/// The cluster side of a dry run.
#[derive(Debug, Clone)]
pub struct ClusterPlan {
    /// Where the cluster was found (kubeconfig and context, or in-cluster).
    pub source: String,
    pub seed: u64,
    pub faults: Vec<FaultPlan>,
}

impl ClusterPlan {
    /// True when every fault found its pods and every check passed.
    pub fn ok(&self) -> bool {
        self.faults.iter().all(|f| match &f.chosen {
            Err(_) => false,
            Ok((pods, _)) => pods.iter().all(|p| match p {
                PodPlan::Delete { checked, .. } => checked.is_ok(),
                PodPlan::Agent { agent, .. } => agent.is_ok(),
            }),
        })
    }
}

/// `--dry-run` with a cluster: choose the pods as the run would (same seed, and the same
/// refusals: nothing matches, or fewer pods than `count`), have the API server check each
/// deletion or eviction (`dryRun=All`), and say what they would do to the disruption
/// budgets; nothing is deleted or applied.
/// `Ok(None)` when the experiment needs no cluster.
pub async fn cluster(
    exp: &Experiment,
    seed: u64,
) -> Result<Option<ClusterPlan>, super::setup::SetupError> {
    let Some((cluster, agents)) = super::setup::connect_cluster(exp).await? else {
        return Ok(None);
    };
    let mut plan = ClusterPlan {
        source: cluster.source.clone(),
        seed,
        faults: Vec::new(),
    };
    for f in &exp.faults {
        let Some(sel) = f.pods() else {
            continue;
        };
        let (mut budgets, mut notes) = (Vec::new(), Vec::new());
        let chosen = match pods::matching(&cluster, sel).await {
            Err(e) => Err(e.to_string()),
            Ok(found) => match pods::select(&found, sel, pods::fault_seed(seed, &f.name)) {
                Err(e) => Err(e),
                Ok(chosen) => Ok(match &f.action {
                    FaultAction::PodDelete(d) => {
                        let how = Removal {
                            evict: d.evict,
                            grace: d.grace_period.map(|g| g.0),
                            dry_run: true,
                        };
                        let known = match budget::list(&cluster, &sel.namespace).await {
                            Ok(b) => b,
                            Err(e) => {
                                notes.push(format!("disruption budgets not checked: {e}"));
                                Vec::new()
                            }
                        };
                        if !how.evict {
                            budgets.extend(budget::against(&known, &chosen, how.verb()));
                        }
                        // Each dry-run eviction is checked alone; in the run, each one
                        // uses up what the budget allows for the next.
                        let in_order = match how.evict {
                            true => budget::evictions(&known, &chosen),
                            false => vec![None; chosen.len()],
                        };
                        let checked = pods::remove(&cluster, &chosen, how)
                            .await
                            .into_iter()
                            .zip(in_order)
                            .map(|(r, blocked)| PodPlan::Delete {
                                verb: if how.evict { "evict" } else { "delete" },
                                pod: r.pod.key(),
                                node: r.pod.node.clone(),
                                checked: match (r.outcome, blocked) {
                                    (Outcome::Removed, None) => Ok(()),
                                    (Outcome::Removed, Some(b)) => Err(format!(
                                        "{}: would be {b}, after the evictions before it",
                                        r.pod.key()
                                    )),
                                    (
                                        Outcome::AlreadyGone(e)
                                        | Outcome::Blocked(e)
                                        | Outcome::Failed(e),
                                        _,
                                    ) => Err(e),
                                },
                            })
                            .collect();
                        (checked, found.len())
                    }
                    _ => {
                        let pods = chosen
                            .iter()
                            .map(|pod| PodPlan::Agent {
                                pod: pod.key(),
                                node: pod.node.clone(),
                                agent: match agents.as_ref().map(|a| a.on_node(&pod.node)) {
                                    Some(Ok(c)) => Ok((c.name.clone(), c.url.clone())),
                                    Some(Err(e)) => Err(e),
                                    None => Err("no node agents were found in the cluster".into()),
                                },
                            })
                            .collect();
                        (pods, found.len())
                    }
                }),
            },
        };
        plan.faults.push(FaultPlan {
            fault: f.name.clone(),
            chosen,
            budgets,
            notes,
        });
    }
    Ok(Some(plan))
}
