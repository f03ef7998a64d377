//! HTTP probe sends over hyper's low-level clients. HTTP/1.1: one connection per worker,
//! driven on the worker's own task (no connection task, no cross-task wake-up per
//! request), kept alive or opened per send as the experiment says. HTTP/2 (`version:
//! http2`, or ALPN h2 over TLS): one connection per probe carries every send in flight,
//! its driver on a task of its own. https:// adds a rustls handshake under either; the
//! connection's set-up cost, TLS failures and the served certificate go to the
//! probe's [`SetupLog`](super::record::SetupLog). gRPC probes borrow the same HTTP/2
//! connection ([`HttpSender::h2_connection`]) for their calls.

mod plan;
mod stream;

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{timeout, timeout_at};

use super::classify::{self, Stage};
use super::record::SetupLog;
use super::tls::{self, TlsClient};
use super::{HttpTarget, Outcome, Recorder};
use crate::experiment::spec::HttpVersion;
use plan::Plan;
use stream::Stream;

type Driver = http1::Connection<TokioIo<Stream>, Full<Bytes>>;
/// Why an HTTP/2 connection ended, once it has: its outcome, and a TLS failure's reason.
pub(super) type Ended = Option<(Outcome, Option<(tls::TlsReason, String)>)>;

/// A handle on an HTTP/2 connection (cloned by every worker that sends on it).
#[derive(Clone)]
struct H2 {
    tx: http2::SendRequest<Full<Bytes>>,
    /// Set by the connection's task when it ends: requests in flight then only see
    /// "canceled", and the connection's own error says what happened (a TLS alert).
    ended: watch::Receiver<Ended>,
}

/// How long a failed HTTP/2 request waits for its connection's own error.
const CONNECTION_ERROR_WAIT: Duration = Duration::from_millis(50);

/// What every worker of one probe shares: the clock, the log, TLS, the HTTP/2 connection.
struct Shared {
    recorder: Arc<Recorder>,
    origin: Instant,
    tls: Option<TlsClient>,
    /// The one HTTP/2 connection of a kept-alive probe; locked while it is (re)opened,
    /// so workers wait for it instead of opening their own.
    h2: tokio::sync::Mutex<Option<H2>>,
    /// `version: auto` over TLS and the server chose HTTP/1.1: stop asking for h2.
    h1_only: AtomicBool,
}

impl Shared {
    fn log(&self) -> &SetupLog {
        &self.recorder.setup
    }

    /// Whether sends go over the shared HTTP/2 connection (when there is one).
    fn multiplexed(&self, plan: &Plan) -> bool {
        plan.keep_alive
            && match plan.version {
                HttpVersion::Http2 => true,
                HttpVersion::Auto => self.tls.is_some() && !self.h1_only.load(Ordering::Relaxed),
                HttpVersion::Http1 => false,
            }
    }
}

/// One HTTP/1.1 connection and the state of its driver.
struct Conn {
    tx: http1::SendRequest<Full<Bytes>>,
    driver: Driver,
    /// Set once the driver returned: `Some(None)` for a clean close.
    ended: Option<Option<hyper::Error>>,
}

/// A connection just opened, in the version the server and the probe agreed on.
// Moved once into the worker's slot; boxing the HTTP/1.1 variant would add an allocation
// per connection to the `connection: new` path.
#[allow(clippy::large_enum_variant)]
enum Opened {
    H1(Conn),
    H2(H2),
}

/// Sends one probe's requests. Cloning gives a new worker its own (not yet opened)
/// HTTP/1.1 connection.
pub(super) struct HttpSender {
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    conn: Option<Conn>,
    /// This worker's handle on the shared HTTP/2 connection.
    h2: Option<H2>,
}

impl Clone for HttpSender {
    fn clone(&self) -> Self {
        HttpSender {
            plan: Arc::clone(&self.plan),
            shared: Arc::clone(&self.shared),
            conn: None,
            h2: None,
        }
    }
}

impl HttpSender {
    pub(super) fn new(
        target: &HttpTarget,
        tls: Option<TlsClient>,
        recorder: Arc<Recorder>,
        origin: Instant,
    ) -> Self {
        HttpSender {
            plan: Arc::new(Plan::new(target)),
            shared: Arc::new(Shared {
                recorder,
                origin,
                tls,
                h2: tokio::sync::Mutex::new(None),
                h1_only: AtomicBool::new(false),
            }),
            conn: None,
            h2: None,
        }
    }

    /// Send one request and classify what came back, within the send's deadlines.
    pub(super) async fn send(&mut self, intended: Instant, deadline: Instant) -> Outcome {
        let connect_deadline = (intended + self.plan.connect_timeout).min(deadline);
        let connect_deadline = tokio::time::Instant::from_std(connect_deadline);
        if self.conn.is_none() && self.shared.multiplexed(&self.plan) {
            // `None`: the server chose HTTP/1.1, and `self.conn` holds the connection.
            if let Some(outcome) = self.send_multiplexed(connect_deadline, deadline).await {
                return outcome;
            }
        }
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
            None => match timeout_at(connect_deadline, open(plan, &self.shared)).await {
                Ok(Ok(Opened::H1(conn))) => self.conn.insert(conn),
                Ok(Ok(Opened::H2(mut tx))) => {
                    // A new connection per send, and the server chose HTTP/2: one
                    // request on it, then it closes as `tx` goes.
                    let deadline = tokio::time::Instant::from_std(deadline);
                    return timeout_at(deadline, exchange_h2(&mut tx, plan, self.shared.log()))
                        .await
                        .unwrap_or(Outcome::Timeout);
                }
                Ok(Err(outcome)) => return outcome,
                Err(_elapsed) => return Outcome::ConnectTimeout,
            },
        };
        let deadline = tokio::time::Instant::from_std(deadline);
        let outcome = timeout_at(deadline, conn.exchange(plan, self.shared.log()))
            .await
            .unwrap_or(Outcome::Timeout);
        // A timed-out or failed connection has a request in an unknown state: never reuse.
        let answered = matches!(outcome, Outcome::Ok | Outcome::Status | Outcome::Body);
        if !(plan.keep_alive && answered && conn.ended.is_none()) {
            self.conn = None;
        }
        outcome
    }

    /// One send over the probe's HTTP/2 connection, opened (once, by one worker) when
    /// there is none. `None` when opening it gave an HTTP/1.1 connection instead.
    async fn send_multiplexed(
        &mut self,
        connect_deadline: tokio::time::Instant,
        deadline: Instant,
    ) -> Option<Outcome> {
        match self.ensure_h2(connect_deadline).await {
            Ok(true) => {}
            Ok(false) => return None,
            Err(outcome) => return Some(outcome),
        }
        let (plan, shared) = (&*self.plan, &*self.shared);
        let tx = self.h2.as_mut()?;
        let deadline = tokio::time::Instant::from_std(deadline);
        // A stream that timed out is reset on its own; the connection stays.
        Some(
            timeout_at(deadline, exchange_h2(tx, plan, shared.log()))
                .await
                .unwrap_or(Outcome::Timeout),
        )
    }

    /// This worker's handle on the probe's HTTP/2 connection, opened (once, by one
    /// worker) when there is none or it closed. `Ok(false)`: the server chose HTTP/1.1,
    /// and `self.conn` holds that connection.
    async fn ensure_h2(&mut self, connect_deadline: tokio::time::Instant) -> Result<bool, Outcome> {
        let (plan, shared) = (&*self.plan, &*self.shared);
        if self.h2.as_ref().is_some_and(|h2| h2.tx.is_closed()) {
            self.h2 = None;
        }
        if self.h2.is_some() {
            return Ok(true);
        }
        let Ok(mut slot) = timeout_at(connect_deadline, shared.h2.lock()).await else {
            return Err(Outcome::ConnectTimeout);
        };
        match slot.as_ref().filter(|h2| !h2.tx.is_closed()) {
            Some(tx) => self.h2 = Some(tx.clone()),
            None => {
                *slot = None;
                match timeout_at(connect_deadline, open(plan, shared)).await {
                    Ok(Ok(Opened::H2(tx))) => {
                        *slot = Some(tx.clone());
                        self.h2 = Some(tx);
                    }
                    Ok(Ok(Opened::H1(conn))) => {
                        shared.h1_only.store(true, Ordering::Relaxed);
                        self.conn = Some(conn);
                        return Ok(false);
                    }
                    Ok(Err(outcome)) => return Err(outcome),
                    Err(_elapsed) => return Err(Outcome::ConnectTimeout),
                }
            }
        }
        Ok(true)
    }

    /// The probe's HTTP/2 connection for a gRPC call: its request handle, and a way to
    /// learn why it ended. Opened by the first worker that needs it, shared by all.
    pub(super) async fn h2_connection(
        &mut self,
        intended: Instant,
        deadline: Instant,
    ) -> Result<H2Handle, Outcome> {
        let connect_deadline = (intended + self.plan.connect_timeout).min(deadline);
        let connect_deadline = tokio::time::Instant::from_std(connect_deadline);
        match self.ensure_h2(connect_deadline).await {
            Ok(true) => {}
            // A gRPC probe plans HTTP/2 only, so `open` never hands back HTTP/1.1.
            Ok(false) => {
                self.conn = None;
                return Err(Outcome::Other);
            }
            Err(outcome) => return Err(outcome),
        }
        let h2 = self.h2.clone().ok_or(Outcome::Other)?;
        Ok(H2Handle {
            h2,
            shared: Arc::clone(&self.shared),
        })
    }
}

/// A worker's handle on a probe's HTTP/2 connection, lent to a gRPC call.
pub(super) struct H2Handle {
    h2: H2,
    shared: Arc<Shared>,
}

impl H2Handle {
    /// The request sender; clones share the connection.
    pub(super) fn sender(&self) -> http2::SendRequest<Full<Bytes>> {
        self.h2.tx.clone()
    }

    /// Why a call on this connection failed in transport: the connection's own end
    /// (waited for briefly, as an HTTP/2 request does), else `cause` (from
    /// [`transport_cause`]).
    pub(super) async fn transport_failure(&mut self, cause: Ended) -> Outcome {
        let why = timeout(
            CONNECTION_ERROR_WAIT,
            self.h2.ended.wait_for(Option::is_some),
        )
        .await;
        let ended = match why {
            Ok(Ok(why)) => why.clone(),
            _ => None,
        };
        let Some((outcome, tls_failure)) = ended.or(cause) else {
            return Outcome::Other;
        };
        if let Some((reason, message)) = tls_failure {
            self.shared.log().record_tls_failure(reason, message);
        }
        outcome
    }
}

/// What a transport error says of itself: its outcome, and a TLS failure's reason. Read
/// before waiting on the connection, as the error is not `Send`.
pub(super) fn transport_cause(error: &(dyn std::error::Error + 'static)) -> Ended {
    let mut cause = Some(error);
    let mut outcome = None;
    while let Some(err) = cause {
        if let Some(hyper) = err.downcast_ref::<hyper::Error>() {
            outcome = Some(classify::hyper_error(hyper));
            break;
        }
        cause = err.source();
    }
    let outcome = outcome.unwrap_or_else(|| classify::error_chain(error));
    Some((outcome, tls::failure(error)))
}

/// A hyper error as an outcome; a TLS one has its reason logged.
fn failed(error: &hyper::Error, log: &SetupLog) -> Outcome {
    let outcome = classify::hyper_error(error);
    if outcome == Outcome::Tls {
        if let Some((reason, message)) = tls::failure(error) {
            log.record_tls_failure(reason, message);
        }
    }
    outcome
}

/// Open a connection: TCP, then TLS for https:// (its set-up times and certificate
/// logged), then the HTTP handshake of the version agreed on.
async fn open(plan: &Plan, shared: &Shared) -> Result<Opened, Outcome> {
    let log = shared.log();
    let started = Instant::now();
    let tcp = TcpStream::connect(&plan.authority)
        .await
        .map_err(|e| classify::io_error(&e, Stage::Connect))?;
    // A request is one small write: Nagle would only delay it.
    if let Err(error) = tcp.set_nodelay(true) {
        tracing::debug!(%error, "cannot set TCP_NODELAY on probe connection");
    }
    let connected = Instant::now();
    let (stream, h2) = match &shared.tls {
        None => {
            log.record_opened(connected - started, None);
            (Stream::Plain(tcp), plan.version == HttpVersion::Http2)
        }
        Some(client) => {
            let connector = tokio_rustls::TlsConnector::from(Arc::clone(&client.config));
            let tls = match connector.connect(client.server_name.clone(), tcp).await {
                Ok(tls) => tls,
                Err(e) => {
                    return Err(match tls::failure(&e) {
                        Some((reason, message)) => {
                            log.record_tls_failure(reason, message);
                            Outcome::Tls
                        }
                        None => classify::io_error(&e, Stage::Exchange),
                    })
                }
            };
            let done = Instant::now();
            log.record_opened(connected - started, Some(done - connected));
            let session = tls.get_ref().1;
            if let Some(leaf) = session.peer_certificates().and_then(|c| c.first()) {
                log.record_certificate(done.saturating_duration_since(shared.origin), leaf);
            }
            // `version: http2` (and gRPC) speaks HTTP/2 whatever ALPN said.
            let h2 = session.alpn_protocol() == Some(b"h2") || plan.version == HttpVersion::Http2;
            (Stream::Tls(Box::new(tls)), h2)
        }
    };
    let io = TokioIo::new(stream);
    if h2 {
        let (tx, connection) = http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| failed(&e, log))?;
        let (ended_tx, ended) = watch::channel(None);
        tokio::spawn(async move {
            let why = match connection.await {
                Ok(()) => (Outcome::Reset, None),
                Err(error) => {
                    tracing::debug!(%error, "HTTP/2 probe connection ended");
                    (classify::hyper_error(&error), tls::failure(&error))
                }
            };
            ended_tx.send_replace(Some(why));
        });
        return Ok(Opened::H2(H2 { tx, ended }));
    }
    let (tx, driver) = http1::handshake(io).await.map_err(|e| failed(&e, log))?;
    Ok(Opened::H1(Conn {
        tx,
        driver,
        ended: None,
    }))
}

/// One request and its whole response over HTTP/2, classified.
async fn exchange_h2(h2: &mut H2, plan: &Plan, log: &SetupLog) -> Outcome {
    let H2 { tx, ended } = h2;
    let result = async {
        tx.ready().await?;
        let response = tx.send_request(plan.h2_request()).await?;
        plan.judge(response).await
    }
    .await;
    let error = match result {
        Ok(outcome) => return outcome,
        Err(error) => error,
    };
    // A request whose connection died sees only that; the connection's task knows why.
    // A stream reset alone leaves the connection up, and the wait ends at its bound.
    let why = timeout(CONNECTION_ERROR_WAIT, ended.wait_for(Option::is_some)).await;
    if let Ok(Ok(why)) = why {
        if let Some((outcome, tls)) = why.clone() {
            if let Some((reason, message)) = tls {
                log.record_tls_failure(reason, message);
            }
            return outcome;
        }
    }
    failed(&error, log)
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
    async fn exchange(&mut self, plan: &Plan, log: &SetupLog) -> Outcome {
        let Conn { tx, driver, ended } = self;
        let request = plan.request();
        let result = drive(driver, ended, async {
            tx.ready().await?;
            let response = tx.send_request(request).await?;
            plan.judge(response).await
        })
        .await;
        // The driver's own error carries the I/O cause; the request only sees a generic
        // "connection error" or cancellation when the connection dies under it.
        match (result, &*ended) {
            (Some(Ok(outcome)), _) => outcome,
            (_, Some(Some(driver_error))) => failed(driver_error, log),
            (Some(Err(error)), _) => failed(&error, log),
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
