//! Rules for `spec.probes`: one target each, targets the prober can actually reach
//! (http:// and https:// URLs, `host:port` addresses), TLS files that can be read, sane
//! limits. The URL and address checks are shared with service readiness checks (plain
//! http:// only).

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{HeaderMap, Method};

use super::Checker;
use crate::experiment::model::{HttpTarget, Probe, ProbeTarget, TcpTarget, DEFAULT_TIMEOUT};
use crate::experiment::spec::{HttpProbeSpec, ProbeSpec, Spec};

/// Methods the HTTP probe sends (`method:` is case-insensitive).
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Check every probe; returns each probe parsed, or `None` where it has a problem.
pub(super) fn check(c: &mut Checker<'_>, spec: &Spec) -> Vec<Option<Probe>> {
    if spec.probes.is_empty() {
        c.report(
            "spec.probes",
            "needs at least one probe, like `- { name: web, rate: 50/s, http: { url: http://127.0.0.1:8080/health } }`",
        );
    }
    c.unique_names(
        "probe",
        spec.probes
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("spec.probes[{i}]"), p.name.as_str())),
    );
    let mut parsed = Vec::new();
    for (i, probe) in spec.probes.iter().enumerate() {
        let before = c.found.len();
        let target = check_probe(c, i, probe);
        parsed.push(
            target
                .filter(|_| c.found.len() == before)
                .map(|target| Probe {
                    name: probe.name.clone(),
                    rate: probe.rate.per_second,
                    max_in_flight: probe.max_in_flight,
                    target,
                }),
        );
    }
    parsed
}

/// One probe's rules; its target, parsed, when it has exactly one.
fn check_probe(c: &mut Checker<'_>, i: usize, probe: &ProbeSpec) -> Option<ProbeTarget> {
    let path = format!("spec.probes[{i}]");
    let name = &probe.name;
    let targets: Vec<&str> = [
        ("http", probe.http.is_some()),
        ("tcp", probe.tcp.is_some()),
        ("grpc", probe.grpc.is_some()),
        ("write", probe.write.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, set)| set.then_some(k))
    .collect();
    match targets.as_slice() {
        [] => c.report(
            &path,
            format!(
                "probe `{name}` has neither `http` nor `tcp` nor `grpc` nor `write`: add \
                 exactly one, like `http: {{ url: http://127.0.0.1:8080/health }}` or \
                 `tcp: {{ address: 127.0.0.1:5432 }}`"
            ),
        ),
        [_] => {}
        [first, rest @ ..] => {
            // Point at the second target: the first one is the probe's.
            let second = rest[0];
            c.report_key(
                &format!("{path}.{second}"),
                format!(
                    "probe `{name}` has both `{first}` and `{second}`: a probe has exactly \
                     one; split it into two probes"
                ),
            );
        }
    }
    if let Some(w) = &probe.write {
        super::write::check(c, &format!("{path}.write"), name, w);
    }
    if probe.max_in_flight == Some(0) {
        c.report(
            &format!("{path}.maxInFlight"),
            "must be at least 1 (leave it out for rate x timeout, at most 1024)",
        );
    }
    let http = probe
        .http
        .as_ref()
        .and_then(|http| check_http(c, &format!("{path}.http"), http));
    let tcp = probe.tcp.as_ref().map(|tcp| {
        let path = format!("{path}.tcp");
        if let Err(e) = super::address::host_port(&tcp.address) {
            c.report(&format!("{path}.address"), e);
        }
        c.positive(&format!("{path}.timeout"), tcp.timeout, "like 500ms");
        TcpTarget {
            address: tcp.address.clone(),
            timeout: tcp.timeout.map(|d| d.0).unwrap_or(DEFAULT_TIMEOUT),
        }
    });
    let grpc = probe
        .grpc
        .as_ref()
        .and_then(|g| super::grpc::check(c, &format!("{path}.grpc"), g));
    match (http, tcp, grpc, &probe.write) {
        (Some(h), None, None, None) => Some(ProbeTarget::Http(h)),
        (None, Some(t), None, None) => Some(ProbeTarget::Tcp(t)),
        (None, None, Some(g), None) => Some(ProbeTarget::Grpc(g)),
        (None, None, None, Some(w)) => Some(ProbeTarget::Write(w.clone())),
        _ => None,
    }
}

/// An HTTP probe's rules; the target, parsed with its defaults, when they all hold.
fn check_http(c: &mut Checker<'_>, path: &str, http: &HttpProbeSpec) -> Option<HttpTarget> {
    let uri = super::address::url(&http.url, true)
        .map_err(|e| c.report(&format!("{path}.url"), e))
        .ok();
    let https = uri
        .as_ref()
        .is_some_and(|u| u.scheme_str() == Some("https"));
    let tls = match (&http.tls, &uri) {
        (Some(_), Some(_)) if !https => {
            c.report_key(
                &format!("{path}.tls"),
                format!(
                    "`tls` applies to https:// URLs only, and `{}` is plain http: use an \
                     https:// URL, or remove `tls`",
                    http.url
                ),
            );
            None
        }
        (spec, Some(uri)) if https => super::tls::check_tls(
            c,
            &format!("{path}.tls"),
            spec.as_ref(),
            uri.host().unwrap_or_default(),
        ),
        _ => None,
    };
    let method = match &http.method {
        None => Some(Method::GET),
        Some(m) if METHODS.contains(&m.to_ascii_uppercase().as_str()) => {
            Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok()
        }
        Some(m) => {
            c.report(
                &format!("{path}.method"),
                format!("`{m}` is not a method the probe sends: use one of {METHODS:?}"),
            );
            None
        }
    };
    let mut headers = Some(HeaderMap::new());
    for (name, value) in &http.headers {
        let at = format!("{path}.headers.{name}");
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Err(_), _) => {
                c.report_key(
                    &at,
                    format!("`{name}` is not a valid header name: use letters, digits and `-`, like X-Request-Id"),
                );
                headers = None;
            }
            (Ok(_), Err(_)) => {
                c.report(
                    &at,
                    "not a valid header value: use visible ASCII characters, spaces and tabs, no line breaks",
                );
                headers = None;
            }
            (Ok(n), Ok(v)) => {
                if let Some(h) = headers.as_mut() {
                    h.insert(n, v);
                }
            }
        }
    }
    c.positive(&format!("{path}.timeout"), http.timeout, "like 500ms");
    c.positive(
        &format!("{path}.connectTimeout"),
        http.connect_timeout,
        "like 200ms",
    );
    let (uri, method, headers) = (uri?, method?, headers?);
    if https && tls.is_none() {
        return None;
    }
    let default_port = if https { 443 } else { 80 };
    let authority = format!("{}:{}", uri.host()?, uri.port_u16().unwrap_or(default_port));
    let timeout = http.timeout.map(|d| d.0).unwrap_or(DEFAULT_TIMEOUT);
    let expect = http.expect.as_ref();
    Some(HttpTarget {
        method,
        authority,
        headers,
        body: Bytes::from(http.body.clone().unwrap_or_default()),
        timeout,
        connect_timeout: http
            .connect_timeout
            .map(|d| d.0)
            .unwrap_or(timeout)
            .min(timeout),
        expect_status: expect.and_then(|e| e.status.clone()).unwrap_or_default(),
        body_contains: expect.and_then(|e| e.body_contains.clone()),
        connection: http.connection.unwrap_or_default(),
        version: http.version.unwrap_or_default(),
        tls,
        uri,
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{one, problems, BASE};
    use super::*;

    #[test]
    fn needs_a_probe() {
        let text = BASE
            .split("    - name: web")
            .next()
            .unwrap_or_default()
            .replace("probes:", "probes: []");
        assert!(one(&text).starts_with("7:11: spec.probes: needs at least one probe"));
    }

    #[test]
    fn probe_names_unique_and_non_empty() {
        let text = format!("{BASE}    - {{ name: web, rate: 1/s, tcp: {{ address: a:1 }} }}\n");
        assert_eq!(
            one(&text),
            "11:15: spec.probes[1].name: probe name `web` is already used by spec.probes[0] \
             at line 8, column 13: probe names must be unique"
        );
        let text = BASE.replace("name: web", "name: \"\"");
        assert_eq!(
            one(&text),
            "8:13: spec.probes[0].name: probe name must not be empty"
        );
    }

    #[test]
    fn exactly_one_target() {
        let both = format!("{BASE}      tcp: {{ address: 127.0.0.1:80 }}\n");
        assert!(one(&both)
            .starts_with("11:7: spec.probes[0].tcp: probe `web` has both `http` and `tcp`"));
        let neither = BASE.replace("      http: { url: http://127.0.0.1:8080/health }\n", "");
        assert!(one(&neither)
            .starts_with("8:7: spec.probes[0]: probe `web` has neither `http` nor `tcp`"));
    }

    #[test]
    fn http_fields() {
        let text = BASE.replace(
            "http: { url: http://127.0.0.1:8080/health }",
            "http: { url: ftp://x/, method: FETCH, timeout: 0s, connectTimeout: 0ms, headers: { \"a b\": x, ok: \"v\\n\" } }",
        );
        let found: Vec<String> = problems(&text).into_iter().map(|d| d.message).collect();
        assert_eq!(found.len(), 6, "{found:#?}");
        assert!(found[0].contains("url: `ftp://x/`: scheme `ftp` is not supported"));
        assert!(found[1].contains("method: `FETCH` is not a method"));
        assert!(found[2].contains("timeout: must be greater than 0s"));
        assert!(found[3].contains("connectTimeout: must be greater than 0s"));
        assert!(found[4].contains("`a b` is not a valid header name"));
        assert!(found[5].contains("headers.ok: not a valid header value"));
        let text = BASE.replace("url: http", "method: head, url: http");
        assert_eq!(problems(&text), vec![]);
    }

    /// The probe `web` of `text`, parsed (`None` when it has a problem).
    fn parsed(text: &str) -> Option<HttpTarget> {
        let exp: crate::experiment::spec::ExperimentFile = serde_yaml::from_str(text).unwrap();
        let positions = crate::experiment::position::Positions::scan(text).unwrap();
        match super::super::check(&exp, &positions, "t.yaml")
            .probes
            .pop()??
        {
            Probe {
                target: ProbeTarget::Http(h),
                ..
            } => Some(h),
            _ => None,
        }
    }

    #[test]
    fn https_defaults_to_port_443_the_system_store_and_the_host_as_name() {
        let text = BASE.replace("http://127.0.0.1:8080/health", "https://api.example/health");
        let h = parsed(&text).unwrap();
        assert_eq!(h.authority, "api.example:443");
        let tls = h.tls.unwrap();
        assert_eq!(tls.server_name, "api.example");
        assert_eq!(
            (tls.ca, tls.client, tls.insecure_skip_verify),
            (None, None, false)
        );
        let plain = parsed(BASE).unwrap();
        assert!(plain.tls.is_none());
        let v6 = BASE.replace("http://127.0.0.1:8080/health", "\"https://[::1]:8443/\"");
        assert_eq!(parsed(&v6).unwrap().tls.unwrap().server_name, "::1");
    }

    #[test]
    fn tls_fields() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").unwrap();
        let not_pem = dir.path().join("key.txt");
        std::fs::write(&not_pem, "hello").unwrap();
        let text = BASE.replace(
            "http: { url: http://127.0.0.1:8080/health }",
            &format!(
                "http: {{ url: \"https://h/\", tls: {{ ca: {}, serverName: \"bad name\", clientKey: {} }} }}",
                ca.display(),
                not_pem.display()
            ),
        );
        let found: Vec<String> = problems(&text).into_iter().map(|d| d.message).collect();
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(
            found[0].contains("serverName: `bad name` is not a DNS name"),
            "{found:#?}"
        );
        assert!(
            found[1].contains("`clientKey` needs `clientCert`"),
            "{found:#?}"
        );
        let text = text
            .replace("serverName: \"bad name\", ", "")
            .replace("clientKey", "clientCert: cert.pem, clientKey");
        let found: Vec<String> = problems(&text).into_iter().map(|d| d.message).collect();
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(
            found[0].contains("tls.clientCert: cannot read `cert.pem`"),
            "{found:#?}"
        );
        assert!(found[1].contains("holds no PEM block"), "{found:#?}");
        let text = BASE.replace("health }", "health, tls: { insecureSkipVerify: true } }");
        assert!(one(&text).contains("`tls` applies to https:// URLs only"));
    }

    #[test]
    fn tcp_and_limits() {
        let text = BASE.replace(
            "http: { url: http://127.0.0.1:8080/health }",
            "tcp: { address: localhost, timeout: 0s }\n      maxInFlight: 0",
        );
        let found: Vec<String> = problems(&text).into_iter().map(|d| d.message).collect();
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(found[0].contains("tcp.address: `localhost` has no port"));
        assert!(found[1].contains("tcp.timeout: must be greater than 0s"));
        assert!(found[2].contains("maxInFlight: must be at least 1"));
    }
}
