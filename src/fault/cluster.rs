//! The node agents of a cluster (DESIGN.md §6): the Helm chart runs one agent pod per
//! node; the controller lists them by label, and reaches each through the API server's
//! port-forward (from outside the cluster) or by pod IP (from inside).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::Api;

use super::AgentClient;
use crate::experiment::spec::{AgentReach, ClusterAgentsSpec, TokenFrom};
use crate::kube::pods::PodRef;
use crate::kube::{Cluster, KubeError};

/// Label the Helm chart puts on agent pods.
pub const DEFAULT_SELECTOR: &str = "app.kubernetes.io/name=shakeout-agent";
/// Port the agent listens on in its pod.
pub const DEFAULT_PORT: u16 = 7433;
/// Environment variable holding the controller's token unless `tokenFrom` says otherwise.
pub const DEFAULT_TOKEN_ENV: &str = "SHAKEOUT_TOKEN";
/// Name the chart's generated agent certificates are valid for.
pub const DEFAULT_SERVER_NAME: &str = "shakeout-agent";

/// One agent pod.
#[derive(Debug, Clone)]
pub struct ClusterAgent {
    pub node: String,
    pub pod: PodRef,
    pub client: Arc<AgentClient>,
}

/// Every agent found, by node.
#[derive(Debug, Clone, Default)]
pub struct ClusterAgents {
    pub namespace: String,
    pub selector: String,
    pub reach: Option<AgentReach>,
    pub by_node: BTreeMap<String, ClusterAgent>,
    /// Agent pods found but not usable (not Ready, not scheduled), with the reason.
    pub not_ready: Vec<(String, String)>,
}

impl ClusterAgents {
    /// The agent on `node`, or an error that says which nodes have one.
    pub fn on_node(&self, node: &str) -> Result<Arc<AgentClient>, String> {
        if node.is_empty() {
            return Err("the pod is not scheduled on a node yet".into());
        }
        if let Some(a) = self.by_node.get(node) {
            return Ok(a.client.clone());
        }
        let why = self
            .not_ready
            .iter()
            .find(|(n, _)| n == node)
            .map(|(_, why)| format!(": {why}"))
            .unwrap_or_default();
        let nodes: Vec<&str> = self.by_node.keys().map(String::as_str).collect();
        Err(format!(
            "no Ready shakeout agent on node `{node}`{why} (agent pods in namespace {} with {}; Ready on: {})",
            self.namespace,
            self.selector,
            if nodes.is_empty() { "no node".to_owned() } else { nodes.join(", ") }
        ))
    }
}

/// Why the cluster's agents could not be found or reached.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DiscoverError {
    /// The agents' token: where `spec.kubernetes.agents` says to read it, and why not.
    #[error("{0}")]
    Token(String),
    #[error(transparent)]
    Kube(#[from] KubeError),
    /// No agent pod is Ready; `detail` lists the ones that are not, with why, and
    /// `daemonset` what the agents' DaemonSet says (empty: there is none, so the agent is
    /// not installed there).
    #[error("no Ready shakeout agent pod in namespace {namespace} with {selector}{detail}: {}", no_agents_advice(.namespace, .daemonset))]
    NoAgents {
        namespace: String,
        selector: String,
        detail: String,
        daemonset: Result<Vec<String>, String>,
    },
    /// A client for one agent pod could not be made.
    #[error(transparent)]
    Client(#[from] Box<super::AgentError>),
}

/// What to do when no agent is Ready: what blocks the DaemonSet's pods when there is
/// one, else how to install it.
fn no_agents_advice(namespace: &str, daemonset: &Result<Vec<String>, String>) -> String {
    let install = format!(
        "install the agent with `helm install shakeout charts/shakeout -n {namespace}`, or set spec.kubernetes.agents"
    );
    match daemonset {
        Ok(found) if found.is_empty() => format!("there is no agent DaemonSet: {install}"),
        Ok(found) => format!(
            "{}. The agent is installed; its pods are what to fix",
            found.join(". ")
        ),
        Err(e) => format!("{install} ({e})"),
    }
}

/// The token for the agents, as `tokenFrom` (default `env: SHAKEOUT_TOKEN`) says.
fn token(from: Option<&TokenFrom>, base_dir: &Path) -> Result<String, DiscoverError> {
    let token = match from {
        None => std::env::var(DEFAULT_TOKEN_ENV).map_err(|_| {
            DiscoverError::Token(format!("spec.kubernetes.agents: the agents' token is read from the environment variable {DEFAULT_TOKEN_ENV}, which is not set (or set tokenFrom)"))
        })?,
        Some(TokenFrom { env: Some(var), .. }) => std::env::var(var).map_err(|_| {
            DiscoverError::Token(format!("spec.kubernetes.agents.tokenFrom.env: environment variable `{var}` is not set"))
        })?,
        Some(TokenFrom { file: Some(file), .. }) => std::fs::read_to_string(base_dir.join(file))
            .map_err(|e| {
                DiscoverError::Token(format!("spec.kubernetes.agents.tokenFrom.file `{file}`: {e}"))
            })?,
        Some(_) => {
            return Err(DiscoverError::Token(
                "spec.kubernetes.agents.tokenFrom: set `env` or `file`".into(),
            ))
        }
    };
    let token = token.trim().to_owned();
    if token.is_empty() {
        return Err(DiscoverError::Token(
            "spec.kubernetes.agents: the token is empty".into(),
        ));
    }
    Ok(token)
}

/// List the agent pods and make a client for each Ready one.
pub async fn discover(
    cluster: &Cluster,
    spec: &ClusterAgentsSpec,
    base_dir: &Path,
) -> Result<ClusterAgents, DiscoverError> {
    let namespace = spec
        .namespace
        .clone()
        .unwrap_or_else(|| crate::kube::DEFAULT_AGENT_NAMESPACE.to_owned());
    let selector = spec
        .selector
        .clone()
        .unwrap_or_else(|| DEFAULT_SELECTOR.to_owned());
    let port = spec.port.unwrap_or(DEFAULT_PORT);
    let reach = spec.reach.unwrap_or(if cluster.in_cluster {
        AgentReach::PodIp
    } else {
        AgentReach::PortForward
    });
    let token = token(spec.token_from.as_ref(), base_dir)?;
    let ca = spec.ca.as_ref().map(|c| base_dir.join(c));
    let server_name = spec
        .server_name
        .clone()
        .unwrap_or_else(|| DEFAULT_SERVER_NAME.to_owned());
    let api: Api<Pod> = Api::namespaced(cluster.client.clone(), &namespace);
    let list = api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| {
            cluster.api_error(
                &format!("listing agent pods in namespace {namespace} with {selector}"),
                &e,
            )
        })?;
    let mut out = ClusterAgents {
        namespace: namespace.clone(),
        selector: selector.clone(),
        reach: Some(reach),
        ..Default::default()
    };
    for pod in list.items.iter().map(PodRef::of) {
        if pod.node.is_empty() {
            out.not_ready
                .push((String::new(), format!("{} is not scheduled", pod.name)));
            continue;
        }
        if !pod.ready {
            let why = list
                .items
                .iter()
                .find(|p| p.metadata.name.as_deref() == Some(pod.name.as_str()))
                .and_then(crate::kube::daemonset::pod_reason)
                .map(|w| format!(": it {w}"))
                .unwrap_or_default();
            out.not_ready.push((
                pod.node.clone(),
                format!("agent pod {} is not Ready{why}", pod.name),
            ));
            continue;
        }
        let client = match reach {
            AgentReach::PortForward => AgentClient::port_forward(
                &pod.name,
                api.clone(),
                &namespace,
                &pod.name,
                port,
                &token,
                ca.as_deref().map(|c| (c, server_name.as_str())),
            ),
            AgentReach::PodIp => {
                let Some(ip) = pod.pod_ip.clone() else {
                    out.not_ready.push((
                        pod.node.clone(),
                        format!("agent pod {} has no IP yet", pod.name),
                    ));
                    continue;
                };
                let host = if ip.contains(':') {
                    format!("[{ip}]")
                } else {
                    ip
                };
                let scheme = if ca.is_some() { "https" } else { "http" };
                AgentClient::new(
                    &pod.name,
                    &format!("{scheme}://{host}:{port}"),
                    &token,
                    ca.as_deref(),
                )
                .map(|c| c.with_server_name(&server_name))
                .and_then(|r| r)
            }
        }
        .map_err(Box::new)?;
        let mut client = client;
        if let Some(lease) = spec.lease {
            client.lease = lease.0;
        }
        out.by_node.insert(
            pod.node.clone(),
            ClusterAgent {
                node: pod.node.clone(),
                pod,
                client: Arc::new(client),
            },
        );
    }
    if out.by_node.is_empty() {
        let extra = if out.not_ready.is_empty() {
            String::new()
        } else {
            let v: Vec<&str> = out.not_ready.iter().map(|(_, w)| w.as_str()).collect();
            format!(" ({})", v.join("; "))
        };
        let daemonset = crate::kube::daemonset::why_not_ready(cluster, &namespace, &selector)
            .await
            .map_err(|e| format!("could not read the DaemonSet: {e}"));
        return Err(DiscoverError::NoAgents {
            namespace,
            selector,
            detail: extra,
            daemonset,
        });
    }
    Ok(out)
}

/// One node agent and what it said of itself (or why it did not answer).
#[derive(Debug, Clone)]
pub struct AgentRow {
    pub node: String,
    pub pod: String,
    pub answer: Result<shakeout_api::Capabilities, String>,
}

/// What `shakeout agents` found: every Ready agent asked for its capabilities, and the
/// agent pods that are not Ready (node, why).
#[derive(Debug, Clone)]
pub struct Survey {
    pub namespace: String,
    pub selector: String,
    pub reach: Option<AgentReach>,
    pub agents: Vec<AgentRow>,
    pub not_ready: Vec<(String, String)>,
}

/// Discover the agents of the cluster `k8s` names (relative paths against `base`) and ask
/// each for its capabilities.
pub async fn survey(
    k8s: &crate::experiment::spec::KubernetesSpec,
    base: &std::path::Path,
) -> Result<Survey, DiscoverError> {
    let cluster = Cluster::connect(Some(k8s), base).await?;
    let a = k8s.agents.clone().unwrap_or_default();
    let found = discover(&cluster, &a, base).await?;
    let mut agents = Vec::new();
    for agent in found.by_node.values() {
        agents.push(AgentRow {
            node: agent.node.clone(),
            pod: agent.pod.name.clone(),
            answer: agent.client.capabilities().await.map_err(|e| e.to_string()),
        });
    }
    Ok(Survey {
        namespace: found.namespace.clone(),
        selector: found.selector.clone(),
        reach: found.reach,
        agents,
        not_ready: found.not_ready.clone(),
    })
}
