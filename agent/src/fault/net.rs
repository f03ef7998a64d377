//! Network faults (latency, loss, blackhole). Interface shim: the real implementation lands separately.

use shakeout_api::{Mechanism, MechanismInfo, NetworkFault, SweepReport};

/// Ledger record of an applied network fault; opaque to the core.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct NetApplied {
    pub mechanism: Mechanism,
    pub detail: serde_json::Value,
}

/// Network fault errors, mapped by the core to 400 / 503 / 500.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("{field}: {message}")]
    BadSpec { field: String, message: String },
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Failed(String),
}

/// Network fault mechanisms on this node.
pub struct Net {}

const NOT_BUILT: &str = "network faults are not built into this agent yet";

impl Net {
    /// Detect what the node offers; the state dir holds mechanism-specific files.
    pub fn new(_state_dir: &std::path::Path) -> Net {
        Net {}
    }

    /// Detection, for capabilities.
    pub fn mechanisms(&self) -> Vec<MechanismInfo> {
        [Mechanism::Netem, Mechanism::Nftables, Mechanism::Nfqueue]
            .into_iter()
            .map(|mechanism| MechanismInfo {
                mechanism,
                available: false,
                why_not: Some(NOT_BUILT.to_string()),
            })
            .collect()
    }

    /// External binaries and whether each exists.
    pub fn binaries(&self) -> std::collections::BTreeMap<String, bool> {
        std::collections::BTreeMap::new()
    }

    /// Apply a network fault.
    pub async fn apply(
        &self,
        _id: &str,
        _spec: &NetworkFault,
        _seed: u64,
    ) -> Result<NetApplied, NetError> {
        Err(NetError::Unavailable(NOT_BUILT.to_string()))
    }

    /// Revert an applied fault; idempotent.
    pub async fn revert(&self, _applied: &NetApplied) -> Result<(), NetError> {
        Ok(())
    }

    /// Delete every agent-tagged rule, qdisc and queue.
    pub async fn sweep(&self) -> SweepReport {
        SweepReport::default()
    }
}
