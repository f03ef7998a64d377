//! The agent client against a stand-in agent: what it sends depends on what the agent
//! says it takes.

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A stand-in agent: answers capabilities with `caps`, and any POST with a fault id,
/// handing back every body it was sent.
async fn stand_in(
    caps: serde_json::Value,
) -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let (caps, tx) = (caps.clone(), tx.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head, body) = loop {
                    let n = s.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(i) = text.find("\r\n\r\n") {
                        let len: usize = text[..i]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if text.len() >= i + 4 + len {
                            break (text[..i].to_string(), text[i + 4..i + 4 + len].to_string());
                        }
                    }
                };
                let answer = if head.starts_with("GET /v1/capabilities") {
                    caps.to_string()
                } else {
                    let _ = tx.send(body);
                    serde_json::json!({"id": "f-00000000000000aa", "deadlineUnixMs": 1, "endsUnixMs": 1, "targets": [], "dryRun": false}).to_string()
                };
                let status = if head.starts_with("GET") {
                    "200 OK"
                } else {
                    "201 Created"
                };
                let _ = s
                    .write_all(format!("HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}", answer.len()).as_bytes())
                    .await;
            });
        }
    });
    (url, rx)
}

fn caps(features: &[&str]) -> serde_json::Value {
    serde_json::json!({
        "version": "0.1.0", "kernel": "k", "cgroup": "v2", "mechanisms": [], "binaries": {},
        "faultKinds": ["network"], "maxDuration": "10m",
        "lastSweep": {"ledgerReverted": [], "rulesDeleted": [], "processesContinued": [], "errors": []},
        "features": features,
    })
}

fn request() -> ApplyRequest {
    ApplyRequest {
        experiment: "e".into(),
        fault: "slow".into(),
        duration: Dur::from_secs(5),
        lease: None,
        dry_run: false,
        spec: shakeout_api::FaultSpec::Network(shakeout_api::NetworkFault {
            seed: Some(42),
            ..Default::default()
        }),
    }
}

/// A newer controller sends the network seed only to agents that say they take it:
/// an older agent refuses unknown fields, and its faults must still apply.
#[tokio::test]
async fn the_network_seed_goes_only_to_agents_that_take_it() {
    for (features, sent) in [(&[][..], false), (&["networkSeed"][..], true)] {
        let (url, mut bodies) = stand_in(caps(features)).await;
        let client = AgentClient::new("a", &url, "0123456789abcdef0123", None).unwrap();
        client.capabilities().await.unwrap();
        client.apply(&request()).await.unwrap();
        let body: serde_json::Value = serde_json::from_str(&bodies.recv().await.unwrap()).unwrap();
        let seed = &body["spec"]["network"]["seed"];
        assert_eq!(!seed.is_null(), sent, "features {features:?}: {body}");
    }
}
