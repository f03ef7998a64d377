//! Process faults: send a signal once (kill), or SIGSTOP now and SIGCONT at revert
//! (pause). Every signal is checked against the process's start time first, so a pid
//! the kernel recycled since the fault was applied is never touched.

use std::str::FromStr;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::target::{Proc, ProcRoot};
use crate::error::{AgentError, Result};
use crate::ledger::PausedPid;

impl From<&Proc> for PausedPid {
    fn from(p: &Proc) -> Self {
        PausedPid {
            pid: p.pid,
            start_time: p.start_time,
        }
    }
}

/// `KILL`, `SIGKILL`, `sigterm`, `9`... as a signal.
/// Signals that stop a process: nothing would ever continue it after a one-shot
/// `kill`, so `kill` refuses them; `pause` stops a process under a lease instead.
pub const STOP_SIGNALS: [Signal; 4] = [
    Signal::SIGSTOP,
    Signal::SIGTSTP,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
];

/// A signal `kill` may send: any [`parse_signal`] knows except [`STOP_SIGNALS`].
pub fn parse_kill_signal(text: &str) -> Result<Signal> {
    let signal = parse_signal(text)?;
    if STOP_SIGNALS.contains(&signal) {
        return Err(AgentError::bad_spec(
            "spec.process.action.kill.signal",
            format!(
                "{signal} stops the process and a one-shot kill would never continue it; \
                 use the `pause` action (SIGSTOP under a lease, SIGCONT at its end or when \
                 the controller is gone)"
            ),
        ));
    }
    Ok(signal)
}

/// A signal by name (`KILL`, `SIGTERM`, any case) or number.
pub fn parse_signal(text: &str) -> Result<Signal> {
    let bad = || {
        AgentError::bad_spec(
            "spec.process.action.kill.signal",
            format!(
                "unknown signal `{text}`: use a name like KILL, TERM, SIGINT or a number like 9"
            ),
        )
    };
    let t = text.trim();
    if let Ok(n) = t.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let upper = t.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).map_err(|_| bad())
}

/// Send `signal` to `pid` if it is still the process that started at `start_time`.
/// Returns false when the process is gone or was replaced (nothing to do).
pub fn signal_if_same(root: &ProcRoot, pid: u32, start_time: u64, signal: Signal) -> Result<bool> {
    if !root.same_process(pid, start_time) {
        return Ok(false);
    }
    let raw =
        i32::try_from(pid).map_err(|_| AgentError::Internal(format!("pid {pid} out of range")))?;
    match kill(Pid::from_raw(raw), signal) {
        Ok(()) => Ok(true),
        // It exited between the check and the signal: the same as gone.
        Err(nix::errno::Errno::ESRCH) => Ok(false),
        Err(e) => Err(AgentError::Internal(format!("{signal} to pid {pid}: {e}"))),
    }
}

/// Continue every paused process that is still the same one; returns those continued.
/// Errors are collected, not returned early: one stuck pid must not keep others stopped.
pub fn continue_all(root: &ProcRoot, paused: &[PausedPid]) -> (Vec<u32>, Vec<String>) {
    let mut continued = Vec::new();
    let mut errors = Vec::new();
    for p in paused {
        match signal_if_same(root, p.pid, p.start_time, Signal::SIGCONT) {
            Ok(true) => continued.push(p.pid),
            Ok(false) => {}
            Err(e) => errors.push(e.to_string()),
        }
    }
    (continued, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_or_number() {
        assert_eq!(parse_signal("KILL").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("SIGKILL").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("term").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal(" 15 ").unwrap(), Signal::SIGTERM);
        for bad in ["", "NOPE", "999", "-1"] {
            let err = parse_signal(bad).unwrap_err();
            assert_eq!(err.code(), "badSpec", "{bad}");
        }
    }

    #[test]
    fn recycled_pid_is_not_signalled() {
        let root = ProcRoot::default();
        let me = root.proc(std::process::id()).unwrap();
        // Same pid, different start time: must be refused without sending anything.
        let sent = signal_if_same(&root, me.pid, me.start_time + 1, Signal::SIGSTOP).unwrap();
        assert!(!sent);
        // The real start time matches; signal 0-like harmless SIGCONT.
        assert!(signal_if_same(&root, me.pid, me.start_time, Signal::SIGCONT).unwrap());
    }
}
