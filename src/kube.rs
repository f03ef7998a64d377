//! Kubernetes (DESIGN.md §3, §6): connecting with kubectl's kubeconfig rules (and saying
//! why a server gave no answer), asking what the account may do, choosing pods by
//! selector and mode, deleting or evicting them (or having the server check that with
//! `dryRun=All`), what that does to disruption budgets, timing how long their workloads
//! take to have Ready replacements, and why the agents' DaemonSet has no Ready pod.

pub mod access;
pub mod budget;
mod connect;
pub mod daemonset;
mod error;
pub mod pods;
pub mod recovery;

use kube::Client;

pub use error::blocked_by_budget;

pub use crate::experiment::spec::{DEFAULT_AGENT_NAMESPACE, PROTECTED_NAMESPACES};

/// Longest wait for one API round trip (kube's retries of 429/503/504 come on top, each
/// bounded the same way; callers that must stop on time race their calls against it).
pub const API_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A connected cluster.
#[derive(Clone)]
pub struct Cluster {
    /// The client for every call: kube retries 429, 503 and 504 with backoff.
    pub client: Client,
    /// The same connection without those retries, for a call whose 429 means "no" (an
    /// eviction a disruption budget refuses), which kube would retry for minutes.
    pub once: Client,
    /// Where the connection came from, for messages (`context staging`, `in-cluster`).
    pub source: String,
    /// The API server's URL (`https://10.0.0.1:6443`), for messages.
    pub server: String,
    /// The connection is the in-cluster service account (agents are then reached by pod IP
    /// unless `reach` says otherwise).
    pub in_cluster: bool,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("source", &self.source)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

/// Why talking to the cluster failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KubeError {
    /// A kubeconfig could not be read or used (`file` names it, or the default ones).
    #[error("kubeconfig {file}: {message}")]
    Kubeconfig { file: String, message: String },
    /// No kubeconfig and no in-cluster service account.
    #[error("no cluster: neither KUBECONFIG, ~/.kube/config nor an in-cluster service account works: {0}")]
    NoCluster(String),
    /// The client could not be built for the connection `from`.
    #[error("{from}: {message}")]
    Client { from: String, message: String },
    /// An API call failed, said by [`Cluster::describe`]: what was being done, the
    /// server's code and message (for RBAC denials what to grant), or why the server
    /// gave no answer.
    #[error("{0}")]
    Api(String),
}

/// `doing` failed against an API server not named here (a port-forward's client): as
/// [`Cluster::describe`] says it, without the server's address.
pub fn describe(doing: &str, e: &kube::Error) -> String {
    error::describe("", doing, e)
}

impl Cluster {
    /// `doing` failed: the server's status and message (RBAC denials say what to grant),
    /// or why this cluster's API server gave no answer.
    pub fn describe(&self, doing: &str, e: &kube::Error) -> String {
        error::describe(&self.server, doing, e)
    }

    /// The same, as a [`KubeError`].
    pub fn api_error(&self, doing: &str, e: &kube::Error) -> KubeError {
        KubeError::Api(self.describe(doing, e))
    }
}
