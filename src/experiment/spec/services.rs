//! `spec.services`: local processes supervised for the run (the service under test).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use shakeout_api::Dur;

/// A local process supervised for the run (the service under test, usually).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceSpec {
    pub name: String,
    /// Program and arguments (no shell). `${exe}` is the running shakeout binary.
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Working directory (default: the experiment file's directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<ReadySpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<RestartSpec>,
    /// Time between SIGTERM and SIGKILL when stopping (default 5s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_grace: Option<Dur>,
}

/// When a service counts as started: exactly one of `http`, `tcp` or `command`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReadySpec {
    /// A URL that must answer 2xx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    /// A `host:port` that must accept a connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<String>,
    /// A command (no shell) that must exit 0, like `[pg_isready, -h, 127.0.0.1]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Deadline for readiness (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<Dur>,
}

/// What to do when a service exits during the run.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RestartSpec {
    pub policy: RestartPolicy,
    /// Wait this long before restarting (default 0s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Dur>,
}

/// Restart policy of a supervised service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RestartPolicy {
    Never,
    OnExit,
}
