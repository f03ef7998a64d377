//! The HTTP backend of the write probe: templated write, read, list and delete requests
//! over a keep-alive HTTP/1.1 connection per worker (and one for the read-back).

use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderName, HeaderValue, HOST};
use hyper::{HeaderMap, Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use shakeout_api::StatusRanges;
use tokio::net::TcpStream;
use tokio::time::timeout_at;

use crate::experiment::spec::{HttpRequestSpec, HttpWriteSpec};
use crate::experiment::template::Template;
use crate::probe::classify::{self, Stage};
use crate::probe::Outcome;

/// One templated request.
#[derive(Debug, Clone)]
pub struct RequestTemplate {
    method: Method,
    url: Template,
    headers: HeaderMap,
    body: Template,
    expect: StatusRanges,
}

impl RequestTemplate {
    fn from_spec(spec: &HttpRequestSpec, what: &str, default: Method) -> Result<Self, String> {
        let method = match &spec.method {
            Some(m) => Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                .map_err(|_| format!("http.{what}.method `{m}` is not an HTTP method"))?,
            None => default,
        };
        let mut headers = HeaderMap::new();
        for (k, v) in &spec.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("http.{what}.headers: `{k}` is not a valid header name"))?;
            let value = HeaderValue::from_str(v)
                .map_err(|_| format!("http.{what}.headers.{k}: not a valid header value"))?;
            headers.insert(name, value);
        }
        Ok(RequestTemplate {
            method,
            url: Template::parse(&spec.url),
            headers,
            body: Template::parse(spec.body.as_deref().unwrap_or_default()),
            expect: spec
                .expect
                .as_ref()
                .map(|e| e.status.clone())
                .unwrap_or_default(),
        })
    }

    /// The request for write `seq`, and the `host:port` it goes to.
    fn build(&self, run: &str, seq: u64) -> Result<(String, Request<Full<Bytes>>), String> {
        let url = self.url.expand(run, seq);
        let uri: Uri = url.parse().map_err(|e| format!("`{url}`: {e}"))?;
        let host = uri.host().ok_or_else(|| format!("`{url}` has no host"))?;
        let authority = format!("{host}:{}", uri.port_u16().unwrap_or(80));
        let mut request = Request::new(Full::new(Bytes::from(self.body.expand(run, seq))));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = uri
            .path_and_query()
            .map_or(Uri::from_static("/"), |pq| Uri::from(pq.clone()));
        let mut headers = self.headers.clone();
        if !headers.contains_key(HOST) {
            if let Some(a) = uri.authority() {
                if let Ok(v) = HeaderValue::from_str(a.as_str()) {
                    headers.insert(HOST, v);
                }
            }
        }
        *request.headers_mut() = headers;
        Ok((authority, request))
    }

    /// The request's method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// Where this request goes (for the backend preflight and descriptions).
    pub fn url(&self, run: &str) -> String {
        self.url.expand(run, 0)
    }
}

/// How the HTTP backend reads writes back.
#[derive(Debug, Clone)]
pub enum Read {
    /// One request per key.
    Key(RequestTemplate),
    /// One request for the whole stored log.
    List(RequestTemplate),
}

/// Templated requests of one HTTP write probe.
#[derive(Debug, Clone)]
pub struct HttpBackend {
    pub write: RequestTemplate,
    pub read: Read,
    pub delete: Option<RequestTemplate>,
    /// The delete URL names a key: one request per write instead of one for the run.
    pub delete_per_key: bool,
}

impl HttpBackend {
    pub fn from_spec(spec: &HttpWriteSpec) -> Result<Self, String> {
        let write = RequestTemplate::from_spec(&spec.write, "write", Method::PUT)?;
        let read = match (&spec.read, &spec.list) {
            (Some(r), None) => Read::Key(RequestTemplate::from_spec(r, "read", Method::GET)?),
            (None, Some(l)) => Read::List(RequestTemplate::from_spec(l, "list", Method::GET)?),
            _ => return Err("http needs exactly one of `read` or `list`".into()),
        };
        let delete = match &spec.delete {
            Some(d) => Some(RequestTemplate::from_spec(d, "delete", Method::DELETE)?),
            None => None,
        };
        Ok(HttpBackend {
            delete_per_key: delete.as_ref().is_some_and(|d| d.url.per_write()),
            write,
            read,
            delete,
        })
    }
}

/// One keep-alive connection; a fresh one after any failure.
#[derive(Default)]
pub struct Client {
    conn: Option<(String, SendRequest<Full<Bytes>>)>,
}

impl Client {
    /// Send `template` for `seq` and read the whole response before `deadline`.
    pub async fn send(
        &mut self,
        template: &RequestTemplate,
        run: &str,
        seq: u64,
        deadline: Instant,
    ) -> Result<(StatusCode, Bytes), Outcome> {
        let (authority, request) = template.build(run, seq).map_err(|_| Outcome::Other)?;
        let deadline = tokio::time::Instant::from_std(deadline);
        let reusable = matches!(&self.conn, Some((a, tx)) if *a == authority && !tx.is_closed());
        if !reusable {
            self.conn = None;
            let tx = match timeout_at(deadline, connect(&authority)).await {
                Ok(Ok(tx)) => tx,
                Ok(Err(outcome)) => return Err(outcome),
                Err(_elapsed) => return Err(Outcome::ConnectTimeout),
            };
            self.conn = Some((authority, tx));
        }
        let Some((_, tx)) = self.conn.as_mut() else {
            return Err(Outcome::Other);
        };
        let exchange = async {
            tx.ready().await?;
            let response = tx.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        };
        match timeout_at(deadline, exchange).await {
            Ok(Ok(answer)) => Ok(answer),
            // A failed or timed-out exchange leaves the connection in an unknown state.
            Ok(Err(error)) => {
                self.conn = None;
                Err(classify::hyper_error(&error))
            }
            Err(_elapsed) => {
                self.conn = None;
                Err(Outcome::Timeout)
            }
        }
    }
}

async fn connect(authority: &str) -> Result<SendRequest<Full<Bytes>>, Outcome> {
    let stream = TcpStream::connect(authority)
        .await
        .map_err(|e| classify::io_error(&e, Stage::Connect))?;
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "cannot set TCP_NODELAY on write probe connection");
    }
    let (tx, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| classify::hyper_error(&e))?;
    // The connection task ends when `tx` is dropped and the connection is idle.
    tokio::spawn(async move {
        if let Err(error) = conn.await {
            tracing::debug!(%error, "write probe connection ended");
        }
    });
    Ok(tx)
}

/// Outcome of a write: acknowledged when the status is one the write expects.
pub fn write_outcome(template: &RequestTemplate, answer: Result<StatusCode, Outcome>) -> Outcome {
    match answer {
        Ok(status) if template.expect.contains(status.as_u16()) => Outcome::Ok,
        Ok(_) => Outcome::Status,
        Err(outcome) => outcome,
    }
}

/// A per-key read: 2xx holding the sequence number is present, 404/410 missing (so is a
/// 2xx holding something else: the write's data is not there); anything else is an error
/// the read-back retries.
pub fn key_present(seq: u64, status: StatusCode, body: &[u8]) -> Result<bool, String> {
    if status.is_success() {
        let needle = seq.to_string();
        return Ok(body.windows(needle.len()).any(|w| w == needle.as_bytes()));
    }
    match status.as_u16() {
        404 | 410 => Ok(false),
        _ => Err(format!("status {status}")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    fn spec(url: &str, body: Option<&str>) -> HttpRequestSpec {
        HttpRequestSpec {
            method: None,
            url: url.into(),
            headers: Default::default(),
            body: body.map(Into::into),
            expect: None,
        }
    }

    #[test]
    fn requests_are_expanded_per_write() {
        let t = RequestTemplate::from_spec(
            &spec("http://127.0.0.1:9/kv/{key}?s={seq}", Some("{seq}")),
            "write",
            Method::PUT,
        )
        .unwrap();
        let (authority, req) = t.build("so-1", 7).unwrap();
        assert_eq!(authority, "127.0.0.1:9");
        assert_eq!(req.method(), Method::PUT);
        assert_eq!(req.uri(), "/kv/so-1-7?s=7");
        assert_eq!(req.headers()[HOST], "127.0.0.1:9");
        assert_eq!(write_outcome(&t, Ok(StatusCode::NO_CONTENT)), Outcome::Ok);
        assert_eq!(
            write_outcome(&t, Ok(StatusCode::SERVICE_UNAVAILABLE)),
            Outcome::Status
        );
    }

    #[test]
    fn per_key_reads_need_the_sequence_number_in_a_2xx_body() {
        assert_eq!(key_present(12, StatusCode::OK, b"12\n"), Ok(true));
        assert_eq!(key_present(12, StatusCode::OK, b"other"), Ok(false));
        assert_eq!(key_present(12, StatusCode::NOT_FOUND, b""), Ok(false));
        assert!(key_present(12, StatusCode::BAD_GATEWAY, b"")
            .unwrap_err()
            .contains("502"));
    }
}
