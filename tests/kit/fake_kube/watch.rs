//! `watch=true` on pod lists: newline-delimited WatchEvents from a resourceVersion (replayed
//! from the cluster's history) or from now (the current pods as ADDED first), kept open
//! until `timeoutSeconds`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::Response;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use super::cluster::{Key, PodRec};
use super::objects;
use super::selector::{FieldSelector, LabelSelector};
use super::server::{param, Body, Shared};
use super::status::ApiError;

/// `watch=true` on a pod list: newline-delimited WatchEvents, kept open until
/// `timeoutSeconds` (or the server stops).
pub fn watch_pods(
    shared: &Arc<Shared>,
    ns: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    query: &[(String, String)],
) -> Result<Response<Body>, ApiError> {
    let send_initial = param(query, "sendInitialEvents") == Some("true");
    let from = param(query, "resourceVersion").filter(|rv| !rv.is_empty() && *rv != "0");
    let timeout = param(query, "timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(1800);
    let matches = move |key: &Key, pod: &PodRec| {
        ns.as_deref().is_none_or(|n| key.0 == n)
            && labels.matches(&pod.labels)
            && fields.matches(|f| pod.field(key, f))
    };
    let line = |kind: &str, object: &Value| {
        Bytes::from(format!("{}\n", json!({"type": kind, "object": object})))
    };

    let (initial, mut events) = {
        let c = shared.lock();
        let events = c.events.subscribe();
        let mut initial = Vec::new();
        if send_initial || from.is_none() {
            for (k, p) in c.pods.iter().filter(|(k, p)| matches(k, p)) {
                initial.push(line("ADDED", &objects::pod_value(k, p, true)));
            }
            if send_initial {
                initial.push(line(
                    "BOOKMARK",
                    &json!({
                        "kind": "Pod",
                        "apiVersion": "v1",
                        "metadata": {
                            "resourceVersion": c.resource_version().to_string(),
                            "annotations": {"k8s.io/initial-events-end": "true"}
                        }
                    }),
                ));
            }
        } else if let Some(rv) = from {
            let rv: u64 = rv
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv:?}")))?;
            for e in c
                .history
                .iter()
                .filter(|e| e.rv > rv && matches(&e.key, &e.pod))
            {
                initial.push(line(e.kind, &e.object));
            }
        }
        (initial, events)
    };

    let (tx, rx) = mpsc::channel::<Bytes>(64);
    shared.rt.spawn(async move {
        for l in initial {
            if tx.send(l).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(Duration::from_secs(timeout));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                e = events.recv() => match e {
                    Ok(e) if matches(&e.key, &e.pod) => {
                        if tx.send(line(e.kind, &e.object)).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    // A watcher that fell behind is closed, as the real server does; the
                    // client re-lists.
                    Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    let mut res = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(res)
}
