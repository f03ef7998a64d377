//! What a run would do, without doing it (`--dry-run`): the plan read from the file, and
//! with a cluster, the pods the run would choose (same seed) and the API server's own
//! check of each deletion (`dryRun=All`). Data only: `cmd` prints it.

use crate::experiment::model::FaultAction;
use crate::experiment::Experiment;
use crate::kube::pods;
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
    out
}

/// One pod a fault would act on, and what the dry run found for it.
#[derive(Debug, Clone)]
pub enum PodPlan {
    /// A deletion the API server checked: `Ok` when it accepted it.
    Delete {
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

/// `--dry-run` with a cluster: choose the pods as the run would (same seed), and have the
/// API server check each deletion (`dryRun=All`); nothing is deleted or applied.
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
        let delete = match &f.action {
            FaultAction::PodDelete(d) => Some(d),
            _ => None,
        };
        let chosen = match pods::matching(&cluster, sel).await {
            Err(e) => Err(e.to_string()),
            Ok(found) => {
                let chosen = pods::choose(&found, sel, pods::fault_seed(seed, &f.name));
                if chosen.is_empty() {
                    Err(format!(
                        "no pod in namespace {} matches {}",
                        sel.namespace,
                        pods::describe_selector(sel)
                    ))
                } else if let Some(d) = delete {
                    let grace = d.grace_period.map(|g| g.0);
                    let checked = pods::delete(&cluster, &chosen, grace, true)
                        .await
                        .into_iter()
                        .map(|r| PodPlan::Delete {
                            pod: r.pod.key(),
                            node: r.pod.node.clone(),
                            checked: r.error.map_or(Ok(()), Err),
                        })
                        .collect();
                    Ok((checked, found.len()))
                } else {
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
                    Ok((pods, found.len()))
                }
            }
        };
        plan.faults.push(FaultPlan {
            fault: f.name.clone(),
            chosen,
        });
    }
    Ok(Some(plan))
}
