//! What the verdicts say: each checked objective, the measured recovery of each probe,
//! and the run's overall status (one to one with exit codes). The report shows them as
//! they are.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
