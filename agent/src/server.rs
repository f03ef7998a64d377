//! The agent's HTTP/1.1 JSON API (hyper 1): bearer auth, body size limit, header and
//! request timeouts, stable error codes, optional TLS, graceful shutdown. Routing only:
//! every decision about faults is the core's (`Agent`), so the embedded agent agrees.

pub mod auth;
pub mod tls;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde::de::DeserializeOwned;
use serde::Serialize;
use shakeout_api::RenewRequest;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use auth::Tokens;

use crate::agent::{Agent, Caller};
use crate::error::AgentError;

/// Request limits.
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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body: 64 * 1024,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(5),
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
}

type Resp = Response<Full<Bytes>>;

/// Serve until `shutdown` is cancelled, then let open connections finish (bounded).
pub async fn serve(
    listener: TcpListener,
    agent: Agent,
    config: ServerConfig,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = Arc::new(App {
        agent,
        tokens: config.tokens,
        limits: config.limits,
    });
    let tls = config.tls.map(tokio_rustls::TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(error) => {
                    // Out of file descriptors and the like: keep serving the others.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let app = app.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let limits = app.limits;
            match tls {
                None => serve_conn(stream, app, watcher).await,
                Some(acceptor) => {
                    match tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await
                    {
                        Ok(Ok(tls_stream)) => serve_conn(tls_stream, app, watcher).await,
                        Ok(Err(error)) => tracing::debug!(%error, %peer, "tls handshake failed"),
                        Err(_) => tracing::debug!(%peer, "tls handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(app.limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace; closing them");
    }
    Ok(())
}

async fn serve_conn<I>(io: I, app: Arc<App>, watcher: hyper_util::server::graceful::Watcher)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(app.limits.header_timeout);
    let service = service_fn(move |req| handle(app.clone(), req));
    let conn = builder.serve_connection(TokioIo::new(io), service);
    if let Err(error) = watcher.watch(conn).await {
        tracing::debug!(%error, "connection ended with an error");
    }
}

async fn handle(app: Arc<App>, req: Request<Incoming>) -> Result<Resp, Infallible> {
    let resp = match route(&app, req).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    app.agent.metrics().request(resp.status().as_u16());
    Ok(resp)
}

async fn route(app: &App, req: Request<Incoming>) -> Result<Resp, AgentError> {
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
        let e = AgentError::Unauthorized(format!(
            "{method} {path}: missing or unknown bearer token (send `Authorization: Bearer <secret>`)"
        ));
        app.agent.audit_refusal("-", &e);
        return Err(e);
    };
    let caller = app.agent.caller(&name);
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
            let id = checked_id(id)?;
            let body = read_json(app, &caller, req, Some(RenewRequest { lease: None })).await?;
            let resp = detach(async move { agent.renew(&caller, &id, body).await }).await?;
            Ok(json(StatusCode::OK, &resp))
        }
        (&Method::DELETE, ["v1", "faults", id]) => {
            let id = checked_id(id)?;
            let resp = detach(async move { agent.revert(&caller, &id).await }).await?;
            Ok(json(StatusCode::OK, &resp))
        }
        _ => Err(AgentError::NotFound(format!("no route {method} {path}"))),
    }
}

async fn detach<T: Send + 'static>(
    work: impl std::future::Future<Output = Result<T, AgentError>> + Send + 'static,
) -> Result<T, AgentError> {
    tokio::spawn(work)
        .await
        .map_err(|e| AgentError::Internal(format!("request task failed: {e}")))?
}

fn checked_id(id: &str) -> Result<String, AgentError> {
    if crate::agent::is_valid_id(id) {
        Ok(id.to_string())
    } else {
        Err(AgentError::NotFound(format!("no fault {id}")))
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
    let result = read_json_inner(app, req, empty).await;
    if let Err(e) = &result {
        app.agent.audit_refusal(&caller.name, e);
    }
    result
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

fn error_response(e: &AgentError) -> Resp {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(&e.body()).unwrap_or_default();
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}
