//! The sample service's `GET /metrics`: requests and errors (5xx) by route and status, in
//! the OpenMetrics text Prometheus scrapes, so an alerting rule on the error ratio (or on
//! `up` when the service is killed) has something to fire on.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    route: &'static str,
    code: u16,
}

/// The service's counters and the registry that renders them.
pub struct Metrics {
    registry: Arc<Registry>,
    requests: Family<Labels, Counter>,
    errors: Family<Labels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let requests = Family::<Labels, Counter>::default();
        let errors = Family::<Labels, Counter>::default();
        let mut registry = Registry::default();
        registry.register(
            "sample_requests",
            "Requests answered, by route and status",
            requests.clone(),
        );
        registry.register(
            "sample_errors",
            "Requests answered with a 5xx status, by route and status",
            errors.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            requests,
            errors,
        }
    }
}

/// The route a path belongs to: a fixed set, so a client cannot grow the series.
pub fn route(path: &str) -> &'static str {
    match path {
        "/" => "/",
        "/health" => "/health",
        "/log" => "/log",
        "/admin/stall" => "/admin/stall",
        p if p.starts_with("/kv/") => "/kv",
        _ => "other",
    }
}

impl Metrics {
    pub fn count(&self, route: &'static str, status: StatusCode) {
        let labels = Labels {
            route,
            code: status.as_u16(),
        };
        self.requests.get_or_create(&labels).inc();
        if status.is_server_error() {
            self.errors.get_or_create(&labels).inc();
        }
    }

    /// The counters as OpenMetrics text.
    pub fn render(&self) -> Response<Full<Bytes>> {
        openmetrics(&self.registry)
    }
}

/// `registry` as an OpenMetrics text response (500 with the reason if it cannot be
/// encoded): the sample's `/metrics` and the controller's `--metrics-listen`.
pub fn openmetrics(registry: &Registry) -> Response<Full<Bytes>> {
    let mut text = String::new();
    let (status, body) = match prometheus_client::encoding::text::encode(&mut text, registry) {
        Ok(()) => (StatusCode::OK, text),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding: {e}\n"),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
    );
    resp
}
