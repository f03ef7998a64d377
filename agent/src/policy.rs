//! What each token may do (DESIGN.md §3.6): fault kinds, longest duration, and which
//! processes and network namespaces nobody may touch. Loaded once at start-up from YAML
//! (JSON is valid YAML), so a wrong policy file stops the agent instead of loosening it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use shakeout_api::Dur;

/// Process names protected unless the policy file names its own list. `*` at the end
/// matches a prefix (`/proc/PID/comm` is cut at 15 bytes, so shims show as `containerd-shim`).
pub const DEFAULT_PROTECTED_NAMES: &[&str] = &[
    "kubelet",
    "containerd",
    "containerd-shim*",
    "crio",
    "dockerd",
    "sshd",
    "systemd",
];

/// Every fault kind the agent knows.
pub const ALL_KINDS: &[&str] = &["process", "network"];

/// Policy file errors.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("policy {path}: {message}")]
    Parse { path: String, message: String },
}

/// What one token may do.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TokenPolicy {
    /// Fault kinds (`process`, `network`) this token may apply.
    #[serde(default = "all_kinds")]
    pub fault_kinds: Vec<String>,
    /// Longest fault duration (and lease) this token may ask for.
    #[serde(default = "default_max_duration")]
    pub max_duration: Dur,
    /// Process names protected for this token, on top of the global list.
    #[serde(default)]
    pub protected_names: Vec<String>,
    /// Signals this token may send with `kill` (names like `TERM` or numbers); absent:
    /// any signal but the stop signals, which `kill` never sends.
    #[serde(default)]
    pub signals: Option<Vec<String>>,
}

impl Default for TokenPolicy {
    fn default() -> Self {
        TokenPolicy {
            fault_kinds: all_kinds(),
            max_duration: default_max_duration(),
            protected_names: Vec::new(),
            signals: None,
        }
    }
}

impl TokenPolicy {
    /// Whether this token may `kill` with `signal`.
    pub fn allows_signal(&self, signal: nix::sys::signal::Signal) -> bool {
        self.signals.as_ref().is_none_or(|allowed| {
            allowed
                .iter()
                .any(|s| crate::fault::process::parse_signal(s).is_ok_and(|a| a == signal))
        })
    }

    /// Problems with this token's entries, each prefixed with `at` (its place in the file).
    fn problems(&self, at: &str) -> Option<String> {
        if let Some(kind) = self
            .fault_kinds
            .iter()
            .find(|k| !ALL_KINDS.contains(&k.as_str()))
        {
            return Some(format!(
                "{at}.faultKinds: unknown kind `{kind}` (valid: {})",
                ALL_KINDS.join(", ")
            ));
        }
        for signal in self.signals.iter().flatten() {
            if let Err(e) = crate::fault::process::parse_kill_signal(signal) {
                return Some(format!("{at}.signals: {}", e.message()));
            }
        }
        None
    }
}

fn all_kinds() -> Vec<String> {
    ALL_KINDS.iter().map(|k| k.to_string()).collect()
}

fn default_max_duration() -> Dur {
    Dur(Duration::from_secs(600))
}

fn default_protected_names() -> Vec<String> {
    DEFAULT_PROTECTED_NAMES
        .iter()
        .map(|n| n.to_string())
        .collect()
}

/// The agent's whole policy.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Policy {
    /// Protected process names for every token; replaces the built-in list when given.
    /// Pid 1, the agent and its ancestors are protected whatever this says.
    #[serde(default = "default_protected_names")]
    pub protected_names: Vec<String>,
    /// Network namespaces no fault may enter: `host`, `pid:N`, `pod:UID`.
    #[serde(default)]
    pub protected_namespaces: Vec<String>,
    /// Per token name.
    #[serde(default)]
    pub tokens: BTreeMap<String, TokenPolicy>,
    /// For token names not listed under `tokens`.
    #[serde(default, rename = "default")]
    pub default_token: TokenPolicy,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            protected_names: default_protected_names(),
            protected_namespaces: Vec::new(),
            tokens: BTreeMap::new(),
            default_token: TokenPolicy::default(),
        }
    }
}

impl Policy {
    /// Read a YAML or JSON policy file.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: shown.clone(),
            source,
        })?;
        let policy: Policy = serde_yaml::from_str(&text).map_err(|e| PolicyError::Parse {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        let tokens = policy
            .tokens
            .iter()
            .map(|(name, t)| (format!("tokens.{name}"), t));
        for (at, token) in
            std::iter::once(("default".to_string(), &policy.default_token)).chain(tokens)
        {
            if let Some(message) = token.problems(&at) {
                return Err(PolicyError::Parse {
                    path: shown,
                    message,
                });
            }
        }
        Ok(policy)
    }

    /// The policy for a token name.
    pub fn for_token(&self, name: &str) -> TokenPolicy {
        self.tokens
            .get(name)
            .cloned()
            .unwrap_or_else(|| self.default_token.clone())
    }

    /// The protected name pattern `comm` matches, if any (global list plus the token's).
    pub fn protected_name<'a>(&'a self, token: &'a TokenPolicy, comm: &str) -> Option<&'a str> {
        self.protected_names
            .iter()
            .chain(token.protected_names.iter())
            .find(|pattern| name_matches(pattern, comm))
            .map(String::as_str)
    }
}

/// Exact match, or a prefix match when the pattern ends in `*`.
fn name_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_protect_runtimes_and_allow_every_kind() {
        let p = Policy::default();
        let t = p.for_token("anyone");
        assert_eq!(t.fault_kinds, vec!["process", "network"]);
        assert_eq!(t.max_duration, Dur::from_secs(600));
        assert_eq!(
            p.protected_name(&t, "containerd-shim"),
            Some("containerd-shim*")
        );
        assert_eq!(p.protected_name(&t, "kubelet"), Some("kubelet"));
        assert_eq!(p.protected_name(&t, "sleep"), None);
    }

    #[test]
    fn yaml_policy_per_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.yaml");
        std::fs::write(
            &path,
            "protectedNamespaces: [host]\ntokens:\n  ci:\n    faultKinds: [process]\n    maxDuration: 30s\n    protectedNames: [postgres]\n",
        )
        .unwrap();
        let p = Policy::load(&path).unwrap();
        let ci = p.for_token("ci");
        assert_eq!(ci.fault_kinds, vec!["process"]);
        assert_eq!(ci.max_duration, Dur::from_secs(30));
        assert_eq!(p.protected_name(&ci, "postgres"), Some("postgres"));
        assert_eq!(p.protected_name(&p.for_token("other"), "postgres"), None);
        assert_eq!(p.protected_namespaces, vec!["host"]);
    }

    #[test]
    fn unknown_kind_is_rejected_with_its_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.yaml");
        std::fs::write(&path, "tokens:\n  ci:\n    faultKinds: [disk]\n").unwrap();
        let err = Policy::load(&path).unwrap_err().to_string();
        assert!(err.contains("tokens.ci.faultKinds"), "{err}");
    }

    #[test]
    fn the_shipped_policy_file_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/policy.yaml");
        let p = Policy::load(&path).unwrap();
        assert!(!p
            .for_token("someone")
            .allows_signal(nix::sys::signal::Signal::SIGHUP));
        assert_eq!(p.for_token("ci").fault_kinds, vec!["process", "network"]);
    }

    #[test]
    fn signals_are_checked_and_stop_signals_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.yaml");
        std::fs::write(&path, "tokens:\n  ci:\n    signals: [TERM, 9]\n").unwrap();
        let p = Policy::load(&path).unwrap();
        let ci = p.for_token("ci");
        use nix::sys::signal::Signal;
        assert!(ci.allows_signal(Signal::SIGTERM));
        assert!(ci.allows_signal(Signal::SIGKILL));
        assert!(!ci.allows_signal(Signal::SIGHUP));
        assert!(p.for_token("other").allows_signal(Signal::SIGHUP));
        for bad in ["[STOP]", "[TSTP]", "[nope]"] {
            std::fs::write(&path, format!("default:\n  signals: {bad}\n")).unwrap();
            let err = Policy::load(&path).unwrap_err().to_string();
            assert!(err.contains("default.signals"), "{err}");
        }
    }
}
