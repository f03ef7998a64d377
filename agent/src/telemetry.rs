//! Prometheus metrics for `/metrics`. Each `Agent` owns its recorder (no global
//! install), so several agents in one test process, or the controller's embedded agent,
//! never share or clash over counters.

use metrics::{counter, gauge, with_local_recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};

/// The agent's metrics.
pub struct Metrics {
    recorder: PrometheusRecorder,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// Which fault counter.
#[derive(Debug, Clone, Copy)]
pub enum FaultEvent {
    Applied,
    Reverted,
    /// Lease deadline passed, or the duration ended (label `reason`).
    Expired(&'static str),
    Failed,
}

/// What happened to a connection that arrived at the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnEvent {
    /// The oldest unauthenticated connection was closed to make room for it.
    Evicted,
    /// Every open connection was authenticated: it got 503 and was closed.
    Refused,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh recorder with every series registered at zero, so dashboards see them
    /// before the first fault.
    pub fn new() -> Metrics {
        let m = Metrics {
            recorder: PrometheusBuilder::new().build_recorder(),
        };
        with_local_recorder(&m.recorder, || {
            gauge!("shakeout_agent_active_faults").set(0.0);
            gauge!("shakeout_agent_reverts_pending").set(0.0);
            counter!("shakeout_agent_sweep_cleaned_total").absolute(0);
            counter!("shakeout_agent_connections_evicted_total").absolute(0);
            counter!("shakeout_agent_connections_refused_total").absolute(0);
            counter!("shakeout_agent_unauthenticated_summarized_total").absolute(0);
        });
        m
    }

    /// Count a fault event by kind (`process`, `network`).
    pub fn fault(&self, event: FaultEvent, kind: &'static str) {
        with_local_recorder(&self.recorder, || match event {
            FaultEvent::Applied => {
                counter!("shakeout_agent_faults_applied_total", "kind" => kind).increment(1)
            }
            FaultEvent::Reverted => {
                counter!("shakeout_agent_faults_reverted_total", "kind" => kind).increment(1)
            }
            FaultEvent::Expired(reason) => {
                counter!("shakeout_agent_faults_expired_total", "kind" => kind, "reason" => reason)
                    .increment(1)
            }
            FaultEvent::Failed => {
                counter!("shakeout_agent_faults_failed_total", "kind" => kind).increment(1)
            }
        });
    }

    /// Set the number of faults currently held.
    pub fn active(&self, n: usize) {
        with_local_recorder(&self.recorder, || {
            gauge!("shakeout_agent_active_faults").set(n as f64)
        });
    }

    /// Set the number of faults whose revert failed and is being retried.
    pub fn pending_reverts(&self, n: usize) {
        with_local_recorder(&self.recorder, || {
            gauge!("shakeout_agent_reverts_pending").set(n as f64)
        });
    }

    /// Count things a sweep cleaned.
    pub fn swept(&self, n: usize) {
        with_local_recorder(&self.recorder, || {
            counter!("shakeout_agent_sweep_cleaned_total").increment(n as u64)
        });
    }

    /// Count an HTTP answer by status.
    pub fn request(&self, status: u16) {
        with_local_recorder(&self.recorder, || {
            counter!("shakeout_agent_requests_total", "status" => status.to_string()).increment(1)
        });
    }

    /// Count connections at the cap: `evicted` (an unauthenticated one closed to make
    /// room) or `refused` (503: every open one was authenticated).
    pub fn connection(&self, event: ConnEvent) {
        with_local_recorder(&self.recorder, || match event {
            ConnEvent::Evicted => counter!("shakeout_agent_connections_evicted_total").increment(1),
            ConnEvent::Refused => counter!("shakeout_agent_connections_refused_total").increment(1),
        });
    }

    /// Count an unauthenticated refusal audited in a summary line, not a line of its own.
    pub fn summarized(&self) {
        with_local_recorder(&self.recorder, || {
            counter!("shakeout_agent_unauthenticated_summarized_total").increment(1)
        });
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        self.recorder.handle().render()
    }
}
