//! Two agents in one network namespace (the controller's embedded agent and the node
//! agent both work in the host's): each installs and removes only its own iptables
//! chains, even when they work at the same moment; a conflicting apply is refused with
//! the other's rules left as they were; rules of an agent from before per-fault chains
//! still revert; and a ledger record written before the install reverts cleanly whether
//! the install happened or not, without touching the other agent's rules.
#![allow(clippy::unwrap_used)]

mod net_lab;

use std::os::unix::fs::MetadataExt;

use serde_json::json;
use shakeout_agent::fault::net::{Mechanism, Net, NetRecord};
use shakeout_agent::ledger::{Done, Ledger, Record};
use shakeout_agent::{Agent, AgentConfig};
use shakeout_api::{Dur, FaultSpec, Latency, NetworkFault};

use net_lab::{rtt_median_ms, Lab};

/// An nfqueue delay towards the server; `ports` narrows it (empty: all traffic).
fn delay(lab: &Lab, ms: u64, ports: Vec<u16>) -> NetworkFault {
    NetworkFault {
        latency: Some(Latency {
            delay: Dur::from_millis(ms),
            jitter: None,
        }),
        peers: vec![lab.server_ip.to_string()],
        ports,
        mechanism: Some(Mechanism::Nfqueue),
        namespace: lab.ns(),
        ..Default::default()
    }
}

fn listing(lab: &Lab) -> String {
    lab.sh(&lab.client, &["iptables", "-S"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_in_one_namespace_keep_to_their_own_rules() {
    let Some(lab) = Lab::new("two_agents_in_one_namespace_keep_to_their_own_rules") else {
        return;
    };
    let mut conn = lab.connect(lab.tcp_echo());
    let base = rtt_median_ms(&mut conn, 20);
    let (a, b) = (
        Net::new(&std::env::temp_dir()),
        Net::new(&std::env::temp_dir()),
    );

    // Both at once, round after round: each transaction creates only its own chain, so
    // neither can flush or delete what the other just added.
    for round in 0..5 {
        let (ida, idb) = (format!("a{round}"), format!("b{round}"));
        let (sa, sb) = (delay(&lab, 50, vec![9]), delay(&lab, 50, vec![7]));
        let (x, y) = tokio::join!(a.apply(&ida, &sa, 1), b.apply(&idb, &sb, 1));
        let (x, y) = (x.unwrap(), y.unwrap());
        let rules = listing(&lab);
        for tag in [&ida, &idb] {
            assert!(
                rules.contains(&format!("shakeout:{tag}")),
                "{tag}:\n{rules}"
            );
        }
        let (rx, ry) = tokio::join!(a.revert(&x), b.revert(&y));
        rx.unwrap();
        ry.unwrap();
        let rules = listing(&lab);
        assert!(!rules.contains("shakeout"), "round {round} left:\n{rules}");
    }

    // A conflict: B asks for an id whose chain A holds. Refused, and nothing changes.
    let held = a.apply("same", &delay(&lab, 50, vec![]), 1).await.unwrap();
    assert!(rtt_median_ms(&mut conn, 5) > base + 45.0);
    let before = listing(&lab);
    let err = b
        .apply("same", &delay(&lab, 10, vec![]), 2)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("already exists") && err.contains("nothing was changed"),
        "{err}"
    );
    assert_eq!(listing(&lab), before, "the refused apply changed the rules");
    assert!(b.queue_counters("same").is_none(), "B kept a reader");
    assert!(
        rtt_median_ms(&mut conn, 5) > base + 45.0,
        "A's fault stopped working"
    );

    // B's own fault beside A's, reverted: A's chain, jump and effect stay.
    let own = b
        .apply("b-own", &delay(&lab, 50, vec![7]), 1)
        .await
        .unwrap();
    b.revert(&own).await.unwrap();
    let rules = listing(&lab);
    assert!(
        rules.contains("shakeout:same") && !rules.contains("shakeout:b-own"),
        "{rules}"
    );
    assert!(rtt_median_ms(&mut conn, 5) > base + 45.0);
    a.revert(&held).await.unwrap();
    let rules = listing(&lab);
    assert!(
        !rules.contains("shakeout") && !rules.contains("SHAKEOUT"),
        "{rules}"
    );
    assert!(rtt_median_ms(&mut conn, 20) < base + 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_recorded_in_the_old_shared_chains_still_revert() {
    let Some(lab) = Lab::new("faults_recorded_in_the_old_shared_chains_still_revert") else {
        return;
    };
    // The layout agents used before per-fault chains: every fault in SHAKEOUT-OUT.
    let rule = |id: &str| -> Vec<String> {
        [
            "-d",
            &format!("{}/32", lab.server_ip),
            "-m",
            "comment",
            "--comment",
            &format!("shakeout:{id}"),
            "-j",
            "NFQUEUE",
            "--queue-num",
            "23463",
            "--queue-bypass",
        ]
        .map(String::from)
        .to_vec()
    };
    lab.sh(&lab.client, &["iptables", "-N", "SHAKEOUT-OUT"]);
    for id in ["old1", "old2"] {
        let mut argv = vec!["iptables", "-A", "SHAKEOUT-OUT"];
        let r = rule(id);
        argv.extend(r.iter().map(String::as_str));
        lab.sh(&lab.client, &argv);
    }
    lab.sh(
        &lab.client,
        &[
            "iptables",
            "-I",
            "OUTPUT",
            "1",
            "-m",
            "comment",
            "--comment",
            "shakeout",
            "-j",
            "SHAKEOUT-OUT",
        ],
    );
    let pid = match lab.ns() {
        shakeout_api::NetNamespace::Pid(p) => p,
        other => panic!("{other:?}"),
    };
    let meta = std::fs::metadata(format!("/proc/{pid}/ns/net")).unwrap();
    // The record as those agents wrote it.
    let record = |id: &str| -> NetRecord {
        serde_json::from_value(json!({
            "mechanism": "nfqueue",
            "detail": {
                "id": id,
                "namespace": { "pid": pid, "inode": meta.ino(), "dev": meta.dev() },
                "queue": 23463,
                "rules": [{ "bin": "iptables", "chain": "SHAKEOUT-OUT", "args": rule(id) }],
            },
        }))
        .unwrap()
    };
    let net = Net::new(&std::env::temp_dir());
    net.revert(&record("old1")).await.unwrap();
    let rules = listing(&lab);
    assert!(
        !rules.contains("shakeout:old1")
            && rules.contains("shakeout:old2")
            && rules.contains("-j SHAKEOUT-OUT"),
        "the other fault's rule, the chain and its jump must stay:\n{rules}"
    );
    net.revert(&record("old2")).await.unwrap();
    net.revert(&record("old1")).await.unwrap(); // idempotent
    let rules = listing(&lab);
    assert!(
        !rules.contains("shakeout") && !rules.contains("SHAKEOUT"),
        "{rules}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_written_before_install_reverts_whether_or_not_it_was_installed() {
    let Some(lab) =
        Lab::new("a_record_written_before_install_reverts_whether_or_not_it_was_installed")
    else {
        return;
    };
    // Another agent's live fault in the same namespace: the sweep must leave it alone.
    let other = Net::new(&std::env::temp_dir());
    let theirs = other
        .apply("theirs", &delay(&lab, 50, vec![9]), 1)
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let ledger = Ledger::open(&state).unwrap();
    let write = |id: &str, spec: &NetworkFault, applied: &NetRecord| {
        ledger
            .write(&Record {
                id: id.into(),
                owner: "ci".into(),
                experiment: "e".into(),
                fault: "f".into(),
                spec: FaultSpec::Network(spec.clone()),
                applied_unix_ms: 0,
                ends_unix_ms: u64::MAX,
                done: Done::Net {
                    applied: applied.clone(),
                },
            })
            .unwrap()
    };
    // Killed between the ledger write and the install: a record, and nothing else.
    let (never, done) = ("f-00000000000000a1", "f-00000000000000a2");
    let spec = delay(&lab, 20, vec![]);
    let crashed = Net::new(&state);
    let prepared = crashed.prepare(never, &spec, 1).await.unwrap();
    assert!(
        serde_json::to_value(prepared.record()).unwrap()["detail"]["rules"][0]["chain"]
            .as_str()
            .unwrap()
            .starts_with("SHAKEOUT-OUT-"),
        "{:?}",
        prepared.record()
    );
    write(never, &spec, prepared.record());
    drop(prepared);
    // Killed right after the install: the record, and its rules in place.
    let prepared = crashed.prepare(done, &spec, 1).await.unwrap();
    write(done, &spec, prepared.record());
    crashed.install(prepared).await.unwrap();
    drop(crashed);
    assert!(listing(&lab).contains(&format!("shakeout:{done}")));

    let mut config = AgentConfig::new(&state);
    config.sweep_tagged_network = false;
    let agent = Agent::start(config).await.unwrap();
    let sweep = agent.last_sweep().clone();
    assert!(sweep.errors.is_empty(), "{sweep:?}");
    let mut reverted = sweep.ledger_reverted.clone();
    reverted.sort();
    assert_eq!(reverted, [never, done], "{sweep:?}");
    assert!(ledger.load().0.is_empty());
    let rules = listing(&lab);
    assert!(
        !rules.contains(never) && !rules.contains(done),
        "left behind:\n{rules}"
    );
    assert!(
        rules.contains("shakeout:theirs"),
        "the other agent's fault was touched:\n{rules}"
    );
    agent.shutdown().await;
    other.revert(&theirs).await.unwrap();
    assert!(!listing(&lab).contains("shakeout"));
}
