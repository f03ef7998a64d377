//! The agent's HTTP/1.1 JSON API (hyper 1): bearer auth, body size limit, header and
//! request timeouts, a connection cap, bounded audit of unauthenticated requests,
//! stable error codes, optional TLS, graceful shutdown. Routing only: every decision
//! about faults is the core's (`Agent`), so the embedded agent agrees.

pub mod auth;
pub mod conns;
pub mod refusals;
pub mod tls;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde::de::DeserializeOwned;
use serde::Serialize;
use shakeout_api::RenewRequest;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

pub use auth::Tokens;

use crate::agent::{Agent, Caller};
use crate::audit::clip;
use crate::error::AgentError;
use crate::telemetry::ConnEvent;
use conns::{Admission, Conns, Slot};
use refusals::{Audited, Refusals};

/// Longest path (bytes) an audit line or an error message repeats; the rest is cut.
pub const PATH_SHOWN: usize = 128;
/// Longest method (bytes) shown likewise.
const METHOD_SHOWN: usize = 16;
/// How long a connection over the cap may take to send its request head (and finish
/// its TLS handshake) before it is closed without its 503.
const BUSY_HEAD_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the bounded audit of unauthenticated requests checks for a window's end.
const SUMMARY_TICK: Duration = Duration::from_secs(5);

/// Request and connection limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request body; bigger ones get 413 without being read.
    pub max_body: usize,
    /// Time to receive the request head (and the TLS handshake).
    pub header_timeout: Duration,
    /// Time to receive the request body.
    pub request_timeout: Duration,
    /// How long open connections may finish after shutdown starts.
    pub shutdown_grace: Duration,
    /// Most connections open at once (lowered to fit the open-files limit). At the cap
    /// a new connection closes the oldest unauthenticated one, or gets 503 when all
    /// are authenticated.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body: 64 * 1024,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(5),
            max_connections: 512,
        }
    }
}

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub tokens: Tokens,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub limits: Limits,
}

struct App {
    agent: Agent,
    tokens: Tokens,
    limits: Limits,
    refusals: Refusals,
    /// The connection cap in force.
    cap: usize,
}

type Resp = Response<Full<Bytes>>;

/// Serve until `shutdown` is cancelled, then let open connections finish (bounded).
pub async fn serve(
    listener: TcpListener,
    agent: Agent,
    config: ServerConfig,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let conns = Conns::new(conns::fitting_cap(config.limits.max_connections));
    let app = Arc::new(App {
        agent,
        tokens: config.tokens,
        limits: config.limits,
        refusals: Refusals::new(Instant::now()),
        cap: conns.cap(),
    });
    let tls = config.tls.map(tokio_rustls::TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    let mut tick = tokio::time::interval(SUMMARY_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let (stream, peer, descriptor) = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {
                app.refusals.tick(app.agent.audit(), Instant::now());
                continue;
            }
            accepted = accept(&listener, &conns) => match accepted {
                Ok(a) => a,
                Err(error) => {
                    // Out of file descriptors and the like: keep serving the others.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let slot = match conns.admit(descriptor) {
            Admission::Serve { slot, evicted } => {
                if evicted {
                    app.agent.metrics().connection(ConnEvent::Evicted);
                    tracing::debug!(%peer, "at the connection cap: closed the oldest unauthenticated");
                }
                Ok(Arc::new(slot))
            }
            Admission::Busy(permit) => {
                app.agent.metrics().connection(ConnEvent::Refused);
                // Debug, not warn: a burst would flood the node's log; the counter
                // (`shakeout_agent_connections_refused_total`) and the 503 body say it.
                tracing::debug!(%peer, cap = app.cap, "at the connection cap, all authenticated: 503");
                Err(permit)
            }
        };
        tokio::spawn(connection(
            stream,
            peer,
            tls.clone(),
            app.clone(),
            graceful.watcher(),
            slot,
        ));
    }
    drop(listener);
    if tokio::time::timeout(app.limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace; closing them");
    }
    // After the last requests: what they counted is in the summaries.
    app.refusals.flush(app.agent.audit());
    Ok(())
}

/// A descriptor slot first, then a connection: while evicted connections are still
/// closing, new ones wait in the kernel's backlog instead of taking descriptors.
async fn accept(
    listener: &TcpListener,
    conns: &Conns,
) -> std::io::Result<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    let descriptor = conns.descriptor().await.map_err(std::io::Error::other)?;
    let (stream, peer) = listener.accept().await?;
    Ok((stream, peer, descriptor))
}

/// One connection: its TLS handshake and requests (`Ok(slot)`), closed early if it is
/// evicted before it authenticates; or over the cap (`Err`), one 503 and close.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: Arc<App>,
    watcher: hyper_util::server::graceful::Watcher,
    slot: Result<Arc<Slot>, OwnedSemaphorePermit>,
) {
    let head_timeout = match &slot {
        Ok(_) => app.limits.header_timeout,
        Err(_) => app.limits.header_timeout.min(BUSY_HEAD_TIMEOUT),
    };
    let served = slot.as_ref().ok().cloned();
    let work = async move {
        match tls {
            None => serve_conn(stream, app, peer, served, head_timeout, watcher).await,
            Some(acceptor) => {
                match tokio::time::timeout(head_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(tls_stream)) => {
                        serve_conn(tls_stream, app, peer, served, head_timeout, watcher).await
                    }
                    Ok(Err(error)) => tracing::debug!(%error, %peer, "tls handshake failed"),
                    Err(_) => tracing::debug!(%peer, "tls handshake timed out"),
                }
            }
        }
    };
    match &slot {
        Ok(slot) => tokio::select! {
            _ = slot.evicted() => tracing::debug!(%peer, "evicted before authenticating"),
            _ = work => {}
        },
        Err(_) => work.await,
    }
    // Only now is the descriptor slot (in `slot`) given back.
    drop(slot);
}

/// Serve HTTP/1.1 on one connection; `slot: None` answers 503 to its one request.
async fn serve_conn<I>(
    io: I,
    app: Arc<App>,
    peer: SocketAddr,
    slot: Option<Arc<Slot>>,
    head_timeout: Duration,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    // hyper arms this timer whenever it waits for a request head: on a new connection
    // before its first byte, and on a kept-alive one between requests, so a silent
    // connection is closed after it whether or not it ever sent anything.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout)
        .keep_alive(slot.is_some());
    let service = service_fn(move |req| handle(app.clone(), peer, slot.clone(), req));
    let conn = builder.serve_connection(TokioIo::new(io), service);
    if let Err(error) = watcher.watch(conn).await {
        tracing::debug!(%error, %peer, "connection ended with an error");
    }
}

async fn handle(
    app: Arc<App>,
    peer: SocketAddr,
    slot: Option<Arc<Slot>>,
    req: Request<Incoming>,
) -> Result<Resp, Infallible> {
    let resp = match slot {
        Some(slot) => match route(&app, peer, &slot, req).await {
            Ok(r) => r,
            Err(e) => error_response(&e),
        },
        None => closing(error_response(&AgentError::Unavailable(format!(
            "the agent has {} connections open, all authenticated (its --max-connections); \
             retry when one closes",
            app.cap
        )))),
    };
    app.agent.metrics().request(resp.status().as_u16());
    Ok(resp)
}

/// The method and path as logged and echoed: both clipped.
fn shown(method: &Method, path: &str) -> String {
    format!(
        "{} {}",
        clip(method.as_str(), METHOD_SHOWN),
        clip(path, PATH_SHOWN)
    )
}

async fn route(
    app: &App,
    peer: SocketAddr,
    slot: &Slot,
    req: Request<Incoming>,
) -> Result<Resp, AgentError> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    if method == Method::GET && path == "/v1/health" {
        return Ok(json(StatusCode::OK, &serde_json::json!({ "status": "ok" })));
    }
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    let Some(name) = app.tokens.authenticate(header) else {
        let request = shown(&method, &path);
        let e = AgentError::Unauthorized(format!(
            "{request}: missing or unknown bearer token (send `Authorization: Bearer <secret>`)"
        ));
        let audit = app.agent.audit();
        if app
            .refusals
            .refused(audit, Instant::now(), peer, &request, &e)
            == Audited::Counted
        {
            app.agent.metrics().summarized();
        }
        return Err(e);
    };
    slot.authenticated();
    let mut caller = app.agent.caller(&name);
    caller.peer = Some(peer);
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    // The core's calls run in their own task: hyper drops this future if the client
    // goes away, and an apply cut off between its SIGSTOP and its bookkeeping would
    // leave a paused process only the next start-up sweep could find.
    let agent = app.agent.clone();
    match (&method, segments.as_slice()) {
        (&Method::GET, ["v1", "capabilities"]) => {
            Ok(json(StatusCode::OK, &agent.capabilities(&caller)))
        }
        (&Method::GET, ["metrics"]) => {
            let mut resp = Response::new(Full::new(Bytes::from(agent.metrics().render())));
            resp.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            Ok(resp)
        }
        (&Method::GET, ["v1", "faults"]) => Ok(json(StatusCode::OK, &agent.list().await)),
        (&Method::POST, ["v1", "faults"]) => {
            let body = read_json(app, &caller, req, None).await?;
            let resp = detach(async move { agent.apply(&caller, body).await }).await?;
            Ok(json(StatusCode::CREATED, &resp))
        }
        (&Method::POST, ["v1", "faults", id, "renew"]) => {
            let id = checked_id(app, &caller, id)?;
            let body = read_json(app, &caller, req, Some(RenewRequest { lease: None })).await?;
            let resp = detach(async move { agent.renew(&caller, &id, body).await }).await?;
            Ok(json(StatusCode::OK, &resp))
        }
        (&Method::DELETE, ["v1", "faults", id]) => {
            let id = checked_id(app, &caller, id)?;
            let resp = detach(async move { agent.revert(&caller, &id).await }).await?;
            Ok(json(StatusCode::OK, &resp))
        }
        _ => Err(refused(
            app,
            &caller,
            AgentError::NotFound(format!("no route {}", shown(&method, &path))),
        )),
    }
}

/// Audit a refusal of an authenticated request the core never saw; hand it back.
fn refused(app: &App, caller: &Caller, e: AgentError) -> AgentError {
    app.agent.audit_refusal(&caller.name, caller.peer, &e);
    e
}

async fn detach<T: Send + 'static>(
    work: impl std::future::Future<Output = Result<T, AgentError>> + Send + 'static,
) -> Result<T, AgentError> {
    tokio::spawn(work)
        .await
        .map_err(|e| AgentError::Internal(format!("request task failed: {e}")))?
}

fn checked_id(app: &App, caller: &Caller, id: &str) -> Result<String, AgentError> {
    if crate::agent::is_valid_id(id) {
        Ok(id.to_string())
    } else {
        let e = AgentError::NotFound(format!("no fault {}", clip(id, PATH_SHOWN)));
        Err(refused(app, caller, e))
    }
}

/// Read a bounded body within the request timeout and parse it (`empty`: the value of
/// an empty body, where one is allowed). Refusals are audited
/// here because the core never sees these requests.
async fn read_json<T: DeserializeOwned>(
    app: &App,
    caller: &Caller,
    req: Request<Incoming>,
    empty: Option<T>,
) -> Result<T, AgentError> {
    read_json_inner(app, req, empty)
        .await
        .map_err(|e| refused(app, caller, e))
}

async fn read_json_inner<T: DeserializeOwned>(
    app: &App,
    req: Request<Incoming>,
    empty: Option<T>,
) -> Result<T, AgentError> {
    let max = app.limits.max_body;
    let too_large = || AgentError::TooLarge(format!("request body over {max} bytes"));
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let collect = Limited::new(req.into_body(), max).collect();
    let bytes = match tokio::time::timeout(app.limits.request_timeout, collect).await {
        Err(_) => {
            return Err(AgentError::Timeout(
                "request body not received in time".into(),
            ))
        }
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
        Ok(Err(e)) => return Err(AgentError::bad_spec("body", format!("could not read: {e}"))),
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    if bytes.is_empty() {
        if let Some(value) = empty {
            return Ok(value);
        }
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| AgentError::bad_spec("body", format!("invalid request JSON: {e}")))
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Resp {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut resp = Response::new(Full::new(Bytes::from(body)));
            *resp.status_mut() = status;
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            resp
        }
        Err(e) => error_response(&AgentError::Internal(format!("encode answer: {e}"))),
    }
}

/// The error's JSON answer. A 401 closes the connection: whoever holds it has shown
/// no token, and its place is better given to someone who has.
fn error_response(e: &AgentError) -> Resp {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(&e.body()).unwrap_or_default();
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    match e {
        AgentError::Unauthorized(_) => closing(resp),
        _ => resp,
    }
}

/// `Connection: close`: hyper closes the connection once this answer is written.
fn closing(mut resp: Resp) -> Resp {
    resp.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    resp
}
