//! PLACEHOLDER (being written): open-model pacing and the worker pool.
use super::{ProbeConfig, Recorder};
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// How sends are scheduled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// Send k is due at origin + k / rate (per second).
    Rate(f64),
    /// As fast as the in-flight bound allows (benchmarks only).
    Max,
}

/// A running probe.
pub struct RunningProbe {}

impl RunningProbe {
    /// Stop scheduling; wait until every scheduled send has an outcome.
    pub async fn stop(self) {}
}

pub(crate) fn start(
    _c: ProbeConfig,
    _o: Instant,
    _r: Arc<Recorder>,
    _x: CancellationToken,
) -> RunningProbe {
    todo!()
}
