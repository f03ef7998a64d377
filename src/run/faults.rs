//! The fault timeline: one task per fault applies it at `at` and reverts it when its
//! duration ends — or at once on abort, interrupt or the run's end. A revert always runs
//! for a fault whose apply started, whether the apply succeeded or not.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::events::Events;
use super::exec::run_command;
use super::service::Pids;
use crate::experiment::spec::FaultSpec;
use crate::report::{ms, ActionReport, FaultReport};
use crate::verdict::describe_action;

/// Deadline of each exec command unless the fault sets one.
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(30);

/// Every fault of a run and what became of it.
pub struct FaultSet {
    specs: Vec<FaultSpec>,
    origin: Instant,
    pids: Pids,
    events: Events,
    cancel: CancellationToken,
    tasks: JoinSet<(usize, FaultReport)>,
    reports: Vec<Option<FaultReport>>,
    active: Arc<Mutex<BTreeSet<String>>>,
}

impl FaultSet {
    pub fn new(specs: &[FaultSpec], origin: Instant, pids: Pids, events: Events) -> Self {
        FaultSet {
            specs: specs.to_vec(),
            origin,
            pids,
            events,
            cancel: CancellationToken::new(),
            tasks: JoinSet::new(),
            reports: vec![None; specs.len()],
            active: Arc::default(),
        }
    }

    /// Schedule every fault; each waits for its own `at`.
    pub fn start_all(&mut self) {
        for (i, spec) in self.specs.iter().enumerate() {
            let task = FaultTask {
                spec: spec.clone(),
                origin: self.origin,
                pids: self.pids.clone(),
                events: self.events.clone(),
                cancel: self.cancel.clone(),
                active: self.active.clone(),
            };
            self.tasks.spawn(async move { (i, task.run().await) });
        }
    }

    fn collect_finished(&mut self) {
        while let Some(joined) = self.tasks.try_join_next() {
            self.store(joined);
        }
    }

    fn store(&mut self, joined: Result<(usize, FaultReport), tokio::task::JoinError>) {
        match joined {
            Ok((i, report)) => self.reports[i] = Some(report),
            Err(e) => tracing::error!(error = %e, "fault task failed"),
        }
    }

    /// True when every scheduled fault has ended (applied and, if it lasts, reverted).
    pub fn all_done(&mut self) -> bool {
        self.collect_finished();
        self.tasks.is_empty()
    }

    /// Names of faults applied and not yet reverted.
    pub fn active_names(&self) -> Vec<String> {
        self.active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Stop injecting: faults not yet started never start; applied ones are reverted now.
    /// Waits for every revert (each bounded by its timeout) and returns every fault's report.
    pub async fn finish(mut self) -> Vec<FaultReport> {
        self.cancel.cancel();
        while let Some(joined) = self.tasks.join_next().await {
            self.store(joined);
        }
        self.specs
            .iter()
            .zip(self.reports)
            .map(|(spec, r)| r.unwrap_or_else(|| FaultTask::blank(spec)))
            .collect()
    }
}

struct FaultTask {
    spec: FaultSpec,
    origin: Instant,
    pids: Pids,
    events: Events,
    cancel: CancellationToken,
    active: Arc<Mutex<BTreeSet<String>>>,
}

impl FaultTask {
    fn blank(spec: &FaultSpec) -> FaultReport {
        FaultReport {
            name: spec.name.clone(),
            kind: "exec".into(),
            at_ms: ms(spec.at.0),
            planned_duration_ms: spec.duration.map(|d| ms(d.0)),
            status: "pending".into(),
            apply: None,
            revert: None,
        }
    }

    fn set_active(&self, on: bool) {
        let mut a = self.active.lock().unwrap_or_else(|p| p.into_inner());
        if on {
            a.insert(self.spec.name.clone());
        } else {
            a.remove(&self.spec.name);
        }
    }

    async fn run(self) -> FaultReport {
        let mut report = Self::blank(&self.spec);
        let Some(exec) = &self.spec.exec else {
            return report;
        };
        let timeout = exec.timeout.map(|d| d.0).unwrap_or(DEFAULT_EXEC_TIMEOUT);
        let start = self.origin + self.spec.at.0;
        tokio::select! {
            _ = tokio::time::sleep_until(start.into()) => {}
            _ = self.cancel.cancelled() => return report,
        }
        self.set_active(true);
        let argv = self.expand(&exec.command);
        let apply = match argv {
            Ok(argv) => run_command(&argv, &exec.env, timeout, self.origin).await,
            Err(e) => not_run(&exec.command, e, self.origin),
        };
        let name = &self.spec.name;
        let applied_ok = apply.success;
        self.events.push(
            "fault",
            if applied_ok {
                format!("{name} applied: {}", exec.command.join(" "))
            } else {
                format!(
                    "{name} apply FAILED ({}): {}",
                    describe_action(&apply),
                    exec.command.join(" ")
                )
            },
        );
        report.status = if applied_ok { "applied" } else { "failed" }.into();
        report.apply = Some(apply);
        if let Some(d) = self.spec.duration {
            tokio::select! {
                _ = tokio::time::sleep_until((start + d.0).into()) => {}
                _ = self.cancel.cancelled() => {
                    self.events.push("fault", format!("{name}: reverting early"));
                }
            }
        }
        if let Some(revert) = &exec.revert {
            let result = match self.expand(revert) {
                Ok(argv) => run_command(&argv, &exec.env, timeout, self.origin).await,
                Err(e) => not_run(revert, e, self.origin),
            };
            if result.success {
                self.events
                    .push("fault", format!("{name} reverted: {}", revert.join(" ")));
                if applied_ok {
                    report.status = "reverted".into();
                }
            } else {
                self.events.push(
                    "fault",
                    format!(
                        "{name} revert FAILED ({}): {}",
                        describe_action(&result),
                        revert.join(" ")
                    ),
                );
                report.status = "revertFailed".into();
            }
            report.revert = Some(result);
        }
        self.set_active(false);
        report
    }

    /// Expand `${service.NAME.pid}` with the service's current pid.
    fn expand(&self, argv: &[String]) -> Result<Vec<String>, String> {
        argv.iter().map(|a| expand_pids(a, &self.pids)).collect()
    }
}

fn not_run(argv: &[String], error: String, origin: Instant) -> ActionReport {
    let now = ms(origin.elapsed());
    ActionReport {
        command: argv.to_vec(),
        started_ms: now,
        ended_ms: now,
        exit_code: None,
        signal: None,
        success: false,
        stdout: String::new(),
        stderr: String::new(),
        error: Some(error),
    }
}

/// Replace every `${service.NAME.pid}` in `arg`.
pub fn expand_pids(arg: &str, pids: &Pids) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = arg;
    while let Some(start) = rest.find("${service.") {
        out.push_str(&rest[..start]);
        let after = &rest[start + "${service.".len()..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed `${{` in `{arg}`"))?;
        let inner = &after[..end];
        let name = inner.strip_suffix(".pid").ok_or_else(|| {
            format!("`${{service.{inner}}}`: only `${{service.NAME.pid}}` is supported")
        })?;
        let pid = pids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .copied();
        let pid = pid.ok_or_else(|| {
            format!("service `{name}` is not running, so `${{service.{name}.pid}}` has no value")
        })?;
        out.push_str(&pid.to_string());
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_expand_and_missing_services_are_named() {
        let pids: Pids = Arc::default();
        pids.lock().unwrap().insert("db".into(), 4242);
        assert_eq!(
            expand_pids("kill -9 ${service.db.pid}", &pids).unwrap(),
            "kill -9 4242"
        );
        assert_eq!(expand_pids("plain", &pids).unwrap(), "plain");
        let err = expand_pids("${service.web.pid}", &pids).unwrap_err();
        assert!(err.contains("service `web` is not running"), "{err}");
        assert!(expand_pids("${service.db.port}", &pids).is_err());
    }
}
