//! gRPC health probes: one `grpc.health.v1.Health/Check` per send, through tonic-health's
//! generated client, over the probe's one HTTP/2 connection (opened, shared by every
//! worker and reopened when it breaks by the HTTP probe's code, so TCP, TLS, set-up
//! cost and certificates are recorded the same way). SERVING is ok; any other answer is
//! `notServing`; a call that ends with a status other than OK is `grpcStatus`, its code
//! counted apart; transport failures keep the kinds every probe has.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper::{Method, Request, Response, Uri};
use tokio::time::timeout_at;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use super::http::{transport_cause, HttpSender};
use super::tls::TlsClient;
use super::{GrpcTarget, HttpTarget, Outcome, Recorder};
use crate::experiment::spec::{ConnectionMode, HttpVersion};

/// gRPC status code names, indexed by code, as the gRPC specification spells them.
pub const CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// Sends one probe's health checks. Cloning gives a new worker its handle on the
/// probe's shared connection.
#[derive(Clone)]
pub(super) struct GrpcSender {
    http: HttpSender,
    service: Arc<str>,
    /// `http://address` or `https://address`: the calls' `:scheme` and `:authority`.
    origin: Uri,
    recorder: Arc<Recorder>,
}

impl GrpcSender {
    pub(super) fn new(
        target: &GrpcTarget,
        tls: Option<TlsClient>,
        recorder: Arc<Recorder>,
        origin: Instant,
    ) -> Self {
        let scheme = if target.tls.is_some() {
            "https"
        } else {
            "http"
        };
        // The address passed the rules as host:port, so it makes an authority; "/"
        // stands in for a malformed one rather than panicking.
        let uri: Uri = format!("{scheme}://{}/", target.address)
            .parse()
            .unwrap_or_else(|_| Uri::from_static("/"));
        let http = HttpTarget {
            method: Method::POST,
            authority: target.address.clone(),
            headers: Default::default(),
            body: Bytes::new(),
            timeout: target.timeout,
            connect_timeout: target.timeout,
            expect_status: Default::default(),
            body_contains: None,
            connection: ConnectionMode::KeepAlive,
            version: HttpVersion::Http2,
            tls: target.tls.clone(),
            uri: uri.clone(),
        };
        GrpcSender {
            http: HttpSender::new(&http, tls, Arc::clone(&recorder), origin),
            service: target.service.as_str().into(),
            origin: uri,
            recorder,
        }
    }

    /// One health check, classified, within the send's deadline.
    pub(super) async fn send(&mut self, intended: Instant, deadline: Instant) -> Outcome {
        let mut connection = match self.http.h2_connection(intended, deadline).await {
            Ok(c) => c,
            Err(outcome) => return outcome,
        };
        let mut client = HealthClient::with_origin(Call(connection.sender()), self.origin.clone());
        let request = HealthCheckRequest {
            service: self.service.to_string(),
        };
        let deadline = tokio::time::Instant::from_std(deadline);
        match timeout_at(deadline, client.check(request)).await {
            Err(_elapsed) => Outcome::Timeout,
            Ok(Ok(answer)) => match answer.into_inner().status() {
                ServingStatus::Serving => Outcome::Ok,
                ServingStatus::NotServing
                | ServingStatus::ServiceUnknown
                | ServingStatus::Unknown => Outcome::NotServing,
            },
            // A status with a cause never reached the server's handler: the transport
            // failed under it (tonic keeps the cause as the status's source).
            Ok(Err(status)) => match status.source().map(transport_cause) {
                Some(cause) => connection.transport_failure(cause).await,
                None => {
                    self.recorder
                        .setup
                        .record_grpc_status(status.code() as i32, status.message());
                    Outcome::GrpcStatus
                }
            },
        }
    }
}

/// One gRPC call as an HTTP/2 request on the probe's connection. The request body (one
/// small unary message) is collected first, so the connection keeps one body type.
#[derive(Clone)]
struct Call(http2::SendRequest<Full<Bytes>>);

type BoxError = Box<dyn StdError + Send + Sync>;

impl tower::Service<Request<tonic::body::Body>> for Call {
    type Response = Response<Incoming>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Incoming>, BoxError>> + Send>>;

    // Readiness is awaited in the call, so a closed connection's error reaches tonic as
    // the call's, with its cause (a failed `poll_ready` loses it).
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<tonic::body::Body>) -> Self::Future {
        let mut tx = self.0.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let body = body.collect().await?.to_bytes();
            tx.ready().await?;
            let response = tx
                .send_request(Request::from_parts(parts, Full::new(body)))
                .await?;
            Ok(response)
        })
    }
}
