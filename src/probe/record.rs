//! Bounded recording of probe outcomes: one HdrHistogram per phase, and per-interval
//! buckets keyed by *intended* send time. Memory grows with run time (one small record
//! per bucket), never with the number of requests.

use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::write::seqset::SeqSet;

mod setup;
pub use setup::{CertificateChange, ConnectionSetup, SetupLog};

/// Highest latency a histogram can hold, in microseconds (1 hour; far above any timeout).
pub const MAX_LATENCY_US: u64 = 3_600_000_000;

/// What happened to one scheduled send. Failures are data, never errors.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// Response as expected.
    Ok,
    /// Response with a status outside the expected ranges.
    Status,
    /// Response whose body lacked the expected substring.
    Body,
    /// gRPC health check answered, but not SERVING (NOT_SERVING, SERVICE_UNKNOWN,
    /// UNKNOWN).
    NotServing,
    /// gRPC call ended with a status other than OK (the code is kept per kind).
    GrpcStatus,
    /// No complete response before the deadline (connection was established).
    Timeout,
    /// The connection could not be established before the deadline (blackhole, loss).
    ConnectTimeout,
    /// Connection refused (nothing listening: process down).
    Refused,
    /// Connection reset or closed mid-request (process killed with connections open).
    Reset,
    /// The TLS handshake (or the TLS layer) failed: the reason is kept per kind.
    Tls,
    /// Could not be sent before its deadline because the in-flight bound was reached.
    Missed,
    /// Anything else (DNS, protocol error, ...).
    Other,
}

impl Outcome {
    /// Every outcome, in report order.
    pub const ALL: [Outcome; 12] = [
        Outcome::Ok,
        Outcome::Status,
        Outcome::Body,
        Outcome::NotServing,
        Outcome::GrpcStatus,
        Outcome::Timeout,
        Outcome::ConnectTimeout,
        Outcome::Refused,
        Outcome::Reset,
        Outcome::Tls,
        Outcome::Missed,
        Outcome::Other,
    ];
    /// Number of outcome kinds.
    pub const COUNT: usize = 12;

    /// Stable name used in reports (JSON keys, JUnit, terminal).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Status => "status",
            Outcome::Body => "body",
            Outcome::NotServing => "notServing",
            Outcome::GrpcStatus => "grpcStatus",
            Outcome::Timeout => "timeout",
            Outcome::ConnectTimeout => "connectTimeout",
            Outcome::Refused => "refused",
            Outcome::Reset => "reset",
            Outcome::Tls => "tls",
            Outcome::Missed => "missed",
            Outcome::Other => "other",
        }
    }

    pub fn is_ok(self) -> bool {
        self == Outcome::Ok
    }
}

/// The parts of a run, in order. Samples are assigned by intended send time.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    Baseline,
    Faults,
    Recovery,
    Steady,
}

impl Phase {
    pub const ALL: [Phase; 4] = [
        Phase::Baseline,
        Phase::Faults,
        Phase::Recovery,
        Phase::Steady,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Baseline => "baseline",
            Phase::Faults => "faults",
            Phase::Recovery => "recovery",
            Phase::Steady => "steady",
        }
    }
}

/// Counts per outcome kind, indexed by `Outcome as usize`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts(pub [u64; Outcome::COUNT]);

impl Counts {
    pub fn add(&mut self, outcome: Outcome, n: u64) {
        self.0[outcome as usize] += n;
    }
    pub fn get(&self, outcome: Outcome) -> u64 {
        self.0[outcome as usize]
    }
    /// Every scheduled send, whatever became of it.
    pub fn scheduled(&self) -> u64 {
        self.0.iter().sum()
    }
    pub fn ok(&self) -> u64 {
        self.get(Outcome::Ok)
    }
    pub fn failed(&self) -> u64 {
        self.scheduled() - self.ok()
    }
    /// ok / scheduled, or None when nothing was scheduled.
    pub fn availability(&self) -> Option<f64> {
        let n = self.scheduled();
        (n > 0).then(|| self.ok() as f64 / n as f64)
    }
    pub fn merge(&mut self, other: &Counts) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a += b;
        }
    }
}

/// Outcomes and latency of successful sends within one phase.
#[derive(Debug, Clone)]
pub struct PhaseStats {
    pub counts: Counts,
    /// Latency of ok responses in microseconds, from intended send time.
    pub latency: Histogram<u64>,
}

impl PhaseStats {
    fn new() -> Self {
        PhaseStats {
            counts: Counts::default(),
            latency: new_histogram(3),
        }
    }
    /// Merge another phase's stats exactly (used for `during: run`).
    pub fn merge(&mut self, other: &PhaseStats) {
        self.counts.merge(&other.counts);
        // Both histograms share bounds, so `add` cannot fail; saturate defensively.
        let _ = self.latency.add(&other.latency);
    }
    pub fn empty() -> Self {
        Self::new()
    }
}

/// One closed interval of the timeline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Start of the interval, from the run origin.
    pub start: Duration,
    pub counts: Counts,
    /// Highest ok latency in the interval, microseconds (0 when none).
    pub max_us: u64,
    /// 99th percentile of ok latency in the interval, microseconds (0 when none).
    pub p99_us: u64,
}

impl Bucket {
    pub fn availability(&self) -> Option<f64> {
        self.counts.availability()
    }
}

fn new_histogram(sigfig: u8) -> Histogram<u64> {
    // Bounds are constants known to be valid (1 <= low, high >= 2*low, sigfig <= 5).
    #[allow(clippy::unwrap_used)]
    Histogram::new_with_bounds(1, MAX_LATENCY_US, sigfig).unwrap()
}

struct OpenBucket {
    counts: Counts,
    latency: Histogram<u64>,
}

struct Inner {
    phases: [PhaseStats; 4],
    /// Phase switch points (offset from origin in ns, phase), ascending.
    phase_starts: Vec<(u64, Phase)>,
    /// Closed buckets, index = bucket number; grows with run time only.
    closed: Vec<Bucket>,
    /// Buckets not yet closed: index `closed.len() + i`.
    open: std::collections::VecDeque<OpenBucket>,
    lag: Histogram<u64>,
    /// Write probes: the sequence numbers the backend acknowledged.
    acks: SeqSet,
}

/// Thread-safe recorder for one probe. Cheap to call from every worker.
pub struct Recorder {
    name: String,
    bucket_ns: u64,
    inner: Mutex<Inner>,
    /// Connection set-up cost, TLS failures and the served certificate; touched only
    /// when a connection is opened, never per request on a kept-alive one.
    pub setup: SetupLog,
}

impl Recorder {
    /// A recorder with `bucket` wide intervals, starting in the baseline phase.
    pub fn new(name: impl Into<String>, bucket: Duration) -> Self {
        let bucket_ns = (bucket.as_nanos() as u64).max(1_000_000);
        Recorder {
            name: name.into(),
            bucket_ns,
            inner: Mutex::new(Inner {
                phases: [
                    PhaseStats::new(),
                    PhaseStats::new(),
                    PhaseStats::new(),
                    PhaseStats::new(),
                ],
                phase_starts: vec![(0, Phase::Baseline)],
                closed: Vec::new(),
                open: std::collections::VecDeque::new(),
                lag: new_histogram(3),
                acks: SeqSet::default(),
            }),
            setup: SetupLog::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn bucket_width(&self) -> Duration {
        Duration::from_nanos(self.bucket_ns)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the counters inconsistent in a way
        // that matters more than losing the run, so recover the guard.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Record one scheduled send: its intended time (from origin), its latency from the
    /// intended time (ignored unless ok), and its outcome.
    pub fn record(&self, intended: Duration, latency: Duration, outcome: Outcome) {
        let intended_ns = intended.as_nanos() as u64;
        let latency_us = (latency.as_nanos() as u64 / 1_000).clamp(1, MAX_LATENCY_US);
        let index = (intended_ns / self.bucket_ns) as usize;
        let mut inner = self.lock();
        let phase = phase_at(&inner.phase_starts, intended_ns);
        let stats = &mut inner.phases[phase as usize];
        stats.counts.add(outcome, 1);
        if outcome.is_ok() {
            stats.latency.saturating_record(latency_us);
        }
        let closed_len = inner.closed.len();
        if index < closed_len {
            // Late arrival for a closed bucket: counts and max stay exact; p99 was final.
            let b = &mut inner.closed[index];
            b.counts.add(outcome, 1);
            if outcome.is_ok() {
                b.max_us = b.max_us.max(latency_us);
            }
            return;
        }
        let slot = index - closed_len;
        while inner.open.len() <= slot {
            inner.open.push_back(OpenBucket {
                counts: Counts::default(),
                latency: new_histogram(2),
            });
        }
        let b = &mut inner.open[slot];
        b.counts.add(outcome, 1);
        if outcome.is_ok() {
            b.latency.saturating_record(latency_us);
        }
    }

    /// Record the prober's own scheduling lag (actual send - intended send).
    pub fn record_lag(&self, lag: Duration) {
        let us = (lag.as_nanos() as u64 / 1_000).clamp(1, MAX_LATENCY_US);
        self.lock().lag.saturating_record(us);
    }

    /// Write number `k` was acknowledged (write probes only).
    pub fn record_ack(&self, k: u64) {
        self.lock().acks.insert(k);
    }

    /// Samples intended at or after `at` belong to `phase`.
    pub fn set_phase(&self, at: Duration, phase: Phase) {
        let at_ns = at.as_nanos() as u64;
        let mut inner = self.lock();
        inner.phase_starts.retain(|&(t, _)| t < at_ns);
        inner.phase_starts.push((at_ns, phase));
    }

    /// Close every bucket that ends at or before `until`: no more sends are due in it and
    /// every send in it has reached its deadline. Returns the number of closed buckets.
    pub fn close_until(&self, until: Duration) -> usize {
        let until_ns = until.as_nanos() as u64;
        let mut inner = self.lock();
        loop {
            let index = inner.closed.len() as u64;
            let end = (index + 1) * self.bucket_ns;
            if end > until_ns {
                break;
            }
            let open = inner.open.pop_front();
            let bucket = match open {
                Some(o) => Bucket {
                    start: Duration::from_nanos(index * self.bucket_ns),
                    counts: o.counts,
                    max_us: o.latency.max(),
                    p99_us: if o.latency.is_empty() {
                        0
                    } else {
                        o.latency.value_at_quantile(0.99)
                    },
                },
                None => Bucket {
                    start: Duration::from_nanos(index * self.bucket_ns),
                    counts: Counts::default(),
                    max_us: 0,
                    p99_us: 0,
                },
            };
            inner.closed.push(bucket);
        }
        inner.closed.len()
    }

    /// Closed buckets from index `from` on (for live progress and stop conditions).
    pub fn closed_since(&self, from: usize) -> Vec<Bucket> {
        let inner = self.lock();
        inner
            .closed
            .get(from..)
            .map(|s| s.to_vec())
            .unwrap_or_default()
    }

    /// Number of closed buckets.
    pub fn closed_len(&self) -> usize {
        self.lock().closed.len()
    }

    /// Availability and p99 (µs) of `phase` so far, for live progress: none before the
    /// first send completes, no p99 before the first ok response.
    pub fn live_phase(&self, phase: Phase) -> (Option<f64>, Option<u64>) {
        let inner = self.lock();
        let stats = &inner.phases[phase as usize];
        let p99 = (!stats.latency.is_empty()).then(|| stats.latency.value_at_quantile(0.99));
        (stats.counts.availability(), p99)
    }

    /// Stats of one phase so far (for the steady-state gate before the first fault).
    pub fn phase_snapshot(&self, phase: Phase) -> PhaseStats {
        self.lock().phases[phase as usize].clone()
    }

    /// Close everything and hand back the final recording.
    pub fn finish(&self, end: Duration) -> ProbeRecording {
        let end_ns = end.as_nanos() as u64;
        let last = end_ns.div_ceil(self.bucket_ns);
        self.close_until(Duration::from_nanos(last * self.bucket_ns));
        let inner = self.lock();
        ProbeRecording {
            name: self.name.clone(),
            bucket: Duration::from_nanos(self.bucket_ns),
            phases: inner.phases.clone(),
            buckets: inner.closed.clone(),
            lag: inner.lag.clone(),
            acks: inner.acks.clone(),
            setup: self.setup.finish(),
        }
    }
}

fn phase_at(starts: &[(u64, Phase)], t_ns: u64) -> Phase {
    starts
        .iter()
        .rev()
        .find(|&&(start, _)| start <= t_ns)
        .map(|&(_, p)| p)
        .unwrap_or(Phase::Baseline)
}

/// Everything one probe recorded, after the run.
#[derive(Debug, Clone)]
pub struct ProbeRecording {
    pub name: String,
    pub bucket: Duration,
    /// Indexed by `Phase as usize`.
    pub phases: [PhaseStats; 4],
    pub buckets: Vec<Bucket>,
    /// Scheduling lag in microseconds.
    pub lag: Histogram<u64>,
    /// Write probes: acknowledged sequence numbers (empty for other probes).
    pub acks: SeqSet,
    /// Connections opened: their set-up cost, TLS failures, certificates seen.
    pub setup: ConnectionSetup,
}

impl ProbeRecording {
    pub fn phase(&self, phase: Phase) -> &PhaseStats {
        &self.phases[phase as usize]
    }
    /// Stats of the whole run, merged exactly from the phases.
    pub fn total(&self) -> PhaseStats {
        let mut all = PhaseStats::empty();
        for p in &self.phases {
            all.merge(p);
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn samples_go_to_the_phase_and_bucket_of_their_intended_time() {
        let r = Recorder::new("p", ms(100));
        r.record(ms(50), ms(2), Outcome::Ok);
        r.set_phase(ms(1000), Phase::Faults);
        // Completed after the switch but intended before it: still baseline.
        r.record(ms(990), ms(30), Outcome::Ok);
        r.record(ms(1010), ms(3), Outcome::Refused);
        let rec = r.finish(ms(1100));
        assert_eq!(rec.phase(Phase::Baseline).counts.ok(), 2);
        assert_eq!(rec.phase(Phase::Faults).counts.get(Outcome::Refused), 1);
        assert_eq!(rec.buckets.len(), 11);
        assert_eq!(rec.buckets[0].counts.ok(), 1);
        assert_eq!(rec.buckets[9].counts.ok(), 1);
        assert_eq!(rec.buckets[10].counts.failed(), 1);
        assert_eq!(rec.buckets[10].availability(), Some(0.0));
        assert!(rec.buckets[5].availability().is_none());
        let max = rec.phase(Phase::Baseline).latency.max();
        assert!((29_900..=30_100).contains(&max), "{max}");
    }

    #[test]
    fn late_samples_still_count_in_closed_buckets() {
        let r = Recorder::new("p", ms(100));
        assert_eq!(r.close_until(ms(250)), 2);
        r.record(ms(150), ms(5_000), Outcome::Ok);
        let rec = r.finish(ms(300));
        assert_eq!(rec.buckets[1].counts.ok(), 1);
        assert!(rec.buckets[1].max_us >= 4_990_000);
    }

    #[test]
    fn memory_does_not_grow_with_requests() {
        let r = Recorder::new("p", ms(100));
        for i in 0..200_000u64 {
            r.record(
                Duration::from_micros(i * 5),
                Duration::from_micros(100 + i % 1000),
                Outcome::Ok,
            );
        }
        let rec = r.finish(Duration::from_secs(1));
        assert_eq!(rec.buckets.len(), 10);
        assert_eq!(rec.total().counts.ok(), 200_000);
    }
}
