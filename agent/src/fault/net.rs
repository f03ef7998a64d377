//! Network faults (latency, loss, blackhole): choose a mechanism, apply it in the right
//! namespace, and revert it, including after a crash, from the ledger record alone.
//!
//! The agent core owns leases and the ledger and calls `apply` / `revert` / `sweep`;
//! everything this module installs is tagged (`inet shakeout` table, `shakeout:<id>`
//! comments, `SHAKEOUT-*` chains, qdisc handle `5ba7:`) so a sweep removes only ours.
//! An apply is `prepare` (nothing changed yet; the ledger record is final) then
//! `install`, so the core writes its ledger once, between the two.

mod command;
mod detect;
mod error;
mod filter;
mod iptables;
mod netem;
mod netns;
mod nfqueue;
mod nft;
mod plan;
mod record;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use shakeout_api::{MechanismInfo, NetNamespace, NetworkFault, SweepReport};

pub use error::NetError;
pub use netns::{pod_pid, NsRecord};
pub use nfqueue::QueueCounters;
pub use record::{NetRecord, QueueVia, Rule};
pub use shakeout_api::Mechanism;

use command::tool;
use plan::Work;

/// What a revert found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reverted {
    /// Undone in its namespace (or already undone).
    Done,
    /// The namespace (this inode) no longer exists: nothing was left to undo.
    NamespaceGone(u64),
}

/// Applies and reverts network faults; owns the nfqueue reader threads.
pub struct Net {
    state_dir: PathBuf,
    proc_root: PathBuf,
    detected: detect::Detected,
    readers: Mutex<HashMap<String, nfqueue::Reader>>,
    /// One change at a time: our nft table is shared by all faults in a namespace. Held
    /// from `prepare` to the end of `install`.
    ops: Arc<tokio::sync::Mutex<()>>,
}

/// A fault checked and ready to install, holding `Net`'s change lock: its record is
/// final before anything in the namespace is touched, so the caller writes the ledger
/// once, in between. Dropped without `install`, it leaves nothing behind (an nfqueue
/// reader it started closes its queue).
pub struct Prepared {
    id: String,
    applied: NetRecord,
    target: Option<(PathBuf, NsRecord)>,
    step: Step,
    _op: tokio::sync::OwnedMutexGuard<()>,
}

impl Prepared {
    /// The ledger record: what `revert` needs, also after a crash at any point of `install`.
    pub fn record(&self) -> &NetRecord {
        &self.applied
    }
}

/// What `install` does.
enum Step {
    Nft(String),
    /// The nft queue statement, with the reader already bound.
    NftQueue(String, nfqueue::Reader),
    Iptables(Vec<Rule>, nfqueue::Reader),
    Netem {
        devs: Vec<String>,
        latency: Option<shakeout_api::Latency>,
        loss: Option<shakeout_api::Percent>,
    },
}

impl Net {
    /// Detects mechanisms once (a few tens of ms of probes in a scratch namespace).
    pub fn new(state_dir: &Path) -> Net {
        Net {
            state_dir: state_dir.to_path_buf(),
            proc_root: PathBuf::from("/proc"),
            detected: detect::detect(),
            readers: Mutex::new(HashMap::new()),
            ops: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Where the agent keeps its state (the core's ledger lives there too).
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Every mechanism, available or not, with why not.
    pub fn mechanisms(&self) -> Vec<MechanismInfo> {
        self.detected.mechanisms.clone()
    }

    /// `nft`, `iptables`, `ip6tables`, `tc`, `ip`: found or not.
    pub fn binaries(&self) -> BTreeMap<String, bool> {
        self.detected.binaries.clone()
    }

    /// Applies the fault; on error nothing of it is left in place. (`prepare` then
    /// `install`, for callers that keep no ledger.)
    pub async fn apply(
        &self,
        id: &str,
        spec: &NetworkFault,
        seed: u64,
    ) -> Result<NetRecord, NetError> {
        let prepared = self.prepare(id, spec, seed).await?;
        self.install(prepared).await
    }

    /// Everything before the first change to the namespace: check the spec, pick the
    /// mechanism, pin the namespace, bind the nfqueue reader (a socket of this process,
    /// gone with it), list a netem fault's devices, and build the rules and the record.
    ///
    /// `seed` decides which packets nfqueue drops and each one's jitter (the caller
    /// resolves `spec.seed`): the same seed and the same packets give the same pattern.
    /// nftables' `numgen random` and netem draw from the kernel's generator, which cannot
    /// be seeded from here, so their loss (and netem's jitter) differs on every run.
    pub async fn prepare(
        &self,
        id: &str,
        spec: &NetworkFault,
        seed: u64,
    ) -> Result<Prepared, NetError> {
        let plan = plan::plan(id, spec, seed, &self.detected)?;
        let op = self.ops.clone().lock_owned().await;
        if self.lock_readers().contains_key(id) {
            return Err(NetError::Failed(format!(
                "network fault {id} is already applied"
            )));
        }
        let rec = netns::resolve(&spec.namespace, &self.proc_root)?;
        let target = netns::target(&rec, &self.proc_root).map_err(|()| {
            NetError::Failed(format!(
                "network namespace inode {} vanished while the fault was prepared",
                rec.inode
            ))
        })?;
        let (id, namespace) = (id.to_string(), Some(rec));
        let table = || Some(format!("inet {}", nft::TABLE));
        let (applied, step) = match plan.work {
            Work::Nft(action) => {
                let step = Step::Nft(nft::script(&id, &plan.filter, action));
                let comment = Some(nft::comment(&id));
                let table = table();
                let record = NetRecord::Nftables {
                    id: id.clone(),
                    namespace,
                    table,
                    comment,
                };
                (record, step)
            }
            Work::Queue(shape) if self.detected.nft_queue => {
                // The kernel has nft's own queue statement: the rule joins the agent's
                // table (same tag, same sweep) and no iptables is involved.
                let reader = nfqueue::Reader::start(target.clone(), shape)?;
                let record = NetRecord::Nfqueue {
                    id: id.clone(),
                    namespace,
                    queue: Some(reader.queue),
                    via: QueueVia::NftQueue {
                        table: format!("inet {}", nft::TABLE),
                        comment: Some(nft::comment(&id)),
                    },
                };
                let script = nft::script(&id, &plan.filter, nft::Action::Queue(reader.queue));
                (record, Step::NftQueue(script, reader))
            }
            Work::Queue(shape) => {
                let reader = nfqueue::Reader::start(target.clone(), shape)?;
                let with_v6 = tool("ip6tables").is_some();
                let rules = iptables::rules(&id, &plan.filter, reader.queue, with_v6);
                let record = NetRecord::Nfqueue {
                    id: id.clone(),
                    namespace,
                    queue: Some(reader.queue),
                    via: QueueVia::Iptables {
                        rules: Some(rules.clone()),
                        iptables: self.detected.iptables_version.clone(),
                    },
                };
                (record, Step::Iptables(rules, reader))
            }
            Work::Netem { latency, loss } => {
                let devs = match spec.interface.clone() {
                    Some(d) => vec![d],
                    None => netns::run(target.clone(), netem::interfaces).await?,
                };
                let record = NetRecord::Netem {
                    id: id.clone(),
                    namespace,
                    handle: Some(netem::HANDLE.to_string()),
                    devices: devs.clone(),
                };
                let step = Step::Netem {
                    devs,
                    latency,
                    loss,
                };
                (record, step)
            }
        };
        Ok(Prepared {
            id,
            applied,
            target,
            step,
            _op: op,
        })
    }

    /// Makes the change `prepare` planned; on error nothing of it is left in place.
    pub async fn install(&self, prepared: Prepared) -> Result<NetRecord, NetError> {
        let Prepared {
            id,
            applied,
            target,
            step,
            _op,
        } = prepared;
        match step {
            Step::Nft(script) => {
                netns::run(target, move || nft::apply(&id, &script)).await?;
            }
            Step::NftQueue(script, reader) => {
                let owned = id.clone();
                // If the rule fails, dropping `reader` closes the queue: nothing is left.
                netns::run(target, move || nft::apply(&owned, &script)).await?;
                self.lock_readers().insert(id, reader);
            }
            Step::Iptables(rules, reader) => {
                let owned = id.clone();
                netns::run(target, move || iptables::apply(&owned, &rules)).await?;
                self.lock_readers().insert(id, reader);
            }
            Step::Netem {
                devs,
                latency,
                loss,
            } => {
                netns::run(target, move || netem::apply(&devs, latency.as_ref(), loss)).await?;
            }
        }
        Ok(applied)
    }

    /// Reverts a fault from its record, in the namespace it was applied in:
    /// [`Reverted::NamespaceGone`] when that namespace no longer exists (every rule in it
    /// went with it), Ok too when the fault is already gone (twice, after a sweep).
    pub async fn revert(&self, applied: &NetRecord) -> Result<Reverted, NetError> {
        let id = applied.id().to_string();
        let _op = self.ops.lock().await;
        // No namespace: written by agents before every record named its namespace, for
        // the agent's own; the best there is to go on is that it still is ours.
        let target = match applied.namespace() {
            None => None,
            Some(r) => match netns::target(r, &self.proc_root) {
                Ok(t) => t,
                Err(()) => {
                    self.stop_reader(&id).await?;
                    return Ok(Reverted::NamespaceGone(r.inode));
                }
            },
        };
        match applied {
            NetRecord::Nftables { .. } => {
                netns::run(target, move || nft::revert(&id)).await?;
            }
            NetRecord::Nfqueue { via, .. } => {
                // Rule first, so no new packet is queued; then the reader releases what
                // it holds and closes the queue.
                let owned = id.clone();
                match via {
                    // Installed with nft's queue statement (see prepare).
                    QueueVia::NftQueue { .. } => {
                        netns::run(target, move || nft::revert(&owned)).await?;
                    }
                    // The recorded rules name the binaries and chains to undo (ip6tables
                    // is skipped for an IPv4-only filter: each binary costs a process).
                    QueueVia::Iptables { rules, .. } => {
                        let rules = rules.clone();
                        netns::run(target, move || iptables::revert(&owned, rules.as_deref()))
                            .await?;
                    }
                }
                self.stop_reader(&id).await?;
            }
            NetRecord::Netem { devices, .. } => {
                let devs = devices.clone();
                netns::run(target, move || netem::revert(&devs)).await?;
            }
        }
        Ok(Reverted::Done)
    }

    /// Stops the fault's nfqueue reader, if this agent runs one: it releases what it
    /// holds and closes its queue.
    async fn stop_reader(&self, id: &str) -> Result<(), NetError> {
        let reader = self.lock_readers().remove(id);
        if let Some(reader) = reader {
            tokio::task::spawn_blocking(move || reader.stop())
                .await
                .map_err(|e| NetError::Failed(format!("stop nfqueue reader: {e}")))?;
        }
        Ok(())
    }

    /// Deletes everything agent-tagged in the host namespace.
    pub async fn sweep(&self) -> SweepReport {
        self.sweep_in(&NetNamespace::Host).await
    }

    /// Deletes everything agent-tagged in one namespace (the core calls this for the
    /// namespaces its ledger names, after reverting the ledger's entries).
    pub async fn sweep_in(&self, ns: &NetNamespace) -> SweepReport {
        let mut report = SweepReport::default();
        let _op = self.ops.lock().await;
        let rec = match netns::resolve(ns, &self.proc_root) {
            Ok(r) => r,
            Err(e) => {
                report.errors.push(format!("sweep {ns:?}: {e}"));
                return report;
            }
        };
        let target = match netns::target(&rec, &self.proc_root) {
            Ok(t) => t,
            Err(()) => {
                report.gone.push(format!(
                    "network namespace inode {} is gone: nothing to sweep",
                    rec.inode
                ));
                return report;
            }
        };
        // Readers in that namespace serve rules we are about to delete (a reader in the
        // agent's own namespace has no inode, like its target).
        let inode = target.as_ref().map(|(_, r)| r.inode);
        let stale: Vec<nfqueue::Reader> = {
            let mut readers = self.lock_readers();
            let ids: Vec<String> = readers
                .iter()
                .filter(|(_, r)| r.ns_inode == inode)
                .map(|(k, _)| k.clone())
                .collect();
            ids.iter().filter_map(|k| readers.remove(k)).collect()
        };
        let swept = netns::run(target, || {
            let parts = [
                ("nft", nft::sweep()),
                ("iptables", iptables::sweep()),
                ("tc", netem::sweep()),
            ];
            Ok(parts
                .into_iter()
                .map(|(what, r)| r.map_err(|e| format!("sweep {what}: {e}")))
                .collect::<Vec<_>>())
        })
        .await;
        match swept {
            Ok(parts) => parts.into_iter().for_each(|p| match p {
                Ok(deleted) => report.rules_deleted.extend(deleted),
                Err(e) => report.errors.push(e),
            }),
            Err(e) => report.errors.push(format!("sweep {ns:?}: {e}")),
        }
        for r in stale {
            report.rules_deleted.push(format!("nfqueue {}", r.queue));
            r.stop();
        }
        report
    }

    /// Packet counters of a running nfqueue fault (to check it is having an effect).
    pub fn queue_counters(&self, id: &str) -> Option<QueueCounters> {
        self.lock_readers().get(id).map(|r| r.stats.snapshot())
    }

    fn lock_readers(&self) -> std::sync::MutexGuard<'_, HashMap<String, nfqueue::Reader>> {
        // A panic while holding this lock leaves the map itself intact; keep using it.
        self.readers.lock().unwrap_or_else(|p| p.into_inner())
    }
}
