//! The sample service's gRPC side (`--grpc-listen`): the standard health service
//! (`grpc.health.v1`, tonic-health's own server), the whole server ("") and the service
//! `sample` SERVING, flipped from the HTTP port (`POST /admin/grpc-health?status=...`) so
//! a test can make it not serving. Plain HTTP/2, or TLS with the HTTP side's files.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http2;
use hyper::StatusCode;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

/// The named service the sample reports on besides the whole server.
pub const SERVICE: &str = "sample";

/// The health reporter and the routes that serve it.
pub(super) fn health() -> (HealthReporter, Routes) {
    let (reporter, server) = tonic_health::server::health_reporter();
    (reporter, Routes::new(server))
}

/// Mark the whole server and `sample` SERVING (the reporter starts with "" only).
pub(super) async fn start_serving(reporter: &HealthReporter) {
    reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    reporter
        .set_service_status(SERVICE, ServingStatus::Serving)
        .await;
}

/// `POST /admin/grpc-health?status=SERVING|NOT_SERVING[&service=NAME]`: without
/// `service`, the whole server and `sample` change together.
pub(super) async fn flip(
    reporter: Option<&HealthReporter>,
    query: Option<&str>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let Some(reporter) = reporter else {
        return Ok(super::text(
            StatusCode::NOT_FOUND,
            "no gRPC listener: start with --grpc-listen ADDR\n".into(),
        ));
    };
    let param = |name: &str| {
        query.and_then(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        })
    };
    let status = match param("status") {
        Some("SERVING") => ServingStatus::Serving,
        Some("NOT_SERVING") => ServingStatus::NotServing,
        _ => {
            return Ok(super::text(
                StatusCode::BAD_REQUEST,
                "expected ?status=SERVING or ?status=NOT_SERVING\n".into(),
            ))
        }
    };
    match param("service") {
        Some(service) => reporter.set_service_status(service, status).await,
        None => {
            reporter.set_service_status("", status).await;
            reporter.set_service_status(SERVICE, status).await;
        }
    }
    Ok(super::text(StatusCode::OK, format!("{status:?}\n")))
}

/// Bind the gRPC listener.
pub(super) async fn bind(addr: SocketAddr) -> Result<TcpListener, super::SampleError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| super::SampleError::Listen { addr, source })
}

/// Serve HTTP/2 gRPC on every accepted connection, over TLS when `tls` is set.
pub(super) async fn serve(
    listener: TcpListener,
    routes: Routes,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(routes.clone());
        let tls = tls.clone();
        tokio::spawn(async move {
            let builder = http2::Builder::new(TokioExecutor::new());
            match tls {
                None => {
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                }
                Some(acceptor) => {
                    // A failed handshake is the client's to report.
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                }
            }
        });
    }
}
