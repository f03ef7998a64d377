//! Unauthenticated requests are audited in bounded form, so that nobody without a token
//! can fill the node's disk through the audit log. The first refusal from an address in
//! each minute gets a line of its own (caller address, method and clipped path); later
//! ones from that address are counted and written as one summary line (`count`, `since`)
//! when the minute ends, or at shutdown.
//!
//! Every byte written here is paid from a credit that each unauthenticated request adds
//! `BYTES_PER_REQUEST` to (saved up to `BURST`): whatever the rate and however many
//! addresses (127.0.0.0/8 alone offers millions), N requests write at most
//! `BURST + N * BYTES_PER_REQUEST` bytes, plus at most `FINAL_SUMMARIES` and one line at
//! shutdown. A summary that cannot be paid yet waits, its count growing; none is lost.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use crate::audit::{timestamp, Action, Audit, Entry};
use crate::error::AgentError;

/// The first refusal from an address in a window gets its own line.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at once; refusals from others are counted together.
pub const PEERS: usize = 1024;
/// Audit bytes each unauthenticated request earns.
pub const BYTES_PER_REQUEST: u64 = 64;
/// Audit bytes that may be spent ahead of earnings, and the most that is ever saved up.
pub const BURST: u64 = 64 * 1024;
/// Bytes of per-address summaries written at shutdown; what is left goes in one line.
pub const FINAL_SUMMARIES: usize = 16 * 1024;

/// The bounded audit of unauthenticated refusals.
#[derive(Debug)]
pub struct Refusals {
    gate: Mutex<Gate>,
}

/// What became of one refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audited {
    /// Written as a line of its own.
    Line,
    /// Counted, for a summary line.
    Counted,
}

#[derive(Debug)]
struct Gate {
    credit: u64,
    window_start: Instant,
    peers: HashMap<IpAddr, Peer>,
    /// Refusals from addresses the table had no room for.
    untracked: Pending,
}

#[derive(Debug, Default)]
struct Peer {
    /// Had its line of its own in this window.
    logged: bool,
    pending: Pending,
}

/// Refusals counted, not yet written.
#[derive(Debug, Default)]
struct Pending {
    count: u64,
    since: Option<SystemTime>,
    /// The last request (method and clipped path).
    last: String,
}

impl Pending {
    fn add(&mut self, request: &str) {
        if self.count == 0 {
            self.since = Some(SystemTime::now());
        }
        self.count += 1;
        self.last.clear();
        self.last.push_str(request);
    }

    fn merge(&mut self, other: Pending) {
        if other.count == 0 {
            return;
        }
        self.since = match (self.since, other.since) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.count += other.count;
        self.last = other.last;
    }
}

/// Whom a summary line is about.
#[derive(Debug, Clone, Copy)]
enum Whom {
    Peer(IpAddr),
    Untracked,
    /// At shutdown, past `FINAL_SUMMARIES`: this many addresses together.
    Rest(usize),
}

fn summary(from: Whom, pending: &Pending) -> Entry {
    let mut entry = Entry::new(Action::Refuse, "-");
    entry.result = "error";
    entry.code = Some("unauthorized");
    entry.count = Some(pending.count);
    entry.since = pending.since.map(timestamp);
    let who = match from {
        Whom::Peer(ip) => {
            entry.peer = Some(ip.to_string());
            format!("from {ip}")
        }
        Whom::Untracked => format!("from addresses beyond the {PEERS} tracked"),
        Whom::Rest(n) => format!("from {n} more addresses"),
    };
    entry.message = Some(format!(
        "{} unauthenticated requests {who} counted, not written one by one \
         (missing or unknown bearer token); the last: {}",
        pending.count, pending.last
    ));
    entry
}

impl Gate {
    fn spend(&mut self, bytes: usize) -> bool {
        let bytes = bytes as u64;
        if self.credit >= bytes {
            self.credit -= bytes;
            true
        } else {
            false
        }
    }

    /// Write `entry` if the credit pays for it.
    fn write_paid(&mut self, audit: &Audit, entry: &Entry) -> bool {
        match Audit::encode(entry) {
            Some(line) if self.spend(line.len()) => {
                audit.append(&line);
                true
            }
            _ => false,
        }
    }

    /// At the end of a window: write the summaries the credit pays for (biggest first),
    /// forget the addresses with nothing pending, and open a new window.
    fn roll(&mut self, audit: &Audit, now: Instant) {
        if now.saturating_duration_since(self.window_start) < WINDOW {
            return;
        }
        self.window_start = now;
        let mut due: Vec<(u64, IpAddr)> = self
            .peers
            .iter()
            .filter(|(_, p)| p.pending.count > 0)
            .map(|(ip, p)| (p.pending.count, *ip))
            .collect();
        due.sort_unstable_by(|a, b| b.cmp(a));
        for (_, ip) in due {
            let Some(peer) = self.peers.get(&ip) else {
                continue;
            };
            let entry = summary(Whom::Peer(ip), &peer.pending);
            if !self.write_paid(audit, &entry) {
                // The rest are as long as this one: they wait for the next window.
                break;
            }
            if let Some(peer) = self.peers.get_mut(&ip) {
                peer.pending = Pending::default();
            }
        }
        if self.untracked.count > 0 {
            let entry = summary(Whom::Untracked, &self.untracked);
            if self.write_paid(audit, &entry) {
                self.untracked = Pending::default();
            }
        }
        self.peers.retain(|_, p| p.pending.count > 0);
        for peer in self.peers.values_mut() {
            peer.logged = false;
        }
    }
}

impl Refusals {
    /// Nothing counted yet, the credit full; the first window starts at `now`.
    pub fn new(now: Instant) -> Refusals {
        Refusals {
            gate: Mutex::new(Gate {
                credit: BURST,
                window_start: now,
                peers: HashMap::new(),
                untracked: Pending::default(),
            }),
        }
    }

    fn gate(&self) -> MutexGuard<'_, Gate> {
        // Counts stay usable after a panic elsewhere; at worst a summary is off by one.
        self.gate.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Audit one unauthenticated refusal from `peer` at `now`: a line of its own if it is
    /// the first from that address in this window and the credit pays for it, else
    /// counted. `request` is the method and clipped path; `error` the answer sent.
    pub fn refused(
        &self,
        audit: &Audit,
        now: Instant,
        peer: SocketAddr,
        request: &str,
        error: &AgentError,
    ) -> Audited {
        let mut gate = self.gate();
        gate.roll(audit, now);
        gate.credit = (gate.credit + BYTES_PER_REQUEST).min(BURST);
        let ip = peer.ip();
        let room = gate.peers.len() < PEERS;
        if !gate.peers.get(&ip).is_some_and(|p| p.logged) {
            let entry = Entry::new(Action::Refuse, "-")
                .peer(Some(peer))
                .outcome::<()>(&Err(error.clone()));
            if gate.write_paid(audit, &entry) {
                match gate.peers.get_mut(&ip) {
                    Some(p) => p.logged = true,
                    None if room => {
                        gate.peers.insert(
                            ip,
                            Peer {
                                logged: true,
                                pending: Pending::default(),
                            },
                        );
                    }
                    None => {}
                }
                return Audited::Line;
            }
        }
        match gate.peers.get_mut(&ip) {
            Some(p) => p.pending.add(request),
            None if room => {
                let mut p = Peer::default();
                p.pending.add(request);
                gate.peers.insert(ip, p);
            }
            None => gate.untracked.add(request),
        }
        Audited::Counted
    }

    /// Close the window if it has ended (called periodically, so summaries do not wait
    /// for the next refusal).
    pub fn tick(&self, audit: &Audit, now: Instant) {
        self.gate().roll(audit, now);
    }

    /// At shutdown: write every count still pending, paid or not, biggest first; past
    /// `FINAL_SUMMARIES` bytes the rest go in one line.
    pub fn flush(&self, audit: &Audit) {
        let mut gate = self.gate();
        let mut due: Vec<(IpAddr, Pending)> = gate
            .peers
            .drain()
            .filter(|(_, p)| p.pending.count > 0)
            .map(|(ip, p)| (ip, p.pending))
            .collect();
        due.sort_unstable_by_key(|(ip, p)| std::cmp::Reverse((p.count, *ip)));
        let mut written = 0;
        let mut rest = std::mem::take(&mut gate.untracked);
        let mut rest_addresses = 0;
        for (ip, pending) in due {
            if written < FINAL_SUMMARIES {
                if let Some(line) = Audit::encode(&summary(Whom::Peer(ip), &pending)) {
                    written += line.len();
                    audit.append(&line);
                }
            } else {
                rest.merge(pending);
                rest_addresses += 1;
            }
        }
        if rest.count > 0 {
            let from = match rest_addresses {
                0 => Whom::Untracked,
                n => Whom::Rest(n),
            };
            audit.record(summary(from, &rest));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::audit::{clip, Rotation};

    struct Log {
        _dir: tempfile::TempDir,
        audit: Audit,
    }

    impl Log {
        fn new() -> Log {
            let dir = tempfile::tempdir().unwrap();
            let audit = Audit::open(
                &dir.path().join("audit.jsonl"),
                Rotation {
                    max_size: u64::MAX,
                    keep: 1,
                },
            )
            .unwrap();
            Log { _dir: dir, audit }
        }

        fn lines(&self) -> Vec<serde_json::Value> {
            std::fs::read_to_string(self.audit.path())
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        }

        fn size(&self) -> u64 {
            std::fs::metadata(self.audit.path()).unwrap().len()
        }
    }

    fn refuse(r: &Refusals, log: &Log, now: Instant, peer: SocketAddr, path: &str) -> Audited {
        let request = format!("GET {}", clip(path, 128));
        let e = AgentError::Unauthorized(format!("{request}: missing or unknown bearer token"));
        r.refused(&log.audit, now, peer, &request, &e)
    }

    fn addr(n: u32) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::from(0x7f00_0000 | n), 40000))
    }

    #[test]
    fn first_per_address_per_window_then_a_summary() {
        let log = Log::new();
        let t0 = Instant::now();
        let r = Refusals::new(t0);
        assert_eq!(refuse(&r, &log, t0, addr(1), "/a"), Audited::Line);
        assert_eq!(refuse(&r, &log, t0, addr(2), "/b"), Audited::Line);
        for _ in 0..5 {
            assert_eq!(refuse(&r, &log, t0, addr(1), "/c"), Audited::Counted);
        }
        assert_eq!(log.lines().len(), 2);
        assert_eq!(log.lines()[0]["peer"], "127.0.0.1:40000");
        r.tick(&log.audit, t0 + WINDOW);
        let lines = log.lines();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(lines[2]["peer"], "127.0.0.1");
        assert_eq!(lines[2]["count"], 5);
        assert!(lines[2]["message"].as_str().unwrap().contains("GET /c"));
        // A new window: a line of its own again.
        assert_eq!(refuse(&r, &log, t0 + WINDOW, addr(1), "/d"), Audited::Line);
        assert_eq!(
            refuse(&r, &log, t0 + WINDOW, addr(1), "/e"),
            Audited::Counted
        );
        r.flush(&log.audit);
        let last = log.lines().pop().unwrap();
        assert_eq!(
            (last["count"].as_u64(), last["peer"].as_str()),
            (Some(1), Some("127.0.0.1"))
        );
    }

    /// 10,000 refusals with 8 KB paths, fast from 16 addresses or slow from 10,000:
    /// the log grows by at most the bound, and counts add up to every request.
    #[test]
    fn volume_is_bounded_at_any_rate_from_any_number_of_addresses() {
        let path = format!("/{}", "x".repeat(8192));
        let bound = BURST + 10_000 * BYTES_PER_REQUEST + FINAL_SUMMARIES as u64 + 1024;
        assert!(bound <= 1024 * 1024);
        for (addresses, step) in [(16, Duration::ZERO), (10_000, Duration::from_secs(7))] {
            let log = Log::new();
            let t0 = Instant::now();
            let r = Refusals::new(t0);
            let mut now = t0;
            for i in 0..10_000u32 {
                refuse(&r, &log, now, addr(1 + i % addresses), &path);
                now += step;
                assert!(r.gate().peers.len() <= PEERS);
            }
            r.tick(&log.audit, now + WINDOW);
            r.flush(&log.audit);
            let lines = log.lines();
            let counted: u64 = lines.iter().map(|l| l["count"].as_u64().unwrap_or(1)).sum();
            assert_eq!(counted, 10_000, "every request is in the log");
            eprintln!(
                "{addresses} addresses, {step:?} apart: {} bytes, {} lines (bound {bound})",
                log.size(),
                lines.len()
            );
            assert!(
                log.size() <= bound,
                "{addresses} addresses: {} bytes > {bound}",
                log.size()
            );
            assert!(lines
                .iter()
                .all(|l| l["message"].as_str().unwrap().len() < 400));
        }
    }
}
