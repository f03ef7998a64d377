//! Real Prometheus and Alertmanager (the Debian packages `prometheus` and
//! `prometheus-alertmanager`) on 127.0.0.1 and free ports, their configuration and data in
//! the test's directory, killed when the test ends. Short intervals (scrape and rule
//! evaluation every second) so alerts move within seconds.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::process::{free_port, Owned};

/// The binary names the Debian packages install.
const PROMETHEUS: &str = "prometheus";
const ALERTMANAGER: &str = "prometheus-alertmanager";

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// True when both binaries are installed; otherwise the test is skipped saying so (and
/// fails under CI, where `.ci/run` installs them).
pub fn prometheus_or_skip(test: &str) -> bool {
    let missing: Vec<&str> = [PROMETHEUS, ALERTMANAGER]
        .into_iter()
        .filter(|b| on_path(b).is_none())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!(
        "needs {} on PATH (apt-get install prometheus prometheus-alertmanager)",
        missing.join(" and ")
    );
    assert!(std::env::var_os("CI").is_none(), "{test}: {why}");
    eprintln!("skipping {test}: {why}");
    false
}

/// GET http://127.0.0.1:`port``path`: the status and the body (HTTP/1.0, one connection).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// The status of GET https://127.0.0.1:`port``path`, trusting the certificate `cert`.
pub fn https_status(port: u16, cert: &Path, path: &str) -> Option<u16> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert).ok()? {
        roots.add(c.ok()?).ok()?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").ok()?;
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).ok()?;
    let tcp = TcpStream::connect(("127.0.0.1", port)).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    write!(tls, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut raw = Vec::new();
    // A server closing without close_notify is an error here; what was read counts.
    let _ = tls.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    text.split_whitespace().nth(1)?.parse().ok()
}

/// Percent-encoding of a query parameter.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A running Prometheus.
pub struct Prometheus {
    pub port: u16,
    _process: Owned,
}

/// A running Alertmanager.
pub struct Alertmanager {
    pub port: u16,
    _process: Owned,
}

fn wait_ready(port: u16, what: &str) {
    super::wait::wait_for(
        &format!("{what} on 127.0.0.1:{port} to be ready"),
        Duration::from_secs(30),
        || matches!(http_get(port, "/-/ready"), Some((200, _))),
    );
}

impl Prometheus {
    /// Scrapes each (job, `host:port`) every second and evaluates `rules` (the text of
    /// a rules file, may be empty) every second, sending alerts to `alertmanager`.
    pub fn start(
        dir: &Path,
        jobs: &[(&str, String)],
        rules: &str,
        alertmanager: Option<u16>,
    ) -> Prometheus {
        Prometheus::start_with(dir, jobs, rules, alertmanager, None)
    }

    /// [`Prometheus::start`] serving https only, with the certificate and key of `tls`
    /// (PEM files; the certificate names 127.0.0.1).
    pub fn start_tls(dir: &Path, tls: (&Path, &Path)) -> Prometheus {
        Prometheus::start_with(dir, &[], "", None, Some(tls))
    }

    fn start_with(
        dir: &Path,
        jobs: &[(&str, String)],
        rules: &str,
        alertmanager: Option<u16>,
        tls: Option<(&Path, &Path)>,
    ) -> Prometheus {
        let dir = dir.join(format!("prometheus-{}", free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut config = String::from(
            "global: { scrape_interval: 1s, scrape_timeout: 900ms, evaluation_interval: 1s }\n",
        );
        if !rules.is_empty() {
            std::fs::write(dir.join("rules.yml"), rules).unwrap();
            config.push_str("rule_files: [rules.yml]\n");
        }
        if let Some(am) = alertmanager {
            config.push_str(&format!(
                "alerting:\n  alertmanagers:\n    - static_configs: [ {{ targets: [\"127.0.0.1:{am}\"] }} ]\n"
            ));
        }
        config.push_str("scrape_configs:\n");
        for (job, target) in jobs {
            config.push_str(&format!(
                "  - job_name: {job}\n    static_configs: [ {{ targets: [\"{target}\"] }} ]\n"
            ));
        }
        let file = dir.join("prometheus.yml");
        std::fs::write(&file, config).unwrap();
        let port = free_port();
        let mut cmd = Command::new(PROMETHEUS);
        if let Some((cert, key)) = tls {
            let web = dir.join("web.yml");
            std::fs::write(
                &web,
                format!(
                    "tls_server_config: {{ cert_file: {}, key_file: {} }}\n",
                    cert.display(),
                    key.display()
                ),
            )
            .unwrap();
            cmd.arg(format!("--web.config.file={}", web.display()));
        }
        let process = Owned::spawn(
            cmd.arg(format!("--config.file={}", file.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap()),
        );
        if let Some((cert, _)) = tls {
            super::wait::wait_for(
                &format!("Prometheus on https://127.0.0.1:{port} to be ready"),
                Duration::from_secs(30),
                || https_status(port, cert, "/-/ready") == Some(200),
            );
            return Prometheus {
                port,
                _process: process,
            };
        }
        wait_ready(port, "Prometheus");
        // Discovery hands targets to the scraper in batches (every 5 s): until then
        // nothing is scraped, whatever the interval.
        super::wait::wait_for(
            "Prometheus to start scraping its targets",
            Duration::from_secs(30),
            || {
                http_get(port, "/api/v1/targets").is_some_and(|(_, body)| {
                    let v: Value = serde_json::from_str(&body).unwrap_or_default();
                    v["data"]["activeTargets"].as_array().map_or(0, Vec::len) >= jobs.len()
                })
            },
        );
        Prometheus {
            port,
            _process: process,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The `data.result` of an instant query.
    pub fn query(&self, q: &str) -> Vec<Value> {
        let (status, body) = http_get(self.port, &format!("/api/v1/query?query={}", encode(q)))
            .unwrap_or_else(|| panic!("Prometheus gave no answer to `{q}`"));
        assert_eq!(status, 200, "query `{q}`: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// The first value of an instant query, if any series.
    pub fn value(&self, q: &str) -> Option<f64> {
        self.query(q)
            .first()
            .and_then(|s| s["value"][1].as_str())
            .and_then(|v| v.parse().ok())
    }

    /// Waits until `q` has a value for which `ok` holds.
    pub fn wait_value(&self, q: &str, ok: impl Fn(f64) -> bool) {
        super::wait::wait_for(
            &format!("Prometheus query `{q}` to hold"),
            Duration::from_secs(30),
            || self.value(q).is_some_and(&ok),
        );
    }
}

impl Alertmanager {
    /// One receiver that sends nothing; clustering off.
    pub fn start(dir: &Path) -> Alertmanager {
        let dir = dir.join(format!("alertmanager-{}", free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("alertmanager.yml");
        std::fs::write(
            &file,
            "route: { receiver: none, group_wait: 0s, group_interval: 1s, repeat_interval: 1h }\nreceivers: [ { name: none } ]\n",
        )
        .unwrap();
        let port = free_port();
        let process = Owned::spawn(
            Command::new(ALERTMANAGER)
                .arg(format!("--config.file={}", file.display()))
                .arg(format!("--storage.path={}", dir.join("data").display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--cluster.listen-address=")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.join("alertmanager.log")).unwrap()),
        );
        wait_ready(port, "Alertmanager");
        Alertmanager {
            port,
            _process: process,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}
