//! The JSON report as tests read it: small types of our own over the documented contract
//! (`docs/report.md`), covering the fields the tests check, with lookups by name and id.
//! Anything else stays reachable as JSON ([`Report::json`]).
//!
//! Reading holds the report to its contract: an optional field is omitted, never `null`
//! (a `null` fails the read), and a field of the wrong type fails it too.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// An optional field of the contract: absent is `None`; present must be a `T` (not null).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub run: Run,
    /// Run-wide warnings (`tls.insecureSkipVerify`); omitted when none.
    #[serde(default)]
    pub warnings: Vec<String>,
    pub probes: Vec<Probe>,
    pub faults: Vec<Fault>,
    /// Omitted when no service was started.
    #[serde(default)]
    pub services: Vec<Service>,
    pub verdicts: Vec<Verdict>,
    pub events: Vec<Event>,
    /// What each PromQL objective and stop condition saw; omitted when none.
    #[serde(default)]
    pub promql: Vec<Promql>,
    /// What polling each alert saw; omitted when none.
    #[serde(default)]
    pub alerts: Vec<Alert>,
    #[serde(skip)]
    json: Value,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    /// `met`, `failed`, `aborted`, `interrupted`, `error`, `revertUnconfirmed`
    pub status: String,
    pub exit_code: i32,
    #[serde(default, deserialize_with = "present")]
    pub reason: Option<String>,
    pub started_at: String,
    pub duration_ms: f64,
    pub bucket_ms: f64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    pub name: String,
    pub phases: Vec<Phase>,
    #[serde(default, deserialize_with = "present")]
    pub rto: Option<Rto>,
    pub timeline: Vec<Bucket>,
    #[serde(default, deserialize_with = "present")]
    pub write: Option<Write>,
    #[serde(default, deserialize_with = "present")]
    pub version: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub connection_setup: Option<ConnectionSetup>,
    #[serde(default, deserialize_with = "present")]
    pub tls: Option<Tls>,
    #[serde(default, deserialize_with = "present")]
    pub grpc: Option<Grpc>,
}

/// What a gRPC health probe saw besides SERVING.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Grpc {
    pub service: String,
    /// Calls that ended with a status other than OK, by code name; zero codes omitted.
    #[serde(default)]
    pub statuses: BTreeMap<String, u64>,
    #[serde(default)]
    pub status_messages: BTreeMap<String, String>,
}

/// Connections a probe opened and their cost.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionSetup {
    pub opened: u64,
    pub tcp_connect: Latency,
    #[serde(default, deserialize_with = "present")]
    pub tls_handshake: Option<Latency>,
}

/// What an https:// probe saw of TLS.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tls {
    pub insecure_skip_verify: bool,
    /// Failed handshakes by reason; zero reasons omitted.
    #[serde(default)]
    pub failures: BTreeMap<String, u64>,
    #[serde(default, deserialize_with = "present")]
    pub certificate: Option<Certificate>,
    pub certificate_changes: u64,
}

/// A served leaf certificate.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Certificate {
    pub subject: String,
    pub issuer: String,
    pub not_after: String,
}

/// A probe's counts over one phase (`baseline`, `faults`, `recovery`, `steady`, `run`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Phase {
    pub phase: String,
    pub scheduled: u64,
    pub ok: u64,
    #[serde(default, deserialize_with = "present")]
    pub availability_percent: Option<f64>,
    /// Failed sends by kind; kinds with a zero count are omitted.
    pub errors: BTreeMap<String, u64>,
    pub latency: Latency,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Latency {
    pub count: u64,
    #[serde(default, deserialize_with = "present")]
    pub p50_ms: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rto {
    pub resolution_ms: f64,
    #[serde(default, deserialize_with = "present")]
    pub first_failure_ms: Option<f64>,
    #[serde(default, deserialize_with = "present")]
    pub time_to_recover_ms: Option<f64>,
    #[serde(default, deserialize_with = "present")]
    pub note: Option<String>,
}

/// One timeline bucket.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bucket {
    pub start_ms: f64,
    pub scheduled: u64,
    pub ok: u64,
}

/// What a write probe's read-back found (RPO).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Write {
    pub scheduled: u64,
    pub acknowledged: u64,
    #[serde(default, deserialize_with = "present")]
    pub lost: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    pub unacknowledged_present: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    pub duplicated: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    pub out_of_order: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    pub loss_window: Option<LossWindow>,
    pub keys_kept: bool,
    #[serde(default, deserialize_with = "present")]
    pub cleanup_error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LossWindow {
    pub start_ms: f64,
    pub end_ms: f64,
    pub duration_ms: f64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    pub name: String,
    /// `pending`, `applied`, `reverted`, `failed`, `revertFailed`, `dryRun`, `skipped`
    pub status: String,
    /// Why a skipped fault was skipped.
    #[serde(default, deserialize_with = "present")]
    pub reason: Option<String>,
    /// The exec command that applied it, and the one that reverted it.
    #[serde(default, deserialize_with = "present")]
    pub apply: Option<Action>,
    #[serde(default, deserialize_with = "present")]
    pub revert: Option<Action>,
    /// What the node agent did.
    #[serde(default, deserialize_with = "present")]
    pub agent: Option<AgentAction>,
    /// One per pod, for faults on pods.
    #[serde(default)]
    pub agents: Vec<AgentAction>,
    #[serde(default, deserialize_with = "present")]
    pub pods: Option<Pods>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Action {
    pub started_ms: f64,
    pub ended_ms: f64,
    #[serde(default, deserialize_with = "present")]
    pub exit_code: Option<i32>,
    pub stderr: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentAction {
    pub agent: String,
    pub url: String,
    #[serde(default, deserialize_with = "present")]
    pub pod: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub fault_id: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub mechanism: Option<String>,
    /// Processes the agent touched, as `pid name`.
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default, deserialize_with = "present")]
    pub applied_ms: Option<f64>,
    #[serde(default, deserialize_with = "present")]
    pub reverted_ms: Option<f64>,
    #[serde(default, deserialize_with = "present")]
    pub error: Option<String>,
}

/// A fault on pods: what was matched, chosen and deleted, and the recovery.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pods {
    /// The label selector as written in the file.
    pub selector: String,
    #[serde(default, deserialize_with = "present")]
    pub field_selector: Option<String>,
    pub matched: u64,
    pub deleted: u64,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub evict: bool,
    #[serde(default)]
    pub disruption_budgets: Vec<String>,
    #[serde(default, deserialize_with = "present")]
    pub recovery_resolution_ms: Option<f64>,
    /// `watch` or `poll`
    #[serde(default, deserialize_with = "present")]
    pub recovery_method: Option<String>,
    /// `recovered`, `notRecovered`, `noOwner`, `notMeasured`
    #[serde(default, deserialize_with = "present")]
    pub recovery: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub recovery_ms: Option<f64>,
    #[serde(default)]
    pub errors: Vec<String>,
}

/// A supervised service: its starts and exits, why it was given up on, its last output.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    pub name: String,
    pub starts: Vec<ServiceStart>,
    pub exits: Vec<ServiceExit>,
    pub restarts: u64,
    #[serde(default, deserialize_with = "present")]
    pub failed: Option<ServiceFailure>,
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
    #[serde(default, deserialize_with = "present")]
    pub log: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStart {
    pub at_ms: f64,
    pub pid: u32,
    #[serde(default, deserialize_with = "present")]
    pub ready_ms: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceExit {
    pub at_ms: f64,
    pub pid: u32,
    #[serde(default, deserialize_with = "present")]
    pub exit_code: Option<i32>,
    #[serde(default, deserialize_with = "present")]
    pub signal: Option<i32>,
    #[serde(default)]
    pub stopped: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceFailure {
    pub at_ms: f64,
    pub reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    pub id: String,
    /// `pass`, `fail`, `notMeasured`
    pub status: String,
    pub required: String,
    #[serde(default, deserialize_with = "present")]
    pub measured: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub note: Option<String>,
}

/// One PromQL query's evaluations.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Promql {
    pub name: String,
    /// `objective` or `abort`.
    pub role: String,
    pub evaluations: u64,
    pub failures: u64,
    pub no_data: u64,
    pub errors: u64,
    #[serde(default)]
    pub range: Option<Value>,
}

/// One alert's state changes, as polled.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub name: String,
    pub poll_ms: f64,
    #[serde(default, deserialize_with = "present")]
    pub evaluation_interval_ms: Option<f64>,
    pub polls: u64,
    #[serde(default)]
    pub changes: Vec<AlertChange>,
    #[serde(default)]
    pub others: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertChange {
    pub at_ms: f64,
    pub unix_ms: f64,
    pub firing: bool,
}

/// Ground truth on the timeline: service starts and exits, faults, signals.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub at_ms: f64,
    pub source: String,
    pub message: String,
}

impl Report {
    /// The report in `json`; panics when it breaks the contract.
    pub fn from_json(json: Value) -> Report {
        let mut report = Report::deserialize(&json).unwrap_or_else(|e| {
            panic!("the report does not read as its contract says: {e}\n{json:#}")
        });
        report.json = json;
        report
    }

    /// The report written to `path`, if there is one.
    pub fn read(path: &Path) -> Option<Report> {
        let text = std::fs::read_to_string(path).ok()?;
        let json: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}\n{text}", path.display()));
        // `--dry-run --json` writes a plan, not a report: tests read it as JSON.
        if json["schema"] == "shakeout.dryRun/v1" {
            return None;
        }
        Some(Report::from_json(json))
    }

    /// The whole report as JSON, for what the types here do not cover.
    pub fn json(&self) -> &Value {
        &self.json
    }

    #[track_caller]
    pub fn probe(&self, name: &str) -> &Probe {
        self.probes
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no probe {name} in {:#}", self.json["probes"]))
    }

    #[track_caller]
    pub fn fault(&self, name: &str) -> &Fault {
        self.faults
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no fault {name} in {:#}", self.json["faults"]))
    }

    #[track_caller]
    pub fn service(&self, name: &str) -> &Service {
        self.services
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no service {name} in {:#}", self.json["services"]))
    }

    #[track_caller]
    pub fn promql(&self, name: &str) -> &Promql {
        self.promql
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no promql `{name}` in the report: {:#?}", self.promql))
    }

    pub fn alert(&self, name: &str) -> &Alert {
        self.alerts
            .iter()
            .find(|a| a.name == name)
            .unwrap_or_else(|| panic!("no alert `{name}` in the report: {:#?}", self.alerts))
    }

    pub fn verdict(&self, id: &str) -> &Verdict {
        self.verdicts
            .iter()
            .find(|v| v.id == id)
            .unwrap_or_else(|| panic!("no verdict {id} in {:#}", self.json["verdicts"]))
    }

    /// Whether an event's message contains `needle`.
    pub fn has_event(&self, needle: &str) -> bool {
        self.events.iter().any(|e| e.message.contains(needle))
    }

    /// The time of the last event whose message contains `needle`.
    #[track_caller]
    pub fn event_ms(&self, needle: &str) -> f64 {
        self.events
            .iter()
            .rfind(|e| e.message.contains(needle))
            .unwrap_or_else(|| panic!("no event `{needle}` in {:#}", self.json["events"]))
            .at_ms
    }
}

impl Probe {
    #[track_caller]
    pub fn phase(&self, name: &str) -> &Phase {
        self.phases
            .iter()
            .find(|p| p.phase == name)
            .unwrap_or_else(|| panic!("probe {}: no phase {name} in {:#?}", self.name, self.phases))
    }

    #[track_caller]
    pub fn rto(&self) -> &Rto {
        self.rto
            .as_ref()
            .unwrap_or_else(|| panic!("probe {}: no rto", self.name))
    }

    #[track_caller]
    pub fn tls(&self) -> &Tls {
        self.tls
            .as_ref()
            .unwrap_or_else(|| panic!("probe {}: no tls", self.name))
    }

    #[track_caller]
    pub fn grpc(&self) -> &Grpc {
        self.grpc
            .as_ref()
            .unwrap_or_else(|| panic!("probe {} has no grpc report", self.name))
    }

    pub fn connection_setup(&self) -> &ConnectionSetup {
        self.connection_setup
            .as_ref()
            .unwrap_or_else(|| panic!("probe {}: no connectionSetup", self.name))
    }

    #[track_caller]
    pub fn write(&self) -> &Write {
        self.write
            .as_ref()
            .unwrap_or_else(|| panic!("probe {}: no write", self.name))
    }
}

impl Phase {
    /// Failed sends of `kind` (0 when none: zero counts are omitted).
    pub fn errors(&self, kind: &str) -> u64 {
        self.errors.get(kind).copied().unwrap_or(0)
    }
}

impl Fault {
    #[track_caller]
    pub fn agent(&self) -> &AgentAction {
        self.agent
            .as_ref()
            .unwrap_or_else(|| panic!("fault {}: no agent", self.name))
    }

    #[track_caller]
    pub fn pods(&self) -> &Pods {
        self.pods
            .as_ref()
            .unwrap_or_else(|| panic!("fault {}: no pods", self.name))
    }

    #[track_caller]
    pub fn apply(&self) -> &Action {
        self.apply
            .as_ref()
            .unwrap_or_else(|| panic!("fault {}: no apply", self.name))
    }

    #[track_caller]
    pub fn revert(&self) -> &Action {
        self.revert
            .as_ref()
            .unwrap_or_else(|| panic!("fault {}: no revert", self.name))
    }
}
