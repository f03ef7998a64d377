//! What the parts of the agent core share: who is asking, the faults held (each with its
//! lease, exclusive locks and failed reverts), and the handles every operation needs.
//! Data and small helpers only, so `apply`, `undo`, the reaper and the public `Agent`
//! all build on this module and none of them on another's.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use shakeout_api::{FaultStatus, SweepReport};
use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;

use crate::audit::Audit;
use crate::fault::net::Net;
use crate::fault::target::ProcRoot;
use crate::lease::Lease;
use crate::ledger::{Ledger, Record};
use crate::policy::{Policy, TokenPolicy};
use crate::telemetry::Metrics;

/// How many reverted fault ids are remembered, so a repeated revert answers 200
/// (`revertedNow: false`) instead of 404.
const TOMBSTONES: usize = 4096;

/// Who is asking: the token's name and what its policy allows.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    pub name: String,
    pub policy: TokenPolicy,
    /// Where the request came from (the audit log says), when it came over HTTP.
    pub peer: Option<SocketAddr>,
}

/// A fault the agent holds.
#[derive(Debug, Clone)]
pub(super) struct Active {
    pub(super) record: Record,
    pub(super) lease: Lease,
    /// Exclusive-target keys (a paused pid, a network namespace).
    pub(super) locks: Vec<String>,
    pub(super) target: String,
    /// Failed reverts so far: each retry waits longer (1 s doubling to 60 s).
    pub(super) attempts: u32,
}

impl Active {
    /// The fault as `GET /v1/faults` lists it.
    pub(super) fn status(&self) -> FaultStatus {
        FaultStatus {
            id: self.record.id.clone(),
            experiment: self.record.experiment.clone(),
            fault: self.record.fault.clone(),
            owner: self.record.owner.clone(),
            spec: self.record.spec.clone(),
            applied_unix_ms: self.record.applied_unix_ms,
            deadline_unix_ms: self.lease.deadline_unix_ms,
            ends_unix_ms: self.lease.ends_unix_ms,
        }
    }
}

/// The faults held, and the ids recently reverted.
#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) faults: BTreeMap<String, Active>,
    pub(super) tombstones: VecDeque<String>,
}

impl State {
    /// Remember a reverted id (the oldest is forgotten past [`TOMBSTONES`]).
    pub(super) fn bury(&mut self, id: String) {
        if self.tombstones.len() >= TOMBSTONES {
            self.tombstones.pop_front();
        }
        self.tombstones.push_back(id);
    }
}

/// The agent core every operation works on; `Agent` is a cheap handle to it.
pub(super) struct Inner {
    pub(super) policy: Policy,
    pub(super) proc_root: ProcRoot,
    pub(super) ledger: Ledger,
    pub(super) audit: Audit,
    pub(super) metrics: Metrics,
    pub(super) net: Net,
    pub(super) state: Mutex<State>,
    /// Wakes the reaper when a fault is added or renewed.
    pub(super) wake: Notify,
    pub(super) last_sweep: SweepReport,
    /// Set by shutdown before it takes the state lock: no apply is admitted after it.
    pub(super) stopping: AtomicBool,
    pub(super) grace: Duration,
    /// Stops the reaper.
    pub(super) cancel: CancellationToken,
    pub(super) self_pid: u32,
}
