//! The `exec` fault kind: commands the controller runs itself, an apply at `at` and an
//! optional revert when the duration ends (always run once the apply started).

use std::time::{Duration, Instant};

use super::FaultTask;
use crate::experiment::spec::ExecFaultSpec;
use crate::record::{ActionRecord, FaultRecord as FaultReport, FaultStatus};
use crate::run::exec::run_command;
use crate::run::service::Pids;
use crate::text::ms;
use crate::verdict::describe_action;

/// Deadline of each exec command unless the fault sets one.
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(30);

impl FaultTask {
    /// An exec fault: run `command` at `at`, and `revert` when its duration ends (or
    /// at once on abort, interrupt or the run's end), whatever the apply did.
    pub(super) async fn run_exec(self, exec: ExecFaultSpec) -> FaultReport {
        let mut report = Self::blank(&self.spec);
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
                format!("{name} applied: {}", apply.command.join(" "))
            } else {
                format!(
                    "{name} apply FAILED ({}): {}",
                    describe_action(&apply),
                    apply.command.join(" ")
                )
            },
        );
        report.status = if applied_ok {
            FaultStatus::Applied
        } else {
            FaultStatus::Failed
        };
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
                self.events.push(
                    "fault",
                    format!("{name} reverted: {}", result.command.join(" ")),
                );
                if applied_ok {
                    report.status = FaultStatus::Reverted;
                }
            } else {
                self.events.push(
                    "fault",
                    format!(
                        "{name} revert FAILED ({}): {}",
                        describe_action(&result),
                        result.command.join(" ")
                    ),
                );
                report.status = FaultStatus::RevertFailed;
            }
            report.revert = Some(result);
        }
        self.set_active(false);
        report
    }
}

fn not_run(argv: &[String], error: String, origin: Instant) -> ActionRecord {
    let now = ms(origin.elapsed());
    ActionRecord {
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

/// The dry-run plan of an exec fault: its command, and its revert.
pub(super) fn plan(head: &str, dur: &str, e: &ExecFaultSpec) -> String {
    let mut out = format!("{head}{dur}: exec {}\n", e.command.join(" "));
    if let Some(r) = &e.revert {
        out.push_str(&format!("      revert: {}\n", r.join(" ")));
    }
    out
}
