//! `spec.faults`: the fault timeline, one action per fault (exec, network, process, pod).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use shakeout_api::{Direction, Dur, Latency, Mechanism, Percent, Protocol, Selection};

use super::kube::{PodFaultSpec, PodSelector};

/// One fault on the timeline: exactly one action (`exec`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FaultSpec {
    pub name: String,
    /// When to inject, from the start of probing.
    pub at: Dur,
    /// How long the fault lasts; its revert runs when it ends. Omit for one-shot faults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecFaultSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkFaultSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessFaultSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodFaultSpec>,
}

/// Latency, loss or blackhole through a node agent. Needs a `duration`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NetworkFaultSpec {
    /// Name in `spec.agents` (default: the embedded agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<Latency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<Percent>,
    /// Drop every matching packet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blackhole: Option<bool>,
    /// `egress` (default), `ingress` or `both`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    /// Which packets: peers, ports, protocol (default: all traffic of the namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<PacketFilter>,
    /// Whose network namespace (default: the agent's host namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<NamespaceSpec>,
    /// Kubernetes pods instead of `agent` and `namespace`: each chosen pod's network
    /// namespace, through the agent on its node (`spec.kubernetes.agents`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<PodSelector>,
    /// Interface for netem (default: every non-loopback one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Force `netem`, `nftables` or `nfqueue` instead of the agent's choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mechanism: Option<Mechanism>,
}

/// Packet filter of a network fault.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PacketFilter {
    /// Peer addresses or CIDRs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
    /// Peer ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    /// `all` (default), `tcp`, `udp` or `icmp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
}

/// A network namespace: exactly one field.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NamespaceSpec {
    /// The namespace of this process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The namespace of a supervised service's process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The namespace of a Kubernetes pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
}

/// Kill or pause processes through a node agent: exactly one of `kill` or `pause`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProcessFaultSpec {
    /// Name in `spec.agents` (default: the embedded agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    pub target: ProcessTargetSpec,
    /// Send a signal once (one-shot: no `duration`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill: Option<KillSpec>,
    /// SIGSTOP for the fault's `duration`, then SIGCONT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<PauseSpec>,
    /// How many of the matches (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select: Option<Selection>,
}

/// Which processes: exactly one field.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProcessTargetSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Exact process name (`/proc/PID/comm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Regular expression on the command line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// A supervised service (its current pid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Every process of a Kubernetes pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    /// Every process of each chosen pod, through the agent on its node
    /// (`spec.kubernetes.agents`); the fault names no `agent` then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<PodSelector>,
}

/// The signal to send.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KillSpec {
    /// `KILL` (default), `TERM`, `INT`, ... or a number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
}

/// Pause has no options.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PauseSpec {}

/// Run a command as the fault, and optionally another as its revert.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExecFaultSpec {
    /// Program and arguments (no shell). `${service.NAME.pid}` expands to a service's pid.
    pub command: Vec<String>,
    /// Run when the fault's duration ends, on abort and on interrupt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revert: Option<Vec<String>>,
    /// Deadline for each command (default 30s); past it the command is killed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}
