//! https:// and HTTP/2 probes against the real sample service over real TLS, with
//! certificates made in the test (rcgen): a private CA trusted by `tls.ca`, handshake
//! failures kept apart by reason, mTLS, the warning of `insecureSkipVerify` in every report
//! form, one multiplexed HTTP/2 connection, the certificate objective and a certificate
//! that changes mid-run.
#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

mod kit;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use kit::certs::{Ca, Lifetime};
use kit::exp::{fault, quoted, Experiment, Map};
use kit::process::{shakeout, wait_listening};
use kit::{free_port, Case, Owned};

/// Names the sample's server certificates are valid for.
const NAMES: &[&str] = &["127.0.0.1", "localhost"];

/// The sample service with TLS on 127.0.0.1:`port`, as a supervised service of the
/// experiment (ready when it accepts TCP: readiness checks speak plain HTTP only).
fn tls_sample(name: &str, port: u16, cert: &Path, key: &Path, extra: &[&str]) -> Map {
    let mut command = format!(
        "[\"${{exe}}\", sample-service, --listen, \"127.0.0.1:{port}\", --tls-cert, {}, --tls-key, {}",
        quoted(cert.display()),
        quoted(key.display())
    );
    for arg in extra {
        command.push_str(&format!(", {}", quoted(arg)));
    }
    command.push(']');
    Map::named(name).with("command", command).with(
        "ready",
        format!("{{ tcp: \"127.0.0.1:{port}\", within: 5s }}"),
    )
}

/// An https:// probe of `path` on 127.0.0.1:`port` at 40/s, its `tls:` and other
/// `http:` fields given as flow text (`tls: { ca: ... }, connection: new`).
fn https_probe(name: &str, port: u16, path: &str, fields: &str) -> Map {
    Map::named(name).with("rate", "40/s").with(
        "http",
        format!("{{ url: \"https://127.0.0.1:{port}{path}\", timeout: 500ms, {fields} }}"),
    )
}

/// `tls: { ca: FILE }` and more.
fn trusting(ca: &Path, more: &str) -> String {
    format!("tls: {{ ca: {}{more} }}", quoted(ca.display()))
}

/// A server certificate from `ca` for 127.0.0.1, written as `STEM.pem` / `STEM.key`.
fn server_cert(case: &Case, ca: &Ca, stem: &str, lifetime: Lifetime) -> (PathBuf, PathBuf) {
    ca.server(stem, NAMES, lifetime).write(case.dir(), stem)
}

#[test]
fn https_probe_trusts_a_private_ca_and_reports_the_certificate_and_set_up_cost() {
    let case = Case::new();
    let ca = Ca::new("shakeout test CA");
    let ca_file = ca.write(case.dir(), "ca");
    let (cert, key) = server_cert(&case, &ca, "api-90d", Lifetime::Days(90));
    let file = case.write(
        Experiment::new("https-ok", "1500ms")
            .service(tls_sample("api", case.port, &cert, &key, &[]))
            .probe(https_probe(
                "fresh",
                case.port,
                "/health",
                &format!("{}, connection: new", trusting(&ca_file, "")),
            ))
            .probe(https_probe(
                "kept",
                case.port,
                "/health",
                &trusting(&ca_file, ""),
            ))
            .objective("certificate", "{ minValidity: 21d }"),
    );
    let ran = case.run(&file);
    assert_eq!(ran.code(), Some(0), "{}", ran.explain());
    let report = ran.report();
    for name in ["fresh", "kept"] {
        let probe = report.probe(name);
        let run = probe.phase("run");
        assert!(run.scheduled >= 40, "{name}: {run:?}");
        assert_eq!(run.ok, run.scheduled, "{name}: {run:?}");
        let tls = probe.tls();
        assert!(!tls.insecure_skip_verify);
        assert!(tls.failures.is_empty(), "{name}: {tls:?}");
        let c = tls.certificate.as_ref().expect("the certificate served");
        assert_eq!(c.subject, "CN=api-90d");
        assert_eq!(c.issuer, "CN=shakeout test CA");
        let verdict = report.verdict(&format!("certificate/{name}"));
        assert_eq!(verdict.status, "pass", "{verdict:?}");
        let measured = verdict.measured.as_deref().unwrap_or_default();
        assert!(
            measured.starts_with("89d") || measured.starts_with("90d"),
            "{measured}"
        );
    }
    // A new connection per send: one TCP connect and one handshake each, both timed.
    let setup = report.probe("fresh").connection_setup();
    let sends = report.probe("fresh").phase("run").scheduled;
    assert_eq!(setup.opened, sends, "{setup:?}");
    let handshake = setup.tls_handshake.as_ref().expect("handshake times");
    assert_eq!(handshake.count, sends);
    assert!(handshake.p50_ms.is_some_and(|p| p > 0.0), "{handshake:?}");
    // Kept alive: a connection per worker, not per send.
    let kept = report.probe("kept").connection_setup();
    assert!(kept.opened < sends / 2, "{kept:?}");
    // The terminal summary says what was served and what connections cost.
    let stdout = ran.stdout();
    assert!(
        stdout.contains("TLS: certificate CN=api-90d (issuer CN=shakeout test CA)"),
        "{stdout}"
    );
    assert!(stdout.contains("tls handshake p50"), "{stdout}");
}

#[test]
fn failed_handshakes_are_tls_outcomes_kept_apart_by_reason() {
    let case = Case::new();
    let ca = Ca::new("right CA");
    let other = Ca::new("other CA");
    let (ca_file, other_file) = (ca.write(case.dir(), "ca"), other.write(case.dir(), "other"));
    let (cert, key) = server_cert(&case, &ca, "good", Lifetime::Days(30));
    let (old_cert, old_key) = server_cert(&case, &ca, "old", Lifetime::Expired);
    let old_port = free_port();
    let file = case.write(
        Experiment::new("https-failures", "1s")
            .service(tls_sample("good", case.port, &cert, &key, &[]))
            .service(tls_sample("old", old_port, &old_cert, &old_key, &[]))
            .probe(https_probe(
                "unknown-ca",
                case.port,
                "/health",
                &trusting(&other_file, ""),
            ))
            .probe(https_probe(
                "wrong-name",
                case.port,
                "/health",
                &trusting(&ca_file, ", serverName: api.example.com"),
            ))
            .probe(https_probe(
                "expired",
                old_port,
                "/health",
                &trusting(&ca_file, ""),
            )),
    );
    let ran = case.run(&file);
    let report = ran.report();
    for (name, reason) in [
        ("unknown-ca", "unknownIssuer"),
        ("wrong-name", "nameMismatch"),
        ("expired", "expired"),
    ] {
        let probe = report.probe(name);
        let run = probe.phase("run");
        assert!(run.scheduled >= 20, "{name}: {run:?}");
        // Every send failed at the handshake, and as nothing else: not a refusal, reset
        // or timeout.
        assert_eq!(run.errors("tls"), run.scheduled, "{name}: {:?}", run.errors);
        assert_eq!(run.errors.len(), 1, "{name}: {:?}", run.errors);
        let tls = probe.tls();
        assert_eq!(
            tls.failures.keys().collect::<Vec<_>>(),
            [reason],
            "{name}: {tls:?}"
        );
        assert_eq!(tls.failures[reason], run.scheduled, "{name}");
        assert!(
            tls.certificate.is_none(),
            "{name}: an unverified certificate was kept"
        );
    }
    let json = report.json().to_string();
    assert!(
        json.contains("UnknownIssuer"),
        "rustls's own words are kept: {json}"
    );
    assert_eq!(
        ran.code(),
        Some(0),
        "no objective failed: {}",
        ran.explain()
    );
}

#[test]
fn mtls_a_server_that_requires_a_client_certificate_gets_one() {
    let case = Case::new();
    let ca = Ca::new("mtls CA");
    let ca_file = ca.write(case.dir(), "ca");
    let (cert, key) = server_cert(&case, &ca, "api", Lifetime::Days(30));
    let (client_cert, client_key) = ca.client("probe").write(case.dir(), "client");
    let client_ca = ca_file.display().to_string();
    let file = case.write(
        Experiment::new("mtls", "1s")
            .service(tls_sample(
                "api",
                case.port,
                &cert,
                &key,
                &["--tls-client-ca", &client_ca],
            ))
            .probe(https_probe(
                "with-cert",
                case.port,
                "/health",
                &trusting(
                    &ca_file,
                    &format!(
                        ", clientCert: {}, clientKey: {}",
                        quoted(client_cert.display()),
                        quoted(client_key.display())
                    ),
                ),
            ))
            .probe(https_probe(
                "without",
                case.port,
                "/health",
                &trusting(&ca_file, ""),
            )),
    );
    let ran = case.run(&file);
    let report = ran.report();
    let with = report.probe("with-cert").phase("run");
    assert!(with.scheduled >= 20, "{with:?}");
    assert_eq!(with.ok, with.scheduled, "{:?}", with.errors);
    let without = report.probe("without");
    let run = without.phase("run");
    assert_eq!(run.ok, 0, "{run:?}");
    // TLS 1.3 ends the client's handshake before the server checks its certificate: the
    // refusal (an alert) arrives on the connection afterwards, unless the server's close
    // beats it to the prober's next write, which is then a reset.
    let (tls, reset) = (run.errors("tls"), run.errors("reset"));
    assert_eq!(
        tls + reset,
        run.scheduled,
        "{:?}\n{}",
        run.errors,
        ran.explain()
    );
    assert!(tls > 0, "no refusal was seen as TLS: {:?}", run.errors);
    let failures = &without.tls().failures;
    assert_eq!(failures.get("rejectedByServer"), Some(&tls), "{failures:?}");
    assert_eq!(failures.len(), 1, "{failures:?}");
}

#[test]
fn insecure_skip_verify_is_a_loud_warning_in_every_report_form() {
    let case = Case::new();
    // Self-signed, and for another name: only skipping verification gets through.
    let (cert, key) =
        kit::certs::self_signed("nobody", "DNS:nobody.example").write(case.dir(), "self");
    let (md, junit) = (case.path("report.md"), case.path("junit.xml"));
    let file = case.write(
        Experiment::new("insecure", "1s")
            .service(tls_sample("api", case.port, &cert, &key, &[]))
            .probe(https_probe(
                "blind",
                case.port,
                "/health",
                "tls: { insecureSkipVerify: true }",
            )),
    );
    let ran = case.run_with(
        &file,
        &[
            "--markdown",
            &md.display().to_string(),
            "--junit",
            &junit.display().to_string(),
        ],
    );
    assert_eq!(ran.code(), Some(0), "{}", ran.explain());
    let report = ran.report();
    let run = report.probe("blind").phase("run");
    assert_eq!(run.ok, run.scheduled, "{run:?}");
    assert!(report.probe("blind").tls().insecure_skip_verify);
    let warning =
        "probe blind has tls.insecureSkipVerify: true: the server's certificate was NOT verified";
    assert!(
        report.warnings.iter().any(|w| w.starts_with(warning)),
        "JSON: {:?}",
        report.warnings
    );
    let stdout = ran.stdout();
    assert!(
        stdout.contains(&format!("WARNING: {warning}")),
        "terminal: {stdout}"
    );
    let markdown = std::fs::read_to_string(&md).unwrap();
    assert!(
        markdown.contains(&format!("**WARNING:** {warning}")),
        "Markdown: {markdown}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let err = doc
        .descendants()
        .find(|n| n.has_tag_name("system-err"))
        .and_then(|n| n.text())
        .unwrap_or_default();
    assert!(err.contains(&format!("WARNING: {warning}")), "JUnit: {xml}");
}

/// GET `path` from the sample on 127.0.0.1:`port` over HTTP/1.1, TLS when `ca` is given
/// (trusting it); the response body.
fn get(port: u16, path: &str, ca: Option<&Path>) -> String {
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    let mut response = String::new();
    match ca {
        None => {
            let mut tcp = tcp;
            tcp.write_all(request.as_bytes()).unwrap();
            tcp.read_to_string(&mut response).unwrap();
        }
        Some(ca) => {
            use rustls::pki_types::pem::PemObject;
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
                roots.add(cert.unwrap()).unwrap();
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            let name = "127.0.0.1".try_into().unwrap();
            let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            tls.write_all(request.as_bytes()).unwrap();
            // The server may close without close_notify; what came before counts.
            let _ = tls.read_to_string(&mut response);
        }
    }
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}

/// Connections the sample on `port` accepted so far (this query's own included).
fn connections(port: u16, ca: Option<&Path>) -> u64 {
    get(port, "/admin/connections", ca).trim().parse().unwrap()
}

#[test]
fn http2_carries_every_send_on_one_connection() {
    let case = Case::new();
    let ca = Ca::new("h2 CA");
    let ca_file = ca.write(case.dir(), "ca");
    let (cert, key) = server_cert(&case, &ca, "h2", Lifetime::Days(30));
    // Started by the test, so it can be asked how many connections it saw after the run.
    let plain_port = free_port();
    let mut services = [
        Owned::spawn(shakeout().stdout(Stdio::null()).args([
            "sample-service",
            "--listen",
            &format!("127.0.0.1:{}", case.port),
            "--tls-cert",
            &cert.display().to_string(),
            "--tls-key",
            &key.display().to_string(),
        ])),
        Owned::spawn(shakeout().stdout(Stdio::null()).args([
            "sample-service",
            "--listen",
            &format!("127.0.0.1:{plain_port}"),
        ])),
    ];
    wait_listening(case.port);
    wait_listening(plain_port);
    let (tls_before, plain_before) = (
        connections(case.port, Some(&ca_file)),
        connections(plain_port, None),
    );
    // `/version` answers `ok HTTP/2.0` to HTTP/2 requests only.
    let h2_only = "expect: { bodyContains: \"ok HTTP/2.0\" }";
    let file = case.write(
        Experiment::new("h2", "1s")
            // ALPN picks h2 (version auto), many sends in flight at once.
            .probe(
                https_probe(
                    "alpn",
                    case.port,
                    "/version",
                    &format!("{}, {h2_only}", trusting(&ca_file, "")),
                )
                .with("rate", "400/s"),
            )
            // Plain text, prior knowledge.
            .probe(
                Map::named("prior")
                    .with("rate", "400/s")
                    .with(
                        "http",
                        format!(
                            "{{ url: \"http://127.0.0.1:{plain_port}/version\", version: http2, {h2_only} }}"
                        ),
                    ),
            ),
    );
    let ran = case.run(&file);
    assert_eq!(ran.code(), Some(0), "{}", ran.explain());
    let report = ran.report();
    for name in ["alpn", "prior"] {
        let probe = report.probe(name);
        let run = probe.phase("run");
        assert!(run.scheduled >= 300, "{name}: {run:?}");
        assert_eq!(run.ok, run.scheduled, "{name}: {:?}", run.errors);
        assert_eq!(probe.connection_setup().opened, 1, "{name}");
    }
    // The servers saw it too: one connection from each probe, plus this query.
    assert_eq!(connections(case.port, Some(&ca_file)), tls_before + 2);
    assert_eq!(connections(plain_port, None), plain_before + 2);
    for s in &mut services {
        s.kill();
    }
}

#[test]
fn certificate_objective_fails_when_the_certificate_expires_too_soon() {
    let case = Case::new();
    let ca = Ca::new("short CA");
    let ca_file = ca.write(case.dir(), "ca");
    let (cert, key) = server_cert(&case, &ca, "short", Lifetime::Days(10));
    let file = case.write(
        Experiment::new("cert-short", "1s")
            .service(tls_sample("api", case.port, &cert, &key, &[]))
            .probe(https_probe(
                "api",
                case.port,
                "/health",
                &trusting(&ca_file, ""),
            ))
            .objective("certificate", "{ probe: api, minValidity: 21d }"),
    );
    // The dry run lists the verdict the run will give.
    let dry = case.run_with(&file, &["--dry-run"]);
    assert!(
        dry.stdout().contains("certificate/api"),
        "{}",
        dry.explain()
    );
    let ran = case.run(&file);
    assert_eq!(ran.code(), Some(1), "{}", ran.explain());
    let verdict = ran.report().verdict("certificate/api");
    assert_eq!(verdict.status, "fail", "{verdict:?}");
    assert_eq!(verdict.required, ">= 21d of validity left");
    let measured = verdict.measured.as_deref().unwrap_or_default();
    assert!(
        measured.starts_with("9d") || measured.starts_with("10d"),
        "{measured}"
    );
}

#[test]
fn a_certificate_that_changes_mid_run_is_an_event_on_the_timeline() {
    let case = Case::new();
    let ca = Ca::new("rotation CA");
    let ca_file = ca.write(case.dir(), "ca");
    let (cert, key) = server_cert(&case, &ca, "before", Lifetime::Days(30));
    let (next_cert, next_key) = server_cert(&case, &ca, "after", Lifetime::Days(60));
    // The service serves `served.pem`; a fault swaps the files and kills it, and the
    // supervisor restarts it with the new certificate.
    let (served, served_key) = (case.path("served.pem"), case.path("served.key"));
    std::fs::copy(&cert, &served).unwrap();
    std::fs::copy(&key, &served_key).unwrap();
    let swap = format!(
        "cp {} {} && cp {} {} && kill -KILL ${{service.api.pid}}",
        next_cert.display(),
        served.display(),
        next_key.display(),
        served_key.display()
    );
    let file = case.write(
        Experiment::new("rotation", "3s")
            .service(
                tls_sample("api", case.port, &served, &served_key, &[])
                    .with("restart", "{ policy: onExit, delay: 0s }"),
            )
            .probe(https_probe(
                "api",
                case.port,
                "/health",
                &trusting(&ca_file, ""),
            ))
            .fault(
                fault("rotate", "1s")
                    .with("exec", format!("{{ command: [sh, -c, {}] }}", quoted(swap))),
            ),
    );
    let ran = case.run(&file);
    let report = ran.report();
    let tls = report.probe("api").tls();
    assert_eq!(tls.certificate_changes, 1, "{}", ran.explain());
    assert_eq!(
        tls.certificate.as_ref().map(|c| c.subject.as_str()),
        Some("CN=after")
    );
    let at = report.event_ms("the server's certificate changed: now CN=after");
    assert_eq!(
        report.fault("rotate").status,
        "applied",
        "{}",
        ran.explain()
    );
    let fault_at = report.json()["faults"][0]["atMs"].as_f64().unwrap();
    assert!(
        at > fault_at && at < 3_000.0,
        "changed at {at} ms, fault at {fault_at} ms"
    );
}

#[test]
fn without_tls_ca_the_system_store_is_trusted_and_an_empty_one_is_refused() {
    let case = Case::new();
    let ca = Ca::new("system CA");
    let ca_file = ca.write(case.dir(), "ca");
    let (cert, key) = server_cert(&case, &ca, "api", Lifetime::Days(30));
    let file = case.write(
        Experiment::new("system-store", "1s")
            .service(tls_sample("api", case.port, &cert, &key, &[]))
            .probe(https_probe(
                "api",
                case.port,
                "/health",
                "connection: keepAlive",
            )),
    );
    // The system's store as rustls-native-certs reads it: SSL_CERT_FILE when set.
    let run_trusting = |store: &Path| {
        let output = case
            .command(&file)
            .env("SSL_CERT_FILE", store)
            .env_remove("SSL_CERT_DIR")
            .output()
            .unwrap();
        let report = kit::report::Report::read(&case.path("report.json"))
            .unwrap_or_else(|| panic!("no report:\n{}", kit::explain(&output)));
        (output, report)
    };
    let (output, report) = run_trusting(&ca_file);
    assert_eq!(output.status.code(), Some(0), "{}", kit::explain(&output));
    let run = report.probe("api").phase("run");
    assert_eq!(run.ok, run.scheduled, "{run:?}");
    let empty = case.path("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let (output, report) = run_trusting(&empty);
    assert_eq!(output.status.code(), Some(3), "{}", kit::explain(&output));
    let reason = report.run.reason.clone().unwrap_or_default();
    assert!(
        reason.starts_with("probe `api`: no trusted CA certificate found in the system's store")
            && reason.contains("set `tls.ca` on the probe"),
        "{reason}"
    );
}
