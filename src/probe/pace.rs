//! Open-model pacing: send k is due at `origin + k / rate`, released by a dedicated OS
//! thread because tokio's timer (1 ms wheel) would add ~1.3 ms of lag to every send
//! (FIELD-NOTES §1.11). The thread releases every send due so far in one batch, so high
//! rates cost one wake-up per batch, not per send.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::grpc::GrpcSender;
use super::http::HttpSender;
use super::pool::{Pool, Sender};
use super::schedule::{Pace, Schedule};
use super::tcp::TcpSender;
use super::write::WriteSender;
use super::{ProbeConfig, Recorder, Target};

/// Below this much waiting, the pacer spins instead of sleeping: a sleeping thread wakes
/// ~50-80 µs late, a spinning one on time. Short enough to keep 1k sends/s under 10 % CPU.
const SPIN: Duration = Duration::from_micros(30);

/// What a stopped probe did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeStats {
    /// Sends scheduled (each has exactly one recorded outcome).
    pub scheduled: u64,
    /// When the probe stopped scheduling, from the origin.
    pub stopped_at: Duration,
    /// Workers spawned (the concurrency the probe needed, up to its bound).
    pub workers: usize,
}

/// A running probe.
pub struct RunningProbe {
    pool: Arc<Pool>,
    stop: CancellationToken,
    /// Stopping also happens when the probe is dropped without `stop`.
    _guard: DropGuard,
    stopped: oneshot::Receiver<Duration>,
    origin: Instant,
}

impl RunningProbe {
    /// Stop scheduling; wait until every scheduled send has an outcome (at most one
    /// timeout after the stop).
    pub async fn stop(self) -> ProbeStats {
        self.stop.cancel();
        let stopped_at = match self.stopped.await {
            Ok(at) => at,
            // The pacer died (a panic); workers are finished by the pacer thread's guard.
            Err(_) => Instant::now().saturating_duration_since(self.origin),
        };
        // Workers may spawn more workers while draining; wait until none are left.
        loop {
            let handles = self.pool.take_handles();
            if handles.is_empty() {
                break;
            }
            for handle in handles {
                if let Err(error) = handle.await {
                    tracing::error!(%error, "probe worker failed");
                }
            }
        }
        ProbeStats {
            scheduled: self.pool.claims.scheduled(),
            stopped_at,
            workers: self.pool.workers(),
        }
    }
}

/// Start a probe. Must be called within a tokio runtime (workers run on it).
pub(crate) fn start(
    config: ProbeConfig,
    origin: Instant,
    recorder: Arc<Recorder>,
    cancel: CancellationToken,
) -> RunningProbe {
    let sender = match &config.target {
        Target::Http(h) => Sender::Http(HttpSender::new(
            h,
            config.tls.clone(),
            Arc::clone(&recorder),
            origin,
        )),
        Target::Tcp(t) => Sender::Tcp(TcpSender::new(t)),
        Target::Grpc(g) => Sender::Grpc(GrpcSender::new(
            g,
            config.tls.clone(),
            Arc::clone(&recorder),
            origin,
        )),
        Target::Write(w) => Sender::Write(WriteSender::new(w)),
    };
    let runtime = Handle::current();
    let pool = Pool::new(
        config.pace,
        origin,
        config.target.timeout(),
        config.max_in_flight,
        runtime.clone(),
        recorder,
        sender,
    );
    let stop = cancel.child_token();
    let (stopped_tx, stopped) = oneshot::channel();
    match config.pace {
        Pace::Rate(_) => {
            let flag = Arc::new(StopFlag::default());
            let finish_on_exit = FinishOnDrop(Arc::clone(&pool));
            let pacer = Pacer {
                pool: Arc::clone(&pool),
                schedule: Schedule::new(config.pace),
                origin,
                flag: Arc::clone(&flag),
                token: stop.clone(),
            };
            let spawned = thread::Builder::new()
                .name(format!("pacer-{}", config.name))
                .spawn(move || {
                    let at = pacer.run();
                    // Finish before reporting the stop, so the owner sees every worker
                    // the final release spawned.
                    drop(finish_on_exit);
                    let _ = stopped_tx.send(at);
                });
            match spawned {
                Ok(thread) => {
                    let token = stop.clone();
                    runtime.spawn(async move {
                        token.cancelled().await;
                        flag.raise(Instant::now());
                        thread.thread().unpark();
                    });
                }
                Err(error) => {
                    // Without a pacer nothing is ever due: the probe records nothing and
                    // the report shows zero scheduled sends instead of a crash.
                    tracing::error!(%error, probe = %config.name, "cannot start pacer thread");
                    pool.finish();
                }
            }
        }
        Pace::Max => {
            pool.grow();
            let token = stop.clone();
            let pool = Arc::clone(&pool);
            runtime.spawn(async move {
                token.cancelled().await;
                pool.finish();
                let _ = stopped_tx.send(Instant::now().saturating_duration_since(origin));
            });
        }
    }
    RunningProbe {
        pool,
        _guard: stop.clone().drop_guard(),
        stop,
        stopped,
        origin,
    }
}

/// The stop request, readable from the pacer thread without a runtime.
#[derive(Default)]
struct StopFlag {
    raised: AtomicBool,
    at: Mutex<Option<Instant>>,
}

impl StopFlag {
    fn raise(&self, at: Instant) {
        *self.at.lock().unwrap_or_else(|p| p.into_inner()) = Some(at);
        self.raised.store(true, Ordering::Release);
    }
    fn at(&self) -> Option<Instant> {
        if !self.raised.load(Ordering::Acquire) {
            return None;
        }
        *self.at.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Ends the release of sends when the pacer thread exits, even by a panic, so workers
/// drain and `stop` returns instead of waiting forever.
struct FinishOnDrop(Arc<Pool>);

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        self.0.finish();
    }
}

struct Pacer {
    pool: Arc<Pool>,
    schedule: Schedule,
    origin: Instant,
    flag: Arc<StopFlag>,
    /// Checked directly too, so the thread ends even if the runtime that would have
    /// raised the flag is gone.
    token: CancellationToken,
}

impl Pacer {
    /// Release sends as they fall due until stopped; returns the stop time from the origin.
    fn run(self) -> Duration {
        // Default slack is 50 µs: every sleep would end up to 50 µs late on top of the
        // wake-up latency. The call only affects this thread; failing it costs precision.
        if let Err(error) = nix::sys::prctl::set_timerslack(1) {
            tracing::debug!(%error, "cannot lower the pacer's timer slack");
        }
        let mut released = 0u64;
        let stop = loop {
            if let Some(at) = self.flag.at() {
                break at;
            }
            if self.token.is_cancelled() {
                break Instant::now();
            }
            let Some(due) = self.origin.checked_add(self.schedule.offset(released)) else {
                // Nothing more is ever due: wait for the stop.
                thread::park();
                continue;
            };
            let now = Instant::now();
            if now < due {
                let wait = due - now;
                if wait > SPIN {
                    // Woken early by `unpark` on stop; spurious wake-ups just loop.
                    thread::park_timeout(wait - SPIN);
                } else {
                    std::hint::spin_loop();
                }
                continue;
            }
            released = self.schedule.due_at(now - self.origin);
            self.pool.release(released);
        };
        // Everything due up to the stop request is scheduled, even if this thread was
        // descheduled then: the count is a function of the stop time alone.
        let elapsed = stop.checked_duration_since(self.origin);
        if let Some(elapsed) = elapsed {
            self.pool.release(self.schedule.due_at(elapsed));
        }
        elapsed.unwrap_or_default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    #[test]
    fn offsets_come_from_one_formula() {
        let s = Schedule::new(Pace::Rate(3.0));
        assert_eq!(s.offset(0), Duration::ZERO);
        // 1/3 s does not accumulate rounding: send 3 million is exactly 1e6 s in.
        assert_eq!(s.offset(3_000_000), Duration::from_secs(1_000_000));
        assert_eq!(s.offset(1).as_nanos(), 333_333_333);
    }

    #[test]
    fn due_counts_include_the_send_at_the_instant() {
        let s = Schedule::new(Pace::Rate(1000.0));
        assert_eq!(s.due_at(Duration::ZERO), 1);
        assert_eq!(s.due_at(Duration::from_micros(999)), 1);
        assert_eq!(s.due_at(Duration::from_millis(1)), 2);
        assert_eq!(s.due_at(Duration::from_secs(10)), 10_001);
        let odd = Schedule::new(Pace::Rate(7.3));
        for k in 0..10_000u64 {
            let t = odd.offset(k);
            assert_eq!(odd.due_at(t), k + 1, "at send {k}");
            if let Some(before) = t.checked_sub(Duration::from_nanos(1)) {
                assert_eq!(odd.due_at(before), k, "just before send {k}");
            }
        }
    }

    #[test]
    fn no_rate_schedules_nothing() {
        for pace in [
            Pace::Rate(0.0),
            Pace::Rate(-1.0),
            Pace::Rate(f64::NAN),
            Pace::Max,
        ] {
            let s = Schedule::new(pace);
            assert_eq!(s.due_at(Duration::from_secs(100)), 0);
            assert_eq!(s.offset(1), Duration::MAX);
        }
    }
}
