//! Probes: HTTP(S) requests, TCP connects, gRPC health checks and sequenced writes sent on a fixed open-model
//! schedule (send k is due at `origin + k / rate`), latency measured from the intended
//! send time, every outcome recorded into a bounded [`Recorder`].

pub mod record;
pub mod tls;
pub mod write;

mod claim;
mod classify;
pub mod grpc;
mod http;
mod pace;
mod pool;
mod schedule;
mod tcp;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

pub use pace::{ProbeStats, RunningProbe};
pub use record::{
    Bucket, CertificateChange, ConnectionSetup, Counts, Outcome, Phase, PhaseStats, ProbeRecording,
    Recorder,
};
pub use schedule::Pace;
pub use write::WriteTarget;

pub use crate::experiment::model::{GrpcTarget, HttpTarget, TcpTarget, DEFAULT_TIMEOUT};
use crate::experiment::model::{Probe, ProbeTarget};
use crate::experiment::spec::HttpVersion;
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
    /// The TLS client of an https:// probe, built once (trust store, client certificate).
    pub tls: Option<tls::TlsClient>,
}

/// What a probe talks to.
// Built once per probe; boxing the HTTP variant would only add an indirection.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Target {
    Http(HttpTarget),
    Tcp(TcpTarget),
    Grpc(GrpcTarget),
    Write(WriteTarget),
}

impl Target {
    /// The deadline of one send, from its intended time.
    pub fn timeout(&self) -> Duration {
        match self {
            Target::Http(h) => h.timeout,
            Target::Tcp(t) => t.timeout,
            Target::Grpc(g) => g.timeout,
            Target::Write(w) => w.timeout,
        }
    }
    /// `http`, `tcp`, `grpc` or `write`.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Http(_) => "http",
            Target::Tcp(_) => "tcp",
            Target::Grpc(_) => "grpc",
            Target::Write(_) => "write",
        }
    }
    /// Human description of the target (URL or address).
    pub fn describe(&self) -> String {
        match self {
            Target::Http(h) => format!("{} {}", h.method, h.uri),
            Target::Tcp(t) => format!("tcp {}", t.address),
            Target::Grpc(g) if g.service.is_empty() => format!("grpc {} health", g.address),
            Target::Grpc(g) => format!("grpc {} health of {}", g.address, g.service),
            Target::Write(w) => w.describe(),
        }
    }
}

/// A probe that could not be made ready to run.
#[derive(Debug, Clone, thiserror::Error)]
#[error("probe `{probe}`: {source}")]
pub struct ProbeError {
    pub probe: String,
    pub source: ProbeSetupError,
}

/// What could not be made ready: a write backend, or an https:// probe's TLS client.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProbeSetupError {
    #[error(transparent)]
    Write(#[from] write::WriteError),
    #[error("{0}")]
    Tls(String),
}

impl ProbeConfig {
    /// Ready to run from a parsed probe. `run` is the run id write probes prefix their
    /// keys with; a write backend is the only part made here, so the only error.
    pub fn from_model(probe: &Probe, run: &str) -> Result<Self, ProbeError> {
        let target = match &probe.target {
            ProbeTarget::Http(h) => Target::Http(h.clone()),
            ProbeTarget::Tcp(t) => Target::Tcp(t.clone()),
            ProbeTarget::Grpc(g) => Target::Grpc(g.clone()),
            ProbeTarget::Write(w) => {
                Target::Write(WriteTarget::from_spec(w, run).map_err(|source| ProbeError {
                    probe: probe.name.clone(),
                    source: source.into(),
                })?)
            }
        };
        let max_in_flight = match probe.max_in_flight {
            Some(n) => n.max(1) as usize,
            None => {
                // Enough for every send of one timeout window to be in flight at once.
                let needed = (probe.rate * target.timeout().as_secs_f64()).ceil() as usize + 1;
                needed.clamp(4, DEFAULT_MAX_IN_FLIGHT_CAP)
            }
        };
        let tls = match &probe.target {
            ProbeTarget::Http(HttpTarget {
                tls: Some(t),
                version,
                ..
            }) => Some((t, *version)),
            // gRPC is HTTP/2 only: ALPN offers h2 alone.
            ProbeTarget::Grpc(GrpcTarget { tls: Some(t), .. }) => Some((t, HttpVersion::Http2)),
            _ => None,
        };
        let tls = match tls {
            Some((t, version)) => {
                Some(tls::TlsClient::new(t, version).map_err(|e| ProbeError {
                    probe: probe.name.clone(),
                    source: ProbeSetupError::Tls(e),
                })?)
            }
            None => None,
        };
        Ok(ProbeConfig {
            name: probe.name.clone(),
            pace: Pace::Rate(probe.rate),
            max_in_flight,
            target,
            tls,
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
