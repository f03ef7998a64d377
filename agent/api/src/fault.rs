//! Fault specifications as the controller sends them to an agent, and what the agent
//! answers. Field names are camelCase JSON and part of the agent's public API.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::units::{Dur, Percent};

/// `POST /v1/faults`: apply a fault under a lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApplyRequest {
    /// Experiment name, for the audit log.
    pub experiment: String,
    /// Fault name within the experiment, for the audit log.
    pub fault: String,
    /// How long the fault lasts; the agent reverts it then at the latest. One-shot
    /// faults (process kill) ignore it. Capped by the agent's policy.
    pub duration: Dur,
    /// Lease: the controller must renew within this, else the agent reverts (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Dur>,
    /// Resolve targets and check policy, but change nothing.
    #[serde(default)]
    pub dry_run: bool,
    pub spec: FaultSpec,
}

/// The fault itself: exactly one kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum FaultSpec {
    Process(ProcessFault),
    Network(NetworkFault),
}

impl FaultSpec {
    /// `process` or `network` (policy and metrics key).
    pub fn kind(&self) -> &'static str {
        match self {
            FaultSpec::Process(_) => "process",
            FaultSpec::Network(_) => "network",
        }
    }
}

/// Kill or pause processes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProcessFault {
    pub target: ProcessTarget,
    pub action: ProcessAction,
    /// How many of the matches (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select: Option<Selection>,
    /// Seed for choosing among matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// Which processes: exactly one of the fields.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProcessTarget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Exact process name (`/proc/PID/comm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Regular expression matched against the command line (`/proc/PID/cmdline`, spaces between args).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Every process of this Kubernetes pod, found through `/proc/*/cgroup`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
}

/// What to do to the chosen processes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum ProcessAction {
    /// Send a signal once (`KILL`, `TERM`, `SIGINT`, `9`...). One-shot.
    Kill { signal: String },
    /// SIGSTOP now, SIGCONT at revert or deadline.
    Pause,
}

/// A subset of the matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Selection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<Percent>,
}

/// Latency, loss or blackhole on matching packets.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NetworkFault {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<Latency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<Percent>,
    /// Drop every matching packet.
    #[serde(default)]
    pub blackhole: bool,
    #[serde(default)]
    pub direction: Direction,
    /// Peer addresses or CIDRs (IPv4 or IPv6); empty = any peer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
    /// Peer (egress: destination; ingress: source) ports; empty = any port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    #[serde(default)]
    pub protocol: Protocol,
    /// Whose network namespace (default: the agent's host namespace).
    #[serde(default)]
    pub namespace: NetNamespace,
    /// Interface for netem (default: every non-loopback interface in the namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Force a mechanism instead of the agent's choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mechanism: Option<Mechanism>,
    /// Seed for which packets are lost and how much jitter each gets, so a run's seed
    /// replays them (absent: a fresh one per fault). Only nfqueue draws from it: nftables
    /// (`numgen random`) and netem draw in the kernel, which takes no seed from us.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// Added delay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Latency {
    pub delay: Dur,
    /// Uniform jitter: each packet gets delay ± jitter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<Dur>,
}

/// Which way the packets travel, seen from the namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Direction {
    #[default]
    Egress,
    Ingress,
    Both,
}

/// Transport protocol filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Protocol {
    #[default]
    All,
    Tcp,
    Udp,
    Icmp,
}

/// A network namespace.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum NetNamespace {
    /// The agent's own (the host's, for a hostNetwork DaemonSet).
    #[default]
    Host,
    /// The namespace of this process (`/proc/PID/ns/net`).
    Pid(u32),
    /// The namespace of this pod (through any of its processes).
    PodUid(String),
}

/// How a network fault is implemented on the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Mechanism {
    /// `tc qdisc ... netem` (needs sch_netem).
    Netem,
    /// Rules in the agent's own nftables table (loss, blackhole).
    Nftables,
    /// Packets queued to the agent and released after their delay (fails open).
    Nfqueue,
}

/// Answer to an apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplyResponse {
    pub id: String,
    /// When the agent reverts unless renewed, milliseconds since the Unix epoch.
    pub deadline_unix_ms: u64,
    /// When the fault's duration ends, milliseconds since the Unix epoch.
    pub ends_unix_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mechanism: Option<Mechanism>,
    /// Processes the fault touched (or would, for a dry run).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<ProcessInfo>,
    pub dry_run: bool,
}

/// A process as the agent saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProcessInfo {
    pub pid: u32,
    pub name: String,
}

/// `POST /v1/faults/{id}/renew`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RenewRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Dur>,
}

/// A fault the agent holds, as `GET /v1/faults` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FaultStatus {
    pub id: String,
    pub experiment: String,
    pub fault: String,
    /// Token name that applied it.
    pub owner: String,
    pub spec: FaultSpec,
    pub applied_unix_ms: u64,
    pub deadline_unix_ms: u64,
    pub ends_unix_ms: u64,
}

/// `DELETE /v1/faults/{id}`: what the revert did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevertResponse {
    pub id: String,
    /// False when it had already been reverted (revert is idempotent).
    pub reverted_now: bool,
}

/// `GET /v1/capabilities`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    pub version: String,
    pub kernel: String,
    /// `v1`, `v2` or `hybrid`.
    pub cgroup: String,
    /// Every mechanism, available or not (and why not).
    pub mechanisms: Vec<MechanismInfo>,
    /// External binaries the agent uses, and whether each was found.
    pub binaries: BTreeMap<String, bool>,
    /// Fault kinds this caller's token may apply.
    pub fault_kinds: Vec<String>,
    /// Longest duration this caller's token may ask for.
    pub max_duration: Dur,
    /// What the start-up sweep cleaned.
    pub last_sweep: SweepReport,
    /// Who the agent runs as (absent from agents before 0.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileges: Option<Privileges>,
    /// Optional request fields this agent understands, so a newer controller sends them
    /// only to agents that take them (an older agent refuses unknown fields):
    /// `networkSeed` (`NetworkFault.seed`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
}

/// The feature name of `NetworkFault.seed` in [`Capabilities::features`].
pub const FEATURE_NETWORK_SEED: &str = "networkSeed";

/// The agent process's user and the capabilities faults need.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Privileges {
    /// Effective user id.
    pub uid: u32,
    /// Effective capabilities among those faults use: `CAP_NET_ADMIN` (network faults),
    /// `CAP_SYS_ADMIN` (entering another network namespace), `CAP_KILL` (signals to
    /// other users' processes), `CAP_SYS_PTRACE` (reading other users' `/proc` entries).
    pub capabilities: Vec<String>,
}

/// One mechanism on this node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MechanismInfo {
    pub mechanism: Mechanism,
    pub available: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why_not: Option<String>,
}

/// What a start-up sweep found and cleaned.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    /// Faults listed in the ledger and reverted.
    pub ledger_reverted: Vec<String>,
    /// Agent-tagged rules, qdiscs and queues deleted.
    pub rules_deleted: Vec<String>,
    /// Paused processes continued.
    pub processes_continued: Vec<u32>,
    /// Ledger entries whose target no longer exists (a network namespace that is gone,
    /// with every rule in it): nothing was left to revert, and the entry was removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gone: Vec<String>,
    /// What could not be cleaned, and why. Those ledger entries are kept and retried.
    pub errors: Vec<String>,
}

/// Every error answer: a stable machine code and a human message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// `unauthorized`, `forbidden`, `protectedTarget`, `badSpec`, `notFound`, `conflict`,
    /// `tooLarge`, `timeout` (408: the request body did not arrive in time), `unavailable`, `internal`.
    pub code: String,
    pub message: String,
    /// The request field at fault, for `badSpec` (e.g. `spec.network.loss`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_network_seed_is_optional_both_ways() {
        // As controllers before the field send it: a fresh seed, as before.
        let old: NetworkFault = serde_json::from_str(r#"{"loss": "10%"}"#).unwrap();
        assert_eq!(old.seed, None);
        let text = serde_json::to_string(&old).unwrap();
        assert!(!text.contains("seed"), "{text}");
        let new: NetworkFault = serde_json::from_str(r#"{"loss": "10%", "seed": 42}"#).unwrap();
        assert_eq!(new.seed, Some(42));
        assert_eq!(
            serde_json::to_value(&new).unwrap()["seed"],
            serde_json::json!(42)
        );
    }
}
