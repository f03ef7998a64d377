//! gRPC health probes against the real sample service's `grpc.health.v1` server (tonic-health):
//! SERVING is ok and passes availability, NOT_SERVING flipped mid-run is `notServing` for
//! exactly the flip window, an unknown service is a NOT_FOUND `grpcStatus`, a killed and
//! restarted server is refused and then recovers with an RTO, and TLS with a private CA
//! works while the wrong CA is a `tls` outcome.
#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

mod kit;

use std::path::Path;

use kit::certs::{Ca, Lifetime};
use kit::exp::{fault, quoted, Experiment, Map};
use kit::{free_port, Case};

/// The sample service named `sample`: HTTP on 127.0.0.1:`port` (ready when /health
/// answers; the gRPC listener is bound before the HTTP one), gRPC on `grpc`.
fn grpc_sample(port: u16, grpc: u16) -> Map {
    Map::named("sample")
        .with(
            "command",
            format!(
                "[\"${{exe}}\", sample-service, --listen, \"127.0.0.1:{port}\", --grpc-listen, \"127.0.0.1:{grpc}\"]"
            ),
        )
        .with(
            "ready",
            format!("{{ http: \"http://127.0.0.1:{port}/health\", within: 5s }}"),
        )
}

/// A gRPC health probe of 127.0.0.1:`port` at `rate`, more `grpc:` fields as flow text.
fn grpc_probe(name: &str, port: u16, rate: &str, fields: &str) -> Map {
    Map::named(name).with("rate", rate).with(
        "grpc",
        format!("{{ address: \"127.0.0.1:{port}\", timeout: 500ms{fields} }}"),
    )
}

/// `curl -sf -X POST` of the sample's health flip to `status`, as an exec command.
fn flip(port: u16, status: &str) -> String {
    format!("[curl, -sf, -X, POST, \"http://127.0.0.1:{port}/admin/grpc-health?status={status}\"]")
}

#[test]
fn a_serving_server_passes_availability_over_one_connection() {
    let case = Case::new();
    let grpc = free_port();
    let file = case.write(
        Experiment::new("grpc-ok", "1500ms")
            .service(grpc_sample(case.port, grpc))
            .probe(grpc_probe("server", grpc, "100/s", ""))
            .probe(grpc_probe("named", grpc, "100/s", ", service: sample"))
            .objective("availability", "{ during: run, min: 99.9% }"),
    );
    let ran = case.run(&file);
    assert_eq!(ran.code(), Some(0), "{}", ran.explain());
    let report = ran.report();
    for (name, service) in [("server", ""), ("named", "sample")] {
        let probe = report.probe(name);
        let run = probe.phase("run");
        assert!(run.scheduled >= 140, "{name}: {run:?}");
        assert_eq!(run.ok, run.scheduled, "{name}: {run:?}");
        // Every ok check has its latency recorded.
        assert_eq!(run.latency.count, run.ok, "{name}");
        let g = probe.grpc();
        assert_eq!(g.service, service);
        assert!(g.statuses.is_empty(), "{name}: {g:?}");
        // Every check in flight multiplexed on one HTTP/2 connection.
        assert_eq!(probe.connection_setup().opened, 1, "{name}");
        let verdict = report.verdict(&format!("availability/{name}/run"));
        assert_eq!(verdict.status, "pass", "{verdict:?}");
    }
    let kind = &report.json()["probes"][0]["kind"];
    assert_eq!(kind, "grpc");
}

#[test]
fn not_serving_mid_run_counts_for_the_flip_window() {
    let case = Case::new();
    let grpc = free_port();
    let rate = 200.0;
    let file = case.write(
        Experiment::new("grpc-flip", "3s")
            .service(grpc_sample(case.port, grpc))
            .probe(grpc_probe("health", grpc, "200/s", ""))
            .fault(fault("not-serving", "1s").with("duration", "1s").with(
                "exec",
                format!(
                    "{{ command: {}, revert: {} }}",
                    flip(case.port, "NOT_SERVING"),
                    flip(case.port, "SERVING")
                ),
            )),
    );
    let ran = case.run(&file);
    let report = ran.report();
    let f = report.fault("not-serving");
    let (apply, revert) = (f.apply.as_ref().unwrap(), f.revert.as_ref().unwrap());
    assert_eq!(apply.exit_code, Some(0), "{f:?}");
    assert_eq!(revert.exit_code, Some(0), "{f:?}");
    let probe = report.probe("health");
    let run = probe.phase("run");
    let not_serving = run.errors("notServing");
    // Nothing else went wrong: every send was ok or not serving.
    assert_eq!(run.ok + not_serving, run.scheduled, "{:?}", run.errors);
    // The flip is in effect between the end of the apply and the start of the revert at
    // least, and at most from the start of the one to the end of the other; a bucket of
    // slack (100 ms) on each side for sends in flight at either edge.
    let slack = 0.1 * rate;
    let least = (revert.started_ms - apply.ended_ms) / 1000.0 * rate - slack;
    let most = (revert.ended_ms - apply.started_ms) / 1000.0 * rate + slack;
    assert!(
        (least..=most).contains(&(not_serving as f64)),
        "notServing {not_serving}, expected {least:.0}..={most:.0} ({apply:?} {revert:?})"
    );
    // Availability drops by that share, bucket by bucket: the ones inside the window
    // are empty of ok, the ones well outside it full.
    let availability = run.availability_percent.unwrap();
    let expected = 100.0 * run.ok as f64 / run.scheduled as f64;
    assert!((availability - expected).abs() < 0.01);
    assert!(availability < 75.0 && availability > 55.0, "{availability}");
    for b in &probe.timeline {
        let (start, end) = (b.start_ms, b.start_ms + 100.0);
        if start >= apply.ended_ms + 50.0 && end <= revert.started_ms {
            assert_eq!(b.ok, 0, "{b:?} inside the flip");
        }
        if end <= apply.started_ms - 50.0 || start >= revert.ended_ms + 50.0 {
            assert_eq!(b.ok, b.scheduled, "{b:?} outside the flip");
        }
    }
}

#[test]
fn an_unknown_service_is_not_found_and_a_server_without_grpc_is_internal() {
    let case = Case::new();
    let grpc = free_port();
    let file = case.write(
        Experiment::new("grpc-unknown", "1s")
            .service(grpc_sample(case.port, grpc))
            .probe(grpc_probe("nope", grpc, "50/s", ", service: shop.Nope"))
            // The sample's HTTP port speaks HTTP/2 but no gRPC: a 404 with a text body
            // and no gRPC status, which tonic reads as INTERNAL, naming the 404.
            .probe(grpc_probe("not-grpc", case.port, "50/s", "")),
    );
    let ran = case.run(&file);
    let report = ran.report();
    let probe = report.probe("nope");
    let run = probe.phase("run");
    assert!(run.scheduled >= 40, "{run:?}");
    assert_eq!(run.errors("grpcStatus"), run.scheduled, "{:?}", run.errors);
    assert_eq!(run.errors.len(), 1, "{:?}", run.errors);
    let g = probe.grpc();
    assert_eq!(g.service, "shop.Nope");
    assert_eq!(
        g.statuses.keys().collect::<Vec<_>>(),
        ["NOT_FOUND"],
        "{g:?}"
    );
    assert_eq!(g.statuses["NOT_FOUND"], run.scheduled);
    assert_eq!(g.status_messages["NOT_FOUND"], "service not registered");
    let not_grpc = report.probe("not-grpc");
    let run = not_grpc.phase("run");
    assert_eq!(run.errors("grpcStatus"), run.scheduled, "{:?}", run.errors);
    let g = not_grpc.grpc();
    assert_eq!(g.statuses.keys().collect::<Vec<_>>(), ["INTERNAL"], "{g:?}");
    assert!(
        g.status_messages["INTERNAL"].contains("404 Not Found"),
        "{g:?}"
    );
    assert!(
        ran.stdout().contains("gRPC: statuses: NOT_FOUND"),
        "{}",
        ran.stdout()
    );
}

#[test]
fn a_killed_server_is_refused_then_recovers_with_an_rto() {
    let case = Case::new();
    let grpc = free_port();
    let file = case.write(
        Experiment::new("grpc-kill", "5s")
            .service(grpc_sample(case.port, grpc).with("restart", "{ policy: onExit, delay: 1s }"))
            .probe(grpc_probe("health", grpc, "100/s", ""))
            .steady_state("{ window: 1s, availability: { min: 99% } }")
            .fault(fault("kill", "1500ms").with(
                "exec",
                "{ command: [kill, -KILL, \"${service.sample.pid}\"] }",
            ))
            .objective("rto", "{ max: 4s, stableFor: 500ms }"),
    );
    let ran = case.run(&file);
    assert_eq!(ran.code(), Some(0), "{}", ran.explain());
    let report = ran.report();
    let probe = report.probe("health");
    let run = probe.phase("run");
    // Down for the restart delay at least: refused while nothing listens.
    assert!(
        run.errors("refused") >= 50,
        "{:?} {:#}",
        run.errors,
        report.json()["events"]
    );
    // The broken connection was reopened: ok again after the restart.
    let died = report.event_ms("sample exited");
    let ready = report.event_ms("sample ready");
    let rto = probe.rto();
    let measured = rto.time_to_recover_ms.unwrap();
    let margin = 2.0 * rto.resolution_ms;
    assert!(
        measured >= 1000.0 - margin && measured <= ready - died + margin,
        "RTO {measured} ms, died at {died}, ready at {ready}"
    );
    assert_eq!(report.verdict("rto/health").status, "pass");
    let last = probe.timeline.iter().rev().nth(2).unwrap();
    assert_eq!(last.ok, last.scheduled, "{last:?}");
}

#[test]
fn grpc_over_tls_trusts_a_private_ca_presents_a_client_certificate_and_the_wrong_ca_is_tls() {
    let case = Case::new();
    let grpc = free_port();
    let ca = Ca::new("grpc test CA");
    let other = Ca::new("other CA");
    let (ca_file, other_file) = (ca.write(case.dir(), "ca"), other.write(case.dir(), "other"));
    let (cert, key) = ca
        .server("grpc", &["127.0.0.1", "localhost"], Lifetime::Days(30))
        .write(case.dir(), "grpc");
    let (client_cert, client_key) = ca.client("probe").write(case.dir(), "client");
    // The gRPC listener takes the HTTP side's TLS files, client CA (mTLS) included.
    let sample = Map::named("sample")
        .with(
            "command",
            format!(
                "[\"${{exe}}\", sample-service, --listen, \"127.0.0.1:{}\", --grpc-listen, \"127.0.0.1:{grpc}\", --tls-cert, {}, --tls-key, {}, --tls-client-ca, {}]",
                case.port,
                quoted(cert.display()),
                quoted(key.display()),
                quoted(ca_file.display())
            ),
        )
        .with("ready", format!("{{ tcp: \"127.0.0.1:{}\", within: 5s }}", case.port));
    let trusting =
        |ca: &Path, more: &str| format!(", tls: {{ ca: {}{more} }}", quoted(ca.display()));
    let client = format!(
        ", clientCert: {}, clientKey: {}",
        quoted(client_cert.display()),
        quoted(client_key.display())
    );
    let file = case.write(
        Experiment::new("grpc-tls", "1s")
            .service(sample)
            .probe(grpc_probe(
                "trusted",
                grpc,
                "50/s",
                &trusting(&ca_file, &client),
            ))
            .probe(grpc_probe(
                "wrong-ca",
                grpc,
                "50/s",
                &trusting(&other_file, &client),
            ))
            .probe(grpc_probe(
                "no-client-cert",
                grpc,
                "50/s",
                &trusting(&ca_file, ""),
            ))
            .objective("certificate", "{ probe: trusted, minValidity: 21d }"),
    );
    let ran = case.run(&file);
    let report = ran.report();
    let trusted = report.probe("trusted");
    let run = trusted.phase("run");
    assert!(run.scheduled >= 40, "{run:?}");
    assert_eq!(run.ok, run.scheduled, "{run:?}");
    let tls = trusted.tls();
    assert_eq!(
        tls.certificate.as_ref().map(|c| c.subject.as_str()),
        Some("CN=grpc")
    );
    assert!(trusted.connection_setup().tls_handshake.is_some());
    // The served certificate is an objective for a gRPC probe as for an https:// one.
    let verdict = report.verdict("certificate/trusted");
    assert_eq!(verdict.status, "pass", "{verdict:?}");
    let wrong = report.probe("wrong-ca");
    let run = wrong.phase("run");
    assert_eq!(run.errors("tls"), run.scheduled, "{:?}", run.errors);
    assert_eq!(
        wrong.tls().failures.keys().collect::<Vec<_>>(),
        ["unknownIssuer"]
    );
    // Refused by the server after the (TLS 1.3) handshake: its alert, or a reset when the
    // server's close beats it, as for https:// probes; never a success.
    let without = report.probe("no-client-cert").phase("run");
    assert_eq!(without.ok, 0, "{without:?}");
    let (tls, reset) = (without.errors("tls"), without.errors("reset"));
    assert_eq!(tls + reset, without.scheduled, "{:?}", without.errors);
    assert!(tls > 0, "no refusal was seen as TLS: {:?}", without.errors);
}
