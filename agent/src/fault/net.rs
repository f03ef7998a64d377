//! Network faults (latency, loss, blackhole): choose a mechanism, apply it in the right
//! namespace, and revert it, including after a crash, from the ledger record alone.
//!
//! The agent core owns leases and the ledger and calls `apply` / `revert` / `sweep`;
//! everything this module installs is tagged (`inet shakeout` table, `shakeout:<id>`
//! comments, `SHAKEOUT-*` chains, qdisc handle `5ba7:`) so a sweep removes only ours.

mod detect;
mod filter;
mod iptables;
mod netem;
mod netns;
mod nfqueue;
mod nft;
mod plan;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use serde_json::json;
use shakeout_api::{MechanismInfo, NetNamespace, NetworkFault, SweepReport};

pub use netns::{pod_pid, NsRecord};
pub use nfqueue::QueueCounters;
pub use shakeout_api::Mechanism;

use plan::Work;

/// Ledger record of an applied network fault: everything needed to revert it after a
/// crash (namespace identity, table and comment, iptables rules, queue, devices).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct NetApplied {
    pub mechanism: Mechanism,
    pub detail: serde_json::Value,
}

/// Why a network fault could not be applied or reverted.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The request is wrong; `field` is its path (`spec.network.loss`).
    #[error("{field}: {message}")]
    BadSpec { field: String, message: String },
    /// The node lacks what the fault needs (the message names it).
    #[error("{0}")]
    Unavailable(String),
    /// A command or syscall failed.
    #[error("{0}")]
    Failed(String),
}

/// Applies and reverts network faults; owns the nfqueue reader threads.
pub struct Net {
    state_dir: PathBuf,
    proc_root: PathBuf,
    detected: detect::Detected,
    readers: Mutex<HashMap<String, nfqueue::Reader>>,
    /// One change at a time: our chains and table are shared by all faults in a namespace.
    ops: tokio::sync::Mutex<()>,
}

impl Net {
    /// Detects mechanisms once (a few tens of ms of probes in a scratch namespace).
    pub fn new(state_dir: &Path) -> Net {
        Net {
            state_dir: state_dir.to_path_buf(),
            proc_root: PathBuf::from("/proc"),
            detected: detect::detect(),
            readers: Mutex::new(HashMap::new()),
            ops: tokio::sync::Mutex::new(()),
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

    /// Applies the fault; on error nothing of it is left in place.
    pub async fn apply(
        &self,
        id: &str,
        spec: &NetworkFault,
        seed: u64,
    ) -> Result<NetApplied, NetError> {
        let plan = plan::plan(id, spec, seed, &self.detected)?;
        let _op = self.ops.lock().await;
        if self.lock_readers().contains_key(id) {
            return Err(NetError::Failed(format!(
                "network fault {id} is already applied"
            )));
        }
        let rec = netns::resolve(&spec.namespace, &self.proc_root)?;
        let target = rec.as_ref().map(|r| {
            (
                self.proc_root.join(r.pid.to_string()).join("ns/net"),
                r.clone(),
            )
        });
        let mut detail = json!({ "id": id, "namespace": rec });
        match plan.work {
            Work::Nft(action) => {
                let script = nft::script(id, &plan.filter, action);
                let (owned_id, s) = (id.to_string(), script.clone());
                let rules = netns::run(target, move || nft::apply(&owned_id, &s)).await?;
                detail["table"] = json!(format!("inet {}", nft::TABLE));
                detail["comment"] = json!(nft::comment(id));
                detail["handles"] = json!(rules
                    .iter()
                    .map(|r| json!({"chain": r.chain, "handle": r.handle}))
                    .collect::<Vec<_>>());
            }
            Work::Queue(shape) if self.detected.nft_queue => {
                // The kernel has nft's own queue statement: the rule joins the agent's
                // table (same tag, same sweep) and no iptables is involved.
                let reader = nfqueue::Reader::start(target.clone(), shape)?;
                let script = nft::script(id, &plan.filter, nft::Action::Queue(reader.queue));
                let (owned_id, s) = (id.to_string(), script);
                netns::run(target, move || nft::apply(&owned_id, &s)).await?;
                detail["queue"] = json!(reader.queue);
                detail["table"] = json!(format!("inet {}", nft::TABLE));
                detail["comment"] = json!(nft::comment(id));
                self.lock_readers().insert(id.to_string(), reader);
            }
            Work::Queue(shape) => {
                let reader = nfqueue::Reader::start(target.clone(), shape)?;
                let with_v6 = tool("ip6tables").is_some();
                let rules = iptables::rules(id, &plan.filter, reader.queue, with_v6);
                let (owned_id, r) = (id.to_string(), rules.clone());
                // If the rules fail, dropping `reader` closes the queue: nothing is left.
                netns::run(target, move || iptables::apply(&owned_id, &r)).await?;
                detail["queue"] = json!(reader.queue);
                detail["rules"] = json!(rules);
                detail["iptables"] = json!(self.detected.iptables_version);
                self.lock_readers().insert(id.to_string(), reader);
            }
            Work::Netem { latency, loss } => {
                let iface = spec.interface.clone();
                let devs = netns::run(target, move || {
                    let devs = match iface {
                        Some(d) => vec![d],
                        None => netem::interfaces()?,
                    };
                    netem::apply(&devs, latency.as_ref(), loss)?;
                    Ok(devs)
                })
                .await?;
                detail["handle"] = json!(netem::HANDLE);
                detail["devices"] = json!(devs);
            }
        }
        Ok(NetApplied {
            mechanism: plan.mechanism,
            detail,
        })
    }

    /// Reverts a fault from its record; Ok when it is already gone (twice, after a
    /// sweep, or because its namespace no longer exists).
    pub async fn revert(&self, applied: &NetApplied) -> Result<(), NetError> {
        let bad = |what: &str| {
            NetError::Failed(format!("ledger record lacks {what}: {}", applied.detail))
        };
        let id = applied
            .detail
            .get("id")
            .and_then(|v| v.as_str())
            .ok_or_else(|| bad("id"))?
            .to_string();
        let rec: Option<NsRecord> =
            serde_json::from_value(applied.detail.get("namespace").cloned().unwrap_or_default())
                .map_err(|_| bad("a valid namespace"))?;
        let _op = self.ops.lock().await;
        let target = match &rec {
            None => None,
            Some(r) => match netns::locate(r, &self.proc_root) {
                Some(path) => Some((path, r.clone())),
                // The namespace is gone, and every rule in it went with it.
                None => {
                    self.lock_readers().remove(&id);
                    return Ok(());
                }
            },
        };
        match applied.mechanism {
            Mechanism::Nftables => {
                netns::run(target, move || nft::revert(&id)).await?;
            }
            Mechanism::Nfqueue => {
                // Rule first, so no new packet is queued; then the reader releases what
                // it holds and closes the queue.
                // Only the binaries that got rules (ip6tables is skipped for an IPv4-only
                // filter): each one costs a listing and a restore.
                let bins: Option<Vec<String>> = applied
                    .detail
                    .get("rules")
                    .and_then(|r| serde_json::from_value::<Vec<iptables::Rule>>(r.clone()).ok())
                    .map(|r| iptables::bins_of(&r));
                let owned = id.clone();
                if applied.detail.get("table").is_some() {
                    // Installed with nft's queue statement (see apply).
                    netns::run(target, move || nft::revert(&owned)).await?;
                } else {
                    netns::run(target, move || iptables::revert(&owned, bins.as_deref())).await?;
                }
                let reader = self.lock_readers().remove(&id);
                if let Some(r) = reader {
                    tokio::task::spawn_blocking(move || r.stop())
                        .await
                        .map_err(|e| NetError::Failed(format!("stop nfqueue reader: {e}")))?;
                }
            }
            Mechanism::Netem => {
                let devs: Vec<String> = serde_json::from_value(
                    applied.detail.get("devices").cloned().unwrap_or_default(),
                )
                .map_err(|_| bad("devices"))?;
                netns::run(target, move || netem::revert(&devs)).await?;
            }
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
        // Readers in that namespace serve rules we are about to delete.
        let inode = rec.as_ref().map(|r| r.inode);
        let stale: Vec<nfqueue::Reader> = {
            let mut readers = self.lock_readers();
            let ids: Vec<String> = readers
                .iter()
                .filter(|(_, r)| r.ns_inode == inode)
                .map(|(k, _)| k.clone())
                .collect();
            ids.iter().filter_map(|k| readers.remove(k)).collect()
        };
        let target = rec.map(|r| (self.proc_root.join(r.pid.to_string()).join("ns/net"), r));
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

/// Path of a binary: PATH first, then the sbin directories a service's PATH may lack.
pub(crate) fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Runs a tool to completion in the calling thread's namespace; stdout, or an error
/// carrying the command and its stderr.
pub(crate) fn exec(name: &str, args: &[&str], stdin: Option<&str>) -> Result<String, NetError> {
    let bin = tool(name).ok_or_else(|| NetError::Unavailable(format!("`{name}` not found")))?;
    let mut child = Command::new(&bin)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| NetError::Failed(format!("{name}: {e}")))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        use std::io::Write;
        pipe.write_all(text.as_bytes())
            .map_err(|e| NetError::Failed(format!("{name} stdin: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| NetError::Failed(format!("{name}: {e}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(NetError::Failed(format!(
            "{name} {} exited {}: {}",
            args.join(" "),
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
