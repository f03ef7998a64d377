//! `spec.prometheus`, `spec.alertmanager`, `spec.alerts` and the PromQL forms of
//! objectives and stop conditions: what the monitoring system must show while faults run.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use shakeout_api::Dur;

use super::{During, TokenFrom};

/// A Prometheus server to query (HTTP API v1).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PrometheusSpec {
    /// `http://host:port` (a path prefix is kept, like `http://host/prometheus`).
    pub url: String,
    /// Extra request headers, like a tenant id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Sent as `Authorization: Bearer TOKEN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<TokenFrom>,
    /// For an https:// URL: which certificates to trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<PrometheusTls>,
}

/// How an https:// Prometheus is trusted: exactly one of `ca` or `insecureSkipVerify`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PrometheusTls {
    /// PEM file of the CA that signed Prometheus's certificate (relative to the experiment
    /// file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    /// Trust any certificate (no chain or name check): for a test server only.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// An Alertmanager to read alerts from (API v2).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AlertmanagerSpec {
    /// `http://host:port`.
    pub url: String,
}

/// How a query's value compares with the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Comparator {
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
}

impl Comparator {
    /// `value OP threshold`.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparator::Gt => value > threshold,
            Comparator::Ge => value >= threshold,
            Comparator::Lt => value < threshold,
            Comparator::Le => value <= threshold,
            Comparator::Eq => value == threshold,
            Comparator::Ne => value != threshold,
        }
    }

    /// As written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Comparator::Gt => ">",
            Comparator::Ge => ">=",
            Comparator::Lt => "<",
            Comparator::Le => "<=",
            Comparator::Eq => "==",
            Comparator::Ne => "!=",
        }
    }
}

/// Default interval of PromQL evaluations and alert polls.
pub const DEFAULT_EVERY: Dur = Dur(std::time::Duration::from_secs(5));
/// Default poll interval of alerts.
pub const DEFAULT_ALERT_POLL: Dur = Dur(std::time::Duration::from_secs(1));

/// A PromQL query that must satisfy `comparator threshold` at every evaluation during a
/// phase (at most `failureLimit` evaluations may break it).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PromqlObjective {
    /// Names the verdict: `promql/NAME/DURING`.
    pub name: String,
    /// An instant query; every series it returns must satisfy the comparison.
    pub query: String,
    pub comparator: Comparator,
    pub threshold: f64,
    #[serde(default)]
    pub during: During,
    /// How often to evaluate (default 5s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<Dur>,
    /// How many evaluations in the phase may break the comparison (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_limit: Option<u64>,
}

/// Stop the run when a PromQL query's value satisfies `comparator threshold`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AbortPromql {
    pub name: String,
    pub query: String,
    /// The comparison that stops the run when any series satisfies it.
    pub comparator: Comparator,
    pub threshold: f64,
    /// How often to evaluate (default 5s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<Dur>,
}

/// Where an alert's state is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum AlertSource {
    /// `spec.alertmanager`, `/api/v2/alerts`.
    #[default]
    Alertmanager,
    /// `spec.prometheus`, `/api/v1/alerts` (firing alerts only).
    Prometheus,
}

/// An alert that must fire after the first fault and resolve after recovery, and not
/// fire before any fault.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AlertSpec {
    /// The alert's `alertname`.
    pub name: String,
    /// Labels the alert must also carry.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Longest time from the first fault's start until the alert is seen firing.
    pub fires_within: Dur,
    /// Longest time from recovery until the alert is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolves_within: Option<Dur>,
    #[serde(default)]
    pub source: AlertSource,
    /// How often to poll the source (default 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<Dur>,
}
