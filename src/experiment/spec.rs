//! The experiment file as written by users: serde types that mirror the YAML one to one
//! (camelCase names, unknown fields refused, units in every value). The JSON Schema that
//! `shakeout schema` prints is generated from these types, so they are the reference.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use shakeout_api::{
    Direction, Dur, Latency, Mechanism, Percent, Protocol, Rate, Selection, StatusRanges,
};

mod kube;
pub use kube::{
    AgentReach, ClusterAgentsSpec, KubernetesSpec, PodDeleteSpec, PodFaultSpec, PodMode,
    PodSelector,
};

/// One experiment document (`apiVersion: shakeout/v1`, `kind: Experiment`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExperimentFile {
    /// Always `shakeout/v1`.
    pub api_version: String,
    /// Always `Experiment`.
    pub kind: String,
    pub metadata: Metadata,
    pub spec: Spec,
}

/// Who the experiment is and how to find it in reports.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    /// A short name: letters, digits, `-`, `_` and `.`.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// What to probe, what to break and when, and what must hold.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Spec {
    /// Hard upper bound for the whole run, recovery included.
    pub duration: Dur,
    /// Seed for every random choice; printed in the report so a run can be replayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording: Option<RecordingSpec>,
    /// Local processes started before the run and stopped after it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceSpec>,
    /// Availability probes, sent at a constant rate for the whole run.
    pub probes: Vec<ProbeSpec>,
    /// The hypothesis checked before the first fault and again after recovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steady_state: Option<SteadyStateSpec>,
    /// The fault timeline; faults may overlap.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<FaultSpec>,
    /// What the run must show; each becomes a verdict.
    #[serde(default)]
    pub objectives: ObjectivesSpec,
    /// Stop conditions: revert everything and stop early.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<AbortSpec>,
    /// Node agents by name, for `network` and `process` faults. A fault that names no
    /// agent uses one embedded in the controller (same code, same safety).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub agents: BTreeMap<String, AgentSpec>,
    /// The cluster, for `pod` faults and faults that target pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesSpec>,
}

/// Namespaces a fault may only touch when it names them in `allowProtected` (the
/// agents' own namespace is protected too).
pub const PROTECTED_NAMESPACES: [&str; 2] = ["kube-system", "kube-public"];
/// Where the Helm chart installs the agents unless told otherwise.
pub const DEFAULT_AGENT_NAMESPACE: &str = "shakeout";

impl Spec {
    /// The namespace the cluster's agents live in (protected like kube-system).
    pub fn agent_namespace(&self) -> &str {
        self.kubernetes
            .as_ref()
            .and_then(|k| k.agents.as_ref())
            .and_then(|a| a.namespace.as_deref())
            .unwrap_or(DEFAULT_AGENT_NAMESPACE)
    }
}

/// How to reach a node agent.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AgentSpec {
    /// `http://host:port` or `https://host:port`.
    pub url: String,
    /// Where the bearer token comes from.
    pub token_from: TokenFrom,
    /// PEM file of the CA that signed the agent's certificate (for https).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    /// Lease of each fault (default 10s): renewed every third of it while the run lives;
    /// if the controller dies, the agent reverts within this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Dur>,
}

/// A secret's source: exactly one of `env` or `file`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TokenFrom {
    /// Environment variable holding the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// File holding the token (relative to the experiment file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// How outcomes are bucketed on the timeline.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RecordingSpec {
    /// Width of the per-interval buckets (default 100ms); the resolution of RTO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<Dur>,
}

/// A probe: exactly one of `http`, `tcp` or `write`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProbeSpec {
    pub name: String,
    /// Sends per unit of time, like `200/s`: sends follow this schedule, not the responses.
    pub rate: Rate,
    /// Upper bound on requests in flight (default: enough for rate x timeout, at most 1024).
    /// A send that cannot start before its deadline because of it counts as `missed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpProbeSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpProbeSpec>,
    /// Sequenced writes, read back after the run to measure data loss (RPO).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write: Option<WriteProbeSpec>,
}

/// A write probe: one sequenced write per scheduled send to exactly one backend (`http`
/// or `redis`); after the run every write is read back and classified.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WriteProbeSpec {
    /// Deadline of each write from its intended send time (default 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
    /// Keep the run's keys after the read-back (default false: they are deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_back: Option<ReadBackSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpWriteSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisWriteSpec>,
}

/// Bounds of the read-back after the run (and, again, of the cleanup).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReadBackSpec {
    /// At most this many read requests per unit of time (default 1000/s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
    /// The read-back gives up after this long (default 30s); the `rpo` verdict is then
    /// not measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
}

/// Templated HTTP requests: `{run}`, `{seq}` and `{key}` (= `{run}-{seq}`) are expanded
/// in URLs and bodies. Exactly one of `read` (per key) or `list` (the whole log).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpWriteSpec {
    /// The write; its URL or body must hold `{seq}` or `{key}`.
    pub write: HttpRequestSpec,
    /// Per-key read: 2xx with `{seq}` in the body = present, 404 = missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<HttpRequestSpec>,
    /// One read of everything stored: the body lists keys or sequence numbers, one a
    /// line, in stored order (duplicates and reordering become visible).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<HttpRequestSpec>,
    /// Cleanup: per key when the URL holds `{seq}` or `{key}`, else one request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete: Option<HttpRequestSpec>,
}

/// One templated HTTP request.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpRequestSpec {
    /// GET (default), POST, PUT, PATCH or DELETE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// `http://host:port/path`, with placeholders.
    pub url: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Request body, with placeholders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Statuses that acknowledge a write (default 200-299); ignored for reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<ExpectStatusSpec>,
}

/// Which statuses count as success.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExpectStatusSpec {
    pub status: StatusRanges,
}

/// A Redis backend over RESP.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RedisWriteSpec {
    /// `redis://[user:password@]host:port[/db]`.
    pub url: String,
    /// `set` (default): SET/GET per key; `list`: RPUSH to one list, LRANGE; `stream`:
    /// XADD to one stream, XRANGE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<RedisMode>,
}

/// How writes are stored in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RedisMode {
    /// `SET {key} {seq}`, read back with GET.
    #[default]
    Set,
    /// `RPUSH {run} {seq}`, read back with LRANGE.
    List,
    /// `XADD {run} * seq {seq}`, read back with XRANGE.
    Stream,
}

/// An HTTP/1.1 request per scheduled send.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpProbeSpec {
    /// `http://host:port/path`.
    pub url: String,
    /// GET (default), HEAD, POST, PUT, PATCH, DELETE or OPTIONS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Deadline for the whole request from its intended send time (default 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
    /// Deadline for establishing the connection (default: `timeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<ExpectSpec>,
    /// `keepAlive` (default): reuse connections; `new`: one connection per request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<ConnectionMode>,
}

/// What a good HTTP response looks like.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExpectSpec {
    /// Accepted statuses (default 200-299).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusRanges>,
    /// A substring the response body must contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_contains: Option<String>,
}

/// Connection policy of an HTTP probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub enum ConnectionMode {
    /// Reuse each connection for many requests (sees a restarted listener late).
    #[default]
    KeepAlive,
    /// Open a new connection for every request (sees "process down" at once).
    New,
}

/// A TCP connect per scheduled send; success is an established connection.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TcpProbeSpec {
    /// `host:port`.
    pub address: String,
    /// Connect deadline from the intended send time (default 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
}

/// The steady-state hypothesis.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SteadyStateSpec {
    /// Length of the window checked before the first fault and again after recovery.
    pub window: Dur,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability: Option<MinAvailability>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyBounds>,
}

/// A lower bound on availability (ok / scheduled).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MinAvailability {
    pub min: Percent,
}

/// Upper bounds on latency percentiles (of successful requests, from intended send time).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LatencyBounds {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50: Option<MaxDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p90: Option<MaxDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95: Option<MaxDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99: Option<MaxDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p999: Option<MaxDuration>,
}

impl LatencyBounds {
    /// The bounds that are set, as (label, quantile, bound).
    pub fn bounds(&self) -> Vec<(&'static str, f64, Dur)> {
        [
            ("p50", 0.50, &self.p50),
            ("p90", 0.90, &self.p90),
            ("p95", 0.95, &self.p95),
            ("p99", 0.99, &self.p99),
            ("p999", 0.999, &self.p999),
        ]
        .into_iter()
        .filter_map(|(label, q, b)| b.as_ref().map(|b| (label, q, b.max)))
        .collect()
    }
}

/// An upper bound on a duration.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MaxDuration {
    pub max: Dur,
}

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

/// Which part of the run a verdict looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub enum During {
    /// Before the first fault.
    Baseline,
    /// From the first fault's start to the last fault's end.
    #[default]
    Faults,
    /// From the last fault's end until steady state holds again.
    Recovery,
    /// The final steady-state window after recovery.
    Steady,
    /// The whole run.
    Run,
}

/// Objectives; each becomes one verdict per probe it applies to.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObjectivesSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability: Option<AvailabilityObjective>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyObjective>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto: Option<RtoObjective>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo: Option<RpoObjective>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_recovery: Option<PodRecoveryObjective>,
}

/// After a pod deletion, the workloads must have Ready replacements within `max`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodRecoveryObjective {
    /// Longest time from the deletion until every replacement is Ready.
    pub max: Dur,
    /// Only this pod fault (default: every pod deletion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
}

/// The measured data-loss window of a write probe must stay under `max`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RpoObjective {
    /// Longest acceptable data-loss window (`0s`: no acknowledged write may be lost).
    pub max: Dur,
    /// Only this write probe (default: every write probe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<String>,
    /// At most this many lost acknowledged writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lost: Option<u64>,
    /// At most this many duplicated writes (list and stream reads only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duplicates: Option<u64>,
    /// At most this many writes stored out of order (list and stream reads only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_out_of_order: Option<u64>,
}

/// Availability over a part of the run must stay at or above `min`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AvailabilityObjective {
    #[serde(default)]
    pub during: During,
    pub min: Percent,
    /// Only this probe (default: every probe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<String>,
}

/// Latency percentiles over a part of the run must stay under their bounds.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LatencyObjective {
    #[serde(default)]
    pub during: During,
    /// Only this probe (default: every probe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50: Option<MaxDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p90: Option<MaxDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95: Option<MaxDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99: Option<MaxDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p999: Option<MaxDuration>,
}

impl LatencyObjective {
    /// The percentile bounds of this objective.
    pub fn bounds(&self) -> LatencyBounds {
        LatencyBounds {
            p50: self.p50.clone(),
            p90: self.p90.clone(),
            p95: self.p95.clone(),
            p99: self.p99.clone(),
            p999: self.p999.clone(),
        }
    }
}

/// Measured recovery time must stay under `max`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RtoObjective {
    pub max: Dur,
    /// Only this probe (default: every probe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<String>,
    /// How long availability must stay at the steady-state level to count as recovered (default 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_for: Option<Dur>,
}

/// Stop conditions, checked live on closed buckets.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AbortSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability: Option<AbortAvailability>,
}

/// Abort when a probe's availability stays below `below` for `for`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AbortAvailability {
    pub below: Percent,
    #[serde(rename = "for")]
    pub for_: Dur,
    /// Only this probe (default: any probe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<String>,
}

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
