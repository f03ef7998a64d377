//! A ledger entry the start-up sweep cannot revert is not dropped and not forgotten
//! until the next start: the agent holds it, lists it, counts it in its metrics and
//! retries it with backoff until it reverts; only then does it leave the ledger.
//! The failure is made with a fixture `/proc` tree (a paused pid the kernel refuses).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use shakeout_agent::fault::target::ProcRoot;
use shakeout_agent::{Agent, AgentConfig};

/// A pid above the kernel's range: signalling it fails until its fixture entry is gone
/// (then the process counts as gone, and there is nothing to continue).
const PID: u64 = 3_000_000_000;

fn record(id: &str) -> String {
    format!(
        r#"{{"id":"{id}","owner":"ci","experiment":"e","fault":"freeze",
            "spec":{{"process":{{"target":{{"pid":{PID}}},"action":"pause"}}}},
            "appliedUnixMs":1,"endsUnixMs":2,
            "done":{{"kind":"paused","pids":[{{"pid":{PID},"startTime":7}}]}}}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrevertable_entry_is_held_listed_counted_and_retried_until_it_reverts() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let ledger = state.join("ledger");
    std::fs::create_dir_all(&ledger).unwrap();
    let id = "f-00000000000000aa";
    std::fs::write(ledger.join(format!("{id}.json")), record(id)).unwrap();
    let proc_root = dir.path().join("proc");
    let entry = proc_root.join(PID.to_string());
    std::fs::create_dir_all(&entry).unwrap();
    // `pid (comm) state ppid ...`: field 22 (start time) is 7.
    let fields: Vec<String> = (4..=21).map(|_| "0".to_string()).collect();
    std::fs::write(
        entry.join("stat"),
        format!("{PID} (frozen) T 1 {} 7 0\n", fields[1..].join(" ")),
    )
    .unwrap();

    let mut config = AgentConfig::new(&state);
    config.proc_root = ProcRoot::new(&proc_root);
    let agent = Agent::start(config).await.unwrap();
    let sweep = agent.last_sweep().clone();
    assert!(
        sweep
            .errors
            .iter()
            .any(|e| e.contains(id) && e.contains("retried")),
        "{sweep:?}"
    );
    assert!(sweep.ledger_reverted.is_empty());
    let held = agent.list().await;
    assert_eq!(held.len(), 1, "the failed entry is held: {held:?}");
    assert_eq!(held[0].id, id);
    let metrics = agent.metrics().render();
    assert!(
        metrics.contains("shakeout_agent_reverts_pending 1"),
        "{metrics}"
    );
    assert!(
        ledger.join(format!("{id}.json")).exists(),
        "kept in the ledger"
    );

    // Still failing a moment later: retried (audited), still held.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(agent.list().await.len(), 1);
    let audit = std::fs::read_to_string(state.join("audit.jsonl")).unwrap();
    assert!(audit.contains("retry"), "{audit}");

    // The cause goes away: the next retry reverts it and the ledger lets it go.
    std::fs::remove_dir_all(&entry).unwrap();
    let started = Instant::now();
    while !agent.list().await.is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "not retried within the backoff"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!ledger.join(format!("{id}.json")).exists());
    assert!(agent
        .metrics()
        .render()
        .contains("shakeout_agent_reverts_pending 0"));
    agent.shutdown().await;
}
