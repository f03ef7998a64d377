//! Process faults on real child processes: kill, pause and revert, by pid, name and
//! pattern, count selection, dry run, exclusive targets, and the metrics they leave.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_by_pid_removes_the_process() {
    let agent = InProcess::start().await;
    let (_d, name, mut kids) = sleepers(1);
    let pid = kids[0].pid();
    let (status, resp) = post(
        agent.addr,
        "/v1/faults",
        apply_body(
            json!({"pid": pid}),
            json!({"kill": {"signal": "SIGKILL"}}),
            "1s",
            "5s",
        ),
    )
    .await;
    assert_eq!(status, 201, "{resp}");
    assert_eq!(resp["targets"], json!([{"pid": pid, "name": name}]));
    let exit = kids[0].0.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(exit.signal(), Some(9));
    // One-shot: nothing held, nothing in the ledger.
    assert_eq!(get(agent.addr, "/v1/faults").await.1, json!([]));
    assert_eq!(agent.ledger_files(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_then_revert_and_revert_again() {
    let agent = InProcess::start().await;
    let (_d, _name, kids) = sleepers(1);
    let pid = kids[0].pid();
    let (status, resp) = post(
        agent.addr,
        "/v1/faults",
        apply_body(json!({"pid": pid}), json!("pause"), "30s", "30s"),
    )
    .await;
    assert_eq!(status, 201, "{resp}");
    wait_state(&kids[0], 'T');
    let id = resp["id"].as_str().unwrap().to_string();
    assert_eq!(agent.ledger_files(), 1, "ledger holds the paused pid");
    let (_, list) = get(agent.addr, "/v1/faults").await;
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["owner"], "ci");

    // A second pause of the same process is an exclusive-target conflict.
    let (status, err) = post(
        agent.addr,
        "/v1/faults",
        apply_body(json!({"pid": pid}), json!("pause"), "30s", "30s"),
    )
    .await;
    assert_eq!(
        (status, err["code"].as_str()),
        (409, Some("conflict")),
        "{err}"
    );

    let (status, rev) = delete(agent.addr, &format!("/v1/faults/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(rev["revertedNow"], true);
    wait_state(&kids[0], 'S');
    assert_eq!(agent.ledger_files(), 0);
    // Idempotent: the second DELETE is 200 with revertedNow false (not 404).
    let (status, rev) = delete(agent.addr, &format!("/v1/faults/{id}")).await;
    assert_eq!((status, rev["revertedNow"].as_bool()), (200, Some(false)));
    let actions: Vec<String> = agent
        .audit()
        .iter()
        .map(|l| l["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(actions, ["apply", "refuse", "revert", "revert"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_by_name_with_count_selection() {
    let agent = InProcess::start().await;
    let (_d, name, kids) = sleepers(3);
    let mut body = apply_body(json!({"name": name}), json!("pause"), "30s", "30s");
    body["spec"]["process"]["select"] = json!({"count": 2});
    body["spec"]["process"]["seed"] = json!(42);
    let (status, resp) = post(agent.addr, "/v1/faults", body).await;
    assert_eq!(status, 201, "{resp}");
    let chosen: Vec<u64> = resp["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(chosen.len(), 2);
    for k in &kids {
        let want = if chosen.contains(&(k.pid() as u64)) {
            'T'
        } else {
            'S'
        };
        wait_state(k, want);
    }
    let (status, _) = delete(
        agent.addr,
        &format!("/v1/faults/{}", resp["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, 200);
    for k in &kids {
        wait_state(k, 'S');
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_by_pattern_on_the_command_line() {
    let agent = InProcess::start().await;
    let (_d, name, mut kids) = sleepers(2);
    let (status, resp) = post(
        agent.addr,
        "/v1/faults",
        apply_body(
            json!({"pattern": format!("/{name} 60$")}),
            json!({"kill": {"signal": "15"}}),
            "1s",
            "5s",
        ),
    )
    .await;
    assert_eq!(status, 201, "{resp}");
    assert_eq!(resp["targets"].as_array().unwrap().len(), 2);
    use std::os::unix::process::ExitStatusExt;
    for k in &mut kids {
        assert_eq!(k.0.wait().unwrap().signal(), Some(15));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_lists_matches_and_changes_nothing() {
    let agent = InProcess::start().await;
    let (_d, name, kids) = sleepers(2);
    for action in [json!("pause"), json!({"kill": {"signal": "KILL"}})] {
        let mut body = apply_body(json!({"name": name}), action, "30s", "30s");
        body["dryRun"] = json!(true);
        let (status, resp) = post(agent.addr, "/v1/faults", body).await;
        assert_eq!(status, 201, "{resp}");
        assert_eq!(resp["dryRun"], true);
        let mut listed: Vec<u64> = resp["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["pid"].as_u64().unwrap())
            .collect();
        listed.sort();
        let mut want: Vec<u64> = kids.iter().map(|k| k.pid() as u64).collect();
        want.sort();
        assert_eq!(listed, want);
    }
    for k in &kids {
        assert_eq!(state(k.pid()), Some('S'));
    }
    assert_eq!(get(agent.addr, "/v1/faults").await.1, json!([]));
    assert_eq!(agent.ledger_files(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_match_and_bad_signal_are_400() {
    let agent = InProcess::start().await;
    let (status, err) = post(
        agent.addr,
        "/v1/faults",
        apply_body(
            json!({"name": "no-such-proc-x"}),
            json!("pause"),
            "5s",
            "5s",
        ),
    )
    .await;
    assert_eq!(
        (status, err["field"].as_str()),
        (400, Some("spec.process.target")),
        "{err}"
    );
    let (status, err) = post(
        agent.addr,
        "/v1/faults",
        apply_body(
            json!({"pid": 1}),
            json!({"kill": {"signal": "NOPE"}}),
            "5s",
            "5s",
        ),
    )
    .await;
    assert_eq!(
        (status, err["field"].as_str()),
        (400, Some("spec.process.action.kill.signal")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_apply_and_revert() {
    let agent = InProcess::start().await;
    let (_d, _name, kids) = sleepers(1);
    let (_, resp) = post(
        agent.addr,
        "/v1/faults",
        apply_body(json!({"pid": kids[0].pid()}), json!("pause"), "30s", "30s"),
    )
    .await;
    let (_, text) = get(agent.addr, "/metrics").await;
    let text = text.as_str().unwrap().to_string();
    assert!(
        text.contains("shakeout_agent_faults_applied_total{kind=\"process\"} 1"),
        "{text}"
    );
    assert!(text.contains("shakeout_agent_active_faults 1"), "{text}");
    delete(
        agent.addr,
        &format!("/v1/faults/{}", resp["id"].as_str().unwrap()),
    )
    .await;
    let (_, text) = get(agent.addr, "/metrics").await;
    let text = text.as_str().unwrap();
    assert!(
        text.contains("shakeout_agent_faults_reverted_total{kind=\"process\"} 1"),
        "{text}"
    );
    assert!(text.contains("shakeout_agent_active_faults 0"), "{text}");
    assert!(
        text.contains("shakeout_agent_requests_total{status=\"201\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("shakeout_agent_sweep_cleaned_total 0"),
        "{text}"
    );
}
