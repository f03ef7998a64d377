//! `spec.probes`: what to send, how often, and what a good answer looks like; write
//! probes and their backends.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use shakeout_api::{Dur, Rate, StatusRanges};

/// A probe: exactly one of `http`, `tcp`, `grpc` or `write`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProbeSpec {
    pub name: String,
    /// Sends per unit of time, like `200/s`: sends follow this schedule, not the responses.
    pub rate: Rate,
    /// Upper bound on requests in flight (default: enough for rate x timeout, at most 1024).
    /// A send that cannot start before its deadline because of it counts as `missed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpProbeSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpProbeSpec>,
    /// A gRPC health check (`grpc.health.v1.Health/Check`) per scheduled send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcProbeSpec>,
    /// Sequenced writes, read back after the run to measure data loss (RPO).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write: Option<WriteProbeSpec>,
}

/// A write probe: one sequenced write per scheduled send to exactly one backend (`http`
/// or `redis`); after the run every write is read back and classified.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WriteProbeSpec {
    /// Deadline of each write from its intended send time (default 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
    /// Keep the run's keys after the read-back (default false: they are deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_back: Option<ReadBackSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpWriteSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisWriteSpec>,
}

/// Bounds of the read-back after the run (and, again, of the cleanup).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReadBackSpec {
    /// At most this many read requests per unit of time (default 1000/s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
    /// The read-back gives up after this long (default 30s); the `rpo` verdict is then
    /// not measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
}

/// Templated HTTP requests: `{run}`, `{seq}` and `{key}` (= `{run}-{seq}`) are expanded
/// in URLs and bodies. Exactly one of `read` (per key) or `list` (the whole log).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpWriteSpec {
    /// The write; its URL or body must hold `{seq}` or `{key}`.
    pub write: HttpRequestSpec,
    /// Per-key read: 2xx with `{seq}` in the body = present, 404 = missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<HttpRequestSpec>,
    /// One read of everything stored: the body lists keys or sequence numbers, one a
    /// line, in stored order (duplicates and reordering become visible).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<HttpRequestSpec>,
    /// Cleanup: per key when the URL holds `{seq}` or `{key}`, else one request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete: Option<HttpRequestSpec>,
}

/// One templated HTTP request.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpRequestSpec {
    /// GET (default), POST, PUT, PATCH or DELETE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// `http://host:port/path`, with placeholders.
    pub url: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Request body, with placeholders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Statuses that acknowledge a write (default 200-299); ignored for reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<ExpectStatusSpec>,
}

/// Which statuses count as success.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExpectStatusSpec {
    pub status: StatusRanges,
}

/// A Redis backend over RESP.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RedisWriteSpec {
    /// `redis://[user:password@]host:port[/db]`.
    pub url: String,
    /// `set` (default): SET/GET per key; `list`: RPUSH to one list, LRANGE; `stream`:
    /// XADD to one stream, XRANGE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<RedisMode>,
}

/// How writes are stored in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RedisMode {
    /// `SET {key} {seq}`, read back with GET.
    #[default]
    Set,
    /// `RPUSH {run} {seq}`, read back with LRANGE.
    List,
    /// `XADD {run} * seq {seq}`, read back with XRANGE.
    Stream,
}

/// An HTTP request per scheduled send (HTTP/1.1 or HTTP/2, over TLS for https://).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpProbeSpec {
    /// `http://host:port/path` or `https://host:port/path`.
    pub url: String,
    /// GET (default), HEAD, POST, PUT, PATCH, DELETE or OPTIONS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Deadline for the whole request from its intended send time (default 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
    /// Deadline for establishing the connection (default: `timeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<ExpectSpec>,
    /// `keepAlive` (default): reuse connections; `new`: one connection per request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<ConnectionMode>,
    /// `auto` (default): HTTP/2 when a TLS server offers it (ALPN), else HTTP/1.1;
    /// `http1`; `http2` (on http://, with prior knowledge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<HttpVersion>,
    /// TLS settings of an https:// URL (default: the system's trusted CAs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
}

/// Which HTTP version a probe speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub enum HttpVersion {
    /// HTTP/2 when the TLS server offers it (ALPN h2), else HTTP/1.1.
    #[default]
    Auto,
    /// HTTP/1.1 only.
    Http1,
    /// HTTP/2 only: one connection carries every request in flight.
    Http2,
}

/// How an https:// probe trusts the server, and how it proves itself (mTLS).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsSpec {
    /// PEM file of the CA certificates to trust instead of the system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    /// Name the certificate must be valid for (default: the URL's host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Accept any certificate: no chain, name or date check. Reports warn loudly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
    /// PEM certificate (chain) the probe presents to servers that ask (mTLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<String>,
    /// PEM private key of `clientCert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<String>,
}

/// What a good HTTP response looks like.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExpectSpec {
    /// Accepted statuses (default 200-299).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusRanges>,
    /// A substring the response body must contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_contains: Option<String>,
}

/// Connection policy of an HTTP probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub enum ConnectionMode {
    /// Reuse each connection for many requests (sees a restarted listener late).
    #[default]
    KeepAlive,
    /// Open a new connection for every request (sees "process down" at once).
    New,
}

/// A TCP connect per scheduled send; success is an established connection.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TcpProbeSpec {
    /// `host:port`.
    pub address: String,
    /// Connect deadline from the intended send time (default 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
}

/// A `grpc.health.v1.Health/Check` per scheduled send, over one HTTP/2 connection per
/// probe; success is the answer SERVING.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GrpcProbeSpec {
    /// `host:port` of the gRPC server.
    pub address: String,
    /// The service whose health is asked, like `shop.Checkout` (default "": the whole
    /// server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Deadline of each check from its intended send time (default 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
    /// Speak TLS (default: plain text, HTTP/2 with prior knowledge). The same settings as
    /// an https:// probe's; `serverName` defaults to the address's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
}
