//! Ledgers left by the previous agent version (`tests/fixtures/ledger/`, JSON exactly as
//! that version wrote it) are reverted by this one: its start-up sweep loads each record
//! and undoes what it names. The faults themselves are installed in a lab namespace
//! first (the rules and chains are the same in both versions), then the agent "crashes"
//! and a new one starts on the ledger.
#![allow(clippy::unwrap_used)]

mod net_lab;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use shakeout_agent::fault::net::Net;
use shakeout_agent::fault::target::ProcRoot;
use shakeout_agent::ledger::Ledger;
use shakeout_agent::{Agent, AgentConfig};
use shakeout_api::NetworkFault;

use net_lab::Lab;

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ledger")
        .join(name);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The fixture aimed at the lab's client namespace (`Some` identity) or at a namespace
/// that no longer exists (`None`), written into the ledger under its own id.
fn write_record(ledger: &Path, mut record: Value, pid: u32, identity: Option<Value>) -> String {
    record["spec"]["network"]["namespace"] = json!({ "pid": pid });
    if record["done"]["kind"] == "net" {
        record["done"]["applied"]["detail"]["namespace"] = identity.unwrap_or_else(|| {
            // nsfs never numbers a namespace 1: this one is gone.
            json!({ "pid": pid, "inode": 1, "dev": 4 })
        });
    }
    let id = record["id"].as_str().unwrap().to_string();
    std::fs::write(ledger.join(format!("{id}.json")), record.to_string()).unwrap();
    id
}

fn listings(lab: &Lab) -> String {
    [
        lab.sh(&lab.client, &["nft", "list", "ruleset"]),
        lab.sh(&lab.client, &["iptables", "-S"]),
        lab.sh(&lab.client, &["ip6tables", "-S"]),
    ]
    .join("\n")
}

async fn start(state: &Path) -> Agent {
    let mut config = AgentConfig::new(state);
    // Only the ledger may explain a clean namespace.
    config.sweep_tagged_network = false;
    Agent::start(config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_records_of_the_previous_version_are_reverted() {
    let Some(lab) = Lab::new("network_records_of_the_previous_version_are_reverted") else {
        return;
    };
    let pid = match lab.ns() {
        shakeout_api::NetNamespace::Pid(p) => p,
        other => panic!("{other:?}"),
    };
    let meta = std::fs::metadata(format!("/proc/{pid}/ns/net")).unwrap();
    let identity = json!({
        "pid": pid, "inode": meta.ino(), "dev": meta.dev(),
        "path": format!("/run/netns/{}", lab.client),
    });
    let dir = tempfile::tempdir().unwrap();
    let state: PathBuf = dir.path().join("state");
    let ledger = Ledger::open(&state).unwrap();

    // Installed with the fixture's id and spec, as the previous version did.
    let crashed = Net::new(&state);
    let mut installed = Vec::new();
    for name in [
        "nftables-loss.json",
        "nftables-blackhole.json",
        "nfqueue-iptables.json",
        "old-nfqueue-without-rules.json",
    ] {
        let record = fixture(name);
        let mut spec: NetworkFault =
            serde_json::from_value(record["spec"]["network"].clone()).unwrap();
        spec.namespace = lab.ns();
        let id = record["id"].as_str().unwrap().to_string();
        crashed.apply(&id, &spec, 1).await.unwrap();
        assert_eq!(
            write_record(ledger.dir(), record, pid, Some(identity.clone())),
            id
        );
        installed.push(id);
    }
    // Mechanisms this kernel lacks: their namespace is gone, which is a revert too.
    let gone: Vec<String> = ["netem.json", "nfqueue-nft-queue.json"]
        .into_iter()
        .map(|name| write_record(ledger.dir(), fixture(name), pid, None))
        .collect();
    drop(crashed);
    let before = listings(&lab);
    for id in &installed {
        assert!(
            before.contains(&format!("shakeout:{id}")),
            "{id}:\n{before}"
        );
    }

    let agent = start(&state).await;
    let sweep = agent.last_sweep().clone();
    assert!(sweep.errors.is_empty(), "{sweep:?}");
    let mut reverted = sweep.ledger_reverted.clone();
    reverted.sort();
    installed.sort();
    assert_eq!(reverted, installed, "{sweep:?}");
    for id in &gone {
        assert!(
            sweep.gone.iter().any(|g| g.starts_with(id.as_str())),
            "{sweep:?}"
        );
    }
    assert!(ledger.load().0.is_empty(), "the ledger let them go");
    let after = listings(&lab);
    assert!(
        !after.contains("shakeout") && !after.contains("SHAKEOUT"),
        "left behind:\n{after}"
    );
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_record_of_an_older_version_sweeps_its_namespace() {
    let Some(lab) = Lab::new("a_pending_record_of_an_older_version_sweeps_its_namespace") else {
        return;
    };
    let pid = match lab.ns() {
        shakeout_api::NetNamespace::Pid(p) => p,
        other => panic!("{other:?}"),
    };
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let ledger = Ledger::open(&state).unwrap();
    let record = fixture("old-net-pending.json");
    let id = record["id"].as_str().unwrap().to_string();
    let mut spec: NetworkFault = serde_json::from_value(record["spec"]["network"].clone()).unwrap();
    spec.namespace = lab.ns();
    let crashed = Net::new(&state);
    crashed.apply(&id, &spec, 1).await.unwrap();
    drop(crashed);
    write_record(ledger.dir(), record, pid, None);
    assert!(listings(&lab).contains(&format!("shakeout:{id}")));

    let agent = start(&state).await;
    let sweep = agent.last_sweep().clone();
    assert!(sweep.errors.is_empty(), "{sweep:?}");
    assert_eq!(
        sweep.ledger_reverted,
        std::slice::from_ref(&id),
        "{sweep:?}"
    );
    assert!(ledger.load().0.is_empty());
    assert!(!listings(&lab).contains("shakeout"));
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_record_of_the_previous_version_continues_its_process() {
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let pid = child.id();
    let start_time = ProcRoot::default().proc(pid).unwrap().start_time;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .unwrap();
    let state_of = |pid: u32| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        stat.rsplit(')')
            .next()
            .unwrap()
            .trim()
            .chars()
            .next()
            .unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while state_of(pid) != 'T' {
        assert!(std::time::Instant::now() < deadline, "never stopped");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let ledger = Ledger::open(&state).unwrap();
    let mut record = fixture("paused.json");
    record["spec"]["process"]["target"]["pid"] = json!(pid);
    record["done"]["pids"] = json!([{ "pid": pid, "startTime": start_time }]);
    let id = record["id"].as_str().unwrap().to_string();
    std::fs::write(ledger.dir().join(format!("{id}.json")), record.to_string()).unwrap();

    let agent = start(&state).await;
    let sweep = agent.last_sweep().clone();
    assert!(sweep.errors.is_empty(), "{sweep:?}");
    assert_eq!(sweep.ledger_reverted, [id], "{sweep:?}");
    assert_eq!(sweep.processes_continued, [pid], "{sweep:?}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while state_of(pid) == 'T' {
        assert!(std::time::Instant::now() < deadline, "never continued");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    agent.shutdown().await;
    child.kill().unwrap();
    child.wait().unwrap();
}
