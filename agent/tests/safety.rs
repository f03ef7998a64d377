//! Safety with the real `shakeout-agent` binary, each by killing real processes: a fault
//! survives neither an agent crash (the restart sweeps it), nor a silent controller (the
//! lease expires on time), nor a SIGTERM (everything is reverted before exit).
#![allow(clippy::unwrap_used)]

mod common;
mod net_lab;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::json;
use shakeout_agent::lease::REAPER_TICK;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_mid_fault_then_restart_sweeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, _name, kids) = sleepers(1);
    let pid = kids[0].pid();
    let mut agent = BinAgent::start(dir.path());
    let (status, resp) = post(
        agent.addr,
        "/v1/faults",
        apply_body(json!({"pid": pid}), json!("pause"), "5m", "5m"),
    )
    .await;
    assert_eq!(status, 201, "{resp}");
    let id = resp["id"].as_str().unwrap().to_string();
    wait_state(&kids[0], 'T');

    // kill -9: no chance to clean up.
    agent.child.0.kill().unwrap();
    agent.wait_exit(Duration::from_secs(10));
    assert_eq!(
        state(pid),
        Some('T'),
        "nothing but the agent could have continued it"
    );

    let again = BinAgent::start(dir.path());
    // The sweep runs before the agent listens, so the process is already continued.
    wait_state(&kids[0], 'S');
    let (_, caps) = get(again.addr, "/v1/capabilities").await;
    let sweep = &caps["lastSweep"];
    assert_eq!(sweep["ledgerReverted"], json!([id]), "{caps}");
    assert_eq!(sweep["processesContinued"], json!([pid]), "{caps}");
    assert_eq!(sweep["errors"], json!([]), "{caps}");
    let (_, text) = get(again.addr, "/metrics").await;
    assert!(
        text.as_str()
            .unwrap()
            .contains("shakeout_agent_sweep_cleaned_total 2"),
        "{text}"
    );
    assert_eq!(get(again.addr, "/v1/faults").await.1, json!([]));
    // The controller's late revert of a swept fault is answered, not 404.
    let (status, rev) = delete(again.addr, &format!("/v1/faults/{id}")).await;
    assert_eq!((status, rev["revertedNow"].as_bool()), (200, Some(false)));
    let audit = audit_lines(&dir.path().join("state/audit.jsonl"));
    assert!(
        audit
            .iter()
            .any(|l| l["action"] == "sweep" && l["faultId"] == id.as_str()),
        "{audit:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_mid_network_fault_then_restart_reverts_it_from_its_one_ledger_record() {
    let Some(lab) = net_lab::Lab::new("crash_mid_network_fault_then_restart_reverts_it") else {
        return;
    };
    let shakeout_api::NetNamespace::Pid(pid) = lab.ns() else {
        unreachable!("the lab names its namespace by pid")
    };
    let dir = tempfile::tempdir().unwrap();
    let mut agent = BinAgent::start(dir.path());
    let body = json!({
        "experiment": "test", "fault": "net", "duration": "5m", "lease": "5m",
        "spec": { "network": {
            "latency": { "delay": "50ms" }, "peers": [lab.server_ip.to_string()],
            "mechanism": "nfqueue", "namespace": { "pid": pid },
        } },
    });
    let (status, resp) = post(agent.addr, "/v1/faults", body).await;
    assert_eq!(status, 201, "{resp}");
    let id = resp["id"].as_str().unwrap().to_string();
    // Written once, before the rules, and already complete: the chain it names is there.
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join(format!("state/ledger/{id}.json"))).unwrap(),
    )
    .unwrap();
    let chain = record["done"]["applied"]["detail"]["rules"][0]["chain"]
        .as_str()
        .unwrap_or_else(|| panic!("{record}"))
        .to_string();
    assert!(
        lab.sh(&lab.client, &["iptables", "-S"])
            .contains(&format!("-N {chain}")),
        "{record}"
    );

    agent.child.0.kill().unwrap();
    agent.wait_exit(Duration::from_secs(10));
    assert!(lab.sh(&lab.client, &["iptables", "-S"]).contains(&chain));

    // The restart's host sweep never looks in the lab's namespace: only the record can
    // bring it back.
    let again = BinAgent::start(dir.path());
    let (_, caps) = get(again.addr, "/v1/capabilities").await;
    let sweep = &caps["lastSweep"];
    assert_eq!(sweep["ledgerReverted"], json!([id]), "{caps}");
    assert_eq!(sweep["errors"], json!([]), "{caps}");
    let rules = lab.sh(&lab.client, &["iptables", "-S"]);
    assert!(
        !rules.contains("shakeout") && !rules.contains("SHAKEOUT"),
        "{rules}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrenewed_fault_expires_at_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, _name, kids) = sleepers(1);
    let pid = kids[0].pid();
    let agent = BinAgent::start(dir.path());
    let (status, resp) = post(
        agent.addr,
        "/v1/faults",
        apply_body(json!({"pid": pid}), json!("pause"), "5m", "2s"),
    )
    .await;
    assert_eq!(status, 201, "{resp}");
    let id = resp["id"].as_str().unwrap().to_string();
    wait_state(&kids[0], 'T');
    // One renewal moves the deadline; then the controller "dies" and stops renewing.
    let (status, renewed) = post(
        agent.addr,
        &format!("/v1/faults/{id}/renew"),
        json!({"lease": "1500ms"}),
    )
    .await;
    assert_eq!(status, 200, "{renewed}");
    let deadline = renewed["deadlineUnixMs"].as_u64().unwrap();
    assert!(deadline >= resp["deadlineUnixMs"].as_u64().unwrap() - 500);

    // Watch for the continue. Polling every 5 ms adds at most that to the observation.
    wait_until(
        Duration::from_secs(30),
        || state(pid) == Some('S'),
        "expiry",
    );
    let seen = now_ms();
    // Never early (1 ms slack for the Unix-ms rounding); late by at most the reaper's
    // tick plus scheduling on a loaded machine, inside the promised 1 s.
    assert!(
        seen + 1 >= deadline,
        "continued {} ms before the deadline",
        deadline - seen
    );
    assert!(
        seen <= deadline + 1000,
        "continued {} ms after the deadline (tick {REAPER_TICK:?})",
        seen - deadline
    );
    assert_eq!(get(agent.addr, "/v1/faults").await.1, json!([]));
    let (status, rev) = delete(agent.addr, &format!("/v1/faults/{id}")).await;
    assert_eq!((status, rev["revertedNow"].as_bool()), (200, Some(false)));
    let (status, _) = post(agent.addr, &format!("/v1/faults/{id}/renew"), json!({})).await;
    assert_eq!(
        status, 404,
        "an expired fault cannot be renewed back to life"
    );
    // The audit line follows the SIGCONT; wait for it rather than race it.
    let audit_path = dir.path().join("state/audit.jsonl");
    let expired = |l: &serde_json::Value| l["action"] == "expire" && l["faultId"] == id.as_str();
    wait_until(
        Duration::from_secs(10),
        || audit_lines(&audit_path).iter().any(expired),
        "expire audit line",
    );
    let (_, text) = get(agent.addr, "/metrics").await;
    assert!(
        text.as_str()
            .unwrap()
            .contains("shakeout_agent_faults_expired_total{kind=\"process\",reason=\"lease\"} 1"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_ends_when_its_duration_does() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, _name, kids) = sleepers(1);
    let agent = BinAgent::start(dir.path());
    let (status, resp) = post(
        agent.addr,
        "/v1/faults",
        apply_body(json!({"pid": kids[0].pid()}), json!("pause"), "1s", "1m"),
    )
    .await;
    assert_eq!(status, 201, "{resp}");
    let ends = resp["endsUnixMs"].as_u64().unwrap();
    wait_until(
        Duration::from_secs(30),
        || state(kids[0].pid()) == Some('S'),
        "end",
    );
    let seen = now_ms();
    assert!(
        seen + 1 >= ends && seen <= ends + 1000,
        "ended at {seen}, due {ends}"
    );
    let audit_path = dir.path().join("state/audit.jsonl");
    wait_until(
        Duration::from_secs(10),
        || {
            audit_lines(&audit_path)
                .iter()
                .any(|l| l["action"] == "end")
        },
        "end audit line",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_reverts_everything_before_exit() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, _name, kids) = sleepers(2);
    let mut agent = BinAgent::start(dir.path());
    for k in &kids {
        let (status, resp) = post(
            agent.addr,
            "/v1/faults",
            apply_body(json!({"pid": k.pid()}), json!("pause"), "5m", "5m"),
        )
        .await;
        assert_eq!(status, 201, "{resp}");
        wait_state(k, 'T');
    }
    kill(Pid::from_raw(agent.child.pid() as i32), Signal::SIGTERM).unwrap();
    let status = agent.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "agent exit: {status}");
    // Checked after exit, without waiting: the agent continued them before it exited.
    for k in &kids {
        assert_eq!(state(k.pid()), Some('S'));
    }
    let ledger = std::fs::read_dir(dir.path().join("state/ledger"))
        .unwrap()
        .count();
    assert_eq!(ledger, 0, "shutdown cleared the ledger");
    let audit = audit_lines(&dir.path().join("state/audit.jsonl"));
    let reverts = audit
        .iter()
        .filter(|l| l["action"] == "revert" && l["result"] == "ok")
        .count();
    assert_eq!(reverts, 2, "{audit:?}");
}
