//! The Kubernetes parts of an experiment file: how to reach the cluster and its node
//! agents (`spec.kubernetes`), which pods a fault chooses (`PodSelector`), and pod
//! deletion (`pod: { delete: ... }`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use shakeout_api::{Dur, Percent};

use super::TokenFrom;

/// Where the cluster is and how to find its node agents.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KubernetesSpec {
    /// Kubeconfig file (default: `KUBECONFIG`, then `~/.kube/config`, then the in-cluster
    /// service account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<String>,
    /// Kubeconfig context (default: the current context).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// How to find the agent DaemonSet's pods, for faults that target pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents: Option<ClusterAgentsSpec>,
}

/// The node agents installed by the Helm chart: one pod per node, found by label.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClusterAgentsSpec {
    /// Namespace of the agent pods (default `shakeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Label selector of the agent pods (default `app.kubernetes.io/name=shakeout-agent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Agent port in the pod (default 7433).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Where the bearer token comes from (default `env: SHAKEOUT_TOKEN`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_from: Option<TokenFrom>,
    /// PEM file of the CA that signed the agents' certificates: the agents speak TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    /// Name the agents' certificates are checked against (default `shakeout-agent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// `portForward` (through the API server, default outside the cluster) or `podIp`
    /// (default inside the cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reach: Option<AgentReach>,
    /// Lease of each fault (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Dur>,
}

/// How the controller connects to an agent pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum AgentReach {
    /// Through the API server's `pods/portforward` (needs that RBAC permission).
    PortForward,
    /// Straight to the pod's IP (from inside the cluster).
    PodIp,
}

/// Which pods: a namespace, label and field selectors, and how many of the matches.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodSelector {
    /// Namespace of the pods.
    pub namespace: String,
    /// Label selector, like `app=checkout,tier!=db`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Field selector, like `status.phase=Running`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_selector: Option<String>,
    /// `one` (default), `all`, `fixed` (with `count`) or `percent` (with `percent`);
    /// random choices use the run's seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<PodMode>,
    /// How many pods, for `mode: fixed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Which share of the pods, for `mode: percent`: rounded up, and at least one (50% of
    /// 3 pods takes 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<Percent>,
    /// Protected namespaces this fault may touch anyway (`kube-system`, `kube-public`
    /// and the agents' own are refused unless named here).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_protected: Vec<String>,
}

/// How many of the matching pods a fault takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum PodMode {
    #[default]
    One,
    All,
    Fixed,
    Percent,
}

/// A pod fault: exactly one action.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodFaultSpec {
    /// Delete pods through the Kubernetes API (one-shot: no `duration`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete: Option<PodDeleteSpec>,
}

/// Delete (or evict) pods, then wait until their workloads have replaced them.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodDeleteSpec {
    #[serde(flatten)]
    pub pods: PodSelector,
    /// Grace period of the deletion (default: each pod's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period: Option<Dur>,
    /// Ask the API server to check the deletion (`dryRun=All`) without deleting.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// Evict through the Eviction API instead of deleting: PodDisruptionBudgets are
    /// honoured, and an eviction a budget refuses (429) is reported as blocked by it.
    /// Needs `create` on `pods/eviction`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub evict: bool,
    /// Longest wait for the replacements to be Ready (default 5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_timeout: Option<Dur>,
}
