//! The run record: what a run did and saw, as the runner hands it over — probe
//! recordings, fault outcomes, write read-backs, supervised services, events, the phases'
//! timeline and why the run stopped. `verdict` judges it and `report` presents it; neither
//! is written by the runner. The outcome types serialize as the report's `faults`,
//! `services` and `events` (their JSON names are the report's contract).

use std::time::{Duration, SystemTime};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::probe::write::WriteReport;
use crate::probe::{Phase, ProbeConfig, ProbeRecording};

/// Everything a finished run hands over.
#[derive(Debug)]
pub struct RunRecord {
    pub seed: u64,
    pub started_at: SystemTime,
    /// Length of the run, from the origin.
    pub end: Duration,
    /// Width of the timeline's buckets.
    pub bucket: Duration,
    pub configs: Vec<ProbeConfig>,
    pub recordings: Vec<ProbeRecording>,
    /// What each write probe's read-back found (`None` for other probes).
    pub writes: Vec<Option<WriteReport>>,
    pub timeline: Timeline,
    pub stop: Stop,
    pub faults: Vec<FaultRecord>,
    /// What each supervised service did, in the order of the experiment file.
    pub services: Vec<ServiceRecord>,
    pub events: Vec<Event>,
    /// What the monitoring system showed: PromQL evaluations and alerts.
    pub monitor: crate::monitor::MonitorRecord,
}

/// Why the run stopped.
#[derive(Debug, Clone, PartialEq)]
pub enum Stop {
    /// The final steady-state window (or the plan) completed.
    Done,
    /// The hard `duration` was reached.
    Duration,
    /// The steady state did not hold before the first fault: nothing was injected.
    SteadyStateBefore(String),
    /// A stop condition fired.
    Aborted(String),
    /// A supervised service failed for good after the faults started (crash loop, or it
    /// could not be restarted): the steady state cannot come back.
    ServiceFailed(String),
    /// SIGINT or SIGTERM.
    Interrupted,
}

/// Phase boundaries as they happened, from origin.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    pub faults_start: Option<Duration>,
    pub faults_end: Option<Duration>,
    pub steady_start: Option<Duration>,
    pub steady_end: Option<Duration>,
    /// Buckets up to here were used to decide recovery.
    pub recovery_horizon: Option<Duration>,
}

impl Timeline {
    /// Phase spans as they happened: (phase, start, end) from origin, for a run that
    /// lasted until `end`.
    pub fn spans(&self, end: Duration) -> Vec<(Phase, Duration, Duration)> {
        let mut spans = Vec::new();
        let baseline_end = self.faults_start.or(self.steady_start).unwrap_or(end);
        spans.push((Phase::Baseline, Duration::ZERO, baseline_end));
        if let Some(fs) = self.faults_start {
            let fe = self.faults_end.unwrap_or(end);
            spans.push((Phase::Faults, fs, fe));
            if self.faults_end.is_some() {
                spans.push((Phase::Recovery, fe, self.steady_start.unwrap_or(end)));
            }
        }
        if let Some(ss) = self.steady_start {
            spans.push((Phase::Steady, ss, self.steady_end.unwrap_or(end)));
        }
        spans
    }
}

/// What became of a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum FaultStatus {
    /// Never started (the run ended or stopped before its `at`).
    Pending,
    /// Applied, and nothing to revert (a kill, a pod deletion, an exec without revert).
    Applied,
    /// Applied, then reverted (and the revert confirmed).
    Reverted,
    /// The apply failed.
    Failed,
    /// The revert could not be confirmed: a person must look.
    RevertFailed,
    /// A server-side dry run: checked, nothing changed.
    DryRun,
    /// Not run on purpose; `reason` says why (e.g. the demo without root skips its
    /// network fault).
    Skipped,
}

impl FaultStatus {
    /// The JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultStatus::Pending => "pending",
            FaultStatus::Applied => "applied",
            FaultStatus::Reverted => "reverted",
            FaultStatus::Failed => "failed",
            FaultStatus::RevertFailed => "revertFailed",
            FaultStatus::DryRun => "dryRun",
            FaultStatus::Skipped => "skipped",
        }
    }

    /// The worse of two outcomes (for a fault made of several actions).
    pub fn worst(self, other: FaultStatus) -> FaultStatus {
        let rank = |s: FaultStatus| match s {
            FaultStatus::RevertFailed => 5,
            FaultStatus::Failed => 4,
            FaultStatus::Pending => 3,
            FaultStatus::Applied => 2,
            FaultStatus::Reverted => 1,
            FaultStatus::DryRun | FaultStatus::Skipped => 0,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

impl std::fmt::Display for FaultStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a fault did.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "FaultReport")]
pub struct FaultRecord {
    /// Fault name from the experiment file.
    pub name: String,
    /// `exec`.
    pub kind: String,
    /// Planned start, from origin.
    pub at_ms: f64,
    /// How long the fault was meant to stay applied, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_duration_ms: Option<f64>,
    /// What became of it.
    pub status: FaultStatus,
    /// The command that applied the fault, once it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply: Option<ActionRecord>,
    /// The command that reverted the fault, once it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revert: Option<ActionRecord>,
    /// For `network` and `process` faults: what the node agent did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentActionRecord>,
    /// For faults on `pods`: what the agent on each chosen pod's node did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<AgentActionRecord>,
    /// For `pod` faults and faults on `pods`: which pods were chosen, what happened to
    /// them and, for deletions, how long their workloads took to replace them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<PodFaultRecord>,
    /// Why the fault failed when none of the above says it (its task panicked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why the fault was not run (status `skipped`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Whether a pod deletion's workloads replaced the deleted pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum PodRecovery {
    /// Every owner had its Ready count back.
    Recovered,
    /// Not within `recoveryTimeout` or before the run ended.
    NotRecovered,
    /// Bare pods: nothing replaces them.
    NoOwner,
    /// A dry run, or nothing was deleted.
    NotMeasured,
}

/// A pod a fault chose, as the report shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "PodRef")]
pub struct ChosenPod {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// Node the pod runs on (empty while unscheduled).
    pub node: String,
    /// The controlling owner, as `Kind/name` (none for a bare pod).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// Pods chosen by a fault, and for a deletion, the recovery of their workloads.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "PodFaultReport")]
pub struct PodFaultRecord {
    pub namespace: String,
    /// The label selector, as written in the file (`app=checkout`); empty when the
    /// fault names none (every pod of the namespace).
    pub selector: String,
    /// The field selector, as written in the file, when it names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_selector: Option<String>,
    /// `one`, `all`, `fixed N`, `percent P%`.
    pub mode: String,
    /// The run's seed; the pods are chosen with it mixed with the fault's name, so
    /// `--seed` replays the same choice from the same pods.
    pub seed: u64,
    /// Pods that matched (not already terminating).
    pub matched: u64,
    /// The pods chosen, in name order.
    pub chosen: Vec<ChosenPod>,
    /// The API server checked the deletion (`dryRun=All`) and nothing was deleted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// The pods were evicted through the Eviction API (disruption budgets honoured), not
    /// deleted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub evict: bool,
    /// Pods the API server accepted the deletion (or eviction) of.
    pub deleted: u64,
    /// Each PodDisruptionBudget the deletion went against (a plain delete ignores them),
    /// or each eviction a budget blocked: one sentence each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disruption_budgets: Vec<String>,
    /// When the first deletion was sent, ms from origin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_ms: Option<f64>,
    /// Whether the deleted pods' workloads replaced them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<PodRecovery>,
    /// From the first deletion until every owner had its Ready count back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_ms: Option<f64>,
    /// How late the recovery time may be: 1 when the pods were watched (each change
    /// timed as it arrived), the polling interval (200) when they were listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_resolution_ms: Option<f64>,
    /// How the replacements were followed: `watch`, or `poll` when the account may not
    /// watch pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_method: Option<String>,
    /// What went wrong (per pod), or why recovery was not seen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// A fault applied through a node agent, and how its lease and revert went.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "AgentActionReport")]
pub struct AgentActionRecord {
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
#[schemars(rename = "ActionReport")]
pub struct ActionRecord {
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

/// What a supervised service did during the run: every start and exit, its restarts,
/// whether the supervisor gave up on it, and the last lines it printed.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "ServiceReport")]
pub struct ServiceRecord {
    /// Service name from the experiment file.
    pub name: String,
    /// Program and arguments, as started.
    pub command: Vec<String>,
    /// Each start, the first one and every restart (at most 1,000 kept).
    pub starts: Vec<ServiceStart>,
    /// Each exit, the final stop included (at most 1,000 kept).
    pub exits: Vec<ServiceExit>,
    /// How many times the supervisor restarted it.
    pub restarts: u64,
    /// Why the supervisor gave up on it (a crash loop, or it could not be restarted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<ServiceFailure>,
    /// Its last lines on standard output (at most 50 lines and 8 KiB; longer lines cut).
    pub stdout: Vec<String>,
    /// Its last lines on standard error (at most 50 lines and 8 KiB; longer lines cut).
    pub stderr: Vec<String>,
    /// The file everything it printed was appended to (`log` in the experiment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
}

/// One start of a supervised service.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStart {
    /// When it was started, milliseconds from the run origin (negative: before probing).
    pub at_ms: f64,
    pub pid: u32,
    /// When its readiness check first passed (absent: it has none, or it never passed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_ms: Option<f64>,
}

/// One exit of a supervised service.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceExit {
    /// When it was seen to exit, milliseconds from the run origin.
    pub at_ms: f64,
    pub pid: u32,
    /// Exit status, when the process exited normally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Signal that ended the process, when it was killed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// True when shakeout stopped it (at the end of the run, or after a failed start).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stopped: bool,
}

/// Why the supervisor gave up on a service.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceFailure {
    /// When it gave up, milliseconds from the run origin.
    pub at_ms: f64,
    /// What happened, with the service's last output (also the run's reason).
    pub reason: String,
}

impl ServiceExit {
    /// Whether this exit looks like the service's own failure rather than a stop: a
    /// non-zero exit code, or a signal a crash raises (SEGV, ABRT, BUS, FPE, ILL). A kill
    /// or TERM, which faults and people send, is not.
    pub fn crashed(&self) -> bool {
        use nix::sys::signal::Signal;
        let crash = |s: i32| {
            Signal::try_from(s).is_ok_and(|s| {
                matches!(
                    s,
                    Signal::SIGSEGV
                        | Signal::SIGABRT
                        | Signal::SIGBUS
                        | Signal::SIGFPE
                        | Signal::SIGILL
                )
            })
        };
        !self.stopped && (self.exit_code.is_some_and(|c| c != 0) || self.signal.is_some_and(crash))
    }
}

impl ServiceRecord {
    /// Whether a person should look at it: the supervisor gave up, or it crashed.
    pub fn misbehaved(&self) -> bool {
        self.failed.is_some() || self.exits.iter().any(ServiceExit::crashed)
    }
}
