//! What the monitoring system saw during a run: PromQL queries evaluated at their
//! interval (objectives and stop conditions) and alerts polled from Alertmanager or
//! Prometheus, stamped on the run's timeline. Every task is async and only waits on the
//! network, so the probes' runtime is never blocked; what is kept is bounded (counts,
//! extremes, a few failed samples, state changes) however long the run.

mod alerts;
mod client;
mod promql;
mod tls;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::experiment::Experiment;
use crate::probe::Phase;
pub use client::{encode, unix, Api, Sample};

/// Most failed evaluations kept per query, and state changes per alert.
pub const MAX_KEPT: usize = 20;
/// Most other alert names kept as "seen instead".
const MAX_OTHERS: usize = 20;

/// Why monitoring could not start.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// The file's monitoring settings cannot be used (a token that cannot be read...).
    #[error("{0}")]
    Config(String),
    /// The server could not be asked (connection, timeout, not JSON).
    #[error("{0}")]
    Request(String),
    /// The server answered with an error (a bad query: Prometheus's own message).
    #[error("{0}")]
    Refused(String),
}

/// One evaluation that broke its comparison (or, for a stop condition, met it).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromqlSample {
    /// Milliseconds from the run origin.
    pub at_ms: f64,
    /// The phase it fell in.
    pub phase: String,
    pub value: f64,
    /// The series the value is of.
    pub series: String,
}

/// The query over its whole phase, asked once after the run (`/api/v1/query_range`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromqlRange {
    pub start_ms: f64,
    pub end_ms: f64,
    pub step_ms: f64,
    /// Points over every series.
    pub points: u64,
    /// Points that broke the comparison.
    pub breaking: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Why there is no answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What one PromQL objective or stop condition saw.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromqlRecord {
    pub name: String,
    /// `objective` or `abort`.
    pub role: String,
    pub query: String,
    /// `value COMPARATOR threshold`, as the file says it.
    pub comparison: String,
    /// The phase judged (`run` for stop conditions).
    pub during: String,
    pub every_ms: f64,
    /// Evaluations during the phase judged that gave a value.
    pub evaluations: u64,
    /// Of those, how many broke the comparison (stop conditions: met it).
    pub failures: u64,
    /// Evaluations during the phase whose query returned no series.
    pub no_data: u64,
    /// Evaluations during the phase the server did not answer or refused.
    pub errors: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<f64>,
    /// The first failures (at most 20).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<PromqlSample>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    /// Evaluations over the whole run, whatever the phase.
    pub total_evaluations: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<PromqlRange>,
}

/// The alert appearing (`firing: true`) or going away, as a poll saw it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertChange {
    /// Milliseconds from the run origin.
    pub at_ms: f64,
    /// Wall clock, milliseconds since the Unix epoch (to compare with Prometheus).
    pub unix_ms: f64,
    pub firing: bool,
}

/// What polling one alert saw.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertRecord {
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `alertmanager` or `prometheus`.
    pub source: String,
    pub poll_ms: f64,
    /// The rule's evaluation interval, as Prometheus reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation_interval_ms: Option<f64>,
    /// Where the evaluation interval came from, or why it is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation_interval_note: Option<String>,
    pub polls: u64,
    pub errors: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    /// Each change of state, in order (at most 20).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<AlertChange>,
    /// Whether it was firing at the last poll.
    pub firing_at_end: bool,
    /// Other alerts seen firing (at most 20 names).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub others: Vec<String>,
}

/// What monitoring saw over the run.
#[derive(Debug, Clone, Default)]
pub struct MonitorRecord {
    pub promql: Vec<PromqlRecord>,
    pub alerts: Vec<AlertRecord>,
}

/// A note on the run's event log: (source, message).
pub type Note = Arc<dyn Fn(&str, String) + Send + Sync>;

/// The run's phase, set by the runner and read by the monitors.
#[derive(Clone, Default)]
pub struct PhaseCell(Arc<AtomicU8>);

impl PhaseCell {
    pub fn set(&self, p: Phase) {
        self.0.store(p as u8, Ordering::Relaxed);
    }

    pub fn get(&self) -> Phase {
        match self.0.load(Ordering::Relaxed) {
            0 => Phase::Baseline,
            1 => Phase::Faults,
            2 => Phase::Recovery,
            _ => Phase::Steady,
        }
    }
}

/// The servers the experiment names, reached and checked before anything runs.
pub struct Servers {
    prometheus: Option<Api>,
    alertmanager: Option<Api>,
}

/// Whether the experiment asks anything of a monitoring system.
pub fn wanted(exp: &Experiment) -> bool {
    let spec = &exp.file.spec;
    !spec.objectives.promql.is_empty()
        || spec.abort.as_ref().is_some_and(|a| !a.promql.is_empty())
        || !spec.alerts.is_empty()
}

/// Reach the servers and try every query once, so a bad query or an unreachable server
/// stops the run before anything is applied.
pub async fn prepare(exp: &Experiment) -> Result<Servers, MonitorError> {
    let spec = &exp.file.spec;
    let prometheus = match &spec.prometheus {
        Some(p) => {
            let token = match &p.bearer_token {
                None => None,
                Some(t) => Some(read_token(exp, t)?),
            };
            let headers: Vec<(String, String)> = p
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let tls = match &p.tls {
                None => None,
                Some(t) => {
                    let ca = t.ca.as_ref().map(|ca| exp.dir().join(ca));
                    let connector = tls::connector(ca.as_deref(), t.insecure_skip_verify)
                        .map_err(|e| MonitorError::Config(format!("spec.prometheus.{e}")))?;
                    Some(connector)
                }
            };
            Some(Api::new(
                "Prometheus",
                &p.url,
                &headers,
                token.as_deref(),
                tls,
            )?)
        }
        None => None,
    };
    let alertmanager = match &spec.alertmanager {
        Some(a) => Some(Api::new("Alertmanager", &a.url, &[], None, None)?),
        None => None,
    };
    let timeout = Duration::from_secs(5);
    if let Some(api) = &prometheus {
        let objectives = spec
            .objectives
            .promql
            .iter()
            .map(|o| ("spec.objectives.promql", &o.name, &o.query));
        let aborts = spec.abort.iter().flat_map(|a| {
            a.promql
                .iter()
                .map(|o| ("spec.abort.promql", &o.name, &o.query))
        });
        for (section, name, query) in objectives.chain(aborts) {
            api.instant(query, timeout).await.map_err(|e| match e {
                MonitorError::Refused(why) => {
                    MonitorError::Refused(format!("{section} `{name}`: query `{query}`: {why}"))
                }
                other => other,
            })?;
        }
    }
    if let Some(api) = &alertmanager {
        api.json("/api/v2/alerts", timeout).await?;
    }
    let from_prometheus = spec
        .alerts
        .iter()
        .any(|a| a.source == crate::experiment::spec::AlertSource::Prometheus);
    if let (true, Some(api)) = (from_prometheus, &prometheus) {
        api.json("/api/v1/alerts", timeout).await?;
    }
    Ok(Servers {
        prometheus,
        alertmanager,
    })
}

fn read_token(
    exp: &Experiment,
    t: &crate::experiment::spec::TokenFrom,
) -> Result<String, MonitorError> {
    let bad = |why: String| MonitorError::Config(format!("spec.prometheus.bearerToken: {why}"));
    match (&t.env, &t.file) {
        (Some(var), _) => std::env::var(var).map_err(|_| bad(format!("`{var}` is not set"))),
        (None, Some(file)) => {
            let path = exp.dir().join(file);
            std::fs::read_to_string(&path)
                .map(|s| s.trim().to_string())
                .map_err(|e| bad(format!("cannot read {}: {e}", path.display())))
        }
        (None, None) => Err(bad("set `env` or `file`".into())),
    }
}

/// The monitors of a run, running.
pub struct Monitor {
    tasks: JoinSet<Finished>,
    stop: CancellationToken,
    abort: Arc<Mutex<Option<String>>>,
    prometheus: Option<Api>,
    /// Each objective's record index and how it is judged.
    ranges: Vec<(usize, promql::Judge)>,
    clock: Clock,
}

enum Finished {
    Promql(usize, PromqlRecord),
    Alert(usize, AlertRecord),
}

/// Start every query and alert poll, on the run's clock (`origin`, `started_at`).
pub fn start(
    exp: &Experiment,
    servers: Servers,
    origin: Instant,
    started_at: SystemTime,
    phase: PhaseCell,
    note: Note,
) -> Monitor {
    let spec = &exp.file.spec;
    let stop = CancellationToken::new();
    let abort = Arc::new(Mutex::new(None));
    let mut tasks = JoinSet::new();
    let mut ranges = Vec::new();
    let clock = Clock { origin, started_at };
    let mut index = 0;
    if let Some(api) = &servers.prometheus {
        for o in &spec.objectives.promql {
            let judge = promql::Judge::objective(o);
            ranges.push((index, judge.clone()));
            let run = promql::Loop {
                api: api.clone(),
                judge,
                clock,
                phase: phase.clone(),
                note: note.clone(),
                abort: None,
            };
            let (i, stop) = (index, stop.clone());
            tasks.spawn(async move { Finished::Promql(i, run.run(stop).await) });
            index += 1;
        }
        for a in spec.abort.iter().flat_map(|a| &a.promql) {
            let run = promql::Loop {
                api: api.clone(),
                judge: promql::Judge::abort(a),
                clock,
                phase: phase.clone(),
                note: note.clone(),
                abort: Some(abort.clone()),
            };
            let (i, stop) = (index, stop.clone());
            tasks.spawn(async move { Finished::Promql(i, run.run(stop).await) });
            index += 1;
        }
    }
    for (i, a) in spec.alerts.iter().enumerate() {
        let poll = alerts::Poll::new(
            a,
            &servers.prometheus,
            &servers.alertmanager,
            clock,
            note.clone(),
        );
        let stop = stop.clone();
        if let Some(poll) = poll {
            tasks.spawn(async move { Finished::Alert(i, poll.run(stop).await) });
        }
    }
    Monitor {
        tasks,
        stop,
        abort,
        prometheus: servers.prometheus,
        ranges,
        clock,
    }
}

/// The run's origin on both clocks.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub origin: Instant,
    pub started_at: SystemTime,
}

impl Clock {
    pub fn wall(&self, since_origin: Duration) -> SystemTime {
        self.started_at + since_origin
    }
}

impl Monitor {
    /// Why a PromQL stop condition fired, once one has.
    pub fn abort_fired(&self) -> Option<String> {
        self.abort.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Stop polling and, for each objective, ask for its phase as a range query
    /// (`spans`: each phase that happened, from the origin).
    pub async fn finish(
        mut self,
        spans: &[(Phase, Duration, Duration)],
        end: Duration,
    ) -> MonitorRecord {
        self.stop.cancel();
        let mut promql = BTreeMap::new();
        let mut alerts = BTreeMap::new();
        while let Some(done) = self.tasks.join_next().await {
            match done {
                Ok(Finished::Promql(i, r)) => {
                    promql.insert(i, r);
                }
                Ok(Finished::Alert(i, r)) => {
                    alerts.insert(i, r);
                }
                Err(e) => tracing::warn!(error = %e, "a monitoring task ended abnormally"),
            }
        }
        if let Some(api) = &self.prometheus {
            for (i, judge) in &self.ranges {
                if let Some(r) = promql.get_mut(i) {
                    r.range = judge.range(api, self.clock, spans, end).await;
                }
            }
        }
        MonitorRecord {
            promql: promql.into_values().collect(),
            alerts: alerts.into_values().collect(),
        }
    }
}
