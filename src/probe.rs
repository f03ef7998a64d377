//! Probes: HTTP requests, TCP connects and sequenced writes sent on a fixed open-model
//! schedule (send k is due at `origin + k / rate`), latency measured from the intended
//! send time, every outcome recorded into a bounded [`Recorder`].

pub mod record;
pub mod write;

mod claim;
mod classify;
mod http;
mod pace;
mod pool;
mod tcp;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{HeaderMap, Method, Uri};
use shakeout_api::StatusRanges;
use tokio_util::sync::CancellationToken;

pub use pace::{Pace, ProbeStats, RunningProbe};
pub use record::{Bucket, Counts, Outcome, Phase, PhaseStats, ProbeRecording, Recorder};
pub use write::WriteTarget;

use crate::experiment::spec::{ConnectionMode, ProbeSpec};

/// Default deadline of a probe, from its intended send time.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// Ceiling for the default in-flight bound.
pub const DEFAULT_MAX_IN_FLIGHT_CAP: usize = 1024;

/// A probe ready to run: defaults applied, URL parsed.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    pub name: String,
    pub pace: Pace,
    /// Upper bound on sends in flight; sends beyond it past their deadline are `Missed`.
    pub max_in_flight: usize,
    pub target: Target,
}

/// What a probe talks to.
// Built once per probe; boxing the HTTP variant would only add an indirection.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Target {
    Http(HttpTarget),
    Tcp(TcpTarget),
    Write(WriteTarget),
}

/// An HTTP/1.1 probe target.
#[derive(Debug, Clone)]
pub struct HttpTarget {
    pub method: Method,
    pub uri: Uri,
    /// `host:port` to connect to.
    pub authority: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub expect_status: StatusRanges,
    pub body_contains: Option<String>,
    pub connection: ConnectionMode,
}

/// A TCP connect probe target.
#[derive(Debug, Clone)]
pub struct TcpTarget {
    /// `host:port`.
    pub address: String,
    pub timeout: Duration,
}

impl Target {
    /// The deadline of one send, from its intended time.
    pub fn timeout(&self) -> Duration {
        match self {
            Target::Http(h) => h.timeout,
            Target::Tcp(t) => t.timeout,
            Target::Write(w) => w.timeout,
        }
    }
    /// `http`, `tcp` or `write`.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Http(_) => "http",
            Target::Tcp(_) => "tcp",
            Target::Write(_) => "write",
        }
    }
    /// Human description of the target (URL or address).
    pub fn describe(&self) -> String {
        match self {
            Target::Http(h) => format!("{} {}", h.method, h.uri),
            Target::Tcp(t) => format!("tcp {}", t.address),
            Target::Write(w) => w.describe(),
        }
    }
}

impl ProbeConfig {
    /// Build from a validated spec. Errors name the probe and the field. `run` is the
    /// run id write probes prefix their keys with.
    pub fn from_spec(spec: &ProbeSpec, run: &str) -> Result<Self, String> {
        let ctx = |msg: String| format!("probe `{}`: {msg}", spec.name);
        let target = match (&spec.http, &spec.tcp, &spec.write) {
            (None, None, Some(w)) => Target::Write(WriteTarget::from_spec(w, run).map_err(ctx)?),
            (Some(h), None, None) => {
                let uri: Uri = h
                    .url
                    .parse()
                    .map_err(|e| ctx(format!("http.url `{}`: {e}", h.url)))?;
                if uri.scheme_str() != Some("http") {
                    return Err(ctx(format!(
                        "http.url `{}`: only http:// URLs are supported",
                        h.url
                    )));
                }
                let host = uri
                    .host()
                    .ok_or_else(|| ctx(format!("http.url `{}` has no host", h.url)))?;
                let authority = format!("{}:{}", host, uri.port_u16().unwrap_or(80));
                let method = match &h.method {
                    Some(m) => Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                        .map_err(|_| ctx(format!("http.method `{m}` is not an HTTP method")))?,
                    None => Method::GET,
                };
                let mut headers = HeaderMap::new();
                for (k, v) in &h.headers {
                    let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
                        ctx(format!("http.headers: `{k}` is not a valid header name"))
                    })?;
                    let value = HeaderValue::from_str(v).map_err(|_| {
                        ctx(format!(
                            "http.headers.{k}: value is not a valid header value"
                        ))
                    })?;
                    headers.insert(name, value);
                }
                let timeout = h.timeout.map(|d| d.0).unwrap_or(DEFAULT_TIMEOUT);
                let expect = h.expect.as_ref();
                Target::Http(HttpTarget {
                    method,
                    authority,
                    headers,
                    body: Bytes::from(h.body.clone().unwrap_or_default()),
                    timeout,
                    connect_timeout: h
                        .connect_timeout
                        .map(|d| d.0)
                        .unwrap_or(timeout)
                        .min(timeout),
                    expect_status: expect.and_then(|e| e.status.clone()).unwrap_or_default(),
                    body_contains: expect.and_then(|e| e.body_contains.clone()),
                    connection: h.connection.unwrap_or_default(),
                    uri,
                })
            }
            (None, Some(t), None) => Target::Tcp(TcpTarget {
                address: t.address.clone(),
                timeout: t.timeout.map(|d| d.0).unwrap_or(DEFAULT_TIMEOUT),
            }),
            _ => return Err(ctx("needs exactly one of `http`, `tcp` or `write`".into())),
        };
        let per_second = spec.rate.per_second;
        let max_in_flight = match spec.max_in_flight {
            Some(n) => n.max(1) as usize,
            None => {
                // Enough for every send of one timeout window to be in flight at once.
                let needed = (per_second * target.timeout().as_secs_f64()).ceil() as usize + 1;
                needed.clamp(4, DEFAULT_MAX_IN_FLIGHT_CAP)
            }
        };
        Ok(ProbeConfig {
            name: spec.name.clone(),
            pace: Pace::Rate(per_second),
            max_in_flight,
            target,
        })
    }
}

/// The tokio runtime probes run on: one thread. Measured here against nginx, a second
/// worker thread only adds cross-thread wake-ups per send (11 % vs 7-9 % of a core at
/// 1k/s; 1.38x vs 1.04x wrk's CPU per request at max rate); pacing has its own OS thread.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Start a probe: sends are due from `origin` on; results go to `recorder`.
/// Stop it with [`RunningProbe::stop`]; every send scheduled before the stop gets a result.
pub fn start(
    config: ProbeConfig,
    origin: Instant,
    recorder: Arc<Recorder>,
    cancel: CancellationToken,
) -> RunningProbe {
    pace::start(config, origin, recorder, cancel)
}
