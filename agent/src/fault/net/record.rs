//! The ledger record of a network fault, typed per mechanism: everything `Net::revert`
//! needs to undo the fault after a crash. It keeps the JSON shape every agent has
//! written, `{"mechanism": "...", "detail": {...}}` with the same keys, so this agent
//! reverts the ledgers older agents left and older agents revert the ones it leaves.
//!
//! Only what a revert needs is required (the fault id; a netem fault's devices): the
//! rest is optional, so the shapes older agents wrote still load: `"namespace": null`
//! (the agent's own namespace), nfqueue records without `rules` (the chains are derived
//! from the id), rules in the old shared chains, extra keys such as `handles`.

use serde::{Deserialize, Deserializer, Serialize};
use shakeout_api::Mechanism;

use super::netns::NsRecord;

/// A network fault as the ledger records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mechanism", content = "detail", rename_all = "camelCase")]
pub enum NetRecord {
    /// Rules in the agent's own nftables table (loss, blackhole).
    Nftables {
        id: String,
        /// `None` (`null`): written before every record named its namespace, for the
        /// agent's own.
        #[serde(default)]
        namespace: Option<NsRecord>,
        /// `inet shakeout`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        table: Option<String>,
        /// `shakeout:<id>`, on every rule of the fault.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
    /// Packets queued to an nfqueue reader of the agent (latency, seeded loss).
    Nfqueue {
        id: String,
        /// As for [`NetRecord::Nftables`].
        #[serde(default)]
        namespace: Option<NsRecord>,
        /// The queue number the reader bound.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        queue: Option<u16>,
        /// The rules that feed the queue.
        #[serde(flatten)]
        via: QueueVia,
    },
    /// A netem qdisc on each device.
    Netem {
        id: String,
        /// As for [`NetRecord::Nftables`].
        #[serde(default)]
        namespace: Option<NsRecord>,
        /// `5ba7:`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        handle: Option<String>,
        /// The devices the qdisc was added to: what the revert deletes it from.
        devices: Vec<String>,
    },
}

/// How an nfqueue fault's packets reach the queue. Told apart by `table`, as before:
/// a record that names a table used nft's queue statement, any other used iptables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum QueueVia {
    /// nft's own `queue` statement, in the agent's table (kernels that have it).
    NftQueue {
        /// `inet shakeout`.
        table: String,
        /// `shakeout:<id>`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
    /// `iptables -j NFQUEUE` rules.
    Iptables {
        /// The rules installed. `None` when the record has none or they cannot be read:
        /// the revert then works from the chains the id names, in both binaries, and
        /// from the old shared chains.
        #[serde(
            default,
            deserialize_with = "rules_if_readable",
            skip_serializing_if = "Option::is_none"
        )]
        rules: Option<Vec<Rule>>,
        /// `iptables -V` at apply time (`null` when it could not be read).
        #[serde(default)]
        iptables: Option<String>,
    },
}

/// One iptables rule: which binary, which chain, and the match + target arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub bin: String,
    pub chain: String,
    pub args: Vec<String>,
}

/// Unreadable rules are no reason to keep a fault: they only narrow the revert, which
/// has a way without them (the id names the chains, the comment the rules).
fn rules_if_readable<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Rule>>, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    Ok(serde_json::from_value(value).ok())
}

impl NetRecord {
    /// The mechanism that installed the fault.
    pub fn mechanism(&self) -> Mechanism {
        match self {
            NetRecord::Nftables { .. } => Mechanism::Nftables,
            NetRecord::Nfqueue { .. } => Mechanism::Nfqueue,
            NetRecord::Netem { .. } => Mechanism::Netem,
        }
    }

    /// The fault id, which every rule, chain and comment of the fault is named after.
    pub fn id(&self) -> &str {
        match self {
            NetRecord::Nftables { id, .. }
            | NetRecord::Nfqueue { id, .. }
            | NetRecord::Netem { id, .. } => id,
        }
    }

    /// The namespace the fault was applied in; `None` for the agent's own, in records
    /// written before every record named it.
    pub fn namespace(&self) -> Option<&NsRecord> {
        match self {
            NetRecord::Nftables { namespace, .. }
            | NetRecord::Nfqueue { namespace, .. }
            | NetRecord::Netem { namespace, .. } => namespace.as_ref(),
        }
    }
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
