//! The start-up sweep (DESIGN.md §3.2): before serving anything, undo what a previous
//! run of the agent left behind: continue the processes it paused (if each is still the
//! same process), revert the network faults it recorded, then let the network layer
//! delete every rule, qdisc and queue tagged as the agent's own.

use shakeout_api::{FaultSpec, NetNamespace, SweepReport};

use crate::audit::{Action, Audit, Entry};
use crate::fault::net::{Net, Reverted};
use crate::fault::process;
use crate::fault::target::ProcRoot;
use crate::ledger::{Done, Ledger, Record};
use crate::telemetry::Metrics;

/// Run the sweep and report it (log, metrics, audit; the caller keeps it for
/// `capabilities.lastSweep`). Returns too the records it could not revert: they stay
/// in the ledger, and the agent holds them and retries.
pub(super) async fn startup_sweep(
    ledger: &Ledger,
    net: &Net,
    root: &ProcRoot,
    audit: &Audit,
    metrics: &Metrics,
    sweep_tagged: bool,
) -> (SweepReport, Vec<Record>) {
    let mut unreverted = Vec::new();
    let (records, mut errors) = ledger.load();
    let mut report = SweepReport::default();
    for record in records {
        let mut entry = Entry::new(Action::Sweep, &record.owner);
        entry.experiment = record.experiment.clone();
        entry.fault = record.fault.clone();
        entry.fault_id = record.id.clone();
        let mut gone = false;
        let outcome: Result<String, String> = match &record.done {
            Done::Paused { pids } => {
                let (continued, errs) = process::continue_all(root, pids);
                report.processes_continued.extend(&continued);
                match errs.is_empty() {
                    true => Ok(format!("continued pids {continued:?}")),
                    false => Err(errs.join("; ")),
                }
            }
            Done::Net { applied } => match net.revert(applied).await {
                Ok(Reverted::Done) => Ok(format!("reverted {:?} fault", applied.mechanism())),
                Ok(Reverted::NamespaceGone(inode)) => {
                    let note = format!(
                        "network namespace inode {inode} is gone: nothing left to revert"
                    );
                    report.gone.push(format!("{}: {note}", record.id));
                    gone = true;
                    Ok(note)
                }
                Err(e) => Err(e.to_string()),
            },
            // Only in ledgers of agents older than `Net::prepare` (today's write the
            // whole record before installing). Whatever it installed carries the agent's
            // tag. Outside the host namespace the blanket sweep below never looks, so
            // sweep the fault's own namespace (faults are exclusive per namespace: the
            // tagged rules there are its own).
            Done::NetPending => match &record.spec {
                FaultSpec::Network(n) if n.namespace != NetNamespace::Host => {
                    let swept = net.sweep_in(&n.namespace).await;
                    report.rules_deleted.extend(swept.rules_deleted);
                    match swept.errors.is_empty() {
                        true => Ok("network fault was never confirmed; swept its namespace".into()),
                        false => Err(swept.errors.join("; ")),
                    }
                }
                _ if sweep_tagged => {
                    Ok("network fault was never confirmed; tagged-rule sweep covers it".into())
                }
                _ => Err(format!(
                    "network fault was never confirmed; rules tagged `shakeout:{}` may remain until \
                     `shakeout-agent` starts on this host and sweeps them",
                    record.id
                )),
            },
        };
        match outcome {
            Ok(note) => {
                if let Err(e) = ledger.remove(&record.id) {
                    errors.push(e.to_string());
                }
                tracing::info!(id = %record.id, %note, "sweep cleared ledger entry");
                if !gone {
                    report.ledger_reverted.push(record.id.clone());
                }
                audit.record(entry.note(note));
            }
            Err(e) => {
                // Kept in the ledger, and retried by the running agent.
                tracing::error!(id = %record.id, error = %e, "sweep could not revert ledger entry; retrying");
                errors.push(format!("{}: {e} (kept in the ledger; retried)", record.id));
                let mut entry = entry.note(e);
                entry.result = "error";
                entry.code = Some("internal");
                audit.record(entry);
                unreverted.push(record);
            }
        }
    }
    let net_report = if sweep_tagged {
        net.sweep().await
    } else {
        SweepReport::default()
    };
    report.ledger_reverted.extend(net_report.ledger_reverted);
    report.rules_deleted.extend(net_report.rules_deleted);
    report
        .processes_continued
        .extend(net_report.processes_continued);
    errors.extend(net_report.errors);
    report.errors = errors;
    let cleaned = report.ledger_reverted.len()
        + report.rules_deleted.len()
        + report.processes_continued.len();
    metrics.swept(cleaned);
    if cleaned > 0 || !report.errors.is_empty() {
        tracing::warn!(
            ledger_reverted = ?report.ledger_reverted,
            rules_deleted = ?report.rules_deleted,
            processes_continued = ?report.processes_continued,
            errors = ?report.errors,
            "start-up sweep cleaned what a previous run left"
        );
    } else {
        tracing::info!("start-up sweep: nothing to clean");
    }
    (report, unreverted)
}
