//! Security: every refusal gets its status and stable code, is written to the audit
//! log, and leaves nothing applied (`GET /v1/faults` empty, no ledger entry).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Nothing applied, and the last audit line is a refusal with `code`.
async fn assert_refused_and_audited(agent: &InProcess, code: &str) {
    let (status, list) = get(agent.addr, "/v1/faults").await;
    assert_eq!(status, 200);
    assert_eq!(list, json!([]), "a refused request applied something");
    assert_eq!(agent.ledger_files(), 0);
    let audit = agent.audit();
    let last = audit.last().expect("refusal not audited");
    assert_eq!(last["action"], "refuse", "{last}");
    assert_eq!(last["result"], "error");
    assert_eq!(last["code"], code, "{last}");
    assert!(
        last["time"].as_str().unwrap().ends_with('Z'),
        "RFC 3339 UTC time: {last}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_and_wrong_token_are_401_and_audited() {
    let mut agent = InProcess::start().await;
    let (_d, _name, kids) = sleepers(1);
    let body = apply_body(json!({"pid": kids[0].pid()}), json!("pause"), "5s", "5s").to_string();
    // The first refusal from an address in a minute is a line of its own, with the
    // caller's address; later ones are counted for a summary line (bounded audit).
    let (status, err) = call(agent.addr, "POST", "/v1/faults", None, Some(body.clone())).await;
    assert_eq!(status, 401, "{err}");
    assert_eq!(err["code"], "unauthorized");
    assert_refused_and_audited(&agent, "unauthorized").await;
    let first = agent.audit().pop().unwrap();
    assert_eq!(first["token"], "-");
    assert!(
        first["peer"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{first}"
    );
    assert!(
        first["message"]
            .as_str()
            .unwrap()
            .contains("POST /v1/faults"),
        "{first}"
    );
    let lines = agent.audit().len();
    let wrong = Some("wrong-secret-0123456789");
    let (status, err) = call(agent.addr, "POST", "/v1/faults", wrong, Some(body)).await;
    assert_eq!((status, err["code"].as_str()), (401, Some("unauthorized")));
    assert_eq!(state(kids[0].pid()), Some('S'));
    // Health needs no token; everything else does.
    assert_eq!(
        call(agent.addr, "GET", "/v1/health", None, None).await.0,
        200
    );
    assert_eq!(
        call(agent.addr, "GET", "/v1/faults", None, None).await.0,
        401
    );
    assert_eq!(call(agent.addr, "GET", "/metrics", None, None).await.0, 401);
    assert_eq!(
        agent.audit().len(),
        lines,
        "counted, not written one by one"
    );
    // At the latest when the server stops, the count is written.
    agent.stop_server().await;
    let summary = agent.audit().pop().unwrap();
    assert_eq!(
        (summary["action"].as_str(), summary["code"].as_str()),
        (Some("refuse"), Some("unauthorized")),
        "{summary}"
    );
    assert_eq!(summary["peer"], "127.0.0.1", "{summary}");
    assert_eq!(summary["count"], 3, "{summary}");
    assert!(
        summary["message"]
            .as_str()
            .unwrap()
            .contains("GET /metrics"),
        "the last request is named: {summary}"
    );
}

/// Raw HTTP, so the test controls exactly how much body is sent.
async fn raw(addr: std::net::SocketAddr, head: &str, body: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_body_is_413_declared_or_streamed() {
    let agent = InProcess::start().await;
    // Declared too large: refused from the header, before any body byte is read.
    let head = format!(
        "POST /v1/faults HTTP/1.1\r\nhost: a\r\nauthorization: Bearer {SECRET}\r\ncontent-length: 10000000\r\nconnection: close\r\n\r\n"
    );
    let resp = raw(agent.addr, &head, b"").await;
    assert!(resp.starts_with("HTTP/1.1 413"), "{resp}");
    assert!(resp.contains("\"code\":\"tooLarge\""), "{resp}");
    assert_refused_and_audited(&agent, "tooLarge").await;
    // Chunked, no length: cut off at the limit while reading.
    let head = format!(
        "POST /v1/faults HTTP/1.1\r\nhost: a\r\nauthorization: Bearer {SECRET}\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    let chunk = vec![b' '; 70 * 1024];
    let mut body = format!("{:x}\r\n", chunk.len()).into_bytes();
    body.extend_from_slice(&chunk);
    body.extend_from_slice(b"\r\n0\r\n\r\n");
    let resp = raw(agent.addr, &head, &body).await;
    assert!(resp.starts_with("HTTP/1.1 413"), "{resp}");
    assert_refused_and_audited(&agent, "tooLarge").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_and_unknown_kind_are_400_with_a_message() {
    let agent = InProcess::start().await;
    let (status, err) = call(
        agent.addr,
        "POST",
        "/v1/faults",
        Some(SECRET),
        Some("{\"experiment\": ".into()),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(err["code"], "badSpec");
    assert_eq!(err["field"], "body");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("invalid request JSON"),
        "{err}"
    );
    assert_refused_and_audited(&agent, "badSpec").await;

    let body = json!({"experiment": "e", "fault": "f", "duration": "5s", "spec": {"disk": {"fill": "90%"}}});
    let (status, err) = post(agent.addr, "/v1/faults", body).await;
    assert_eq!(status, 400);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("unknown variant `disk`"),
        "{err}"
    );
    assert_refused_and_audited(&agent, "badSpec").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_pids_are_403_naming_each() {
    let agent = InProcess::start().await;
    // A harmless signal, so even a broken check could not hurt the machine or the test.
    for (pid, why) in [(1, "pid 1"), (std::process::id(), "the agent itself")] {
        let body = apply_body(
            json!({"pid": pid}),
            json!({"kill": {"signal": "CONT"}}),
            "5s",
            "5s",
        );
        let (status, err) = post(agent.addr, "/v1/faults", body).await;
        assert_eq!(status, 403, "{err}");
        assert_eq!(err["code"], "protectedTarget");
        let message = err["message"].as_str().unwrap();
        assert!(
            message.contains(why) && message.contains(&format!("pid {pid}")),
            "{message}"
        );
        assert_refused_and_audited(&agent, "protectedTarget").await;
        let last = agent.audit().pop().unwrap();
        assert_eq!(
            (last["token"].as_str(), last["experiment"].as_str()),
            (Some("ci"), Some("test"))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_long_duration_is_403_by_policy() {
    let agent = InProcess::start().await;
    let (_d, _name, kids) = sleepers(1);
    let body = apply_body(json!({"pid": kids[0].pid()}), json!("pause"), "11m", "5s");
    let (status, err) = post(agent.addr, "/v1/faults", body).await;
    assert_eq!(status, 403, "{err}");
    assert_eq!(err["code"], "forbidden");
    assert!(
        err["message"].as_str().unwrap().contains("maxDuration 10m"),
        "{err}"
    );
    assert_refused_and_audited(&agent, "forbidden").await;
    assert_eq!(state(kids[0].pid()), Some('S'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_limits_kinds_per_token() {
    let agent = InProcess::start_with(|c| {
        c.policy.tokens.insert(
            "ci".into(),
            shakeout_agent::TokenPolicy {
                fault_kinds: vec!["network".into()],
                ..Default::default()
            },
        );
    })
    .await;
    let (_d, _name, kids) = sleepers(1);
    let body = apply_body(json!({"pid": kids[0].pid()}), json!("pause"), "5s", "5s");
    let (status, err) = post(agent.addr, "/v1/faults", body).await;
    assert_eq!(
        (status, err["code"].clone()),
        (403, Value::from("forbidden")),
        "{err}"
    );
    assert_refused_and_audited(&agent, "forbidden").await;
    let (_, caps) = get(agent.addr, "/v1/capabilities").await;
    assert_eq!(caps["faultKinds"], json!(["network"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fault_and_route_are_404_and_audited() {
    let agent = InProcess::start().await;
    let long = format!("/v1/{}", "z".repeat(4000));
    let requests = [
        ("DELETE", "/v1/faults/f-0000000000000000"),
        ("DELETE", "/v1/faults/..%2Fetc"),
        ("POST", "/v1/faults/f-0000000000000000/renew"),
        ("GET", "/v1/nothing-here"),
        ("PUT", "/v1/faults"),
        ("GET", long.as_str()),
    ];
    for (method, path) in requests {
        let body = (method == "POST").then(|| "{}".to_string());
        let (status, err) = call(agent.addr, method, path, Some(SECRET), body).await;
        assert_eq!(
            (status, err["code"].as_str()),
            (404, Some("notFound")),
            "{method} {path}"
        );
        // Every authenticated 404 is a line of its own: the token, the caller's address
        // (a valid id the core does not hold is its `revert`/`renew` line, refused).
        assert_eq!(agent.ledger_files(), 0);
        let last = agent.audit().pop().unwrap();
        assert_eq!(
            (last["result"].as_str(), last["code"].as_str()),
            (Some("error"), Some("notFound")),
            "{last}"
        );
        assert_eq!(last["token"], "ci", "{last}");
        assert!(
            last["peer"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{last}"
        );
        assert!(
            last["message"].as_str().unwrap().len() < 300,
            "a path is logged clipped: {last}"
        );
    }
    let audited = agent
        .audit()
        .iter()
        .filter(|l| l["code"] == "notFound")
        .count();
    assert_eq!(audited, requests.len());
}
