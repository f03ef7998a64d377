//! Kubernetes (DESIGN.md §3, §6): connecting with the usual kubeconfig rules, choosing
//! pods by selector and mode, deleting them (or asking the server to check the deletion
//! with `dryRun=All`), timing how long their workloads take to have Ready replacements,
//! and finding the node agents of the Helm chart's DaemonSet.

pub mod pods;

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::experiment::spec::KubernetesSpec;

pub use crate::experiment::spec::{DEFAULT_AGENT_NAMESPACE, PROTECTED_NAMESPACES};

/// Longest wait for one API round trip (kube's retries of 429/503/504 come on top, each
/// bounded the same way; callers that must stop on time race their calls against it).
pub const API_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A connected cluster.
#[derive(Clone)]
pub struct Cluster {
    pub client: Client,
    /// Where the connection came from, for messages (`context staging`, `in-cluster`).
    pub source: String,
    /// The connection is the in-cluster service account (agents are then reached by pod IP
    /// unless `reach` says otherwise).
    pub in_cluster: bool,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("source", &self.source)
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
    /// An API call failed, said by [`describe`]: what was being done, the server's code
    /// and message, and for RBAC denials what to grant.
    #[error("{0}")]
    Api(String),
}

/// A failed API call, said the way a person can act on: what we were doing, the
/// server's status code and its message (RBAC denials name the missing permission).
pub fn describe(doing: &str, e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => {
            let hint = match s.code {
                401 => " (the credentials were refused: check the kubeconfig user or token)",
                403 => " (RBAC: the controller's account needs this permission; the Helm chart's controller Role grants it)",
                404 => "",
                429 => " (the API server kept throttling after retries)",
                _ => "",
            };
            format!("{doing}: {} {}: {}{hint}", s.code, s.reason, s.message)
        }
        other => format!("{doing}: {other}"),
    }
}

impl Cluster {
    /// Connect as `spec` says, else by the usual rules: `KUBECONFIG`, `~/.kube/config`,
    /// then the in-cluster service account. Relative kubeconfig paths are relative to
    /// the experiment file.
    pub async fn connect(
        spec: Option<&KubernetesSpec>,
        base_dir: &Path,
    ) -> Result<Self, KubeError> {
        let context = spec.and_then(|k| k.context.clone());
        let options = KubeConfigOptions {
            context: context.clone(),
            ..Default::default()
        };
        let mut in_cluster = false;
        let (mut config, source) = match spec.and_then(|k| k.kubeconfig.as_ref()) {
            Some(file) => {
                let path = base_dir.join(file);
                let bad = |e: &dyn std::fmt::Display| KubeError::Kubeconfig {
                    file: path.display().to_string(),
                    message: e.to_string(),
                };
                let kc = Kubeconfig::read_from(&path).map_err(|e| bad(&e))?;
                let current = kc.current_context.clone();
                let config = Config::from_custom_kubeconfig(kc, &options)
                    .await
                    .map_err(|e| bad(&e))?;
                let ctx = context.or(current).unwrap_or_default();
                (
                    config,
                    format!("kubeconfig {} context {ctx}", path.display()),
                )
            }
            None if context.is_some() => {
                let config =
                    Config::from_kubeconfig(&options)
                        .await
                        .map_err(|e| KubeError::Kubeconfig {
                            file: "(KUBECONFIG or ~/.kube/config)".into(),
                            message: e.to_string(),
                        })?;
                let ctx = context.unwrap_or_default();
                (config, format!("context {ctx}"))
            }
            None => {
                let config = Config::infer()
                    .await
                    .map_err(|e| KubeError::NoCluster(e.to_string()))?;
                // `infer` prefers a kubeconfig; only without one is this the pod's account.
                let home_config = std::env::var_os("HOME")
                    .map(|h| Path::new(&h).join(".kube/config").exists())
                    .unwrap_or(false);
                in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
                    && std::env::var_os("KUBECONFIG").is_none()
                    && !home_config;
                let source = if in_cluster {
                    "in-cluster service account".to_owned()
                } else {
                    "current kubeconfig context".to_owned()
                };
                (config, source)
            }
        };
        // No call may hang a run: a stalled API server fails the call instead.
        config.connect_timeout = Some(API_TIMEOUT);
        config.read_timeout = Some(API_TIMEOUT);
        config.write_timeout = Some(API_TIMEOUT);
        let client = Client::try_from(config).map_err(|e| KubeError::Client {
            from: source.clone(),
            message: e.to_string(),
        })?;
        Ok(Cluster {
            client,
            source,
            in_cluster,
        })
    }
}
