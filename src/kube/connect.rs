//! Connecting as kubectl does: the experiment's `kubeconfig`, else the files `KUBECONFIG`
//! lists (merged, first value wins; a listed file that does not exist is skipped, and only
//! when none exists is that an error), else `~/.kube/config`, else the in-cluster service
//! account.

use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use super::{Cluster, KubeError, API_TIMEOUT};
use crate::experiment::spec::KubernetesSpec;

/// Where a kubeconfig came from, for messages and for merging.
enum Source {
    /// The experiment's `kubeconfig` (or `--kubeconfig`): it must exist.
    Named(PathBuf),
    /// `KUBECONFIG`'s files that exist, in order.
    Env(Vec<PathBuf>),
    /// `~/.kube/config`.
    Home(PathBuf),
}

/// The files of `KUBECONFIG` (`:`-separated, empty entries ignored): those that exist,
/// and whether the variable named any file at all.
fn env_files() -> Result<Option<Vec<PathBuf>>, KubeError> {
    let Some(value) = std::env::var_os("KUBECONFIG") else {
        return Ok(None);
    };
    let listed: Vec<PathBuf> = std::env::split_paths(&value)
        .filter(|p| !p.as_os_str().is_empty())
        .collect();
    if listed.is_empty() {
        return Ok(None);
    }
    let existing: Vec<PathBuf> = listed.iter().filter(|p| p.exists()).cloned().collect();
    if existing.is_empty() {
        let names: Vec<String> = listed.iter().map(|p| p.display().to_string()).collect();
        return Err(KubeError::Kubeconfig {
            file: format!("KUBECONFIG={}", names.join(":")),
            message: "none of these files exists".into(),
        });
    }
    Ok(Some(existing))
}

/// Read and merge the files of `source` (kubeconfig merging: the first file to set a
/// value wins).
fn read(source: &Source) -> Result<Kubeconfig, KubeError> {
    let files: &[PathBuf] = match source {
        Source::Named(p) | Source::Home(p) => std::slice::from_ref(p),
        Source::Env(v) => v,
    };
    let mut merged: Option<Kubeconfig> = None;
    for file in files {
        let bad = |e: &dyn std::fmt::Display| KubeError::Kubeconfig {
            file: file.display().to_string(),
            message: e.to_string(),
        };
        let kc = Kubeconfig::read_from(file).map_err(|e| bad(&e))?;
        merged = Some(match merged {
            None => kc,
            Some(m) => m.merge(kc).map_err(|e| bad(&e))?,
        });
    }
    Ok(merged.unwrap_or_default())
}

impl Source {
    fn describe(&self) -> String {
        match self {
            Source::Named(p) | Source::Home(p) => format!("kubeconfig {}", p.display()),
            Source::Env(v) => {
                let names: Vec<String> = v.iter().map(|p| p.display().to_string()).collect();
                format!("kubeconfig {}", names.join(":"))
            }
        }
    }
}

impl Cluster {
    /// Connect as `spec` says, else by kubectl's rules: the files of `KUBECONFIG`,
    /// `~/.kube/config`, then the in-cluster service account. Relative kubeconfig paths
    /// are relative to the experiment file.
    pub async fn connect(
        spec: Option<&KubernetesSpec>,
        base_dir: &Path,
    ) -> Result<Self, KubeError> {
        let context = spec.and_then(|k| k.context.clone());
        let source = match spec.and_then(|k| k.kubeconfig.as_ref()) {
            Some(file) => Some(Source::Named(base_dir.join(file))),
            None => match env_files()? {
                Some(files) => Some(Source::Env(files)),
                None => std::env::var_os("HOME")
                    .map(|h| Path::new(&h).join(".kube/config"))
                    .filter(|p| p.exists())
                    .map(Source::Home),
            },
        };
        let (mut config, from, in_cluster) = match source {
            Some(source) => {
                let kc = read(&source)?;
                let ctx = context.clone().or(kc.current_context.clone());
                let options = KubeConfigOptions {
                    context: context.clone(),
                    ..Default::default()
                };
                let config = Config::from_custom_kubeconfig(kc, &options)
                    .await
                    .map_err(|e| KubeError::Kubeconfig {
                        file: source.describe().trim_start_matches("kubeconfig ").into(),
                        message: e.to_string(),
                    })?;
                let from = match ctx {
                    Some(c) => format!("{} context {c}", source.describe()),
                    None => source.describe(),
                };
                (config, from, false)
            }
            None if context.is_some() => {
                return Err(KubeError::Kubeconfig {
                    file: "(KUBECONFIG or ~/.kube/config)".into(),
                    message: format!(
                        "context `{}` was asked for, and there is no kubeconfig",
                        context.unwrap_or_default()
                    ),
                })
            }
            None => {
                let config = Config::incluster().map_err(|e| {
                    KubeError::NoCluster(format!("in-cluster service account: {e}"))
                })?;
                (config, "in-cluster service account".to_owned(), true)
            }
        };
        // No call may hang a run: a stalled API server fails the call instead.
        config.connect_timeout = Some(API_TIMEOUT);
        config.read_timeout = Some(API_TIMEOUT);
        config.write_timeout = Some(API_TIMEOUT);
        let server = config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_owned();
        let client_error = |e: kube::Error| KubeError::Client {
            from: from.clone(),
            message: super::error::chain_text(&e),
        };
        let mut once = config.clone();
        once.default_retry = false;
        let client = Client::try_from(config).map_err(client_error)?;
        let once = Client::try_from(once).map_err(client_error)?;
        Ok(Cluster {
            client,
            once,
            source: from,
            server,
            in_cluster,
        })
    }
}
