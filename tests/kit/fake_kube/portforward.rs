//! `pods/{name}/portforward` over WebSocket, as the API server proxies it to the kubelet:
//! subprotocol `v4.channel.k8s.io`, two channels per requested port (2i data, 2i+1
//! error), each opened by the port as u16 little-endian, then raw bytes after a
//! one-byte channel prefix. A DaemonSet pod's ports all lead to the local agent the test
//! started; any other pod has nothing listening, so the error channel says so.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hyper::header::{
    HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL,
    UPGRADE,
};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::cluster::{Key, Phase};
use super::server::{full, Body, RequestBody, Shared};
use super::status::ApiError;

/// The one subprotocol the kubelet's WebSocket port-forward speaks in binary.
pub const PROTOCOL: &str = "v4.channel.k8s.io";

/// Validates the request like the API server and kubelet do, answers 101 and bridges
/// the upgraded connection on the server's runtime.
pub fn upgrade(
    shared: &Arc<Shared>,
    mut req: Request<impl RequestBody>,
    key: Key,
    query: &[(String, String)],
) -> Result<Response<Body>, ApiError> {
    let pod = shared
        .lock()
        .pods
        .get(&key)
        .cloned()
        .ok_or_else(|| ApiError::not_found("pods", "", &key.1))?;

    let mut ports = Vec::new();
    for raw in query.iter().filter(|(k, _)| k == "ports").map(|(_, v)| v) {
        for p in raw.split(',') {
            match p.trim().parse::<u16>() {
                Ok(port) if port > 0 => ports.push(port),
                Ok(_) => return Err(ApiError::bad_request(format!("port {raw:?} must be > 0"))),
                Err(e) => {
                    return Err(ApiError::bad_request(format!(
                        "unable to parse {raw:?} as a port: {e}"
                    )))
                }
            }
        }
    }
    if ports.is_empty() {
        return Err(ApiError::bad_request(
            "query parameter \"ports\" is required",
        ));
    }

    let headers = req.headers();
    let header_has = |name, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .unwrap_or("")
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        })
    };
    if !header_has(UPGRADE, "websocket") || !header_has(CONNECTION, "upgrade") {
        return Err(ApiError::bad_request("Upgrade request required"));
    }
    let ws_key = headers
        .get(SEC_WEBSOCKET_KEY)
        .map(|k| k.as_bytes().to_vec())
        .ok_or_else(|| ApiError::bad_request("missing Sec-WebSocket-Key"))?;
    let offered: Vec<String> = headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .flat_map(|v| {
            v.to_str()
                .unwrap_or("")
                .split(',')
                .map(|t| t.trim().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|t| !t.is_empty())
        .collect();
    let protocol = if offered.iter().any(|p| p == PROTOCOL) {
        Some(PROTOCOL)
    } else if offered.is_empty() {
        None
    } else {
        return Err(ApiError::bad_request(format!(
            "unable to upgrade connection: unable to negotiate protocol: client supports {offered:?}, server supports [\"{PROTOCOL}\"]"
        )));
    };
    if pod.phase != Phase::Running {
        return Err(ApiError::bad_request(format!(
            "unable to upgrade connection: container not found (\"{}\")",
            pod.container
        )));
    }

    if req
        .extensions()
        .get::<hyper::upgrade::OnUpgrade>()
        .is_none()
    {
        return Err(ApiError::bad_request(
            "the in-process client has no connection to upgrade: port-forward through the HTTP server (url(), write_kubeconfig)",
        ));
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    let target = Target {
        pod: key.1.clone(),
        uid: pod.uid.clone(),
        forward_to: pod.forward_to,
    };
    shared.rt.spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            bridge(TokioIo::new(upgraded), ports, target).await;
        }
    });

    let mut res = Response::new(full(Bytes::new()));
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = res.headers_mut();
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(&ws_key)) {
        h.insert(SEC_WEBSOCKET_ACCEPT, accept);
    }
    if let Some(p) = protocol {
        h.insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(p));
    }
    Ok(res)
}

struct Target {
    pod: String,
    uid: String,
    forward_to: Option<u16>,
}

enum FromPod {
    Data(usize, Bytes),
    Done(usize),
}

fn frame(channel: usize, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel as u8);
    v.extend_from_slice(data);
    Message::binary(v)
}

async fn bridge<S>(io: S, ports: Vec<u16>, target: Target)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
    for (i, port) in ports.iter().enumerate() {
        for ch in [2 * i, 2 * i + 1] {
            if ws.send(frame(ch, &port.to_le_bytes())).await.is_err() {
                return;
            }
        }
    }

    let (from_pod, mut from_pod_rx) = mpsc::unbounded_channel::<FromPod>();
    let mut to_pod: Vec<Option<mpsc::UnboundedSender<Bytes>>> = Vec::new();
    let mut writers = JoinSet::new();
    let mut readers = JoinSet::new();
    let mut open = 0;
    for (i, port) in ports.iter().enumerate() {
        let conn = match target.forward_to {
            Some(local) => TcpStream::connect(("127.0.0.1", local)).await,
            None => Err(std::io::ErrorKind::ConnectionRefused.into()),
        };
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                let msg = format!(
                    "error forwarding port {port} to pod {}, uid : failed to execute portforward in network namespace \"/var/run/netns/cni-{}\": failed to connect to localhost:{port} inside namespace \"{}\", IPv4: dial tcp4 127.0.0.1:{port}: connect: {} IPv6 dial tcp6 [::1]:{port}: connect: connection refused ",
                    target.uid, target.uid, target.pod, describe(&e)
                );
                if ws.send(frame(2 * i + 1, msg.as_bytes())).await.is_err() {
                    return;
                }
                to_pod.push(None);
                continue;
            }
        };
        open += 1;
        let (mut read, mut write) = stream.into_split();
        let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
        to_pod.push(Some(tx));
        writers.spawn(async move {
            while let Some(bytes) = rx.recv().await {
                if write.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            let _ = write.shutdown().await;
        });
        let from_pod = from_pod.clone();
        readers.spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match read.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if from_pod
                            .send(FromPod::Data(i, Bytes::copy_from_slice(&buf[..n])))
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
            let _ = from_pod.send(FromPod::Done(i));
        });
    }
    drop(from_pod);

    // Every port failed or the pod closed every connection: the kubelet closes the stream.
    let mut pod_closed = open == 0;
    while !pod_closed {
        tokio::select! {
            msg = ws.next() => match msg {
                Some(Ok(Message::Binary(b))) if b.len() > 1 => {
                    let ch = usize::from(b[0]);
                    // Odd channels are the server's to write; the client has nothing to say there.
                    if ch % 2 == 0 {
                        if let Some(Some(tx)) = to_pod.get(ch / 2) {
                            let _ = tx.send(b.slice(1..));
                        }
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            out = from_pod_rx.recv() => match out {
                Some(FromPod::Data(i, bytes)) => {
                    if ws.send(frame(2 * i, &bytes)).await.is_err() {
                        break;
                    }
                }
                Some(FromPod::Done(i)) => {
                    if let Some(slot) = to_pod.get_mut(i) {
                        *slot = None;
                    }
                    open -= 1;
                    pod_closed = open == 0;
                }
                None => pod_closed = true,
            },
        }
    }
    // What the client sent before it closed still reaches the pod, then its side is
    // half-closed; reads from the pod stop when `readers` is dropped.
    drop(to_pod);
    // Closing handshake either way: ours first if the pod side ended, else the reply to
    // the client's Close (tungstenite queued it); then wait briefly for the peer's.
    let _ = ws.close(None).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while writers.join_next().await.is_some() {}
    })
    .await;
    drop(readers);
}

fn describe(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused",
        std::io::ErrorKind::TimedOut => "connection timed out",
        _ => "no route to host",
    }
}
