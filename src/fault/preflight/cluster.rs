//! Preflight on the cluster: the account may do everything the run will do (asked of the
//! API server, each missing permission named with the RBAC rule that grants it), every
//! pod selector chooses its pods as the run will (the same refusals), and for faults on
//! pods, the agent on each matching pod's node answers and can run the fault.

use std::collections::BTreeMap;

use super::{about, covers, AgentCheck};
use crate::experiment::model::{Fault, FaultAction};
use crate::experiment::spec::AgentReach;
use crate::experiment::Experiment;
use crate::fault::cluster::ClusterAgents;
use crate::kube::access::{self, Answer, Permission};
use crate::kube::{budget, pods, Cluster};

/// A permission the run will use, what for, and what happens without it when the run
/// can do without (`None`: it cannot).
struct Need {
    why: Vec<String>,
    without: Option<&'static str>,
}

/// Every permission the experiment's faults will use on the cluster.
fn needs(exp: &Experiment, agents: Option<&ClusterAgents>) -> BTreeMap<Permission, Need> {
    let mut out: BTreeMap<Permission, Need> = BTreeMap::new();
    let mut need = |p: Permission, why: String, without: Option<&'static str>| {
        let n = out.entry(p).or_insert(Need {
            why: Vec::new(),
            without,
        });
        n.without = n.without.and(without);
        if !n.why.contains(&why) {
            n.why.push(why);
        }
    };
    for f in &exp.faults {
        let Some(sel) = f.pods() else { continue };
        let ns = sel.namespace.as_str();
        let name = &f.name;
        need(
            Permission::core("list", "pods", ns),
            format!("fault `{name}` chooses its pods"),
            None,
        );
        match &f.action {
            FaultAction::PodDelete(d) => {
                if d.evict {
                    need(
                        Permission::core("create", "pods/eviction", ns),
                        format!("fault `{name}` evicts the chosen pods"),
                        None,
                    );
                } else {
                    need(
                        Permission::core("delete", "pods", ns),
                        format!("fault `{name}` deletes the chosen pods"),
                        None,
                    );
                }
                need(
                    Permission::core("watch", "pods", ns),
                    format!("fault `{name}` times the replacements"),
                    Some("the pod recovery time is polled every 200 ms instead of watched"),
                );
                need(
                    Permission::new("list", "policy", "poddisruptionbudgets", ns),
                    format!("fault `{name}` checks the disruption budgets"),
                    Some("the report cannot say whether a deletion goes against a PodDisruptionBudget"),
                );
            }
            _ => {
                let Some(a) = agents else { continue };
                if a.reach == Some(AgentReach::PortForward) {
                    // A WebSocket port-forward is a GET; API servers since 1.35 also
                    // check `create`, which SPDY clients always needed.
                    for verb in ["get", "create"] {
                        need(
                            Permission::core(verb, "pods/portforward", &a.namespace),
                            format!("fault `{name}` reaches the agents through the API server"),
                            None,
                        );
                    }
                }
            }
        }
    }
    out
}

/// Ask the API server for every permission the run needs: problems for the missing
/// ones it cannot do without, notes for the others.
async fn permissions(
    exp: &Experiment,
    cluster: &Cluster,
    agents: Option<&ClusterAgents>,
    check: &mut AgentCheck,
) {
    let needs = needs(exp, agents);
    let mut allowed = 0;
    for (p, n) in &needs {
        match access::check(cluster, p).await {
            Answer::Allowed => allowed += 1,
            Answer::Denied(reason) => {
                let reason = match reason.is_empty() {
                    true => String::new(),
                    false => format!(" ({reason})"),
                };
                let why = n.why.join("; ");
                match n.without {
                    Some(without) => check.notes.push(format!(
                        "may not {}{reason}: {without} (grant {})",
                        p.describe(),
                        p.rule()
                    )),
                    None => check.problems.push(format!(
                        "missing permission: {}{reason}, needed because {why}. RBAC: grant {} (the Helm chart's controller Role does)",
                        p.describe(),
                        p.rule()
                    )),
                }
            }
            Answer::Unknown(e) => {
                check
                    .notes
                    .push(format!("could not check permissions in advance: {e}"));
                return;
            }
        }
    }
    if !needs.is_empty() {
        check.notes.push(format!(
            "{allowed} of {} permissions the run needs are granted",
            needs.len()
        ));
    }
}

/// The cluster side: the account's permissions, every pod selector chooses its pods (as
/// the run would: the same refusals), and for faults on pods, the agent on each
/// matching pod's node answers and can run the fault.
pub async fn check_cluster(
    exp: &Experiment,
    cluster: &Cluster,
    agents: Option<&ClusterAgents>,
) -> Vec<AgentCheck> {
    let mut api = AgentCheck {
        agent: "kubernetes".into(),
        url: format!("{}, {}", cluster.source, cluster.server),
        problems: vec![],
        notes: vec![],
    };
    permissions(exp, cluster, agents, &mut api).await;
    // Agent pods to check, with the faults each must run.
    let mut per_agent: BTreeMap<String, Vec<&Fault>> = Default::default();
    for f in &exp.faults {
        let Some(sel) = f.pods() else {
            continue;
        };
        let found = match pods::matching(cluster, sel).await {
            Err(e) => {
                api.problems.push(format!("fault `{}`: {e}", f.name));
                continue;
            }
            Ok(found) => found,
        };
        // The seed only picks which pods; how many, and whether at all, is the same.
        let chosen = match pods::select(&found, sel, 0) {
            Err(e) => {
                api.problems.push(format!("fault `{}`: {e}", f.name));
                continue;
            }
            Ok(chosen) => chosen,
        };
        api.notes.push(format!(
            "fault `{}`: {} pods match in namespace {} ({}); {} will be chosen",
            f.name,
            found.len(),
            sel.namespace,
            pods::describe_selector(sel),
            chosen.len()
        ));
        if matches!(f.action, FaultAction::PodDelete(_)) {
            if let Ok(budgets) = budget::list(cluster, &sel.namespace).await {
                let covering: Vec<String> = budgets
                    .iter()
                    .filter(|b| found.iter().any(|p| b.covers(&p.labels)))
                    .map(budget::Budget::describe)
                    .collect();
                if !covering.is_empty() {
                    api.notes.push(format!(
                        "fault `{}`: its pods are covered by {}",
                        f.name,
                        covering.join(", ")
                    ));
                }
            }
            continue;
        }
        for pod in &found {
            match agents.map(|a| a.on_node(&pod.node)) {
                Some(Ok(client)) => {
                    let v = per_agent.entry(client.name.clone()).or_default();
                    if !v.iter().any(|g| g.name == f.name) {
                        v.push(f);
                    }
                }
                Some(Err(e)) => {
                    api.problems
                        .push(format!("fault `{}`: pod {}: {e}", f.name, pod.key()))
                }
                None => api.problems.push(format!(
                    "fault `{}`: no node agents were found in the cluster",
                    f.name
                )),
            }
        }
    }
    let mut out = vec![api];
    let Some(agents) = agents else { return out };
    for (pod, faults) in per_agent {
        let Some(a) = agents.by_node.values().find(|a| a.client.name == pod) else {
            continue;
        };
        let mut check = AgentCheck {
            agent: format!("{} (node {})", pod, a.node),
            url: a.client.url.clone(),
            problems: vec![],
            notes: vec![],
        };
        match a.client.capabilities().await {
            Err(e) => check.problems.push(e.to_string()),
            Ok(caps) => {
                check.notes.extend(about(&caps));
                for f in faults {
                    check.problems.extend(covers(f, &caps));
                }
            }
        }
        out.push(check);
    }
    out
}
