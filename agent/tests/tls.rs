//! TLS: the real binary with `--tls-cert/--tls-key` serves the API over rustls, and a
//! plain-text request to it gets nowhere. The certificate is made in process (rcgen).
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_over_tls_with_bearer_token() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let tokens = tokens_file(dir.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_shakeout-agent"))
        .args(["--listen", "127.0.0.1:0", "--state-dir"])
        .arg(dir.path().join("state"))
        .arg("--tokens")
        .arg(&tokens)
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let _guard = Kid(child);
    let addr: std::net::SocketAddr = line
        .trim()
        .strip_prefix("listening ")
        .unwrap()
        .parse()
        .unwrap();

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(&cert).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = connector
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get("/v1/capabilities")
        .header("host", "agent")
        .header("authorization", format!("Bearer {SECRET}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let caps: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(caps["maxDuration"], "10m");

    // Plain HTTP to the TLS port is not served.
    let plain = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut s, c) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(c);
        s.send_request(
            hyper::Request::get("/v1/health")
                .header("host", "a")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
    })
    .await
    .unwrap();
    assert!(plain.is_err(), "plain HTTP was answered on the TLS port");
}
