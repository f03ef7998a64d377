//! Network namespaces: find a target's namespace, pin it by inode, and run work inside it.
//!
//! Netlink sockets and the external commands we start (`nft`, `iptables`, `tc`) act on
//! the network namespace of the thread that creates them, so every piece of work runs on
//! a fresh, dedicated thread that first `setns`es into the target and then exits: a
//! namespace switch never leaks into tokio's pooled threads. Children spawned from that
//! thread inherit its namespace, so no `nsenter` is needed. `setns` is a safe fn in nix.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::sched::{setns, unshare, CloneFlags};
use serde::{Deserialize, Serialize};
use shakeout_api::NetNamespace;

use super::NetError;

/// A target namespace pinned by identity, as recorded in the ledger. The inode (with
/// the nsfs device) is what makes a revert after a crash safe: if the pid was reused by
/// a process in another namespace, the inode differs and we look elsewhere or give up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsRecord {
    /// The process whose namespace this was when the fault was applied.
    pub pid: u32,
    pub inode: u64,
    pub dev: u64,
}

/// Resolves the spec's namespace; `None` is the agent's own (host) namespace.
pub(crate) fn resolve(ns: &NetNamespace, proc_root: &Path) -> Result<Option<NsRecord>, NetError> {
    let pid = match ns {
        NetNamespace::Host => return Ok(None),
        NetNamespace::Pid(pid) => *pid,
        NetNamespace::PodUid(uid) => pod_pid(proc_root, uid).ok_or_else(|| NetError::BadSpec {
            field: "spec.network.namespace.podUid".into(),
            message: format!(
                "no process of pod {uid} found in {}/*/cgroup",
                proc_root.display()
            ),
        })?,
    };
    let path = proc_root.join(pid.to_string()).join("ns/net");
    let meta = std::fs::metadata(&path).map_err(|e| NetError::BadSpec {
        field: "spec.network.namespace".into(),
        message: format!("{}: {e} (is process {pid} running?)", path.display()),
    })?;
    Ok(Some(NsRecord {
        pid,
        inode: meta.ino(),
        dev: meta.dev(),
    }))
}

/// Where the recorded namespace can be entered now: the original pid if it still lives
/// there, else any process (or `ip netns` bind mount) holding the same inode. `None`
/// means the namespace is gone, and every rule in it went with it.
pub(crate) fn locate(rec: &NsRecord, proc_root: &Path) -> Option<PathBuf> {
    let same = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.ino() == rec.inode && m.dev() == rec.dev)
            .unwrap_or(false)
    };
    let first = proc_root.join(rec.pid.to_string()).join("ns/net");
    if same(&first) {
        return Some(first);
    }
    let procs = std::fs::read_dir(proc_root).into_iter().flatten().flatten();
    let pinned = std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten();
    procs
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .map(|e| e.path().join("ns/net"))
        .chain(pinned.map(|e| e.path()))
        .find(|p| same(p))
}

/// Moves the calling thread into the namespace at `path`, checking on the opened file
/// (not the path, which could change under us) that it is the recorded one.
pub(crate) fn enter(path: &Path, rec: &NsRecord) -> Result<(), NetError> {
    let file =
        File::open(path).map_err(|e| NetError::Failed(format!("open {}: {e}", path.display())))?;
    let meta = file
        .metadata()
        .map_err(|e| NetError::Failed(format!("stat {}: {e}", path.display())))?;
    if meta.ino() != rec.inode || meta.dev() != rec.dev {
        return Err(NetError::Failed(format!(
            "{} is no longer namespace inode {} (now {})",
            path.display(),
            rec.inode,
            meta.ino()
        )));
    }
    setns(&file, CloneFlags::CLONE_NEWNET)
        .map_err(|e| NetError::Failed(format!("setns {}: {e}", path.display())))
}

/// Runs `f` on a new thread inside the namespace (`None`: the agent's own), and waits
/// for it without blocking the async runtime.
pub(crate) async fn run<R, F>(target: Option<(PathBuf, NsRecord)>, f: F) -> Result<R, NetError>
where
    R: Send + 'static,
    F: FnOnce() -> Result<R, NetError> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("shakeout-netns".into())
        .spawn(move || {
            let result = match &target {
                Some((path, rec)) => enter(path, rec).and_then(|()| f()),
                None => f(),
            };
            let _ = tx.send(result);
        })
        .map_err(|e| NetError::Failed(format!("spawn namespace thread: {e}")))?;
    rx.await
        .map_err(|_| NetError::Failed("namespace thread panicked".into()))?
}

/// Runs `f` on a new thread inside a brand-new, empty network namespace that vanishes
/// when the thread (and any child it started) ends: detection probes touch nothing real.
pub(crate) fn run_fresh<R: Send + 'static>(
    f: impl FnOnce() -> R + Send + 'static,
) -> Result<R, String> {
    std::thread::Builder::new()
        .name("shakeout-probe".into())
        .spawn(move || {
            unshare(CloneFlags::CLONE_NEWNET).map_err(|e| format!("unshare(CLONE_NEWNET): {e}"))?;
            Ok(f())
        })
        .map_err(|e| format!("spawn probe thread: {e}"))?
        .join()
        .map_err(|_| "probe thread panicked".to_string())?
}

/// A process of the pod whose UID is `uid`, found through `/proc/*/cgroup` (v1 and v2,
/// cgroupfs `pod<uid>` and systemd `pod<uid_with_underscores>` naming). Prefers the
/// `pause` process, whose namespace survives app container restarts, else the lowest pid.
/// A small scanner of our own so this module stands alone; it can later share the
/// process-fault target scanner (`fault/target.rs`).
pub fn pod_pid(proc_root: &Path, uid: &str) -> Option<u32> {
    if uid.len() < 8
        || !uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    let dashed = format!("pod{}", uid.replace('_', "-"));
    let underscored = format!("pod{}", uid.replace('-', "_"));
    let mut best: Option<(bool, u32)> = None;
    for entry in std::fs::read_dir(proc_root).ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cgroup) = std::fs::read_to_string(entry.path().join("cgroup")) else {
            continue;
        };
        if !cgroup.contains(&dashed) && !cgroup.contains(&underscored) {
            continue;
        }
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        let rank = (comm.trim() != "pause", pid);
        if best.is_none_or(|b| rank < b) {
            best = Some(rank);
        }
    }
    best.map(|(_, pid)| pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_proc(entries: &[(u32, &str, &str)]) -> PathBuf {
        let root =
            std::env::temp_dir().join(format!("so-netns-{}-{}", std::process::id(), entries.len()));
        let _ = std::fs::remove_dir_all(&root);
        for (pid, comm, cgroup) in entries {
            let dir = root.join(pid.to_string());
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("comm"), format!("{comm}\n")).unwrap();
            std::fs::write(dir.join("cgroup"), cgroup).unwrap();
        }
        root
    }

    #[test]
    fn pod_pid_prefers_pause_and_reads_both_cgroup_namings() {
        let uid = "6f1c2a3b-1111-2222-3333-444455556666";
        let root = fake_proc(&[
            (40, "app", "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod6f1c2a3b_1111_2222_3333_444455556666.slice/cri-containerd-ab.scope\n"),
            (77, "pause", "12:memory:/kubepods/burstable/pod6f1c2a3b-1111-2222-3333-444455556666/cd\n"),
            (5, "other", "0::/kubepods.slice/kubepods-podffffffff_0000.slice\n"),
        ]);
        assert_eq!(pod_pid(&root, uid), Some(77));
        assert_eq!(pod_pid(&root, "00000000-0000-0000-0000-000000000000"), None);
        assert_eq!(pod_pid(&root, "../etc"), None);
        std::fs::remove_dir_all(root).unwrap();
    }
}
