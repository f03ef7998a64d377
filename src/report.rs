//! The run report: one data model, rendered for people (terminal, Markdown), for CI
//! (JUnit XML) and for machines (JSON). The JSON form is this model serialized; its
//! field names are a public contract (`schemaVersion` changes when one does).

mod atomic;
pub use atomic::write_atomic;
mod build;
mod connection;
#[cfg(test)]
mod fixture;
mod format;
mod grpc;
mod json;
mod junit;
mod markdown;
mod terminal;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::monitor::{
    AlertChange, AlertRecord as AlertReport, PromqlRange, PromqlRecord as PromqlReport,
    PromqlSample,
};
pub use crate::probe::write::{LossWindowReport, ReadBackReport, WriteReport};
pub use crate::record::{
    ActionRecord as ActionReport, AgentActionRecord as AgentActionReport, ChosenPod, Event,
    FaultRecord as FaultReport, FaultStatus, PodFaultRecord as PodFaultReport, PodRecovery,
    ServiceExit, ServiceFailure, ServiceRecord as ServiceReport, ServiceStart,
};
pub use crate::text::ms;
pub use crate::verdict::{RtoReport, RunStatus, Verdict, VerdictStatus};
pub use build::{build, error_report, latency_summary};
pub use connection::{CertificateReport, ConnectionSetupReport, TlsReport};
pub use grpc::GrpcReport;
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
    /// What a reader must not miss whatever the verdicts say, like a probe that verified
    /// no certificate (`tls.insecureSkipVerify`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Phases as they happened, on the run's timeline.
    pub phases: Vec<PhaseSpan>,
    /// One entry per probe, in the order of the experiment file.
    pub probes: Vec<ProbeReport>,
    /// One entry per fault, in the order of the experiment file.
    pub faults: Vec<FaultReport>,
    /// One entry per supervised service shakeout set out to start, in the order of the
    /// experiment file: starts, exits, restarts, a crash loop, the last output.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceReport>,
    /// Ground-truth events (service starts/exits, stop conditions), on the run's timeline.
    pub events: Vec<Event>,
    /// Every objective and steady-state check, in the order of the experiment file.
    pub verdicts: Vec<Verdict>,
    /// What each PromQL objective and stop condition saw (bounded: counts, extremes,
    /// the first failures, the phase as a range query).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub promql: Vec<PromqlReport>,
    /// What polling each alert saw: its changes of state on the run's timeline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<AlertReport>,
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
    /// `http`, `tcp`, `grpc` or `write`.
    pub kind: String,
    /// URL or address probed.
    pub target: String,
    /// Scheduled sends per second.
    pub rate_per_second: f64,
    /// `keepAlive` or `new` for HTTP probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// `auto`, `http1` or `http2` for HTTP probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Connections opened and what opening them cost (HTTP probes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_setup: Option<ConnectionSetupReport>,
    /// https:// probes: the certificate served, handshake failures by reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsReport>,
    /// gRPC probes: the service asked about, statuses other than OK by code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcReport>,
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
    /// Failed sends by kind (`status`, `body`, `notServing`, `grpcStatus`, `timeout`, `connectTimeout`, `refused`, `reset`, `tls`, `missed`, `other`); zero kinds omitted.
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
