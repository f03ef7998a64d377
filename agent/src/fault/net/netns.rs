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

use super::error::NetError;

/// A target namespace pinned by identity, as recorded in the ledger: always written,
/// the agent's own namespace included, so a sweep by an agent running elsewhere (another
/// namespace, after a crash) reverts in the namespace the fault was applied in, or finds
/// it gone. The inode with the nsfs device is the identity; `pid` and `path` are ways
/// back in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsRecord {
    /// A process whose namespace this was when the fault was applied (the agent itself
    /// for its own namespace).
    pub pid: u32,
    pub inode: u64,
    pub dev: u64,
    /// A bind mount of the namespace at apply time (`ip netns add NAME` makes
    /// `/run/netns/NAME`): a way in that outlives every process in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// Where a recorded namespace is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Located {
    /// It is the agent's own: work runs without `setns`.
    Own,
    /// Enter it through this path.
    At(PathBuf),
    /// No process, bind mount or open descriptor holds it: the kernel freed it, and
    /// every rule in it went with it.
    Gone,
}

/// Identity of `/proc/self/ns/net`: the namespace the agent runs in (its async threads
/// never `setns`; only the dedicated threads of [`run`] do).
pub(crate) fn own_identity() -> Option<(u64, u64)> {
    let m = std::fs::metadata("/proc/self/ns/net").ok()?;
    Some((m.ino(), m.dev()))
}

/// Resolves the spec's namespace to its identity. `Host` is the agent's own namespace,
/// whatever that is (a host namespace, or the network namespace a controller was run in).
pub(crate) fn resolve(ns: &NetNamespace, proc_root: &Path) -> Result<NsRecord, NetError> {
    let pid = match ns {
        NetNamespace::Host => std::process::id(),
        NetNamespace::Pid(pid) => *pid,
        NetNamespace::PodUid(uid) => pod_pid(proc_root, uid).ok_or_else(|| NetError::BadSpec {
            field: "spec.network.namespace.podUid".into(),
            message: format!(
                "no process of pod {uid} found in {}/*/cgroup",
                proc_root.display()
            ),
        })?,
    };
    let path = match ns {
        NetNamespace::Host => PathBuf::from("/proc/self/ns/net"),
        _ => proc_root.join(pid.to_string()).join("ns/net"),
    };
    let meta = std::fs::metadata(&path).map_err(|e| NetError::BadSpec {
        field: "spec.network.namespace".into(),
        message: format!("{}: {e} (is process {pid} running?)", path.display()),
    })?;
    let (inode, dev) = (meta.ino(), meta.dev());
    Ok(NsRecord {
        pid,
        inode,
        dev,
        path: named_mount(inode, dev).map(|p| p.display().to_string()),
    })
}

/// Where work on `rec` must run now: `None` for the agent's own namespace, the path
/// to enter otherwise; `Err(())` when the namespace is gone.
pub(crate) fn target(rec: &NsRecord, proc_root: &Path) -> Result<Option<(PathBuf, NsRecord)>, ()> {
    match locate(rec, proc_root) {
        Located::Own => Ok(None),
        Located::At(path) => Ok(Some((path, rec.clone()))),
        Located::Gone => Err(()),
    }
}

fn same(p: &Path, inode: u64, dev: u64) -> bool {
    std::fs::metadata(p)
        .map(|m| m.ino() == inode && m.dev() == dev)
        .unwrap_or(false)
}

/// A bind mount of the namespace in `/run/netns` (where `ip netns` keeps them): cheap
/// enough for every apply.
fn named_mount(inode: u64, dev: u64) -> Option<PathBuf> {
    std::fs::read_dir("/run/netns")
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| same(p, inode, dev))
}

/// Where the recorded namespace can be entered now, looked for in order: the agent's
/// own; the recorded pid and bind mount; every process (and thread) on the host; every
/// nsfs bind mount in the mount table (`/run/netns`, runtimes' own directories); every
/// open descriptor. Only when none holds it is it [`Located::Gone`].
pub(crate) fn locate(rec: &NsRecord, proc_root: &Path) -> Located {
    let (inode, dev) = (rec.inode, rec.dev);
    if own_identity() == Some((inode, dev)) {
        return Located::Own;
    }
    let first = proc_root.join(rec.pid.to_string()).join("ns/net");
    if same(&first, inode, dev) {
        return Located::At(first);
    }
    if let Some(p) = rec.path.as_ref().map(PathBuf::from) {
        if same(&p, inode, dev) {
            return Located::At(p);
        }
    }
    let pids: Vec<PathBuf> = std::fs::read_dir(proc_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .map(|e| e.path())
        .collect();
    let candidates = pids
        .iter()
        .map(|p| p.join("ns/net"))
        .chain(mounts(proc_root))
        .chain(pids.iter().flat_map(|p| threads(p)));
    for p in candidates {
        if same(&p, inode, dev) {
            return Located::At(p);
        }
    }
    // Last: a descriptor some process keeps open on it (`/proc/PID/fd/N` opens the
    // namespace itself).
    let wanted = format!("net:[{inode}]");
    for pid in &pids {
        let Ok(fds) = std::fs::read_dir(pid.join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let path = fd.path();
            let hit = std::fs::read_link(&path).is_ok_and(|l| l.as_os_str() == wanted.as_str());
            if hit && same(&path, inode, dev) {
                return Located::At(path);
            }
        }
    }
    Located::Gone
}

/// `/proc/PID/task/TID/ns/net` for the threads of a process other than its leader.
fn threads(pid: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(pid.join("task"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|t| t.path().join("ns/net"))
        .collect()
}

/// Mount points of nsfs files in our mount table (e.g. `/run/netns/*`,
/// `/run/docker/netns/*`, `/var/run/netns/*` on any layout).
fn mounts(proc_root: &Path) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string(proc_root.join("self/mountinfo")) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            // "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPER"
            let (left, right) = line.split_once(" - ")?;
            if right.split_whitespace().next()? != "nsfs" || !left.contains("net:[") {
                return None;
            }
            left.split_whitespace().nth(4).map(unescape_mount)
        })
        .collect()
}

/// Mount points in mountinfo escape space, tab, newline and backslash as `\ooo`.
fn unescape_mount(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(out))
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
