//! One PromQL query evaluated at its interval for the whole run: an objective keeps the
//! evaluations of the phase it judges (how many broke the comparison, extremes, the first
//! few failures), a stop condition fires the first time its comparison holds.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{
    Api, Clock, MonitorError, Note, PhaseCell, PromqlRange, PromqlRecord, PromqlSample, MAX_KEPT,
};
use crate::experiment::spec::{AbortPromql, Comparator, During, PromqlObjective, DEFAULT_EVERY};
use crate::probe::Phase;
use crate::text::duration;

/// What a query is compared with, and over which phase.
#[derive(Debug, Clone)]
pub struct Judge {
    name: String,
    query: String,
    comparator: Comparator,
    threshold: f64,
    /// `None`: the whole run.
    during: Option<Phase>,
    every: Duration,
    /// A stop condition: a value that *meets* the comparison counts.
    abort: bool,
}

fn phase_of(d: During) -> Option<Phase> {
    match d {
        During::Baseline => Some(Phase::Baseline),
        During::Faults => Some(Phase::Faults),
        During::Recovery => Some(Phase::Recovery),
        During::Steady => Some(Phase::Steady),
        During::Run => None,
    }
}

impl Judge {
    pub fn objective(o: &PromqlObjective) -> Judge {
        Judge {
            name: o.name.clone(),
            query: o.query.clone(),
            comparator: o.comparator,
            threshold: o.threshold,
            during: phase_of(o.during),
            every: o.every.unwrap_or(DEFAULT_EVERY).0,
            abort: false,
        }
    }

    pub fn abort(a: &AbortPromql) -> Judge {
        Judge {
            name: a.name.clone(),
            query: a.query.clone(),
            comparator: a.comparator,
            threshold: a.threshold,
            during: None,
            every: a.every.unwrap_or(DEFAULT_EVERY).0,
            abort: true,
        }
    }

    /// Whether `value` counts against the query: breaks the objective's comparison, or
    /// meets the stop condition's.
    fn counts(&self, value: f64) -> bool {
        self.comparator.holds(value, self.threshold) == self.abort
    }

    fn record(&self) -> PromqlRecord {
        PromqlRecord {
            name: self.name.clone(),
            role: if self.abort { "abort" } else { "objective" }.into(),
            query: self.query.clone(),
            comparison: format!("{} {}", self.comparator.as_str(), self.threshold),
            during: self.during.map(Phase::as_str).unwrap_or("run").into(),
            every_ms: self.every.as_secs_f64() * 1000.0,
            ..PromqlRecord::default()
        }
    }

    /// The query over its phase, every `every` (not measured: why, in `error`).
    pub async fn range(
        &self,
        api: &Api,
        clock: Clock,
        spans: &[(Phase, Duration, Duration)],
        end: Duration,
    ) -> Option<PromqlRange> {
        let (start, stop) = match self.during {
            None => (Duration::ZERO, end),
            Some(p) => spans.iter().find(|s| s.0 == p).map(|s| (s.1, s.2))?,
        };
        let mut out = PromqlRange {
            start_ms: start.as_secs_f64() * 1000.0,
            end_ms: stop.as_secs_f64() * 1000.0,
            step_ms: self.every.as_secs_f64() * 1000.0,
            ..PromqlRange::default()
        };
        match api
            .range(
                &self.query,
                clock.wall(start),
                clock.wall(stop),
                self.every,
                Duration::from_secs(10),
            )
            .await
        {
            Ok(series) => {
                for (_, values) in series {
                    for v in values {
                        out.points += 1;
                        out.breaking += u64::from(self.counts(v));
                        out.min = Some(out.min.map_or(v, |m: f64| m.min(v)));
                        out.max = Some(out.max.map_or(v, |m: f64| m.max(v)));
                    }
                }
                if out.points == 0 {
                    out.error = Some("no series over the phase".into());
                }
            }
            Err(e) => out.error = Some(e.to_string()),
        }
        Some(out)
    }
}

/// The evaluation loop of one query.
pub struct Loop {
    pub api: Api,
    pub judge: Judge,
    pub clock: Clock,
    pub phase: PhaseCell,
    pub note: Note,
    /// Where a stop condition says why it fired.
    pub abort: Option<Arc<Mutex<Option<String>>>>,
}

impl Loop {
    pub async fn run(self, stop: CancellationToken) -> PromqlRecord {
        let j = &self.judge;
        let mut rec = j.record();
        let mut tick = tokio::time::interval(j.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let timeout = j
            .every
            .clamp(Duration::from_millis(500), Duration::from_secs(5));
        let mut breaking = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.cancelled() => break,
            }
            let phase = self.phase.get();
            let at = self.clock.origin.elapsed();
            let answer = tokio::select! {
                a = self.api.instant(&j.query, timeout) => a,
                _ = stop.cancelled() => break,
            };
            rec.total_evaluations += 1;
            let judged = j.during.is_none_or(|p| p == phase);
            let worst = match &answer {
                Ok(samples) => samples
                    .iter()
                    .find(|s| j.counts(s.value))
                    .or(samples.first())
                    .cloned(),
                Err(_) => None,
            };
            let now_breaking = worst.as_ref().is_some_and(|s| j.counts(s.value));
            // An unanswered evaluation says nothing about the value: no change of state.
            if answer.is_ok() && now_breaking != breaking {
                breaking = now_breaking;
                let what = if j.abort { "meets" } else { "breaks" };
                let state = if breaking {
                    what.to_string()
                } else {
                    format!("no longer {what}")
                };
                let value = worst
                    .as_ref()
                    .map(|s| s.value.to_string())
                    .unwrap_or_default();
                (self.note)(
                    "promql",
                    format!("`{}` {state} `{}` ({value})", j.name, rec.comparison),
                );
            }
            if j.abort && now_breaking {
                if let (Some(cell), Some(s)) = (&self.abort, &worst) {
                    let mut cell = cell.lock().unwrap_or_else(|p| p.into_inner());
                    cell.get_or_insert_with(|| {
                        format!(
                            "promql `{}`: {} = {} {} (query `{}`, evaluated every {})",
                            j.name,
                            s.series,
                            s.value,
                            rec.comparison,
                            j.query,
                            duration(j.every)
                        )
                    });
                }
            }
            if !judged {
                continue;
            }
            match (answer, worst) {
                (Err(e), _) => {
                    rec.errors += 1;
                    rec.first_error.get_or_insert_with(|| e.to_string());
                    if matches!(e, MonitorError::Refused(_)) {
                        tracing::warn!(query = %j.query, error = %e, "query refused");
                    }
                }
                (Ok(_), None) => rec.no_data += 1,
                (Ok(_), Some(s)) => {
                    rec.evaluations += 1;
                    rec.min = Some(rec.min.map_or(s.value, |m| m.min(s.value)));
                    rec.max = Some(rec.max.map_or(s.value, |m| m.max(s.value)));
                    rec.last = Some(s.value);
                    if now_breaking {
                        rec.failures += 1;
                        if rec.failed.len() < MAX_KEPT {
                            rec.failed.push(PromqlSample {
                                at_ms: at.as_secs_f64() * 1000.0,
                                phase: phase.as_str().into(),
                                value: s.value,
                                series: s.series,
                            });
                        }
                    }
                }
            }
        }
        rec
    }
}
