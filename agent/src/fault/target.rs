//! Finding processes: by pid, exact name (`comm`), regex on the command line, or
//! Kubernetes pod UID through `/proc/*/cgroup` (cgroup v1 and v2, systemd and cgroupfs
//! naming; no runtime socket). The proc root is a parameter so tests use fixture trees.

use std::io;
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use regex::Regex;
use shakeout_api::{ProcessInfo, ProcessTarget, Selection};

use crate::error::{AgentError, Result};

/// A `/proc` tree (the host's, or a fixture in tests).
#[derive(Debug, Clone)]
pub struct ProcRoot(PathBuf);

/// What the agent needs to know about one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    pub pid: u32,
    pub comm: String,
    pub ppid: u32,
    /// `/proc/PID/stat` state letter (`R`, `S`, `T`, `Z`...).
    pub state: char,
    /// Field 22 of `/proc/PID/stat`: clock ticks after boot. With the pid it names one
    /// process for good, so a recycled pid is never signalled by mistake.
    pub start_time: u64,
}

impl Proc {
    /// Wire form.
    pub fn info(&self) -> ProcessInfo {
        ProcessInfo {
            pid: self.pid,
            name: self.comm.clone(),
        }
    }
}

impl Default for ProcRoot {
    fn default() -> Self {
        ProcRoot(PathBuf::from("/proc"))
    }
}

impl ProcRoot {
    /// A proc tree at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        ProcRoot(path.into())
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }

    fn read(&self, pid: u32, file: &str) -> io::Result<String> {
        std::fs::read_to_string(self.0.join(pid.to_string()).join(file))
    }

    /// Every numeric entry (processes, not threads).
    pub fn pids(&self) -> io::Result<Vec<u32>> {
        let mut pids: Vec<u32> = std::fs::read_dir(&self.0)?
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        pids.sort_unstable();
        Ok(pids)
    }

    /// State, parent and start time of a process; `None` if it is gone.
    pub fn proc(&self, pid: u32) -> Option<Proc> {
        let stat = self.read(pid, "stat").ok()?;
        // The name sits in parentheses and may itself contain spaces and ')'.
        let open = stat.find('(')?;
        let close = stat.rfind(')')?;
        let comm = stat.get(open + 1..close)?.to_string();
        let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
        // fields[0] is stat field 3 (state), so field N is fields[N - 3].
        Some(Proc {
            pid,
            comm,
            state: fields.first()?.chars().next()?,
            ppid: fields.get(1)?.parse().ok()?,
            start_time: fields.get(19)?.parse().ok()?,
        })
    }

    /// The thread group (process) a thread id belongs to: `Tgid` in `/proc/TID/status`.
    /// A process's own id is its tgid. `None` when the id is gone or unreadable.
    pub fn tgid(&self, tid: u32) -> Option<u32> {
        let status = self.read(tid, "status").ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("Tgid:"))
            .and_then(|v| v.trim().parse().ok())
    }

    /// `/proc/PID/cmdline` with arguments joined by spaces.
    pub fn cmdline(&self, pid: u32) -> String {
        self.read(pid, "cmdline")
            .map(|c| c.trim_end_matches('\0').replace('\0', " "))
            .unwrap_or_default()
    }

    /// The pod UID in `/proc/PID/cgroup`, if the process belongs to a pod.
    pub fn pod_uid(&self, pid: u32) -> Option<String> {
        pod_uid_in_cgroup(&self.read(pid, "cgroup").ok()?)
    }

    /// `pid` and all its ancestors up to pid 1.
    pub fn lineage(&self, pid: u32) -> Vec<u32> {
        let mut out = vec![pid];
        let mut cur = pid;
        // Bounded: a fixture (or a race) with a parent cycle must not hang the agent.
        for _ in 0..4096 {
            match self.proc(cur) {
                Some(p) if p.ppid != 0 && !out.contains(&p.ppid) => {
                    out.push(p.ppid);
                    cur = p.ppid;
                }
                _ => break,
            }
        }
        out
    }

    /// True while `pid` is still the process that started at `start_time`.
    pub fn same_process(&self, pid: u32, start_time: u64) -> bool {
        self.proc(pid).is_some_and(|p| p.start_time == start_time)
    }
}

/// The pod UID (dashed, lower case) named by a `/proc/PID/cgroup` file. Handles
/// systemd slices (`kubepods-burstable-pod<uid_with_underscores>.slice`) and cgroupfs
/// paths (`/kubepods/burstable/pod<uid>/<container>`), v1 (many lines) and v2 (`0::`).
pub fn pod_uid_in_cgroup(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|line| line.splitn(3, ':').nth(2))
        .flat_map(|path| path.split('/'))
        .find_map(pod_segment)
}

fn pod_segment(segment: &str) -> Option<String> {
    let seg = segment.strip_suffix(".slice").unwrap_or(segment);
    let uid = match seg.strip_prefix("pod") {
        Some(rest) => rest,
        None => &seg[seg.rfind("-pod")? + 4..],
    };
    let uid = uid.replace('_', "-").to_ascii_lowercase();
    let looks_like_uid = uid.len() >= 32 && uid.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    looks_like_uid.then_some(uid)
}

/// Every live process the target names, sorted by pid. Zombies and kernel threads
/// (empty command line) are skipped: no signal changes them.
pub fn resolve(root: &ProcRoot, target: &ProcessTarget) -> Result<Vec<Proc>> {
    let given = [
        target.pid.is_some(),
        target.name.is_some(),
        target.pattern.is_some(),
        target.pod_uid.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err(AgentError::bad_spec(
            "spec.process.target",
            "give exactly one of pid, name, pattern, podUid",
        ));
    }
    if let Some(pid) = target.pid {
        // A thread id names its whole process: a signal to it acts on the thread group,
        // so every check (protected names, the agent, its ancestors) must see the
        // process, not the thread. A fixture without `status` is taken as a process.
        let leader = match root.tgid(pid) {
            Some(tgid) => tgid,
            None if root.proc(pid).is_some() => pid,
            None => return Ok(Vec::new()),
        };
        return Ok(root
            .proc(leader)
            .filter(|p| p.state != 'Z')
            .into_iter()
            .collect());
    }
    let pattern = match &target.pattern {
        Some(p) => Some(Regex::new(p).map_err(|e| {
            AgentError::bad_spec("spec.process.target.pattern", format!("invalid regex: {e}"))
        })?),
        None => None,
    };
    let pod = target.pod_uid.as_ref().map(|u| u.to_ascii_lowercase());
    let pids = root
        .pids()
        .map_err(|e| AgentError::Internal(format!("read {}: {e}", root.path().display())))?;
    let mut out = Vec::new();
    for pid in pids {
        let Some(proc) = root.proc(pid) else { continue };
        if proc.state == 'Z' {
            continue;
        }
        let cmdline = root.cmdline(pid);
        if cmdline.is_empty() {
            continue;
        }
        let hit = if let Some(name) = &target.name {
            &proc.comm == name
        } else if let Some(re) = &pattern {
            re.is_match(&cmdline)
        } else if let Some(uid) = &pod {
            root.pod_uid(pid).as_ref() == Some(uid)
        } else {
            false
        };
        if hit {
            out.push(proc);
        }
    }
    Ok(out)
}

/// The subset a `Selection` asks for, chosen with a seeded RNG so a run can be replayed.
/// Percent rounds up, so any non-zero percent of a non-empty match picks at least one.
pub fn select(mut procs: Vec<Proc>, selection: Option<&Selection>, seed: u64) -> Result<Vec<Proc>> {
    let Some(sel) = selection else {
        return Ok(procs);
    };
    let n = match (sel.count, sel.percent) {
        (Some(c), None) => c as usize,
        (None, Some(p)) => (procs.len() as f64 * p.ratio()).ceil() as usize,
        _ => {
            return Err(AgentError::bad_spec(
                "spec.process.select",
                "give exactly one of count, percent",
            ))
        }
    };
    if n == 0 {
        return Err(AgentError::bad_spec(
            "spec.process.select",
            "selects no process; count and percent must be above 0",
        ));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    procs.shuffle(&mut rng);
    procs.truncate(n);
    procs.sort_by_key(|p| p.pid);
    Ok(procs)
}

#[cfg(test)]
#[path = "target_tests.rs"]
mod tests;
