//! Preflight: before anything is applied, reach every agent the experiment uses, check
//! the token, and check that its capabilities cover every fault sent to it (kind allowed,
//! duration within policy, a mechanism available for each network effect).

use shakeout_api::{Capabilities, Mechanism};

mod cluster;

pub use cluster::check_cluster;

use super::agent::Agents;
use crate::experiment::model::{Fault, FaultAction, Route};
use crate::experiment::Experiment;

/// What preflight found for one agent.
#[derive(Debug, Clone)]
pub struct AgentCheck {
    pub agent: String,
    pub url: String,
    /// Problems that stop the run; empty means ready.
    pub problems: Vec<String>,
    /// What the agent reported (kernel, mechanisms), for the person reading.
    pub notes: Vec<String>,
}

impl AgentCheck {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

fn agent_label(name: Option<&str>) -> String {
    name.map(str::to_owned).unwrap_or_else(|| "embedded".into())
}

/// Check every agent the experiment's faults use.
pub async fn check(exp: &Experiment, agents: &Agents) -> Vec<AgentCheck> {
    let faults = &exp.faults;
    let mut used: Vec<Option<&str>> = Vec::new();
    for f in faults {
        let name = match f.route() {
            Some(Route::Embedded) => None,
            Some(Route::Named(n)) => Some(n),
            Some(Route::Pods(_)) | None => continue,
        };
        if !used.contains(&name) {
            used.push(name);
        }
    }
    let mut out = Vec::new();
    for name in used {
        let label = agent_label(name);
        let Some(client) = agents.get(name) else {
            out.push(AgentCheck {
                agent: label,
                url: "-".into(),
                problems: vec!["no client for this agent (not configured or not started)".into()],
                notes: vec![],
            });
            continue;
        };
        let mut check = AgentCheck {
            agent: label,
            url: client.url.clone(),
            problems: vec![],
            notes: vec![],
        };
        match client.capabilities().await {
            Err(e) => check.problems.push(e.to_string()),
            Ok(caps) => {
                check.notes.extend(about(&caps));
                for m in &caps.mechanisms {
                    let state = if m.available {
                        "available".to_owned()
                    } else {
                        format!("unavailable: {}", m.why_not.as_deref().unwrap_or("?"))
                    };
                    let name = format!("{:?}", m.mechanism).to_lowercase();
                    check.notes.push(format!("{name}: {state}"));
                }
                for f in faults.iter().filter(|f| uses(f, name)) {
                    check.problems.extend(covers(f, &caps));
                }
            }
        }
        out.push(check);
    }
    out
}

/// What an agent says of itself, for the person reading: version, kernel, cgroup, and
/// who it runs as.
fn about(caps: &Capabilities) -> Vec<String> {
    let mut notes = vec![format!(
        "agent {} on kernel {}, cgroup {}",
        caps.version, caps.kernel, caps.cgroup
    )];
    if let Some(p) = &caps.privileges {
        let held = match p.capabilities.is_empty() {
            true => "none of CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_KILL, CAP_SYS_PTRACE".to_owned(),
            false => p.capabilities.join(", "),
        };
        notes.push(format!("runs as uid {} with {held}", p.uid));
    }
    notes
}

fn uses(f: &Fault, agent: Option<&str>) -> bool {
    match f.route() {
        Some(Route::Embedded) => agent.is_none(),
        Some(Route::Named(n)) => agent == Some(n),
        Some(Route::Pods(_)) | None => false,
    }
}

fn available(caps: &Capabilities, m: Mechanism) -> bool {
    caps.mechanisms
        .iter()
        .any(|i| i.mechanism == m && i.available)
}

/// Why `caps` cannot run fault `f`, if it cannot.
pub fn covers(f: &Fault, caps: &Capabilities) -> Vec<String> {
    let mut problems = Vec::new();
    let kind = f.kind();
    if !caps.fault_kinds.iter().any(|k| k == kind) {
        problems.push(format!(
            "fault `{}`: this token may not apply {kind} faults (allowed: {})",
            f.name,
            caps.fault_kinds.join(", ")
        ));
    }
    if let Some(d) = f.duration {
        if d > caps.max_duration {
            problems.push(format!(
                "fault `{}`: duration {d} is above this token's maximum of {}",
                f.name, caps.max_duration
            ));
        }
    }
    let network = match &f.action {
        FaultAction::Network(n) => Some(n),
        _ => None,
    };
    if let (Some(n), Some(p)) = (network, &caps.privileges) {
        let missing: Vec<&str> = ["CAP_NET_ADMIN", "CAP_SYS_ADMIN"]
            .into_iter()
            .filter(|c| !p.capabilities.iter().any(|h| h == c))
            .filter(|c| *c == "CAP_NET_ADMIN" || n.namespace.is_some() || n.pods.is_some())
            .collect();
        if !missing.is_empty() {
            problems.push(format!(
                "fault `{}`: network faults need {} and the agent (uid {}) does not have {}: run it as root, or grant {}",
                f.name,
                missing.join(" and "),
                p.uid,
                if missing.len() == 1 { "it" } else { "them" },
                missing.join(" and ")
            ));
        }
    }
    if let Some(n) = network {
        let mut need: Vec<(&str, Vec<Mechanism>)> = Vec::new();
        if let Some(m) = n.mechanism {
            need.push(("the requested mechanism", vec![m]));
        } else {
            if n.latency.is_some() {
                need.push(("latency", vec![Mechanism::Netem, Mechanism::Nfqueue]));
            }
            if n.loss.is_some() {
                need.push((
                    "loss",
                    vec![Mechanism::Nftables, Mechanism::Netem, Mechanism::Nfqueue],
                ));
            }
            if n.blackhole == Some(true) {
                need.push(("blackhole", vec![Mechanism::Nftables]));
            }
        }
        for (what, options) in need {
            if !options.iter().any(|m| available(caps, *m)) {
                let names: Vec<String> = options
                    .iter()
                    .map(|m| format!("{m:?}").to_lowercase())
                    .collect();
                problems.push(format!(
                    "fault `{}`: {what} needs {} and none is available on this node",
                    f.name,
                    names.join(" or ")
                ));
            }
        }
    }
    problems
}

/// Human-readable preflight result.
pub fn render(checks: &[AgentCheck]) -> String {
    let mut out = String::new();
    if checks.is_empty() {
        out.push_str("no agent faults: nothing to check\n");
    }
    for c in checks {
        let status = if c.ok() { "ready" } else { "NOT READY" };
        out.push_str(&format!("agent {} ({}): {status}\n", c.agent, c.url));
        for n in &c.notes {
            out.push_str(&format!("  {n}\n"));
        }
        for p in &c.problems {
            out.push_str(&format!("  problem: {p}\n"));
        }
    }
    out
}
