//! Set-up before anything is started: reach every agent the experiment uses (starting
//! the embedded one), the cluster and its node agents, and check that they can run every
//! fault. `run` uses it before the first service starts; `shakeout preflight` uses it
//! alone.

use std::sync::Arc;

use super::events::Events;
use crate::experiment::Experiment;
use crate::fault::cluster::ClusterAgents;
use crate::fault::embedded::Embedded;
use crate::fault::preflight::{self, AgentCheck};
use crate::fault::Agents;
use crate::kube::Cluster;

/// Why a run could not be set up: nothing was started or applied.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// An agent of `spec.agents` could not be configured (its token, its CA).
    #[error(transparent)]
    Agent(#[from] Box<crate::fault::AgentError>),
    /// The embedded agent's guardian could not be started.
    #[error("{0}")]
    Embedded(String),
    #[error(transparent)]
    Cluster(#[from] crate::kube::KubeError),
    #[error(transparent)]
    Discover(#[from] crate::fault::cluster::DiscoverError),
    /// An agent is unreachable, refuses the token or cannot run a fault: each check says.
    #[error("preflight failed:\n{}", preflight::render(.0))]
    Preflight(Vec<AgentCheck>),
}

/// The cluster, and its node agents when a fault targets pods.
pub type ClusterConn = (Cluster, Option<ClusterAgents>);

/// Connect to every agent the experiment uses and run the preflight checks: nothing is
/// started or applied unless every agent is reachable, authorised and capable.
pub async fn prepare_agents(
    exp: &Experiment,
    events: &Events,
) -> Result<(Agents, Option<Embedded>, Option<ClusterConn>), SetupError> {
    let mut agents = crate::fault::connect(exp).map_err(Box::new)?;
    let cluster = connect_cluster(exp).await?;
    let mut local = None;
    if crate::fault::needs_embedded(exp) {
        let notices = events.clone();
        let (e, swept) = Embedded::start(Some(Arc::new(move |m| notices.push("agent", m))))
            .await
            .map_err(SetupError::Embedded)?;
        for line in swept {
            events.push(
                "agent",
                format!("embedded agent swept what a dead controller left: {line}"),
            );
        }
        agents.embedded = Some(e.client.clone());
        agents.embedded_swept = e.swept.clone();
        local = Some(e);
    }
    let mut checks = preflight::check(exp, &agents).await;
    if let Some((c, a)) = &cluster {
        checks.extend(preflight::check_cluster(exp, c, a.as_ref()).await);
        events.push(
            "kubernetes",
            format!("connected to the cluster ({})", c.source),
        );
    }
    if checks.iter().any(|c| !c.ok()) {
        if let Some(e) = local {
            e.stop().await;
        }
        return Err(SetupError::Preflight(checks));
    }
    Ok((agents, local, cluster))
}

/// The cluster and its node agents, when the experiment has pod faults or faults on pods.
pub async fn connect_cluster(exp: &Experiment) -> Result<Option<ClusterConn>, SetupError> {
    if !crate::fault::needs_cluster(exp) {
        return Ok(None);
    }
    let base = exp.dir();
    let spec = exp.file.spec.kubernetes.as_ref();
    let cluster = Cluster::connect(spec, &base).await?;
    let agents = if crate::fault::needs_cluster_agents(exp) {
        let a = spec.and_then(|k| k.agents.clone()).unwrap_or_default();
        Some(crate::fault::cluster::discover(&cluster, &a, &base).await?)
    } else {
        None
    };
    Ok(Some((cluster, agents)))
}

/// What `shakeout preflight` found.
#[derive(Debug, Default)]
pub struct Preflight {
    /// One check per agent (and one for the cluster).
    pub checks: Vec<AgentCheck>,
    /// What the embedded agent's start-up sweep cleaned.
    pub swept: Vec<String>,
    /// Problems starting or stopping the embedded agent.
    pub problems: Vec<String>,
}

impl Preflight {
    /// Every agent ready.
    pub fn ok(&self) -> bool {
        self.checks.iter().all(AgentCheck::ok)
    }
}

/// Check every agent and the cluster the experiment uses, applying nothing. The
/// embedded agent is checked as `run` will use it: its guardian started, asked what it can
/// do, and stopped (it does sweep what a dead controller left, as a run's start would).
pub async fn preflight(exp: &Experiment) -> Result<Preflight, SetupError> {
    let mut agents = crate::fault::connect(exp).map_err(Box::new)?;
    let mut out = Preflight::default();
    let mut local = None;
    if crate::fault::needs_embedded(exp) {
        match Embedded::start(None).await {
            Ok((e, swept)) => {
                out.swept = swept;
                agents.embedded = Some(e.client.clone());
                local = Some(e);
            }
            Err(e) => out.problems.push(e),
        }
    }
    out.checks = preflight::check(exp, &agents).await;
    if let Some(e) = local {
        out.problems.extend(
            e.stop()
                .await
                .into_iter()
                .map(|f| format!("embedded agent: {f}")),
        );
    }
    match connect_cluster(exp).await {
        Ok(None) => {}
        Ok(Some((c, a))) => out
            .checks
            .extend(preflight::check_cluster(exp, &c, a.as_ref()).await),
        Err(e) => out.checks.push(AgentCheck {
            agent: "kubernetes".into(),
            url: "-".into(),
            problems: vec![e.to_string()],
            notes: vec![],
        }),
    }
    Ok(out)
}
