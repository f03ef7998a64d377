//! The experiment file as written by users: serde types that mirror the YAML one to one
//! (camelCase names, unknown fields refused, units in every value). The JSON Schema that
//! `shakeout schema` prints is generated from these types, so they are the reference.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use shakeout_api::Dur;

mod faults;
mod kube;
mod monitor;
mod objectives;
mod probes;
mod services;

pub use faults::*;
pub use kube::{
    AgentReach, ClusterAgentsSpec, KubernetesSpec, PodDeleteSpec, PodFaultSpec, PodMode,
    PodSelector,
};
pub use monitor::*;
pub use objectives::*;
pub use probes::*;
pub use services::*;

/// One experiment document (`apiVersion: shakeout/v1`, `kind: Experiment`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExperimentFile {
    /// Always `shakeout/v1`.
    pub api_version: String,
    /// Always `Experiment`.
    pub kind: String,
    pub metadata: Metadata,
    pub spec: Spec,
}

/// Who the experiment is and how to find it in reports.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    /// A short name: letters, digits, `-`, `_` and `.`.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// What to probe, what to break and when, and what must hold.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Spec {
    /// Hard upper bound for the whole run, recovery included.
    pub duration: Dur,
    /// Seed for every random choice; printed in the report so a run can be replayed. At
    /// most 9007199254740991 (2^53 - 1), so every JSON reader keeps every digit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 9007199254740991u64))]
    pub seed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording: Option<RecordingSpec>,
    /// Local processes started before the run and stopped after it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceSpec>,
    /// Availability probes, sent at a constant rate for the whole run.
    pub probes: Vec<ProbeSpec>,
    /// The hypothesis checked before the first fault and again after recovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steady_state: Option<SteadyStateSpec>,
    /// The fault timeline; faults may overlap.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<FaultSpec>,
    /// What the run must show; each becomes a verdict.
    #[serde(default)]
    pub objectives: ObjectivesSpec,
    /// Stop conditions: revert everything and stop early.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<AbortSpec>,
    /// Node agents by name, for `network` and `process` faults. A fault that names no
    /// agent uses one embedded in the controller (same code, same safety).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub agents: BTreeMap<String, AgentSpec>,
    /// The cluster, for `pod` faults and faults that target pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesSpec>,
    /// A Prometheus server for `promql` objectives and stop conditions, and for alerts
    /// read from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusSpec>,
    /// An Alertmanager for `alerts` (the default source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alertmanager: Option<AlertmanagerSpec>,
    /// Alerts that must fire after the first fault, resolve after recovery, and stay quiet
    /// before any fault; each gives three verdicts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<AlertSpec>,
    /// Defaults of `${var.NAME}` in string values; `--var NAME=VALUE` overrides them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vars: BTreeMap<String, String>,
}

/// Namespaces a fault may only touch when it names them in `allowProtected` (the
/// agents' own namespace is protected too).
pub const PROTECTED_NAMESPACES: [&str; 2] = ["kube-system", "kube-public"];
/// Where the Helm chart installs the agents unless told otherwise.
pub const DEFAULT_AGENT_NAMESPACE: &str = "shakeout";

impl Spec {
    /// The namespace the cluster's agents live in (protected like kube-system).
    pub fn agent_namespace(&self) -> &str {
        self.kubernetes
            .as_ref()
            .and_then(|k| k.agents.as_ref())
            .and_then(|a| a.namespace.as_deref())
            .unwrap_or(DEFAULT_AGENT_NAMESPACE)
    }
}

/// How to reach a node agent.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AgentSpec {
    /// `http://host:port` or `https://host:port`.
    pub url: String,
    /// Where the bearer token comes from.
    pub token_from: TokenFrom,
    /// PEM file of the CA that signed the agent's certificate (for https).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    /// Lease of each fault (default 10s): renewed every third of it while the run lives;
    /// if the controller dies, the agent reverts within this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Dur>,
}

/// A secret's source: exactly one of `env` or `file`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TokenFrom {
    /// Environment variable holding the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// File holding the token (relative to the experiment file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// How outcomes are bucketed on the timeline.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RecordingSpec {
    /// Width of the per-interval buckets (default 100ms); the resolution of RTO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<Dur>,
}
