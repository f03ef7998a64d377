//! What a write probe's read-back found (DESIGN.md §4, RPO): the probe owns it, the
//! report shows it as `probes[].write`, the RPO verdicts judge it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
