//! The run's ground-truth event log (service starts and exits, faults, stop conditions),
//! stamped with monotonic time so it shares one timeline with the probe buckets.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::progress::Progress;

/// Most events kept; a crash-looping service must not grow memory without bound.
const MAX_EVENTS: usize = 10_000;

/// A cheap, clonable handle to the event log.
#[derive(Clone)]
pub struct Events {
    inner: Arc<Mutex<Vec<(Instant, String, String)>>>,
    progress: Arc<dyn Progress>,
    origin: Arc<Mutex<Option<Instant>>>,
}

impl Events {
    pub fn new(progress: Arc<dyn Progress>) -> Self {
        Events {
            inner: Arc::default(),
            progress,
            origin: Arc::default(),
        }
    }

    /// Set t = 0 (the probes' origin); events before it get negative times.
    pub fn set_origin(&self, origin: Instant) {
        *self.origin.lock().unwrap_or_else(|p| p.into_inner()) = Some(origin);
    }

    /// Record an event now and show it on the progress display.
    pub fn push(&self, source: &str, message: String) {
        self.push_at(Instant::now(), source, message);
    }

    /// Record an event that happened at `now`, learnt of later (a probe saw it then).
    pub fn push_at(&self, now: Instant, source: &str, message: String) {
        let origin = *self.origin.lock().unwrap_or_else(|p| p.into_inner());
        let at = origin.map(|o| signed_secs(o, now)).unwrap_or(0.0);
        self.progress.event(at, &message);
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.len() < MAX_EVENTS {
            inner.push((now, source.to_owned(), message));
        }
    }

    /// All events as (ms from `origin`, may be negative; source; message).
    pub fn drain(&self, origin: Instant) -> Vec<crate::record::Event> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner
            .iter()
            .map(|(t, source, message)| crate::record::Event {
                at_ms: signed_secs(origin, *t) * 1000.0,
                source: source.clone(),
                message: message.clone(),
            })
            .collect()
    }
}

/// Seconds from `origin` to `t`, negative when `t` is earlier.
pub fn signed_secs(origin: Instant, t: Instant) -> f64 {
    if t >= origin {
        (t - origin).as_secs_f64()
    } else {
        -(origin - t).as_secs_f64()
    }
}
