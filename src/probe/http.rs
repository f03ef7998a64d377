//! HTTP/1.1 probe sends over hyper's low-level client: one connection per worker, driven
//! on the worker's own task (no connection task, no cross-task wake-up per request), kept
//! alive or opened per send as the experiment says.

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::header::{HeaderValue, CONNECTION, HOST};
use hyper::{HeaderMap, Method, Request, Uri};
use hyper_util::rt::TokioIo;
use shakeout_api::StatusRanges;
use tokio::net::TcpStream;
use tokio::time::timeout_at;

use super::classify::{self, Stage};
use super::{HttpTarget, Outcome};
use crate::experiment::spec::ConnectionMode;

type Driver = http1::Connection<TokioIo<TcpStream>, Full<Bytes>>;

/// The request every send repeats, prepared once per probe.
#[derive(Debug)]
struct Plan {
    method: Method,
    /// Origin form (path and query): what an HTTP/1.1 request line carries.
    uri: Uri,
    /// Configured headers plus `Host` (and `Connection: close` for new-connection mode).
    headers: HeaderMap,
    body: Bytes,
    authority: String,
    connect_timeout: Duration,
    expect_status: StatusRanges,
    body_contains: Option<Vec<u8>>,
    keep_alive: bool,
}

impl Plan {
    fn new(target: &HttpTarget) -> Self {
        let mut headers = target.headers.clone();
        if !headers.contains_key(HOST) {
            if let Some(host) = target
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            {
                headers.insert(HOST, host);
            }
        }
        let keep_alive = target.connection == ConnectionMode::KeepAlive;
        if !keep_alive && !headers.contains_key(CONNECTION) {
            // Let the server close first, so its side holds TIME_WAIT and the prober does
            // not run out of ephemeral ports at high rates.
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        let uri = match target.uri.path_and_query() {
            Some(pq) => Uri::from(pq.clone()),
            None => Uri::from_static("/"),
        };
        Plan {
            method: target.method.clone(),
            uri,
            headers,
            body: target.body.clone(),
            authority: target.authority.clone(),
            connect_timeout: target.connect_timeout,
            expect_status: target.expect_status.clone(),
            body_contains: target.body_contains.as_ref().map(|s| s.as_bytes().to_vec()),
            keep_alive,
        }
    }

    /// A fresh request; the clones are reference counts except the header map, which
    /// hyper consumes.
    fn request(&self) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(self.body.clone()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }
}

/// One HTTP/1.1 connection and the state of its driver.
struct Conn {
    tx: http1::SendRequest<Full<Bytes>>,
    driver: Driver,
    /// Set once the driver returned: `Some(None)` for a clean close.
    ended: Option<Option<hyper::Error>>,
}

/// Sends one probe's requests. Cloning gives a new worker its own (not yet opened)
/// connection.
pub(super) struct HttpSender {
    plan: Arc<Plan>,
    conn: Option<Conn>,
}

impl Clone for HttpSender {
    fn clone(&self) -> Self {
        HttpSender {
            plan: Arc::clone(&self.plan),
            conn: None,
        }
    }
}

impl HttpSender {
    pub(super) fn new(target: &HttpTarget) -> Self {
        HttpSender {
            plan: Arc::new(Plan::new(target)),
            conn: None,
        }
    }

    /// Send one request and classify what came back, within the send's deadlines.
    pub(super) async fn send(&mut self, intended: Instant, deadline: Instant) -> Outcome {
        let plan = &*self.plan;
        if let Some(conn) = &mut self.conn {
            if !conn.still_open().await {
                // The server closed an idle keep-alive connection: not a failure of this
                // send, which gets a fresh connection.
                self.conn = None;
            }
        }
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                let connect_deadline = (intended + plan.connect_timeout).min(deadline);
                let connect_deadline = tokio::time::Instant::from_std(connect_deadline);
                match timeout_at(connect_deadline, connect(&plan.authority)).await {
                    Ok(Ok(conn)) => self.conn.insert(conn),
                    Ok(Err(outcome)) => return outcome,
                    Err(_elapsed) => return Outcome::ConnectTimeout,
                }
            }
        };
        let deadline = tokio::time::Instant::from_std(deadline);
        let outcome = timeout_at(deadline, conn.exchange(plan))
            .await
            .unwrap_or(Outcome::Timeout);
        // A timed-out or failed connection has a request in an unknown state: never reuse.
        let answered = matches!(outcome, Outcome::Ok | Outcome::Status | Outcome::Body);
        if !(plan.keep_alive && answered && conn.ended.is_none()) {
            self.conn = None;
        }
        outcome
    }
}

async fn connect(authority: &str) -> Result<Conn, Outcome> {
    let stream = TcpStream::connect(authority)
        .await
        .map_err(|e| classify::io_error(&e, Stage::Connect))?;
    // A request is one small write: Nagle would only delay it.
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "cannot set TCP_NODELAY on probe connection");
    }
    let (tx, driver) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| classify::hyper_error(&e))?;
    Ok(Conn {
        tx,
        driver,
        ended: None,
    })
}

impl Conn {
    /// Let the driver process anything that arrived while idle (a close, typically);
    /// false when the connection cannot carry another request.
    async fn still_open(&mut self) -> bool {
        let Conn { driver, ended, tx } = self;
        if ended.is_none() {
            poll_fn(|cx| {
                if let Poll::Ready(result) = Pin::new(&mut *driver).poll(cx) {
                    *ended = Some(result.err());
                }
                Poll::Ready(())
            })
            .await;
        }
        ended.is_none() && !tx.is_closed()
    }

    /// One request and its whole response, classified.
    async fn exchange(&mut self, plan: &Plan) -> Outcome {
        let Conn { tx, driver, ended } = self;
        let request = plan.request();
        let result = drive(driver, ended, async {
            tx.ready().await?;
            let response = tx.send_request(request).await?;
            let status_ok = plan.expect_status.contains(response.status().as_u16());
            let body_ok = read_body(response.into_body(), plan.body_contains.as_deref()).await?;
            Ok::<_, hyper::Error>(match (status_ok, body_ok) {
                (true, true) => Outcome::Ok,
                (false, _) => Outcome::Status,
                (true, false) => Outcome::Body,
            })
        })
        .await;
        // The driver's own error carries the I/O cause; the request only sees a generic
        // "connection error" or cancellation when the connection dies under it.
        match (result, &*ended) {
            (Some(Ok(outcome)), _) => outcome,
            (_, Some(Some(driver_error))) => classify::hyper_error(driver_error),
            (Some(Err(error)), _) => classify::hyper_error(&error),
            // Closed cleanly with the exchange unfinished: the server hung up on us.
            (None, _) => Outcome::Reset,
        }
    }
}

/// Poll `work` and the connection's driver together on this task. `None` when the driver
/// ended and `work` can no longer complete.
async fn drive<T>(
    driver: &mut Driver,
    ended: &mut Option<Option<hyper::Error>>,
    work: impl Future<Output = T>,
) -> Option<T> {
    let mut work = pin!(work);
    poll_fn(|cx| {
        // Work first (queues the request), then the driver (writes it, reads the
        // response), then work again (takes what the driver delivered): most steps finish
        // in one poll instead of a self-wake round trip.
        if let Poll::Ready(value) = work.as_mut().poll(cx) {
            return Poll::Ready(Some(value));
        }
        if ended.is_none() {
            if let Poll::Ready(result) = Pin::new(&mut *driver).poll(cx) {
                *ended = Some(result.err());
            }
        }
        match work.as_mut().poll(cx) {
            Poll::Ready(value) => Poll::Ready(Some(value)),
            Poll::Pending if ended.is_some() => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// Read the body: only buffered when it must be searched, otherwise drained frame by
/// frame (the connection can only be reused once the body is consumed).
async fn read_body(mut body: Incoming, needle: Option<&[u8]>) -> Result<bool, hyper::Error> {
    match needle {
        None => {
            while let Some(frame) = body.frame().await {
                frame?;
            }
            Ok(true)
        }
        Some(needle) => {
            let bytes = body.collect().await?.to_bytes();
            Ok(contains(&bytes, needle))
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    fn target(url: &str, connection: ConnectionMode) -> HttpTarget {
        let uri: Uri = url.parse().unwrap();
        HttpTarget {
            method: Method::GET,
            authority: "127.0.0.1:8080".into(),
            uri,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            expect_status: StatusRanges::default(),
            body_contains: Some("ok".into()),
            connection,
        }
    }

    #[test]
    fn request_line_is_origin_form_with_host() {
        let plan = Plan::new(&target(
            "http://svc.local:8080/health?deep=1",
            ConnectionMode::KeepAlive,
        ));
        let req = plan.request();
        assert_eq!(req.uri().to_string(), "/health?deep=1");
        assert_eq!(req.headers()[HOST], "svc.local:8080");
        assert!(!req.headers().contains_key(CONNECTION));
        let bare = Plan::new(&target("http://svc.local", ConnectionMode::New));
        assert_eq!(bare.request().uri(), "/");
        assert_eq!(bare.request().headers()[CONNECTION], "close");
        assert_eq!(bare.request().headers()[HOST], "svc.local");
    }

    #[test]
    fn configured_host_wins() {
        let mut t = target("http://10.0.0.1/", ConnectionMode::KeepAlive);
        t.headers
            .insert(HOST, HeaderValue::from_static("api.example"));
        assert_eq!(Plan::new(&t).request().headers()[HOST], "api.example");
    }

    #[test]
    fn substring_search_spans_the_whole_body() {
        assert!(contains(b"status: ok", b"ok"));
        assert!(!contains(b"status: o", b"ok"));
        assert!(contains(b"", b""));
        assert!(!contains(b"", b"x"));
    }
}
