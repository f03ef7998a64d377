//! The request a probe repeats, prepared once: its HTTP/1.1 and HTTP/2 forms, and how a
//! response is judged (status, and the body searched only when it must be).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION, HOST};
use hyper::{HeaderMap, Method, Request, Uri};
use shakeout_api::StatusRanges;

use crate::experiment::spec::{ConnectionMode, HttpVersion};
use crate::probe::{HttpTarget, Outcome};

/// The request every send repeats, prepared once per probe.
#[derive(Debug)]
pub(super) struct Plan {
    pub(super) method: Method,
    /// Origin form (path and query): what an HTTP/1.1 request line carries.
    pub(super) uri: Uri,
    /// Configured headers plus `Host` (and `Connection: close` for new-connection mode).
    pub(super) headers: HeaderMap,
    /// Absolute form, for HTTP/2's `:scheme` and `:authority`.
    pub(super) h2_uri: Uri,
    /// Configured headers only: HTTP/2 has `:authority` and no connection headers.
    pub(super) h2_headers: HeaderMap,
    pub(super) body: Bytes,
    pub(super) authority: String,
    pub(super) connect_timeout: Duration,
    pub(super) expect_status: StatusRanges,
    pub(super) body_contains: Option<Vec<u8>>,
    pub(super) keep_alive: bool,
    pub(super) version: HttpVersion,
}

impl Plan {
    pub(super) fn new(target: &HttpTarget) -> Self {
        let mut headers = target.headers.clone();
        let mut h2_headers = target.headers.clone();
        h2_headers.remove(CONNECTION);
        if !headers.contains_key(HOST) {
            if let Some(host) = target
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            {
                headers.insert(HOST, host);
            }
        }
        let keep_alive = target.connection == ConnectionMode::KeepAlive;
        if !keep_alive && !headers.contains_key(CONNECTION) {
            // Let the server close first, so its side holds TIME_WAIT and the prober does
            // not run out of ephemeral ports at high rates.
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        let uri = match target.uri.path_and_query() {
            Some(pq) => Uri::from(pq.clone()),
            None => Uri::from_static("/"),
        };
        Plan {
            method: target.method.clone(),
            uri,
            headers,
            h2_uri: target.uri.clone(),
            h2_headers,
            body: target.body.clone(),
            authority: target.authority.clone(),
            connect_timeout: target.connect_timeout,
            expect_status: target.expect_status.clone(),
            body_contains: target.body_contains.as_ref().map(|s| s.as_bytes().to_vec()),
            keep_alive,
            version: target.version,
        }
    }

    /// A fresh request; the clones are reference counts except the header map, which
    /// hyper consumes.
    pub(super) fn request(&self) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(self.body.clone()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }

    pub(super) fn h2_request(&self) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(self.body.clone()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.h2_uri.clone();
        *request.headers_mut() = self.h2_headers.clone();
        request
    }

    /// Whether `status` and the body (per `bodyContains`) make an ok response.
    pub(super) async fn judge(
        &self,
        response: hyper::Response<Incoming>,
    ) -> Result<Outcome, hyper::Error> {
        let status_ok = self.expect_status.contains(response.status().as_u16());
        let body_ok = read_body(response.into_body(), self.body_contains.as_deref()).await?;
        Ok(match (status_ok, body_ok) {
            (true, true) => Outcome::Ok,
            (false, _) => Outcome::Status,
            (true, false) => Outcome::Body,
        })
    }
}

/// Read the body: only buffered when it must be searched, otherwise drained frame by
/// frame (the connection can only be reused once the body is consumed).
async fn read_body(mut body: Incoming, needle: Option<&[u8]>) -> Result<bool, hyper::Error> {
    match needle {
        None => {
            while let Some(frame) = body.frame().await {
                frame?;
            }
            Ok(true)
        }
        Some(needle) => {
            let bytes = body.collect().await?.to_bytes();
            Ok(contains(&bytes, needle))
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    fn target(url: &str, connection: ConnectionMode) -> HttpTarget {
        let uri: Uri = url.parse().unwrap();
        HttpTarget {
            method: Method::GET,
            authority: "127.0.0.1:8080".into(),
            uri,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            expect_status: StatusRanges::default(),
            body_contains: Some("ok".into()),
            connection,
            version: HttpVersion::Auto,
            tls: None,
        }
    }

    #[test]
    fn request_line_is_origin_form_with_host() {
        let plan = Plan::new(&target(
            "http://svc.local:8080/health?deep=1",
            ConnectionMode::KeepAlive,
        ));
        let req = plan.request();
        assert_eq!(req.uri().to_string(), "/health?deep=1");
        assert_eq!(req.headers()[HOST], "svc.local:8080");
        assert!(!req.headers().contains_key(CONNECTION));
        let bare = Plan::new(&target("http://svc.local", ConnectionMode::New));
        assert_eq!(bare.request().uri(), "/");
        assert_eq!(bare.request().headers()[CONNECTION], "close");
        assert_eq!(bare.request().headers()[HOST], "svc.local");
    }

    #[test]
    fn configured_host_wins() {
        let mut t = target("http://10.0.0.1/", ConnectionMode::KeepAlive);
        t.headers
            .insert(HOST, HeaderValue::from_static("api.example"));
        assert_eq!(Plan::new(&t).request().headers()[HOST], "api.example");
    }

    #[test]
    fn substring_search_spans_the_whole_body() {
        assert!(contains(b"status: ok", b"ok"));
        assert!(!contains(b"status: o", b"ok"));
        assert!(contains(b"", b""));
        assert!(!contains(b"", b"x"));
    }
}
