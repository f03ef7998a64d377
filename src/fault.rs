//! Controller side of agent-backed faults: reaching agents (remote or embedded), turning
//! experiment fault specs into agent requests, and checking before a run that every
//! agent is reachable, authorised and capable (`shakeout preflight`).

pub mod agent;
pub mod cluster;
pub mod embedded;
pub mod preflight;
pub mod request;

pub use agent::{AgentClient, AgentError, Agents};

use std::sync::Arc;

use crate::experiment::model::Route;
use crate::experiment::Experiment;

/// Clients for every agent in `spec.agents` (tokens are read now, so a missing token is
/// an error before anything runs).
pub fn connect(exp: &Experiment) -> Result<Agents, AgentError> {
    let base = exp.dir();
    let mut agents = Agents::default();
    for (name, spec) in &exp.file.spec.agents {
        agents.named.insert(
            name.clone(),
            Arc::new(AgentClient::from_spec(name, spec, &base)?),
        );
    }
    Ok(agents)
}

/// Whether any fault runs on the embedded agent (an agent fault that names none).
pub fn needs_embedded(exp: &Experiment) -> bool {
    exp.faults
        .iter()
        .any(|f| matches!(f.route(), Some(Route::Embedded)))
}

/// Whether the experiment talks to a Kubernetes cluster (pod faults, faults on pods).
pub fn needs_cluster(exp: &Experiment) -> bool {
    exp.faults.iter().any(|f| f.pods().is_some())
}

/// Whether any fault goes to the cluster's node agents.
pub fn needs_cluster_agents(exp: &Experiment) -> bool {
    exp.faults
        .iter()
        .any(|f| matches!(f.route(), Some(Route::Pods(_))))
}
