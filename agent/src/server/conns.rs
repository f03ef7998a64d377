//! The connection cap: at most `max_connections` open at once, so a flood of idle or
//! half-open connections can neither exhaust the agent's file descriptors nor starve an
//! authenticated caller. A connection counts as unauthenticated until it sends a request
//! with a valid token (a TLS handshake in progress is unauthenticated too). At the cap a
//! new connection closes the oldest unauthenticated one (it has been given nothing) and
//! takes its place; only when every open connection is authenticated is the new one
//! answered 503 and closed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use nix::sys::resource::{getrlimit, setrlimit, Resource};
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// Connections beyond the cap that may hold a descriptor at once: evicted ones not yet
/// closed, and those being answered 503. The accept loop waits for one of these slots,
/// so descriptors for connections never exceed `cap + SLACK`.
pub const SLACK: usize = 64;

/// Descriptors the agent needs besides connections: the listener, the audit log, ledger
/// writes, netlink sockets, pipes to `nft`/`iptables`/`tc`, `/proc` reads.
pub const RESERVED_FDS: usize = 128;

/// The open connections.
#[derive(Debug)]
pub struct Conns {
    cap: usize,
    /// `cap + SLACK` permits; every accepted socket holds one until it is closed.
    descriptors: Arc<Semaphore>,
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    next_id: u64,
    /// Oldest first; cancelling the token closes the connection.
    unauthenticated: BTreeMap<u64, CancellationToken>,
    authenticated: usize,
}

/// What to do with a connection just accepted.
#[derive(Debug)]
pub enum Admission {
    /// Serve it; `evicted`: the oldest unauthenticated connection was closed for it.
    Serve { slot: Slot, evicted: bool },
    /// Answer 503 and close: every open connection is authenticated.
    Busy(OwnedSemaphorePermit),
}

/// A served connection's place in the table; leaving it (drop) frees the place.
#[derive(Debug)]
pub struct Slot {
    conns: Arc<Conns>,
    id: u64,
    evict: CancellationToken,
    authenticated: std::sync::atomic::AtomicBool,
    _descriptor: OwnedSemaphorePermit,
}

impl Conns {
    /// A table for at most `cap` open connections (at least one).
    pub fn new(cap: usize) -> Arc<Conns> {
        let cap = cap.max(1);
        Arc::new(Conns {
            cap,
            descriptors: Arc::new(Semaphore::new(cap + SLACK)),
            table: Mutex::new(Table::default()),
        })
    }

    /// The cap in force.
    pub fn cap(&self) -> usize {
        self.cap
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // A panic while holding this lock leaves counts that are still consistent (every
        // change is a single insert or remove), so a poisoned lock is used as it is.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wait for a descriptor slot: call before `accept`, so that while evicted
    /// connections are still closing, new ones wait in the kernel's backlog.
    /// (The semaphore is never closed, so the error does not happen.)
    pub async fn descriptor(&self) -> Result<OwnedSemaphorePermit, AcquireError> {
        self.descriptors.clone().acquire_owned().await
    }

    /// Place a connection just accepted (holding `descriptor`).
    pub fn admit(self: &Arc<Self>, descriptor: OwnedSemaphorePermit) -> Admission {
        let mut table = self.table();
        let mut evicted = false;
        if table.unauthenticated.len() + table.authenticated >= self.cap {
            match table.unauthenticated.pop_first() {
                Some((_, oldest)) => {
                    oldest.cancel();
                    evicted = true;
                }
                None => return Admission::Busy(descriptor),
            }
        }
        let id = table.next_id;
        table.next_id += 1;
        let evict = CancellationToken::new();
        table.unauthenticated.insert(id, evict.clone());
        Admission::Serve {
            slot: Slot {
                conns: self.clone(),
                id,
                evict,
                authenticated: std::sync::atomic::AtomicBool::new(false),
                _descriptor: descriptor,
            },
            evicted,
        }
    }

    /// (unauthenticated, authenticated) connections open.
    pub fn counts(&self) -> (usize, usize) {
        let table = self.table();
        (table.unauthenticated.len(), table.authenticated)
    }
}

impl Slot {
    /// Resolves when the connection was chosen to make room for a newer one.
    pub fn evicted(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.evict.cancelled()
    }

    /// The connection sent a valid token: it is never evicted from now on.
    pub fn authenticated(&self) {
        use std::sync::atomic::Ordering;
        if self.authenticated.load(Ordering::Relaxed) {
            return;
        }
        let mut table = self.conns.table();
        // Absent: evicted a moment ago; it is closing, nothing to promote.
        if table.unauthenticated.remove(&self.id).is_some() {
            table.authenticated += 1;
            self.authenticated.store(true, Ordering::Relaxed);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut table = self.conns.table();
        if self
            .authenticated
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            table.authenticated -= 1;
        } else {
            table.unauthenticated.remove(&self.id);
        }
    }
}

/// Raise the soft limit on open files to the hard limit (the systemd unit sets
/// `LimitNOFILE`); returns the soft limit now in force.
pub fn raise_fd_limit() -> nix::Result<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    // An unlimited hard limit cannot be the soft one (the kernel's nr_open caps it).
    let target = hard.min(1 << 20);
    if soft < target {
        setrlimit(Resource::RLIMIT_NOFILE, target, hard)?;
        return Ok(target);
    }
    Ok(soft)
}

/// The cap that fits the soft limit on open files: `requested`, or less (with a warning)
/// when `requested + SLACK + RESERVED_FDS` would pass the limit.
pub fn fitting_cap(requested: usize) -> usize {
    let soft = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, _)) => usize::try_from(soft).unwrap_or(usize::MAX),
        Err(error) => {
            tracing::warn!(%error, "cannot read RLIMIT_NOFILE; keeping the connection cap");
            return requested.max(1);
        }
    };
    cap_within(requested, soft)
}

fn cap_within(requested: usize, fd_limit: usize) -> usize {
    let room = fd_limit.saturating_sub(SLACK + RESERVED_FDS).max(1);
    if requested > room {
        tracing::warn!(
            requested,
            cap = room,
            fd_limit,
            "--max-connections lowered to fit the open-files limit \
             (raise LimitNOFILE / ulimit -n to keep it)"
        );
        return room;
    }
    requested.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn admit(conns: &Arc<Conns>) -> Admission {
        let permit = conns.descriptor().await.unwrap();
        conns.admit(permit)
    }

    fn served(a: Admission) -> (Slot, bool) {
        match a {
            Admission::Serve { slot, evicted } => (slot, evicted),
            Admission::Busy(_) => panic!("busy"),
        }
    }

    #[tokio::test]
    async fn oldest_unauthenticated_makes_room_then_busy() {
        let conns = Conns::new(3);
        let (a, ev) = served(admit(&conns).await);
        assert!(!ev);
        let (b, _) = served(admit(&conns).await);
        let (c, _) = served(admit(&conns).await);
        b.authenticated();
        // At the cap: `a`, the oldest unauthenticated, goes.
        let (d, ev) = served(admit(&conns).await);
        assert!(ev);
        tokio::time::timeout(std::time::Duration::from_secs(1), a.evicted())
            .await
            .expect("a evicted");
        drop(a);
        assert_eq!(conns.counts(), (2, 1));
        // Then `c`, not the authenticated `b`.
        c.authenticated();
        d.authenticated();
        assert_eq!(conns.counts(), (0, 3));
        assert!(matches!(admit(&conns).await, Admission::Busy(_)));
        drop(b);
        let (_e, ev) = served(admit(&conns).await);
        assert!(!ev, "a place was free");
        drop((c, d));
    }

    #[test]
    fn cap_fits_the_fd_limit() {
        assert_eq!(cap_within(512, 65536), 512);
        assert_eq!(cap_within(512, 1024), 512);
        assert_eq!(cap_within(5000, 1024), 1024 - SLACK - RESERVED_FDS);
        assert_eq!(cap_within(10, 16), 1);
    }
}
