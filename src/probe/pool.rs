//! The worker pool: released sends are claimed one at a time by async workers, which grow
//! in number as needed up to the in-flight bound. Sends no worker could take before their
//! deadline are recorded as `Missed` without being sent, so an overloaded prober shows up
//! as failures instead of vanishing from the statistics (FIELD-NOTES §1.3).

use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::claim::{Claim, Claims};
use super::grpc::GrpcSender;
use super::http::HttpSender;
use super::schedule::{Pace, Schedule};
use super::tcp::TcpSender;
use super::write::WriteSender;
use super::{Outcome, Recorder};

/// What every worker needs to turn a claimed send into a recorded outcome.
// One per worker for the whole run, so the size costs nothing; boxing the HTTP variant
// would add an indirection to every send.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub(super) enum Sender {
    Http(HttpSender),
    Tcp(TcpSender),
    Grpc(GrpcSender),
    Write(WriteSender),
}

impl Sender {
    /// Send number `k`, due at `intended`.
    async fn send(&mut self, k: u64, intended: Instant, deadline: Instant) -> Outcome {
        match self {
            Sender::Http(h) => h.send(intended, deadline).await,
            Sender::Tcp(t) => t.send(deadline).await,
            Sender::Grpc(g) => g.send(intended, deadline).await,
            Sender::Write(w) => w.send(k, deadline).await,
        }
    }
}

/// State shared by the pacer thread, the workers and the probe's owner.
pub(super) struct Pool {
    pub(super) claims: Claims,
    pub(super) pace: Pace,
    schedule: Schedule,
    origin: Instant,
    timeout: Duration,
    max_workers: usize,
    /// Workers not holding a send (parked, or about to claim). Counted from their spawn.
    idle: AtomicUsize,
    workers: AtomicUsize,
    wake: Notify,
    /// Bounded by `max_workers`: workers live until the probe stops.
    handles: Mutex<Vec<JoinHandle<()>>>,
    runtime: Handle,
    recorder: Arc<Recorder>,
    /// Cloned into each worker, which then owns its connection.
    sender: Sender,
}

impl Pool {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        pace: Pace,
        origin: Instant,
        timeout: Duration,
        max_workers: usize,
        runtime: Handle,
        recorder: Arc<Recorder>,
        sender: Sender,
    ) -> Arc<Self> {
        Arc::new(Pool {
            claims: Claims::new(pace, timeout),
            pace,
            schedule: Schedule::new(pace),
            origin,
            timeout,
            max_workers: max_workers.max(1),
            idle: AtomicUsize::new(0),
            workers: AtomicUsize::new(0),
            wake: Notify::new(),
            handles: Mutex::new(Vec::new()),
            runtime,
            recorder,
            sender,
        })
    }

    /// Release sends `0..count` (called by the pacer): wake idle workers, add workers if
    /// the due sends outnumber them.
    pub(super) fn release(self: &Arc<Self>, count: u64) {
        let new = self.claims.release(count);
        let idle = self.idle.load(Ordering::Acquire) as u64;
        for _ in 0..new.min(idle) {
            self.wake.notify_one();
        }
        self.grow();
    }

    /// No more releases: let workers drain what is left and exit.
    pub(super) fn finish(self: &Arc<Self>) {
        self.claims.finish();
        self.wake.notify_waiters();
        self.grow();
    }

    /// Spawn workers while due sends outnumber idle workers, up to the bound.
    pub(super) fn grow(self: &Arc<Self>) {
        let pending = self.claims.pending();
        let idle = self.idle.load(Ordering::Acquire) as u64;
        let mut missing = pending.saturating_sub(idle);
        while missing > 0 {
            let reserved = self
                .workers
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                    (w < self.max_workers).then_some(w + 1)
                });
            if reserved.is_err() {
                break;
            }
            self.idle.fetch_add(1, Ordering::AcqRel);
            let handle = self.runtime.spawn(work(Arc::clone(self)));
            self.lock_handles().push(handle);
            missing -= 1;
        }
    }

    fn lock_handles(&self) -> std::sync::MutexGuard<'_, Vec<JoinHandle<()>>> {
        // Only pushes and takes happen under this lock; a poisoned one is still consistent.
        self.handles.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Handles of the workers spawned so far, taken out of the pool.
    pub(super) fn take_handles(&self) -> Vec<JoinHandle<()>> {
        std::mem::take(&mut *self.lock_handles())
    }

    /// Number of workers ever spawned.
    pub(super) fn workers(&self) -> usize {
        self.workers.load(Ordering::Acquire)
    }

    /// The next claim for this worker, waiting for the pacer when nothing is due.
    async fn next(&self) -> Claim {
        loop {
            match self.claims.claim(self.elapsed()) {
                Claim::Wait => {}
                claim => return claim,
            }
            // Register before re-checking, so a release between the check and the wait
            // still wakes this worker.
            let mut notified = pin!(self.wake.notified());
            notified.as_mut().enable();
            match self.claims.claim(self.elapsed()) {
                Claim::Wait => notified.await,
                claim => return claim,
            }
        }
    }

    fn elapsed(&self) -> Duration {
        Instant::now().saturating_duration_since(self.origin)
    }
}

/// One worker: claim, send (or mark missed), record; until the probe is finished.
async fn work(pool: Arc<Pool>) {
    let mut sender = pool.sender.clone();
    loop {
        let k = match pool.next().await {
            Claim::Send(k) => k,
            Claim::Missed(sends) => {
                for k in sends {
                    pool.recorder
                        .record(pool.schedule.offset(k), Duration::ZERO, Outcome::Missed);
                }
                continue;
            }
            Claim::Wait | Claim::Finished => break,
        };
        pool.idle.fetch_sub(1, Ordering::AcqRel);
        if let Pace::Rate(_) = pool.pace {
            if pool.claims.pending() > 0 {
                // More due sends than this worker: hand the next to an idle worker or a
                // new one now rather than after this send completes.
                pool.wake.notify_one();
                pool.grow();
            }
        }
        let now = Instant::now();
        let intended = match pool.pace {
            Pace::Rate(_) => pool.origin + pool.schedule.offset(k),
            // Closed loop: there is no schedule to lag behind.
            Pace::Max => now,
        };
        let deadline = intended + pool.timeout;
        // The claim already handed out expired sends as missed; this catches one that
        // expired in the instant since.
        let outcome = if now >= deadline {
            Outcome::Missed
        } else {
            if let Pace::Rate(_) = pool.pace {
                pool.recorder
                    .record_lag(now.saturating_duration_since(intended));
            }
            sender.send(k, intended, deadline).await
        };
        if outcome.is_ok() && matches!(sender, Sender::Write(_)) {
            // Which writes were acknowledged is what the read-back checks against.
            pool.recorder.record_ack(k);
        }
        let latency = Instant::now().saturating_duration_since(intended);
        let offset = intended.saturating_duration_since(pool.origin);
        pool.recorder.record(offset, latency, outcome);
        pool.idle.fetch_add(1, Ordering::AcqRel);
    }
}
