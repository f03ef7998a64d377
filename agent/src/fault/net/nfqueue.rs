//! The nfqueue reader: latency (and seeded loss) without netem.
//!
//! One thread per fault, living in the target namespace (netlink sockets bind the queue of
//! the namespace they were created in). It stamps each packet on arrival, holds it in a
//! min-heap keyed on `arrival + delay ± jitter` and issues ACCEPT when that time comes.
//! Jitter may reorder packets, as netem's does. The `nfq` crate gives no file descriptor
//! to poll, so the socket is non-blocking and the thread sleeps until the next release,
//! at most `TICK`; with a 1 µs timer slack that bounds the added error to roughly
//! TICK/2 on average (see the report's fidelity numbers).

use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::collections::BinaryHeap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nfq::{Message, Queue, Verdict};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::error::NetError;
use super::netns::{self, NsRecord};

/// Queue numbers start here (0x5ba7, the agent's tag) and go up until one is free.
pub(crate) const FIRST_QUEUE: u16 = 0x5ba7;
const QUEUE_TRIES: u16 = 256;
/// Longest sleep between polls of the queue: the arrival-stamp resolution.
const TICK: Duration = Duration::from_micros(200);
/// Kernel-side queue length; past it, fail-open accepts packets instead of dropping.
const MAX_LEN: u32 = 16_384;

/// What happens to each queued packet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Shape {
    pub delay: Duration,
    pub jitter: Duration,
    /// Fraction of packets dropped (0..=1).
    pub loss: f64,
    /// Seeds each packet's [`Fate`].
    pub seed: u64,
}

/// Each packet's fate, drawn in arrival order from a generator seeded with the fault's
/// seed: the same seed and the same packets give the same drops and the same delays.
pub(crate) struct Fate {
    rng: StdRng,
    loss: f64,
    delay: i128,
    jitter: i128,
}

impl Fate {
    pub fn new(shape: &Shape) -> Fate {
        Fate {
            rng: StdRng::seed_from_u64(shape.seed),
            loss: shape.loss,
            delay: shape.delay.as_nanos() as i128,
            jitter: shape.jitter.as_nanos() as i128,
        }
    }

    /// The next packet's: `None` to drop it, else how long to hold it (delay ± jitter).
    pub fn draw(&mut self) -> Option<Duration> {
        if self.loss > 0.0 && self.rng.random_bool(self.loss.min(1.0)) {
            return None;
        }
        let spread = if self.jitter > 0 {
            self.rng.random_range(-self.jitter..=self.jitter)
        } else {
            0
        };
        Some(Duration::from_nanos((self.delay + spread).max(0) as u64))
    }
}

/// Counters a reader keeps, readable while it runs.
#[derive(Debug, Default)]
pub(crate) struct ReaderStats {
    queued: AtomicU64,
    accepted: AtomicU64,
    dropped: AtomicU64,
    errors: AtomicU64,
}

/// A reader's counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueCounters {
    /// Packets the kernel handed us.
    pub queued: u64,
    /// Released after their delay.
    pub accepted: u64,
    /// Dropped by the seeded loss.
    pub dropped: u64,
    /// Failed receives or verdicts.
    pub errors: u64,
}

impl ReaderStats {
    pub fn snapshot(&self) -> QueueCounters {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        QueueCounters {
            queued: get(&self.queued),
            accepted: get(&self.accepted),
            dropped: get(&self.dropped),
            errors: get(&self.errors),
        }
    }
}

/// A running reader; `stop` releases what it holds and closes the queue.
pub(crate) struct Reader {
    pub queue: u16,
    pub ns_inode: Option<u64>,
    pub stats: Arc<ReaderStats>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Reader {
    /// Starts the thread, binds a free queue in the namespace, and returns once the
    /// queue is bound (so the iptables rule added next always has a listener).
    pub fn start(ns: Option<(PathBuf, NsRecord)>, shape: Shape) -> Result<Reader, NetError> {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(ReaderStats::default());
        let (tx, rx) = std::sync::mpsc::channel();
        let ns_inode = ns.as_ref().map(|(_, r)| r.inode);
        let (stop2, stats2) = (stop.clone(), stats.clone());
        let thread = std::thread::Builder::new()
            .name("shakeout-nfqueue".into())
            .spawn(move || {
                let opened = ns
                    .as_ref()
                    .map_or(Ok(()), |(path, rec)| netns::enter(path, rec))
                    .and_then(|()| open());
                match opened {
                    Ok((queue, num)) => {
                        let _ = tx.send(Ok(num));
                        run(queue, num, shape, &stop2, &stats2);
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| NetError::Failed(format!("spawn nfqueue reader: {e}")))?;
        let queue = rx
            .recv()
            .map_err(|_| NetError::Failed("nfqueue reader died while binding".into()))??;
        Ok(Reader {
            queue,
            ns_inode,
            stats,
            stop,
            thread: Some(thread),
        })
    }

    /// Releases every held packet, closes the queue and waits for the thread.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.halt();
    }
}

fn open() -> Result<(Queue, u16), NetError> {
    let mut queue = Queue::open()
        .map_err(|e| NetError::Unavailable(format!("nfqueue: open netlink socket: {e}")))?;
    let mut last = None;
    for num in FIRST_QUEUE..FIRST_QUEUE.saturating_add(QUEUE_TRIES) {
        // Another process owning `num` in this namespace refuses our bind; try the next.
        match queue.bind(num) {
            Ok(()) => {
                configure(&mut queue, num)?;
                return Ok((queue, num));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(NetError::Failed(format!(
        "nfqueue: no free queue in {FIRST_QUEUE}..{}: {}",
        FIRST_QUEUE.saturating_add(QUEUE_TRIES),
        last.map(|e| e.to_string()).unwrap_or_default()
    )))
}

fn configure(queue: &mut Queue, num: u16) -> Result<(), NetError> {
    let fail =
        |what: &str, e: std::io::Error| NetError::Failed(format!("nfqueue {num}: {what}: {e}"));
    // The verdict needs only the packet id: copy metadata, not payloads.
    queue
        .set_copy_range(num, 0)
        .map_err(|e| fail("copy range", e))?;
    // Whole GSO super-packets, not software-segmented ones: fewer, cheaper verdicts.
    queue.set_recv_gso(num, true).map_err(|e| fail("gso", e))?;
    queue
        .set_queue_max_len(num, MAX_LEN)
        .map_err(|e| fail("max length", e))?;
    // A full queue accepts instead of dropping: under overload the fault weakens,
    // it never turns into an unplanned blackhole.
    queue
        .set_fail_open(num, true)
        .map_err(|e| fail("fail open", e))?;
    queue.set_nonblocking(true);
    Ok(())
}

/// A held packet, ordered by release time then arrival (FIFO among equals).
struct Held {
    due: Instant,
    seq: u64,
    msg: Message,
}

impl PartialEq for Held {
    fn eq(&self, o: &Self) -> bool {
        (self.due, self.seq) == (o.due, o.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, o: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(o))
    }
}
impl Ord for Held {
    fn cmp(&self, o: &Self) -> CmpOrdering {
        (self.due, self.seq).cmp(&(o.due, o.seq))
    }
}

fn run(mut queue: Queue, num: u16, shape: Shape, stop: &AtomicBool, stats: &ReaderStats) {
    // Timers fire late by the thread's slack (50 µs by default); 1 µs keeps releases tight.
    let _ = nix::sys::prctl::set_timerslack(1);
    let mut fate = Fate::new(&shape);
    let mut heap: BinaryHeap<Reverse<Held>> = BinaryHeap::new();
    let mut seq = 0u64;
    let verdict = |queue: &mut Queue, mut msg: Message, v: Verdict, stats: &ReaderStats| {
        msg.set_verdict(v);
        let counter = if v == Verdict::Accept {
            &stats.accepted
        } else {
            &stats.dropped
        };
        match queue.verdict(msg) {
            Ok(()) => counter.fetch_add(1, Ordering::Relaxed),
            Err(_) => stats.errors.fetch_add(1, Ordering::Relaxed),
        };
    };
    while !stop.load(Ordering::Relaxed) {
        loop {
            match queue.recv() {
                Ok(msg) => {
                    let now = Instant::now();
                    stats.queued.fetch_add(1, Ordering::Relaxed);
                    let Some(hold) = fate.draw() else {
                        verdict(&mut queue, msg, Verdict::Drop, stats);
                        continue;
                    };
                    seq += 1;
                    heap.push(Reverse(Held {
                        due: now + hold,
                        seq,
                        msg,
                    }));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
        let now = Instant::now();
        while heap.peek().is_some_and(|Reverse(h)| h.due <= now) {
            if let Some(Reverse(h)) = heap.pop() {
                verdict(&mut queue, h.msg, Verdict::Accept, stats);
            }
        }
        let nap = heap.peek().map_or(TICK, |Reverse(h)| {
            h.due.saturating_duration_since(now).min(TICK)
        });
        std::thread::sleep(nap);
    }
    // Revert deletes the rule before stopping us, so nothing new arrives; what we still
    // hold goes out now rather than being dropped when the socket closes.
    while let Some(Reverse(h)) = heap.pop() {
        verdict(&mut queue, h.msg, Verdict::Accept, stats);
    }
    while let Ok(msg) = queue.recv() {
        stats.queued.fetch_add(1, Ordering::Relaxed);
        verdict(&mut queue, msg, Verdict::Accept, stats);
    }
    let _ = queue.unbind(num);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fates(seed: u64, n: usize) -> Vec<Option<Duration>> {
        let mut fate = Fate::new(&Shape {
            delay: Duration::from_millis(20),
            jitter: Duration::from_millis(5),
            loss: 0.3,
            seed,
        });
        (0..n).map(|_| fate.draw()).collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_drops_and_delays() {
        let run = fates(42, 1000);
        assert_eq!(run, fates(42, 1000), "a replay with the seed differs");
        assert_ne!(run, fates(43, 1000), "another seed gives the same pattern");
        // Binomial(1000, 0.3): 300 ± 58 is over four standard deviations.
        let dropped = run.iter().filter(|f| f.is_none()).count();
        assert!((242..=358).contains(&dropped), "{dropped} dropped");
        let (low, high) = (Duration::from_millis(15), Duration::from_millis(25));
        assert!(run.iter().flatten().all(|d| (low..=high).contains(d)));
        assert!(run
            .iter()
            .flatten()
            .any(|d| *d != Duration::from_millis(20)));
    }

    #[test]
    fn no_loss_and_no_jitter_hold_every_packet_for_the_delay() {
        let mut fate = Fate::new(&Shape {
            delay: Duration::from_millis(7),
            jitter: Duration::ZERO,
            loss: 0.0,
            seed: 1,
        });
        assert!((0..100).all(|_| fate.draw() == Some(Duration::from_millis(7))));
        let mut all = Fate::new(&Shape {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: 1.0,
            seed: 1,
        });
        assert!((0..100).all(|_| all.draw().is_none()));
    }
}
