//! An HTTP client for one node agent (DESIGN.md §3 API): bearer token, JSON bodies,
//! bounded time per call, and errors that name the agent and what it said.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use shakeout_api::{
    ApplyRequest, ApplyResponse, Capabilities, Dur, ErrorBody, RenewRequest, RevertResponse,
};

use crate::experiment::spec::AgentSpec;

/// Deadline of one call to an agent.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest answer read from an agent.
const MAX_RESPONSE: usize = 1 << 20;

/// Why a call to an agent failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AgentError {
    #[error("agent {agent} ({url}): unreachable: {message}")]
    Unreachable {
        agent: String,
        url: String,
        message: String,
    },
    #[error("agent {agent} ({url}): {status} {}: {}{}", .body.code, .body.message, .body.field.as_ref().map(|f| format!(" (field {f})")).unwrap_or_default())]
    Refused {
        agent: String,
        url: String,
        status: u16,
        body: ErrorBody,
    },
    /// The request went out but no answer came back: whether it took effect is unknown.
    #[error("agent {agent} ({url}): no answer after the request was sent, so its outcome is unknown: {message}")]
    Lost {
        agent: String,
        url: String,
        message: String,
    },
    #[error("agent {agent} ({url}): {message}")]
    Protocol {
        agent: String,
        url: String,
        message: String,
    },
    #[error("agent {agent}: {message}")]
    Config { agent: String, message: String },
}

impl AgentError {
    /// The HTTP status the agent answered, if it answered.
    /// True when the request may have taken effect although no answer came back.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, AgentError::Lost { .. })
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            AgentError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// One agent: where it is and how to authenticate.
#[derive(Clone)]
pub struct AgentClient {
    pub name: String,
    pub url: String,
    authority: String,
    base_path: String,
    token: String,
    /// Lease asked for each fault on this agent.
    pub lease: Duration,
    /// For https:// agents: the connector trusting the configured CA, and the name to verify.
    tls: Option<(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    )>,
    /// How a connection is made: TCP to `authority`, or a port-forward through the API server.
    dial: Dial,
    /// The agent said it takes `NetworkFault.seed` (its capabilities' `features`); until it
    /// has, the seed is left out of network faults sent to it.
    network_seed: Arc<std::sync::atomic::AtomicBool>,
}

/// How the client reaches its agent.
#[derive(Clone, Default)]
enum Dial {
    /// A TCP connection to `authority`.
    #[default]
    Tcp,
    /// `pods/portforward` to the agent pod through the Kubernetes API server: one
    /// WebSocket per call, so only principals allowed to port-forward reach the agent.
    PortForward {
        pods: Box<kube::Api<k8s_openapi::api::core::v1::Pod>>,
        pod: String,
        port: u16,
    },
}

// By hand: the token must never reach a log line through `{:?}`.
impl std::fmt::Debug for AgentClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentClient")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("lease", &self.lease)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// Anything hyper can speak HTTP/1.1 over: plain TCP or TLS.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// Whether a kubelet port-forward error means it never connected to the agent's port
/// (so nothing was sent): its dial failed.
fn never_reached(kubelet_error: &str) -> bool {
    kubelet_error.contains("failed to connect to")
        || kubelet_error.contains("connect: connection refused")
}

/// A TLS connector that trusts exactly the certificates in the PEM file `ca`.
fn tls_connector(ca: &Path) -> Result<tokio_rustls::TlsConnector, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    let certs =
        CertificateDer::pem_file_iter(ca).map_err(|e| format!("ca {}: {e}", ca.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("ca {}: {e}", ca.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("ca {}: {e}", ca.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("ca {}: no certificate in the file", ca.display()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

impl AgentClient {
    /// A client for `url` (`http://host:port`, or `https://host:port` with the PEM file
    /// of the CA that signed the agent's certificate) with a bearer `token`.
    pub fn new(name: &str, url: &str, token: &str, ca: Option<&Path>) -> Result<Self, AgentError> {
        let config = |message: String| AgentError::Config {
            agent: name.into(),
            message,
        };
        let uri: Uri = url
            .parse()
            .map_err(|e| config(format!("url `{url}`: {e}")))?;
        let host = uri
            .host()
            .ok_or_else(|| config(format!("url `{url}` has no host")))?;
        let (default_port, tls) = match (uri.scheme_str(), ca) {
            (Some("http"), None) => (80, None),
            (Some("http"), Some(_)) => return Err(config(format!("url `{url}`: a CA only applies to https"))),
            (Some("https"), Some(ca)) => {
                let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
                let name = rustls::pki_types::ServerName::try_from(host)
                    .map_err(|e| config(format!("url `{url}`: {e}")))?;
                (443, Some((tls_connector(ca).map_err(config)?, name)))
            }
            (Some("https"), None) => {
                return Err(config(format!("url `{url}`: https needs `ca:` (the PEM file of the CA that signed the agent's certificate)")))
            }
            _ => return Err(config(format!("url `{url}`: use http://host:port or https://host:port"))),
        };
        let authority = format!("{host}:{}", uri.port_u16().unwrap_or(default_port));
        Ok(AgentClient {
            name: name.into(),
            url: url.into(),
            authority,
            base_path: uri.path().trim_end_matches('/').to_owned(),
            token: token.into(),
            lease: crate::fault::request::LEASE,
            tls,
            dial: Dial::Tcp,
            network_seed: Arc::default(),
        })
    }

    /// A client for an agent pod reached through the API server's port-forward. With a
    /// `ca`, TLS runs inside the tunnel and the certificate must be valid for `server_name`.
    pub fn port_forward(
        name: &str,
        pods: kube::Api<k8s_openapi::api::core::v1::Pod>,
        namespace: &str,
        pod: &str,
        port: u16,
        token: &str,
        tls: Option<(&Path, &str)>,
    ) -> Result<Self, AgentError> {
        let mut client = Self::new(name, &format!("http://127.0.0.1:{port}"), token, None)?;
        if let Some((ca, server_name)) = tls {
            let config = |message: String| AgentError::Config {
                agent: name.into(),
                message,
            };
            let sn = rustls::pki_types::ServerName::try_from(server_name.to_owned())
                .map_err(|e| config(format!("serverName `{server_name}`: {e}")))?;
            client.tls = Some((tls_connector(ca).map_err(config)?, sn));
        }
        client.url = format!("portforward://{namespace}/{pod}:{port}");
        client.authority = format!("{pod}:{port}");
        client.dial = Dial::PortForward {
            pods: Box::new(pods),
            pod: pod.into(),
            port,
        };
        Ok(client)
    }

    /// Verify the agent's certificate against `server_name` instead of the URL's host
    /// (agents reached by pod IP carry a certificate for their service name).
    pub fn with_server_name(mut self, server_name: &str) -> Result<Self, AgentError> {
        if let Some((connector, _)) = self.tls.take() {
            let sn =
                rustls::pki_types::ServerName::try_from(server_name.to_owned()).map_err(|e| {
                    AgentError::Config {
                        agent: self.name.clone(),
                        message: format!("serverName `{server_name}`: {e}"),
                    }
                })?;
            self.tls = Some((connector, sn));
        }
        Ok(self)
    }

    /// From an experiment's `spec.agents` entry; the token is read now.
    pub fn from_spec(name: &str, spec: &AgentSpec, base_dir: &Path) -> Result<Self, AgentError> {
        let config = |message: String| AgentError::Config {
            agent: name.into(),
            message,
        };
        let token = match (&spec.token_from.env, &spec.token_from.file) {
            (Some(var), _) => std::env::var(var).map_err(|_| {
                config(format!(
                    "tokenFrom.env: environment variable `{var}` is not set"
                ))
            })?,
            (None, Some(file)) => std::fs::read_to_string(base_dir.join(file))
                .map_err(|e| config(format!("tokenFrom.file `{file}`: {e}")))?,
            (None, None) => return Err(config("tokenFrom: set `env` or `file`".into())),
        };
        let token = token.trim();
        if token.is_empty() {
            return Err(config("the token is empty".into()));
        }
        let ca = spec.ca.as_ref().map(|c| base_dir.join(c));
        let mut client = Self::new(name, &spec.url, token, ca.as_deref())?;
        if let Some(lease) = spec.lease {
            client.lease = lease.0;
        }
        Ok(client)
    }

    fn err_unreachable(&self, message: String) -> AgentError {
        AgentError::Unreachable {
            agent: self.name.clone(),
            url: self.url.clone(),
            message,
        }
    }

    fn err_protocol(&self, message: String) -> AgentError {
        AgentError::Protocol {
            agent: self.name.clone(),
            url: self.url.clone(),
            message,
        }
    }

    fn err_lost(&self, message: String) -> AgentError {
        AgentError::Lost {
            agent: self.name.clone(),
            url: self.url.clone(),
            message,
        }
    }

    /// One call: connect, send, read the whole (bounded) answer, map errors. Failing to
    /// connect means nothing happened (`Unreachable`); failing after the request went out
    /// means it may have taken effect (`Lost`).
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, AgentError> {
        let deadline = tokio::time::Instant::now() + CALL_TIMEOUT;
        // For a port-forward: the kubelet's error for the tunnel, if it sends one.
        let mut tunnel_error = None;
        let connect = async {
            let stream: Box<dyn Io> = match &self.dial {
                Dial::Tcp => Box::new(
                    tokio::net::TcpStream::connect(&self.authority)
                        .await
                        .map_err(|e| self.err_unreachable(e.to_string()))?,
                ),
                Dial::PortForward { pods, pod, port } => {
                    let mut pf = pods.portforward(pod, &[*port]).await.map_err(|e| {
                        self.err_unreachable(crate::kube::describe("port-forward", &e))
                    })?;
                    let s = pf.take_stream(*port).ok_or_else(|| {
                        self.err_unreachable(format!("port-forward gave no stream for port {port}"))
                    })?;
                    tunnel_error = pf.take_error(*port);
                    // The forwarder's task lives on with the stream; dropping the
                    // handle does not stop it.
                    Box::new(s)
                }
            };
            let io: Box<dyn Io> = match &self.tls {
                None => stream,
                Some((connector, name)) => match connector.connect(name.clone(), stream).await {
                    Ok(tls) => Box::new(tls),
                    Err(e) => {
                        // Through a port-forward, a refused dial shows here as an early
                        // EOF: the kubelet's error says what really happened.
                        let kubelet = match tunnel_error.take() {
                            Some(t) => tokio::time::timeout(Duration::from_millis(500), t)
                                .await
                                .ok()
                                .flatten(),
                            None => None,
                        };
                        let why = match kubelet {
                            Some(k) => format!("TLS: {e} (port-forward: {})", k.trim()),
                            None => format!("TLS: {e}"),
                        };
                        return Err(self.err_unreachable(why));
                    }
                },
            };
            hyper::client::conn::http1::handshake(TokioIo::new(io))
                .await
                .map_err(|e| self.err_unreachable(e.to_string()))
        };
        let (sender, conn) = match tokio::time::timeout_at(deadline, connect).await {
            Ok(r) => r?,
            Err(_) => {
                let msg = format!("no connection within {}", Dur(CALL_TIMEOUT));
                return Err(self.err_unreachable(msg));
            }
        };
        tokio::spawn(conn);
        let result = match tokio::time::timeout_at(
            deadline,
            self.exchange(sender, method, path, body),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(self.err_lost(format!("no answer within {}", Dur(CALL_TIMEOUT)))),
        };
        match (result, tunnel_error) {
            (Err(AgentError::Lost { message, .. }), Some(tunnel)) => {
                // Through a port-forward the tunnel opens before the kubelet dials the
                // agent: a refused dial shows only as a closed stream plus the kubelet's
                // error, and then the request never reached the agent.
                let kubelet = tokio::time::timeout(Duration::from_millis(500), tunnel)
                    .await
                    .ok()
                    .flatten();
                match kubelet {
                    Some(k) if never_reached(&k) => {
                        Err(self.err_unreachable(format!("port-forward: {}", k.trim())))
                    }
                    Some(k) => {
                        Err(self.err_lost(format!("{message} (port-forward: {})", k.trim())))
                    }
                    None => Err(self.err_lost(message)),
                }
            }
            (other, _) => other,
        }
    }

    async fn exchange<T: DeserializeOwned>(
        &self,
        mut sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, AgentError> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base_path))
            .header(hyper::header::HOST, &self.authority)
            .header(
                hyper::header::AUTHORIZATION,
                format!("Bearer {}", self.token),
            );
        if body.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| self.err_protocol(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| self.err_lost(e.to_string()))?;
        let status = resp.status();
        let limited = http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE);
        let bytes = limited
            .collect()
            .await
            .map_err(|e| self.err_lost(format!("reading the answer: {e}")))?
            .to_bytes();
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| self.err_protocol(format!("unexpected answer to {path}: {e}")));
        }
        let body = serde_json::from_slice::<ErrorBody>(&bytes).unwrap_or_else(|_| ErrorBody {
            code: status.canonical_reason().unwrap_or("error").to_owned(),
            message: String::from_utf8_lossy(&bytes).chars().take(300).collect(),
            field: None,
        });
        Err(AgentError::Refused {
            agent: self.name.clone(),
            url: self.url.clone(),
            status: status.as_u16(),
            body,
        })
    }

    /// `GET /v1/health` (no authentication needed).
    pub async fn health(&self) -> Result<serde_json::Value, AgentError> {
        self.call(Method::GET, "/v1/health", None).await
    }

    /// `GET /v1/capabilities` (checks the token too).
    pub async fn capabilities(&self) -> Result<Capabilities, AgentError> {
        let caps: Capabilities = self.call(Method::GET, "/v1/capabilities", None).await?;
        let seeds = caps
            .features
            .iter()
            .any(|f| f == shakeout_api::FEATURE_NETWORK_SEED);
        self.network_seed
            .store(seeds, std::sync::atomic::Ordering::SeqCst);
        Ok(caps)
    }

    /// `POST /v1/faults`. Optional fields the agent has not said it takes are left out.
    pub async fn apply(&self, req: &ApplyRequest) -> Result<ApplyResponse, AgentError> {
        let mut req = req.clone();
        if let shakeout_api::FaultSpec::Network(n) = &mut req.spec {
            if !self.network_seed.load(std::sync::atomic::Ordering::SeqCst) {
                n.seed = None;
            }
        }
        let body = serde_json::to_vec(&req).map_err(|e| self.err_protocol(e.to_string()))?;
        self.call(Method::POST, "/v1/faults", Some(body)).await
    }

    /// `GET /v1/faults`: every fault the agent holds.
    pub async fn list(&self) -> Result<Vec<shakeout_api::FaultStatus>, AgentError> {
        self.call(Method::GET, "/v1/faults", None).await
    }

    /// `POST /v1/faults/{id}/renew`.
    pub async fn renew(&self, id: &str, lease: Duration) -> Result<serde_json::Value, AgentError> {
        let body = serde_json::to_vec(&RenewRequest {
            lease: Some(Dur(lease)),
        })
        .map_err(|e| self.err_protocol(e.to_string()))?;
        self.call(Method::POST, &format!("/v1/faults/{id}/renew"), Some(body))
            .await
    }

    /// `DELETE /v1/faults/{id}`: a 404 means the agent no longer holds it (already
    /// reverted, e.g. at its lease deadline), which confirms the revert too.
    pub async fn revert(&self, id: &str) -> Result<RevertResponse, AgentError> {
        match self
            .call(Method::DELETE, &format!("/v1/faults/{id}"), None)
            .await
        {
            Err(AgentError::Refused { status, .. }) if status == StatusCode::NOT_FOUND.as_u16() => {
                Ok(RevertResponse {
                    id: id.into(),
                    reverted_now: false,
                })
            }
            other => other,
        }
    }
}

/// The agents an experiment uses, by name; `None` is the embedded one.
#[derive(Debug, Clone, Default)]
pub struct Agents {
    pub named: BTreeMap<String, Arc<AgentClient>>,
    pub embedded: Option<Arc<AgentClient>>,
    /// Fault ids the controller reverted itself by sweeping the embedded agent's ledger
    /// after its guardian died.
    pub embedded_swept: Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
}

impl Agents {
    /// Whether the embedded agent's fault `id` was reverted by the sweep of its ledger
    /// after its guardian died.
    pub fn swept_by_controller(&self, id: &str) -> bool {
        self.embedded_swept
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(id)
    }

    /// The client for a fault's `agent:` field.
    pub fn get(&self, name: Option<&str>) -> Option<Arc<AgentClient>> {
        match name {
            Some(n) => self.named.get(n).cloned(),
            None => self.embedded.clone(),
        }
    }
}

#[cfg(test)]
#[path = "agent_tests.rs"]
mod tests;
