//! The sample HTTP service shipped with shakeout: the demo's target and the tests'.
//! Small on purpose, with knobs that make its behaviour known (added delay, a stall on
//! demand, a key-value store with a chosen durability, optional TLS), so a measurement
//! can be compared with the truth. It speaks HTTP/1.1 and HTTP/2 (ALPN over TLS, prior
//! knowledge in plain text) and counts the connections it accepted; with `--grpc-listen`,
//! it also serves the standard gRPC health service.

mod grpc;
mod metrics;
mod store;
mod tls;

pub use metrics::openmetrics;
pub use store::{Durability, Store};
pub use tls::TlsFiles;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use std::sync::atomic::{AtomicU64, Ordering};

use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use shakeout_api::Dur;
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// How the sample service runs.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Added to every response.
    pub delay: Duration,
    /// Where the key-value store keeps `kv.log`; `None`: memory only.
    pub data_dir: Option<std::path::PathBuf>,
    pub durability: Durability,
    /// Serve https:// with these files; `None`: plain http://.
    pub tls: Option<TlsFiles>,
    /// Serve `grpc.health.v1` here too (over TLS when `tls` is set); `None`: no gRPC.
    pub grpc_listen: Option<SocketAddr>,
}

/// Why the sample service could not start.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("cannot open the store: {0}")]
    Store(String),
    #[error("tls: {0}")]
    Tls(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

struct State {
    store: Arc<Store>,
    metrics: metrics::Metrics,
    delay: Duration,
    /// Responses are held until this instant (set by POST /admin/stall?for=DUR).
    stalled_until: Mutex<Option<Instant>>,
    /// Connections accepted (and, for TLS, past the handshake): GET /admin/connections.
    connections: AtomicU64,
    /// The gRPC health statuses, when there is a gRPC listener.
    grpc: Option<tonic_health::server::HealthReporter>,
}

/// Serve until SIGTERM/SIGINT. `listening` is called with the bound address once the
/// store is open (log replayed) and the socket listens (after `grpc_listening`, with the
/// gRPC listener's address, when there is one): then the service is ready.
pub async fn run(
    config: Config,
    grpc_listening: impl FnOnce(SocketAddr),
    listening: impl FnOnce(SocketAddr),
) -> Result<(), SampleError> {
    let store = match &config.data_dir {
        Some(dir) => {
            Store::open(dir, config.durability).map_err(|e| SampleError::Store(e.to_string()))?
        }
        None => Store::in_memory(),
    };
    let tls = match &config.tls {
        Some(files) => Some(tokio_rustls::TlsAcceptor::from(
            tls::server_config(files).map_err(SampleError::Tls)?,
        )),
        None => None,
    };
    let listener =
        TcpListener::bind(config.listen)
            .await
            .map_err(|source| SampleError::Listen {
                addr: config.listen,
                source,
            })?;
    let grpc = match config.grpc_listen {
        Some(addr) => {
            let listener = grpc::bind(addr).await?;
            let (reporter, routes) = grpc::health();
            grpc::start_serving(&reporter).await;
            if let Ok(addr) = listener.local_addr() {
                grpc_listening(addr);
            }
            Some((reporter, listener, routes))
        }
        None => None,
    };
    if let Ok(addr) = listener.local_addr() {
        listening(addr);
    }
    let (reporter, grpc_serve) = match grpc {
        Some((reporter, listener, routes)) => (
            Some(reporter),
            Some(grpc::serve(listener, routes, tls.clone())),
        ),
        None => (None, None),
    };
    let grpc_serve = async {
        match grpc_serve {
            Some(serve) => serve.await,
            None => std::future::pending().await,
        }
    };
    let state = Arc::new(State {
        store,
        metrics: metrics::Metrics::default(),
        delay: config.delay,
        stalled_until: Mutex::new(None),
        connections: AtomicU64::new(0),
        grpc: reporter,
    });
    tokio::select! {
        _ = serve(listener, state, tls) => {}
        _ = grpc_serve => {}
        _ = shutdown_signal() => {}
    }
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending::<()>().await,
    }
}

async fn serve(listener: TcpListener, state: Arc<State>, tls: Option<tokio_rustls::TlsAcceptor>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let service = {
                let state = state.clone();
                service_fn(move |req| handle(req, state.clone()))
            };
            // HTTP/1.1 or HTTP/2, by ALPN or by the client's first bytes.
            let builder = auto::Builder::new(TokioExecutor::new());
            match tls {
                None => {
                    state.connections.fetch_add(1, Ordering::Relaxed);
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                }
                Some(acceptor) => {
                    // A failed handshake (wrong CA, no client certificate) is the client's
                    // problem to report; the service carries on.
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    state.connections.fetch_add(1, Ordering::Relaxed);
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                }
            }
        });
    }
}

/// Every request, counted by route and status once answered; `GET /metrics` answers
/// the counts (Prometheus text) without delay or stall, like a real service's admin port.
async fn handle(
    req: Request<Incoming>,
    state: Arc<State>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() == "/metrics" {
        return Ok(state.metrics.render());
    }
    let route = metrics::route(req.uri().path());
    let resp = answer(req, state.clone()).await;
    if let Ok(r) = &resp {
        state.metrics.count(route, r.status());
    }
    resp
}

async fn answer(
    req: Request<Incoming>,
    state: Arc<State>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    if req.method() == hyper::Method::POST && path == "/admin/stall" {
        let wanted = req
            .uri()
            .query()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("for=")))
            .map(|v| v.parse::<Dur>());
        return Ok(match wanted {
            Some(Ok(d)) => {
                *state.stalled_until.lock().await = Some(Instant::now() + d.0);
                text(StatusCode::OK, format!("stalled for {d}\n"))
            }
            _ => text(
                StatusCode::BAD_REQUEST,
                "expected ?for=DURATION, like ?for=2s\n".into(),
            ),
        });
    }
    if req.method() == hyper::Method::POST && path == "/admin/grpc-health" {
        return grpc::flip(state.grpc.as_ref(), req.uri().query()).await;
    }
    if path == "/admin/connections" {
        let n = state.connections.load(Ordering::Relaxed);
        return Ok(text(StatusCode::OK, format!("{n}\n")));
    }
    let until = *state.stalled_until.lock().await;
    if let Some(until) = until {
        tokio::time::sleep_until(until).await;
    }
    if !state.delay.is_zero() {
        tokio::time::sleep(state.delay).await;
    }
    if let Some(key) = path.strip_prefix("/kv/").filter(|k| !k.is_empty()) {
        return Ok(kv(req, key.to_owned(), &state.store).await);
    }
    if path == "/log" {
        let prefix = req
            .uri()
            .query()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("prefix=")))
            .unwrap_or("");
        let mut body = state.store.list(prefix).join("\n");
        body.push('\n');
        return Ok(text(StatusCode::OK, body));
    }
    Ok(match path.as_str() {
        "/health" => text(StatusCode::OK, "ok\n".into()),
        // The protocol the request came in with: what a probe's `version` got.
        "/version" => text(StatusCode::OK, format!("ok {:?}\n", req.version())),
        "/" => text(
            StatusCode::OK,
            "hello from the shakeout sample service\n".into(),
        ),
        _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
    })
}

/// `PUT /kv/KEY` (body = value), `GET /kv/KEY`, `DELETE /kv/KEY`.
async fn kv(req: Request<Incoming>, key: String, store: &Store) -> Response<Full<Bytes>> {
    use http_body_util::BodyExt;
    match *req.method() {
        hyper::Method::PUT | hyper::Method::POST => {
            let body = match http_body_util::Limited::new(req.into_body(), 64 * 1024)
                .collect()
                .await
            {
                Ok(b) => b.to_bytes(),
                Err(e) => return text(StatusCode::BAD_REQUEST, format!("body: {e}\n")),
            };
            match store.put(&key, &String::from_utf8_lossy(&body)).await {
                Ok(()) => text(StatusCode::OK, "ok\n".into()),
                Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
            }
        }
        hyper::Method::GET => match store.get(&key) {
            Some(v) => text(StatusCode::OK, v),
            None => text(StatusCode::NOT_FOUND, "not found\n".into()),
        },
        hyper::Method::DELETE => match store.delete(&key).await {
            Ok(true) => text(StatusCode::OK, "deleted\n".into()),
            Ok(false) => text(StatusCode::NOT_FOUND, "not found\n".into()),
            Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
        },
        _ => text(
            StatusCode::METHOD_NOT_ALLOWED,
            "use PUT, GET or DELETE\n".into(),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp
}
