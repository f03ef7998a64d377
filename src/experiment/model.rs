//! The parsed faults: what the validated file says, with each fault's one action as an
//! enum, so nothing downstream re-derives a kind from whichever field happens to be set
//! (the spec types mirror the YAML, one optional field per action, because that is what
//! users write and what the schema and the error positions describe).

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use hyper::{HeaderMap, Method, Uri};
use shakeout_api::{Dur, StatusRanges};

use super::spec::{
    ConnectionMode, ExecFaultSpec, FaultSpec, HttpVersion, NetworkFaultSpec, PodDeleteSpec,
    PodSelector, ProcessFaultSpec, WriteProbeSpec,
};

/// Default deadline of a probe, from its intended send time.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// One probe of the experiment, its target parsed.
#[derive(Debug, Clone)]
pub struct Probe {
    pub name: String,
    /// Sends per second.
    pub rate: f64,
    /// `maxInFlight` when the file sets it.
    pub max_in_flight: Option<u32>,
    pub target: ProbeTarget,
}

/// What a probe talks to: exactly one kind.
// Parsed once per probe; boxing the HTTP variant would only add an indirection.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum ProbeTarget {
    Http(HttpTarget),
    Tcp(TcpTarget),
    /// gRPC health checks.
    Grpc(GrpcTarget),
    /// Sequenced writes; the backend is set up per run (its keys carry the run's id).
    Write(WriteProbeSpec),
}

/// An HTTP probe target, defaults applied.
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
    /// The HTTP version to speak (`auto`: ALPN decides over TLS, HTTP/1.1 otherwise).
    pub version: HttpVersion,
    /// Set for https:// URLs.
    pub tls: Option<TlsTarget>,
}

/// TLS settings of an https:// probe, file paths resolved against the experiment's
/// directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsTarget {
    /// CA certificates to trust instead of the system's.
    pub ca: Option<PathBuf>,
    /// Name the certificate must be valid for: `serverName`, else the URL's host.
    pub server_name: String,
    /// No verification of the server's certificate at all.
    pub insecure_skip_verify: bool,
    /// Client certificate chain and key (mTLS), both or neither.
    pub client: Option<(PathBuf, PathBuf)>,
}

impl HttpTarget {
    /// A plain GET of `uri`: no headers or body, one deadline for the connection and the
    /// answer, any status of the default ranges counts. `None` when `uri` has no host.
    pub fn get(uri: Uri, timeout: Duration, connection: ConnectionMode) -> Option<HttpTarget> {
        let authority = format!("{}:{}", uri.host()?, uri.port_u16().unwrap_or(80));
        // Service readiness checks are plain http:// (the rules refuse https there).
        Some(HttpTarget {
            method: Method::GET,
            uri,
            authority,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            timeout,
            connect_timeout: timeout,
            expect_status: StatusRanges::default(),
            body_contains: None,
            connection,
            version: HttpVersion::Http1,
            tls: None,
        })
    }
}

/// A TCP connect probe target.
#[derive(Debug, Clone)]
pub struct TcpTarget {
    /// `host:port`.
    pub address: String,
    pub timeout: Duration,
}

/// A gRPC health check probe target, defaults applied.
#[derive(Debug, Clone)]
pub struct GrpcTarget {
    /// `host:port`.
    pub address: String,
    /// The service asked about ("" = the whole server).
    pub service: String,
    pub timeout: Duration,
    /// Set when the probe speaks TLS.
    pub tls: Option<TlsTarget>,
}

/// One fault of the timeline.
#[derive(Debug, Clone)]
pub struct Fault {
    pub name: String,
    /// When to inject, from the start of probing.
    pub at: Dur,
    /// How long it lasts (none for one-shot faults).
    pub duration: Option<Dur>,
    pub action: FaultAction,
    /// Not to be run, and why: it is reported as skipped with this reason.
    pub skip: Option<String>,
}

/// What a fault does: exactly one action.
#[derive(Debug, Clone)]
pub enum FaultAction {
    /// Commands the controller runs (and a revert).
    Exec(ExecFaultSpec),
    /// Latency, loss or blackhole through an agent.
    Network(NetworkFaultSpec),
    /// Kill or pause processes through an agent.
    Process(ProcessFaultSpec),
    /// Delete Kubernetes pods.
    PodDelete(PodDeleteSpec),
}

/// Where an agent fault is sent.
#[derive(Debug, Clone, Copy)]
pub enum Route<'a> {
    /// The agent embedded in the controller (the fault names none).
    Embedded,
    /// An agent of `spec.agents`, by name.
    Named(&'a str),
    /// The agents on the nodes of the pods chosen by this selector.
    Pods(&'a PodSelector),
}

impl Fault {
    /// The fault's action, from a validated spec; `None` when it has none (which the
    /// file's rules already refuse, with its position).
    pub fn from_spec(spec: &FaultSpec) -> Option<Fault> {
        let action = if let Some(e) = &spec.exec {
            FaultAction::Exec(e.clone())
        } else if let Some(n) = &spec.network {
            FaultAction::Network(n.clone())
        } else if let Some(p) = &spec.process {
            FaultAction::Process(p.clone())
        } else {
            FaultAction::PodDelete(spec.pod.as_ref()?.delete.clone()?)
        };
        Some(Fault {
            name: spec.name.clone(),
            at: spec.at,
            duration: spec.duration,
            action,
            skip: None,
        })
    }

    /// `exec`, `network`, `process` or `pod`, as the report spells the kind.
    pub fn kind(&self) -> &'static str {
        match self.action {
            FaultAction::Exec(_) => "exec",
            FaultAction::Network(_) => "network",
            FaultAction::Process(_) => "process",
            FaultAction::PodDelete(_) => "pod",
        }
    }

    /// Where an agent fault goes; `None` for exec faults, pod deletions and skipped faults.
    pub fn route(&self) -> Option<Route<'_>> {
        if self.skip.is_some() {
            return None;
        }
        let (agent, pods) = match &self.action {
            FaultAction::Network(n) => (n.agent.as_deref(), n.pods.as_ref()),
            FaultAction::Process(p) => (p.agent.as_deref(), p.target.pods.as_ref()),
            FaultAction::Exec(_) | FaultAction::PodDelete(_) => return None,
        };
        Some(match (pods, agent) {
            (Some(sel), _) => Route::Pods(sel),
            (None, Some(name)) => Route::Named(name),
            (None, None) => Route::Embedded,
        })
    }

    /// The pods the fault chooses: those it deletes, or those it acts on through agents.
    pub fn pods(&self) -> Option<&PodSelector> {
        if self.skip.is_some() {
            return None;
        }
        match (&self.action, self.route()) {
            (FaultAction::PodDelete(d), _) => Some(&d.pods),
            (_, Some(Route::Pods(sel))) => Some(sel),
            _ => None,
        }
    }

    /// Whether the fault holds state on an agent until reverted (a network fault or a
    /// pause; a kill holds nothing).
    pub fn holds_state(&self) -> bool {
        match &self.action {
            FaultAction::Network(_) => true,
            FaultAction::Process(p) => p.pause.is_some(),
            FaultAction::Exec(_) | FaultAction::PodDelete(_) => false,
        }
    }
}
