//! A small client for the HTTP APIs of Prometheus and Alertmanager: one connection per
//! request (a request every second or so needs no pool), a deadline on each, and errors
//! that say which server, which request and what it answered (Prometheus's own
//! `errorType: error` text for a refused query).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION, HOST};
use hyper::{HeaderMap, Request, Uri};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::MonitorError;

/// Bodies above this are refused: an answer this big is not one we asked for.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// One server's API.
#[derive(Clone)]
pub struct Api {
    /// `Prometheus at http://...` for messages.
    pub name: String,
    authority: String,
    /// The URL's path prefix, without a trailing `/`.
    prefix: String,
    headers: HeaderMap,
    /// For https://: the connector and the name the certificate must carry.
    tls: Option<(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    )>,
}

/// Anything hyper can speak HTTP/1.1 over: plain TCP or TLS.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// One series of an instant vector: its labels as PromQL writes them, and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub series: String,
    pub value: f64,
}

impl Api {
    /// `what` is `Prometheus` or `Alertmanager`; `url` was checked by the file's rules.
    pub fn new(
        what: &str,
        url: &str,
        headers: &[(String, String)],
        token: Option<&str>,
        tls: Option<tokio_rustls::TlsConnector>,
    ) -> Result<Api, MonitorError> {
        let name = format!("{what} at {url}");
        let bad = |why: String| MonitorError::Config(format!("{name}: {why}"));
        let uri: Uri = url.parse().map_err(|e| bad(format!("{e}")))?;
        let host = uri.host().ok_or_else(|| bad("no host".into()))?;
        let https = uri.scheme_str() == Some("https");
        let authority = format!(
            "{host}:{}",
            uri.port_u16().unwrap_or(if https { 443 } else { 80 })
        );
        let tls = match (https, tls) {
            (false, _) => None,
            (true, None) => return Err(bad("https needs `tls`".into())),
            (true, Some(connector)) => {
                let host = host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned();
                let name = rustls::pki_types::ServerName::try_from(host)
                    .map_err(|e| bad(e.to_string()))?;
                Some((connector, name))
            }
        };
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            let key =
                HeaderName::try_from(k.as_str()).map_err(|e| bad(format!("header `{k}`: {e}")))?;
            let value =
                HeaderValue::try_from(v.as_str()).map_err(|e| bad(format!("header `{k}`: {e}")))?;
            map.insert(key, value);
        }
        if let Some(t) = token {
            let value = HeaderValue::try_from(format!("Bearer {}", t.trim()))
                .map_err(|_| bad("the bearer token is not a valid header value".into()))?;
            map.insert(AUTHORIZATION, value);
        }
        Ok(Api {
            name,
            authority,
            prefix: uri.path().trim_end_matches('/').to_string(),
            headers: map,
            tls,
        })
    }

    /// GET `path` (with its query string): the status and the body.
    async fn get(&self, path: &str, timeout: Duration) -> Result<(u16, Bytes), MonitorError> {
        let what = format!("{}: GET {path}", self.name);
        let fail = |why: String| MonitorError::Request(format!("{what}: {why}"));
        let exchange = async {
            let stream = tokio::net::TcpStream::connect(&self.authority)
                .await
                .map_err(|e| fail(format!("cannot connect: {e}")))?;
            let stream: Box<dyn Io> = match &self.tls {
                None => Box::new(stream),
                Some((connector, name)) => Box::new(
                    connector
                        .connect(name.clone(), stream)
                        .await
                        .map_err(|e| fail(format!("TLS: {e}")))?,
                ),
            };
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| fail(e.to_string()))?;
            tokio::spawn(conn);
            let mut req = Request::get(format!("{}{path}", self.prefix))
                .header(HOST, &self.authority)
                .body(Empty::<Bytes>::new())
                .map_err(|e| fail(e.to_string()))?;
            req.headers_mut().extend(self.headers.clone());
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| fail(e.to_string()))?;
            let status = resp.status().as_u16();
            let body = http_body_util::Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| fail(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok((status, body))
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(fail(format!(
                "no answer within {}",
                crate::text::duration(timeout)
            ))),
        }
    }

    /// GET `path` and parse JSON; Prometheus's error envelope (`status: error`) becomes
    /// a [`MonitorError::Refused`] carrying its `errorType` and `error`.
    pub async fn json(&self, path: &str, timeout: Duration) -> Result<Value, MonitorError> {
        let (status, body) = self.get(path, timeout).await?;
        let parsed: Option<Value> = serde_json::from_slice(&body).ok();
        if let Some(err) = parsed
            .as_ref()
            .filter(|v| v["status"] == "error")
            .and_then(|v| v["error"].as_str())
        {
            let kind = parsed
                .as_ref()
                .and_then(|v| v["errorType"].as_str())
                .unwrap_or("error");
            return Err(MonitorError::Refused(format!(
                "{} refused {path} (HTTP {status}): {kind}: {err}",
                self.name
            )));
        }
        if !(200..300).contains(&status) {
            let text = String::from_utf8_lossy(&body[..body.len().min(300)])
                .trim()
                .to_string();
            return Err(MonitorError::Refused(format!(
                "{}: GET {path}: HTTP {status}: {text}",
                self.name
            )));
        }
        parsed.ok_or_else(|| {
            MonitorError::Request(format!("{}: GET {path}: the answer is not JSON", self.name))
        })
    }

    /// An instant query now: every series and its value (a scalar is one series `{}`).
    pub async fn instant(
        &self,
        query: &str,
        timeout: Duration,
    ) -> Result<Vec<Sample>, MonitorError> {
        let path = format!("/api/v1/query?query={}", encode(query));
        let v = self.json(&path, timeout).await?;
        let data = &v["data"];
        match data["resultType"].as_str() {
            Some("vector") => Ok(data["result"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| {
                    Some(Sample {
                        series: series(&s["metric"]),
                        value: number(&s["value"][1])?,
                    })
                })
                .collect()),
            Some("scalar") => Ok(number(&data["result"][1])
                .map(|value| Sample {
                    series: "{}".into(),
                    value,
                })
                .into_iter()
                .collect()),
            other => Err(MonitorError::Refused(format!(
                "{}: query `{query}` gives a {}, not a number per series: use an instant vector or a scalar",
                self.name,
                other.unwrap_or("result of no type")
            ))),
        }
    }

    /// A range query from `start` to `end` every `step`: each series' values in order.
    pub async fn range(
        &self,
        query: &str,
        start: SystemTime,
        end: SystemTime,
        step: Duration,
        timeout: Duration,
    ) -> Result<Vec<(String, Vec<f64>)>, MonitorError> {
        let path = format!(
            "/api/v1/query_range?query={}&start={:.3}&end={:.3}&step={:.3}",
            encode(query),
            unix(start),
            unix(end),
            step.as_secs_f64().max(0.001)
        );
        let v = self.json(&path, timeout).await?;
        Ok(v["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                let values = s["values"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| number(&p[1]))
                    .collect();
                (series(&s["metric"]), values)
            })
            .collect())
    }
}

/// Seconds since the Unix epoch.
pub fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// Prometheus sends sample values as strings (`"1"`, `"NaN"`, `"+Inf"`).
fn number(v: &Value) -> Option<f64> {
    v.as_str().and_then(|s| s.parse().ok())
}

/// `name{a="b"}`, as PromQL writes a series.
fn series(metric: &Value) -> String {
    let Some(map) = metric.as_object() else {
        return "{}".into();
    };
    let name = map.get("__name__").and_then(Value::as_str).unwrap_or("");
    let labels: Vec<String> = map
        .iter()
        .filter(|(k, _)| *k != "__name__")
        .map(|(k, v)| format!("{k}=\"{}\"", v.as_str().unwrap_or("")))
        .collect();
    format!("{name}{{{}}}", labels.join(","))
}

/// Percent-encoding of a query parameter (everything but unreserved characters).
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_encoded_whole() {
        assert_eq!(
            encode("up{job=\"a b\"} > 0"),
            "up%7Bjob%3D%22a%20b%22%7D%20%3E%200"
        );
    }

    #[test]
    fn series_read_as_promql_writes_them() {
        let m = serde_json::json!({"__name__": "up", "job": "sample"});
        assert_eq!(series(&m), "up{job=\"sample\"}");
        assert_eq!(
            number(&serde_json::json!("NaN")).map(f64::is_nan),
            Some(true)
        );
        assert_eq!(number(&serde_json::json!("+Inf")), Some(f64::INFINITY));
    }
}
