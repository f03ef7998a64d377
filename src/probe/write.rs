//! Write probes (DESIGN.md §4, RPO): every scheduled send is a sequenced write (`{seq}`
//! = send number, keys prefixed by a run-unique id); the prober records which were
//! acknowledged, and after the run [`readback`] reads them back to find what was lost,
//! duplicated or reordered, and when.

mod outcome;
pub mod readback;
pub mod seqset;
pub mod verify;

mod http;
mod redis;

pub use outcome::{LossWindowReport, ReadBackReport, WriteReport};

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ::redis::aio::MultiplexedConnection;
use tokio::net::TcpStream;
use tokio::time::timeout_at;

use self::http::{HttpBackend, Read};
use self::redis::RedisBackend;
use super::{Outcome, DEFAULT_TIMEOUT};
use crate::experiment::spec::{RedisMode, WriteProbeSpec};

/// Default bound on read-back requests per second.
pub const DEFAULT_READ_RATE: f64 = 1000.0;
/// Default bound on the read-back's duration (and, again, on the cleanup's).
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the backend check before the run may take.
pub const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(5);

/// A run-unique key prefix, `so-<8 hex>-<unix seconds>`: random rather than from the
/// seed, so replaying a run with `--seed` never reads the keys of the run it replays.
pub fn run_id() -> String {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("so-{:08x}-{secs}", rand::random::<u32>())
}

/// Where writes go and how they are read back.
// One per probe behind an `Arc`: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Backend {
    Http(HttpBackend),
    Redis(RedisBackend),
}

/// A write probe target.
#[derive(Debug, Clone)]
pub struct WriteTarget {
    pub backend: Arc<Backend>,
    /// The run id every key starts with (`{run}`).
    pub run: Arc<str>,
    pub timeout: Duration,
    /// Leave the run's keys in the backend after the read-back.
    pub keep: bool,
    pub read_rate: f64,
    pub read_timeout: Duration,
}

/// Why a write probe could not be set up or its backend could not be reached.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// The spec could not be turned into requests; the message names the field.
    #[error("{0}")]
    Spec(String),
    /// The backend did not answer; the message says where and how.
    #[error("{0}")]
    Unreachable(String),
}

impl WriteTarget {
    /// Build from a validated spec; errors name the field.
    pub fn from_spec(spec: &WriteProbeSpec, run: &str) -> Result<Self, WriteError> {
        let backend = match (&spec.http, &spec.redis) {
            (Some(h), None) => Backend::Http(HttpBackend::from_spec(h).map_err(WriteError::Spec)?),
            (None, Some(r)) => {
                Backend::Redis(RedisBackend::from_spec(r).map_err(WriteError::Spec)?)
            }
            _ => {
                return Err(WriteError::Spec(
                    "write needs exactly one of `http` or `redis`".into(),
                ))
            }
        };
        let read_back = spec.read_back.clone().unwrap_or_default();
        Ok(WriteTarget {
            backend: Arc::new(backend),
            run: run.into(),
            timeout: spec.timeout.map(|d| d.0).unwrap_or(DEFAULT_TIMEOUT),
            keep: spec.keep.unwrap_or(false),
            read_rate: read_back
                .rate
                .map(|r| r.per_second)
                .unwrap_or(DEFAULT_READ_RATE),
            read_timeout: read_back
                .timeout
                .map(|d| d.0)
                .unwrap_or(DEFAULT_READ_TIMEOUT),
        })
    }

    /// `http` or `redis`.
    pub fn backend_kind(&self) -> &'static str {
        match &*self.backend {
            Backend::Http(_) => "http",
            Backend::Redis(_) => "redis",
        }
    }

    /// How writes are read back: `read` or `list` (HTTP), `set`, `list` or `stream` (Redis).
    pub fn mode(&self) -> &'static str {
        match &*self.backend {
            Backend::Http(h) => match h.read {
                Read::Key(_) => "read",
                Read::List(_) => "list",
            },
            Backend::Redis(r) => match r.mode {
                RedisMode::Set => "set",
                RedisMode::List => "list",
                RedisMode::Stream => "stream",
            },
        }
    }

    /// Human description: the write URL or the Redis URL and mode.
    pub fn describe(&self) -> String {
        match &*self.backend {
            Backend::Http(h) => format!("{} {}", h.write.method(), h.write.url("{run}")),
            Backend::Redis(r) => format!("{} ({})", r.url, self.mode()),
        }
    }

    /// Whether the read-back can see order and duplicates (a stored log, not keys).
    pub fn reads_a_log(&self) -> bool {
        self.mode() == "list" || self.mode() == "stream"
    }

    /// Is the backend there? HTTP: a TCP connect to the write URL's host (a request
    /// would be a write); Redis: PING.
    pub async fn preflight(&self) -> Result<(), WriteError> {
        self.reachable().await.map_err(WriteError::Unreachable)
    }

    async fn reachable(&self) -> Result<(), String> {
        let deadline = Instant::now() + PREFLIGHT_TIMEOUT;
        match &*self.backend {
            Backend::Http(h) => {
                let url = h.write.url(&self.run);
                let uri: hyper::Uri = url.parse().map_err(|e| format!("`{url}`: {e}"))?;
                let host = uri.host().unwrap_or_default();
                let authority = format!("{host}:{}", uri.port_u16().unwrap_or(80));
                match timeout_at(deadline.into(), TcpStream::connect(&authority)).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(format!("{url}: cannot connect to {authority}: {e}")),
                    Err(_) => Err(format!(
                        "{url}: no connection to {authority} within {PREFLIGHT_TIMEOUT:?}"
                    )),
                }
            }
            Backend::Redis(r) => r
                .ping(deadline)
                .await
                .map_err(|e| format!("{}: {e}", r.url)),
        }
    }
}

/// A worker's connection to the backend.
enum Conn {
    Http(http::Client),
    Redis(Option<MultiplexedConnection>),
}

impl Backend {
    fn conn(&self) -> Conn {
        match self {
            Backend::Http(_) => Conn::Http(http::Client::default()),
            Backend::Redis(_) => Conn::Redis(None),
        }
    }
}

/// Sends one probe's writes; cloning gives a worker its own connection.
pub(super) struct WriteSender {
    target: WriteTarget,
    conn: Conn,
}

impl Clone for WriteSender {
    fn clone(&self) -> Self {
        WriteSender::new(&self.target)
    }
}

impl WriteSender {
    pub(super) fn new(target: &WriteTarget) -> Self {
        WriteSender {
            target: target.clone(),
            conn: target.backend.conn(),
        }
    }

    /// Write number `seq`; `Ok` means acknowledged.
    pub(super) async fn send(&mut self, seq: u64, deadline: Instant) -> Outcome {
        let run = &*self.target.run;
        match (&*self.target.backend, &mut self.conn) {
            (Backend::Http(h), Conn::Http(c)) => {
                let answer = c.send(&h.write, run, seq, deadline).await;
                http::write_outcome(&h.write, answer.map(|(status, _)| status))
            }
            (Backend::Redis(r), Conn::Redis(slot)) => r.write(slot, run, seq, deadline).await,
            // `conn` is always made by the same backend; a mismatch cannot happen.
            _ => Outcome::Other,
        }
    }
}
