//! One alert polled at its interval: from Alertmanager (`/api/v2/alerts`, every alert it
//! holds, silenced or not) or Prometheus (`/api/v1/alerts`, firing ones only). Each poll
//! says whether the alert (its name and labels) is there; changes are kept with both
//! clocks, and the names of other alerts seen firing say what happened instead.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{AlertChange, AlertRecord, Api, Clock, Note, MAX_KEPT, MAX_OTHERS};
use crate::experiment::spec::{AlertSource, AlertSpec, DEFAULT_ALERT_POLL};
use crate::text::duration;

pub struct Poll {
    spec: AlertSpec,
    api: Api,
    /// Prometheus, to read the rule's evaluation interval from.
    prometheus: Option<Api>,
    clock: Clock,
    note: Note,
}

impl Poll {
    /// `None` when the source is missing (the file's rules refuse that).
    pub fn new(
        spec: &AlertSpec,
        prometheus: &Option<Api>,
        alertmanager: &Option<Api>,
        clock: Clock,
        note: Note,
    ) -> Option<Poll> {
        let api = match spec.source {
            AlertSource::Alertmanager => alertmanager.clone()?,
            AlertSource::Prometheus => prometheus.clone()?,
        };
        Some(Poll {
            spec: spec.clone(),
            api,
            prometheus: prometheus.clone(),
            clock,
            note,
        })
    }

    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        labels.get("alertname") == Some(&self.spec.name)
            && self
                .spec
                .labels
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v))
    }

    /// Labels of every alert the source calls firing.
    async fn firing(
        &self,
        timeout: Duration,
    ) -> Result<Vec<BTreeMap<String, String>>, super::MonitorError> {
        let path = match self.spec.source {
            AlertSource::Alertmanager => "/api/v2/alerts",
            AlertSource::Prometheus => "/api/v1/alerts",
        };
        let v = self.api.json(path, timeout).await?;
        let prometheus = self.spec.source == AlertSource::Prometheus;
        let list = if prometheus {
            v["data"]["alerts"].as_array()
        } else {
            v.as_array()
        };
        Ok(list
            .into_iter()
            .flatten()
            .filter(|a| !prometheus || a["state"] == "firing")
            .map(|a| labels(&a["labels"]))
            .collect())
    }

    pub async fn run(self, stop: CancellationToken) -> AlertRecord {
        let every = self.spec.every.unwrap_or(DEFAULT_ALERT_POLL).0;
        let mut rec = AlertRecord {
            name: self.spec.name.clone(),
            labels: self.spec.labels.clone(),
            source: match self.spec.source {
                AlertSource::Alertmanager => "alertmanager",
                AlertSource::Prometheus => "prometheus",
            }
            .into(),
            poll_ms: every.as_secs_f64() * 1000.0,
            ..AlertRecord::default()
        };
        let timeout = every.clamp(Duration::from_millis(500), Duration::from_secs(5));
        let mut others = BTreeSet::new();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut interval_asked = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.cancelled() => break,
            }
            let answer = tokio::select! {
                a = self.firing(timeout) => a,
                _ = stop.cancelled() => break,
            };
            let (at, wall) = (self.clock.origin.elapsed(), SystemTime::now());
            rec.polls += 1;
            let alerts = match answer {
                Ok(a) => a,
                Err(e) => {
                    rec.errors += 1;
                    rec.first_error.get_or_insert_with(|| e.to_string());
                    continue;
                }
            };
            let firing = alerts.iter().any(|l| self.matches(l));
            for l in alerts.iter().filter(|l| !self.matches(l)) {
                if let Some(name) = l.get("alertname") {
                    if others.len() < MAX_OTHERS {
                        others.insert(name.clone());
                    }
                }
            }
            let was = rec.changes.last().is_some_and(|c| c.firing);
            if firing != was {
                (self.note)(
                    "alert",
                    format!(
                        "alert `{}` {} ({})",
                        self.spec.name,
                        if firing { "firing" } else { "gone" },
                        rec.source
                    ),
                );
                if rec.changes.len() < MAX_KEPT {
                    rec.changes.push(AlertChange {
                        at_ms: at.as_secs_f64() * 1000.0,
                        unix_ms: super::unix(wall) * 1000.0,
                        firing,
                    });
                }
            }
            rec.firing_at_end = firing;
            // Asked once, after the first poll, so the first poll is not delayed.
            if !interval_asked {
                interval_asked = true;
                let (ms, note) = self.evaluation_interval().await;
                rec.evaluation_interval_ms = ms;
                rec.evaluation_interval_note = Some(note);
            }
        }
        rec.others = others.into_iter().collect();
        rec
    }

    /// The alerting rule's evaluation interval: its group's from `/api/v1/rules`, else
    /// the global one from `/api/v1/status/config`. The note says which, or why none.
    async fn evaluation_interval(&self) -> (Option<f64>, String) {
        let Some(api) = &self.prometheus else {
            return (
                None,
                "unknown: no spec.prometheus to read the rule's evaluation interval from".into(),
            );
        };
        let timeout = Duration::from_secs(5);
        if let Ok(v) = api.json("/api/v1/rules?type=alert", timeout).await {
            let groups = v["data"]["groups"].as_array().cloned().unwrap_or_default();
            for g in groups {
                let has = g["rules"]
                    .as_array()
                    .is_some_and(|r| r.iter().any(|r| r["name"] == self.spec.name.as_str()));
                if let (true, Some(secs)) = (has, g["interval"].as_f64()) {
                    let name = g["name"].as_str().unwrap_or("?");
                    return (
                        Some(secs * 1000.0),
                        format!("rule group `{name}` of {}", api.name),
                    );
                }
            }
        }
        match api.json("/api/v1/status/config", timeout).await {
            Ok(v) => {
                let yaml = v["data"]["yaml"].as_str().unwrap_or("");
                let global: Option<String> = serde_yaml::from_str::<serde_yaml::Value>(yaml)
                    .ok()
                    .and_then(|c| {
                        c["global"]["evaluation_interval"]
                            .as_str()
                            .map(str::to_owned)
                    });
                match global.as_deref().map(humantime::parse_duration) {
                    Some(Ok(d)) => (
                        Some(d.as_secs_f64() * 1000.0),
                        format!("global evaluation_interval {} of {}", duration(d), api.name),
                    ),
                    _ => (
                        None,
                        format!("unknown: {} states no evaluation_interval", api.name),
                    ),
                }
            }
            Err(e) => (None, format!("unknown: {e}")),
        }
    }
}

fn labels(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default()
}
