//! Readiness: the `http`, `tcp` or `command` check that says a service has started, and
//! the check before each start that its address is not already answered by something
//! else (which would make the readiness check, and the probes, measure that instead).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::expand_exe;
use super::holder;
use crate::experiment::spec::ReadySpec;

const READY_POLL: Duration = Duration::from_millis(20);
/// How long a connection may take to count as answered before a start.
const ANSWER_WITHIN: Duration = Duration::from_millis(500);

/// The `host:port` an `http` or `tcp` check connects to.
pub fn address(ready: &ReadySpec) -> Option<String> {
    if ready.command.is_some() {
        return None;
    }
    if let Some(url) = &ready.http {
        let uri: hyper::Uri = url.parse().ok()?;
        return Some(format!("{}:{}", uri.host()?, uri.port_u16().unwrap_or(80)));
    }
    ready.tcp.clone()
}

/// Something answering at a readiness address before the service was (re)started.
#[derive(Debug, PartialEq)]
pub struct Taken {
    /// The address as the check names it (`host:port`).
    pub address: String,
    /// Who listens there, when `/proc` says.
    pub holder: Option<holder::Holder>,
}

impl Taken {
    /// ` (held by pid N `name`)`, or nothing when the holder is unknown.
    pub fn held(&self) -> String {
        self.holder
            .as_ref()
            .map(|h| format!(" (held by {h})"))
            .unwrap_or_default()
    }
}

/// What accepts connections at the readiness address now, before the service is
/// (re)started; `None` when nothing does, or the check has no address.
pub async fn taken(ready: &ReadySpec) -> Option<Taken> {
    let address = address(ready)?;
    let reached = answering(&address).await?;
    let holder = tokio::task::spawn_blocking(move || holder::holder(reached))
        .await
        .ok()
        .flatten();
    Some(Taken { address, holder })
}

/// The first of `address`'s socket addresses that accepts a connection.
async fn answering(address: &str) -> Option<SocketAddr> {
    let candidates = tokio::net::lookup_host(address).await.ok()?;
    for addr in candidates {
        let connect = tokio::net::TcpStream::connect(addr);
        if let Ok(Ok(_)) = tokio::time::timeout(ANSWER_WITHIN, connect).await {
            return Some(addr);
        }
    }
    None
}

/// Poll the readiness check until it passes or `within` elapses.
pub async fn wait_ready(ready: &ReadySpec, within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    let mut last = String::from("never checked");
    while Instant::now() < deadline {
        let result = match (&ready.http, &ready.tcp) {
            _ if ready.command.is_some() => {
                check_command(ready.command.as_deref().unwrap_or_default()).await
            }
            (Some(url), _) => check_http(url).await,
            (None, Some(addr)) => tokio::net::TcpStream::connect(addr)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            (None, None) => Ok(()),
        };
        match result {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
        tokio::time::sleep(READY_POLL).await;
    }
    Err(format!(
        "not ready within {} (last check: {last})",
        shakeout_api::Dur(within)
    ))
}

/// Run the readiness command once (bounded); ready means exit status 0.
async fn check_command(argv: &[String]) -> Result<(), String> {
    let argv: Vec<String> = argv.iter().map(|a| expand_exe(a)).collect();
    let report = crate::run::exec::run_command(
        &argv,
        &Default::default(),
        Duration::from_secs(5),
        Instant::now(),
    )
    .await;
    if report.success {
        return Ok(());
    }
    let detail = report
        .error
        .clone()
        .unwrap_or_else(|| crate::verdict::describe_action(&report));
    let stderr = report.stderr.trim();
    Err(if stderr.is_empty() {
        format!("`{}`: {detail}", argv.join(" "))
    } else {
        format!("`{}`: {detail}: {stderr}", argv.join(" "))
    })
}

/// One GET; ready means a 2xx answer.
pub async fn check_http(url: &str) -> Result<(), String> {
    use http_body_util::Empty;
    use hyper_util::rt::TokioIo;
    let uri: hyper::Uri = url.parse().map_err(|e| format!("bad URL `{url}`: {e}"))?;
    let host = uri
        .host()
        .ok_or_else(|| format!("URL `{url}` has no host"))?;
    let addr = format!("{host}:{}", uri.port_u16().unwrap_or(80));
    let stream = tokio::net::TcpStream::connect(&addr)
        .await
        .map_err(|e| format!("{addr}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = hyper::Request::get(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
        .header(hyper::header::HOST, addr.as_str())
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("{url} answered {}", resp.status()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(http: Option<&str>, tcp: Option<&str>) -> ReadySpec {
        ReadySpec {
            http: http.map(String::from),
            tcp: tcp.map(String::from),
            command: None,
            within: None,
        }
    }

    #[test]
    fn the_address_a_check_connects_to() {
        assert_eq!(
            address(&ready(Some("http://127.0.0.1:8080/health"), None)).as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(
            address(&ready(Some("http://localhost/"), None)).as_deref(),
            Some("localhost:80")
        );
        assert_eq!(
            address(&ready(None, Some("127.0.0.1:9"))).as_deref(),
            Some("127.0.0.1:9")
        );
        let mut by_command = ready(None, None);
        by_command.command = Some(vec!["true".into()]);
        assert_eq!(address(&by_command), None);
    }

    #[tokio::test]
    async fn a_taken_address_names_its_holder() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let found = taken(&ready(None, Some(&addr))).await.unwrap();
        assert_eq!(found.address, addr);
        assert_eq!(
            found.held(),
            format!(
                " (held by pid {} `{}`)",
                std::process::id(),
                std::fs::read_to_string("/proc/self/comm")
                    .unwrap()
                    .trim_end()
            )
        );
        drop(listener);
        assert_eq!(taken(&ready(None, Some(&addr))).await, None);
    }
}
