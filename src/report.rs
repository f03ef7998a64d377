//! The run report: one data model, rendered for people (terminal, Markdown), for CI
//! (JUnit XML) and for machines (JSON). The JSON form is this model serialized; its
//! field names are a public contract (`schemaVersion` changes when one does).

mod atomic;
#[cfg(test)]
mod fixture;
mod format;
mod json;
mod junit;
mod markdown;
mod terminal;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use json::{report_schema, write_json};
pub use junit::write_junit;
pub use markdown::render_markdown;
pub use terminal::render_terminal;

/// Version of the JSON report format.
pub const SCHEMA_VERSION: &str = "shakeout.report/v1";

/// Everything a run produced.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Always `shakeout.report/v1` for this format.
    pub schema_version: String,
    /// Which experiment ran.
    pub experiment: ExperimentInfo,
    /// How the run went as a whole: status, exit code, seed, timing.
    pub run: RunInfo,
    /// Phases as they happened, on the run's timeline.
    pub phases: Vec<PhaseSpan>,
    /// One entry per probe, in the order of the experiment file.
    pub probes: Vec<ProbeReport>,
    /// One entry per fault, in the order of the experiment file.
    pub faults: Vec<FaultReport>,
    /// Ground-truth events (service starts/exits, stop conditions), on the run's timeline.
    pub events: Vec<Event>,
    /// Every objective and steady-state check, in the order of the experiment file.
    pub verdicts: Vec<Verdict>,
}

/// Which experiment ran.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentInfo {
    /// Experiment name from the file.
    pub name: String,
    /// Path of the experiment file as given.
    pub file: String,
    /// Labels from the experiment file, for grouping runs.
    pub labels: BTreeMap<String, String>,
}

/// How the run went as a whole.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunInfo {
    /// Overall result; decides `exitCode`.
    pub status: RunStatus,
    /// The process exit code this run maps to (see DESIGN.md §5).
    pub exit_code: i32,
    /// Why the run stopped early or could not complete, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Seed of every random choice; `--seed` replays it.
    pub seed: u64,
    /// Wall-clock time of the run origin (t = 0 of every `*Ms` field), RFC 3339.
    pub started_at: String,
    /// Milliseconds from origin to the end of the run.
    pub duration_ms: f64,
    /// Width of the timeline buckets, milliseconds.
    pub bucket_ms: f64,
    /// Version of shakeout that ran the experiment.
    pub shakeout_version: String,
}

/// Overall result of a run, mapped one to one to exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RunStatus {
    /// Every verdict passed (exit 0).
    Met,
    /// At least one objective failed (exit 1).
    Failed,
    /// A stop condition fired; faults reverted (exit 2).
    Aborted,
    /// SIGINT/SIGTERM; faults reverted (exit 2).
    Interrupted,
    /// The experiment could not run (exit 3).
    Error,
    /// A revert could not be confirmed: a person must look (exit 4).
    RevertUnconfirmed,
}

impl RunStatus {
    /// Process exit code for this status (DESIGN.md §5).
    pub fn exit_code(self) -> i32 {
        match self {
            RunStatus::Met => 0,
            RunStatus::Failed => 1,
            RunStatus::Aborted | RunStatus::Interrupted => 2,
            RunStatus::Error => 3,
            RunStatus::RevertUnconfirmed => 4,
        }
    }

    /// The JSON spelling of this status.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Met => "met",
            RunStatus::Failed => "failed",
            RunStatus::Aborted => "aborted",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Error => "error",
            RunStatus::RevertUnconfirmed => "revertUnconfirmed",
        }
    }
}

/// One phase of the run.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PhaseSpan {
    /// `baseline`, `faults`, `recovery` or `steady`.
    pub phase: String,
    /// Start, milliseconds from the run origin.
    pub start_ms: f64,
    /// End, milliseconds from the run origin.
    pub end_ms: f64,
}

/// One probe's results.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProbeReport {
    /// Probe name from the experiment file.
    pub name: String,
    /// `http` or `tcp`.
    pub kind: String,
    /// URL or address probed.
    pub target: String,
    /// Scheduled sends per second.
    pub rate_per_second: f64,
    /// `keepAlive` or `new` for HTTP probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// Bound on concurrent sends; a send due beyond it counts as `missed`.
    pub max_in_flight: u64,
    /// True when the prober's own scheduling lag, not the service, explains the latency.
    pub prober_limited: bool,
    /// Actual send time minus intended send time.
    pub scheduling_lag: LatencySummary,
    /// Per phase (only phases that happened), then the whole run as `run`.
    pub phases: Vec<PhaseReport>,
    /// Measured recovery, when there were faults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto: Option<RtoReport>,
    /// The timeline, one entry per bucket, keyed by intended send time.
    pub timeline: Vec<BucketReport>,
    /// Write probes: what the read-back found (RPO).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write: Option<WriteReport>,
}

/// What a write probe's read-back found (DESIGN.md §4, RPO). Counts are of writes
/// (sequence numbers); the counts the read-back decides are absent when it failed.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WriteReport {
    /// The run-unique prefix of every key written (`{run}`).
    pub run_id: String,
    /// `http` or `redis`.
    pub backend: String,
    /// How writes were read back: `read` or `list` (HTTP); `set`, `list` or `stream` (Redis).
    pub mode: String,
    /// Writes scheduled (sequence numbers `0..scheduled`).
    pub scheduled: u64,
    /// Writes the backend acknowledged.
    pub acknowledged: u64,
    /// Acknowledged writes missing from the read-back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost: Option<u64>,
    /// Writes not acknowledged (failed or timed out) that were stored anyway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unacknowledged_present: Option<u64>,
    /// Writes stored more than once (list and stream reads only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicated: Option<u64>,
    /// Writes first stored after a higher-numbered write (list and stream reads only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_of_order: Option<u64>,
    /// Span of the lost acknowledged writes by intended send time; absent when none was lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_window: Option<LossWindowReport>,
    /// How the read-back went.
    pub read_back: ReadBackReport,
    /// True when the run's keys were left in the backend (`keep: true`, or no delete).
    pub keys_kept: bool,
    /// Why deleting the run's keys failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleanup_error: Option<String>,
}

/// The data-loss window, on the run's timeline (like the faults' `atMs`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LossWindowReport {
    /// Intended send time of the earliest lost acknowledged write, ms from the run origin.
    pub start_ms: f64,
    /// Intended send time of the latest lost acknowledged write, ms from the run origin.
    pub end_ms: f64,
    /// `endMs - startMs + one write interval` (one lost write = one interval): the RPO.
    pub duration_ms: f64,
}

/// The read-back after the run.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadBackReport {
    /// How long it took, milliseconds.
    pub duration_ms: f64,
    /// Read requests sent (retries included).
    pub reads: u64,
    /// Why it did not complete (timeout, unreachable backend); the counts are then absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Outcomes and latency in one phase.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PhaseReport {
    /// `baseline`, `faults`, `recovery`, `steady` or `run`.
    pub phase: String,
    /// Every send that was due, whatever became of it.
    pub scheduled: u64,
    /// Sends that got an ok response.
    pub ok: u64,
    /// ok / scheduled in percent; absent when nothing was scheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_percent: Option<f64>,
    /// Failed sends by kind (`status`, `body`, `timeout`, `connectTimeout`, `refused`, `reset`, `missed`, `other`); zero kinds omitted.
    pub errors: BTreeMap<String, u64>,
    /// Latency of ok responses from their intended send time.
    pub latency: LatencySummary,
}

/// Percentiles of a latency histogram, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LatencySummary {
    /// Number of recorded values; the percentiles are absent when 0.
    pub count: u64,
    /// Smallest value, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ms: Option<f64>,
    /// Mean, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_ms: Option<f64>,
    /// Median, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<f64>,
    /// 90th percentile, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p90_ms: Option<f64>,
    /// 99th percentile, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
    /// 99.9th percentile, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p999_ms: Option<f64>,
    /// Largest value, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ms: Option<f64>,
}

/// Measured recovery of one probe (DESIGN.md §4). Times from the run origin.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RtoReport {
    /// Start of the first fault.
    pub fault_start_ms: f64,
    /// End of the last fault.
    pub fault_end_ms: f64,
    /// Start of the first bucket below the steady-state level after the fault started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failure_ms: Option<f64>,
    /// Start of the first bucket after which availability stayed at the level for `stableForMs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered_ms: Option<f64>,
    /// firstFailure - the start of the latest fault that began at or before it (with
    /// several faults, the one that most plausibly caused the failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_detect_ms: Option<f64>,
    /// recovered - firstFailure: the measured RTO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_recover_ms: Option<f64>,
    /// recovered - faultEnd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault_end_to_recovery_ms: Option<f64>,
    /// Every time above is exact to this much: max(bucket width, 1 / rate).
    pub resolution_ms: f64,
    /// Per-bucket availability that counts as steady, percent.
    pub level_percent: f64,
    /// How long availability had to stay at the level to count as recovered, milliseconds.
    pub stable_for_ms: f64,
    /// Why a time is missing: `no failure observed`, `not recovered before the run ended`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One bucket of the timeline.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BucketReport {
    /// Start of the bucket (intended send time), milliseconds from the run origin.
    pub start_ms: f64,
    /// Sends due in this bucket.
    pub scheduled: u64,
    /// Sends due in this bucket that got an ok response.
    pub ok: u64,
    /// Failed sends by kind; zero kinds omitted.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, u64>,
    /// 99th percentile latency of ok responses, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
    /// Largest latency of an ok response, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ms: Option<f64>,
}

/// What a fault did.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FaultReport {
    /// Fault name from the experiment file.
    pub name: String,
    /// `exec`.
    pub kind: String,
    /// Planned start, from origin.
    pub at_ms: f64,
    /// How long the fault was meant to stay applied, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_duration_ms: Option<f64>,
    /// `pending` (never started), `applied`, `reverted`, `failed`, `revertFailed`.
    pub status: String,
    /// The command that applied the fault, once it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply: Option<ActionReport>,
    /// The command that reverted the fault, once it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revert: Option<ActionReport>,
    /// For `network` and `process` faults: what the node agent did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentActionReport>,
    /// For faults on `pods`: what the agent on each chosen pod's node did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<AgentActionReport>,
    /// For `pod` faults and faults on `pods`: which pods were chosen, what happened to
    /// them and, for deletions, how long their workloads took to replace them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<PodFaultReport>,
    /// Why the fault failed when none of the above says it (its task panicked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Pods chosen by a fault, and for a deletion, the recovery of their workloads.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodFaultReport {
    pub namespace: String,
    /// Label and field selectors, as written.
    pub selector: String,
    /// `one`, `all`, `fixed`, `percent`.
    pub mode: String,
    /// The run's seed; the pods are chosen with it mixed with the fault's name, so
    /// `--seed` replays the same choice from the same pods.
    pub seed: u64,
    /// Pods that matched (not already terminating).
    pub matched: u64,
    /// The pods chosen, in name order.
    pub chosen: Vec<crate::kube::pods::PodRef>,
    /// The API server checked the deletion (`dryRun=All`) and nothing was deleted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// Pods the API server accepted the deletion of.
    pub deleted: u64,
    /// When the first deletion was sent, ms from origin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_ms: Option<f64>,
    /// `recovered`, `notRecovered`, `noOwner` (bare pods: nothing replaces them),
    /// `notMeasured` (dry run, or nothing deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<String>,
    /// From the first deletion until every owner had its Ready count back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_ms: Option<f64>,
    /// The recovery time is a multiple of this polling interval (it may be late by up to one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_resolution_ms: Option<f64>,
    /// What went wrong (per pod), or why recovery was not seen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// A fault applied through a node agent, and how its lease and revert went.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentActionReport {
    /// Agent name (`embedded` for the controller's own; the agent pod's name in a cluster).
    pub agent: String,
    pub url: String,
    /// The pod this fault targets (`namespace/name`), for faults on `pods`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The agent's id for the fault (absent when apply failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault_id: Option<String>,
    /// `netem`, `nftables` or `nfqueue` for network faults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mechanism: Option<String>,
    /// Processes the agent touched, as `pid name`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// When the agent confirmed the apply, ms from origin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_ms: Option<f64>,
    /// When the agent confirmed the revert, ms from origin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverted_ms: Option<f64>,
    /// Lease renewals that succeeded.
    pub renewals: u64,
    /// Renewals that failed (the agent reverts at its deadline if they keep failing).
    pub renew_failures: u64,
    /// What went wrong, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One command run by an exec fault (or its revert).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionReport {
    /// Program and arguments, as executed.
    pub command: Vec<String>,
    /// When the command started, milliseconds from the run origin.
    pub started_ms: f64,
    /// When the command ended, milliseconds from the run origin.
    pub ended_ms: f64,
    /// Exit status, when the process exited normally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Signal that ended the process, when it was killed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// True when the command did what was asked (exit status 0).
    pub success: bool,
    /// Last bytes of standard output (at most 4 KiB).
    pub stdout: String,
    /// Last bytes of standard error (at most 4 KiB).
    pub stderr: String,
    /// Why the command could not run or was killed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A ground-truth event on the timeline.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// When it happened, milliseconds from the run origin.
    pub at_ms: f64,
    /// `service`, `fault`, `abort`, `signal`, `run`.
    pub source: String,
    /// What happened, human readable.
    pub message: String,
}

/// One checked objective or steady-state hypothesis.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    /// Stable identifier, e.g. `availability/checkout/faults`.
    pub id: String,
    /// `availability`, `latency`, `rto`, `steadyState`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<String>,
    /// Phase looked at (`baseline`, `faults`, `recovery`, `steady`, `run`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub during: Option<String>,
    /// Pass, fail, or not measured.
    pub status: VerdictStatus,
    /// What was measured, human readable (e.g. `97.3%`, `412ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured: Option<String>,
    /// What was required (e.g. `>= 95%`, `<= 500ms`).
    pub required: String,
    /// Why it was not measured, or extra context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Result of one verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum VerdictStatus {
    /// The objective was met.
    Pass,
    /// The objective was not met; `measured` and `required` say by how much.
    Fail,
    /// There was nothing to judge (e.g. no ok responses in the phase); `note` says why.
    NotMeasured,
}

impl VerdictStatus {
    /// Lower-case words for people (`not measured`), not the JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            VerdictStatus::Pass => "pass",
            VerdictStatus::Fail => "fail",
            VerdictStatus::NotMeasured => "not measured",
        }
    }
}

/// Milliseconds as f64 from a Duration (reports use fractional ms).
pub fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
