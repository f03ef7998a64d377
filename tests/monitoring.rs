//! The monitoring system as a source of truth, against real Prometheus and Alertmanager:
//! PromQL objectives judged live (pass and fail), a bad query refused before anything
//! runs, a PromQL stop condition that aborts and reverts, alerts measured on the run's
//! timeline (firing after a kill, resolving after recovery, compared with Prometheus's own
//! `ALERTS` series), an alert that never fires, and `--metrics-listen` scraped by
//! Prometheus. Skipped, saying why, without the binaries; never under CI.

mod kit;

use std::time::Duration;

use kit::exp::{fault, health_probe, quoted, sample_service, Experiment, Map};
use kit::prometheus::{prometheus_or_skip, Alertmanager, Prometheus};
use kit::{Case, Owned};

/// The sample service, owned by the test, and a Prometheus that has scraped it (`up` is
/// 1), so the run starts with data to query.
fn scraped_sample(case: &Case, rules: &str, alertmanager: Option<u16>) -> (Owned, Prometheus) {
    let sample = Owned::spawn(&mut kit::process::sample_service(case.port));
    kit::process::wait_listening(case.port);
    let prom = Prometheus::start(
        case.dir(),
        &[("sample", format!("127.0.0.1:{}", case.port))],
        rules,
        alertmanager,
    );
    prom.wait_value("up{job=\"sample\"}", |v| v == 1.0);
    (sample, prom)
}

const HEALTH_REQUESTS: &str =
    "sum(sample_requests_total{job=\\\"sample\\\",route=\\\"/health\\\"})";

#[test]
fn promql_objectives_pass_and_fail_on_what_prometheus_scraped() {
    if !prometheus_or_skip("promql_objectives_pass_and_fail_on_what_prometheus_scraped") {
        return;
    }
    let case = Case::new();
    let (_sample, prom) = scraped_sample(&case, "", None);
    // No fault: the baseline (the steady-state window) is the whole run.
    let exp = Experiment::new("promql", "30s")
        .probe(health_probe(case.port, "20/s"))
        .steady_state("{ window: 5s }")
        .spec("prometheus", format!("{{ url: {} }}", quoted(prom.url())))
        .objective(
            "promql",
            format!(
                "[ {{ name: served, query: \"{HEALTH_REQUESTS}\", comparator: \">\", threshold: 0, during: baseline, every: 1s }}, \
                   {{ name: idle, query: \"{HEALTH_REQUESTS}\", comparator: \"<\", threshold: 1, during: baseline, every: 1s }} ]"
            ),
        );
    let ran = case.run(&case.write(exp));
    assert_eq!(ran.code(), Some(1), "{}", ran.explain());
    let r = ran.report();
    let served = r.verdict("promql/served/baseline");
    assert_eq!(served.status, "pass", "{served:#?}");
    let idle = r.verdict("promql/idle/baseline");
    assert_eq!(idle.status, "fail", "{idle:#?}");
    assert!(
        idle.measured
            .as_deref()
            .unwrap_or("")
            .contains("evaluations broke it"),
        "{idle:#?}"
    );
    let p = r.promql("idle");
    // One evaluation a second over a 5 s window: every one broke it, all bounded.
    assert!(p.evaluations >= 3, "{p:#?}");
    assert_eq!(p.failures, p.evaluations, "{p:#?}");
    let range = p.range.as_ref().expect("a range query over the phase");
    assert!(range["points"].as_u64().unwrap_or(0) >= 3, "{range:#}");
    assert_eq!(range["breaking"], range["points"], "{range:#}");
}

#[test]
fn a_bad_query_or_an_unreachable_server_stops_the_run_before_it_starts() {
    if !prometheus_or_skip("a_bad_query_or_an_unreachable_server_stops_the_run_before_it_starts") {
        return;
    }
    let case = Case::new();
    let prom = Prometheus::start(case.dir(), &[], "", None);
    let marker = case.path("service-ran");
    let exp = |url: String| {
        Experiment::new("bad-query", "30s")
            .service(
                Map::named("marker")
                    .with("command", format!("[touch, {}]", quoted(marker.display()))),
            )
            .probe(health_probe(case.port, "10/s"))
            .spec("prometheus", format!("{{ url: {} }}", quoted(url)))
            .objective(
                "promql",
                "[ { name: broken, query: \"sum(rate(up[5s]\", comparator: \">\", threshold: 0 } ]",
            )
    };
    let ran = case.run(&case.write(exp(prom.url())));
    assert_eq!(ran.code(), Some(3), "{}", ran.explain());
    let reason = ran.report().run.reason.clone().unwrap_or_default();
    assert!(
        reason.contains("spec.objectives.promql `broken`")
            && reason.contains("bad_data")
            && reason.contains("parse error"),
        "{reason}"
    );
    assert!(
        !marker.exists(),
        "the service started despite the bad query"
    );

    let nobody = format!("http://127.0.0.1:{}", kit::free_port());
    let ran = case.run(&case.write(exp(nobody.clone())));
    assert_eq!(ran.code(), Some(3), "{}", ran.explain());
    let reason = ran.report().run.reason.clone().unwrap_or_default();
    assert!(
        reason.contains(&format!("Prometheus at {nobody}")) && reason.contains("cannot connect"),
        "{reason}"
    );
    assert!(!marker.exists());
}

#[test]
fn a_promql_stop_condition_aborts_the_run_and_reverts_the_fault() {
    if !prometheus_or_skip("a_promql_stop_condition_aborts_the_run_and_reverts_the_fault") {
        return;
    }
    let case = Case::new();
    let (sample, prom) = scraped_sample(&case, "", None);
    let pid = sample.pid().to_string();
    // Paused, the service misses its scrapes: `up` drops to 0 and the condition fires
    // long before the fault's 40 s are over.
    let exp = Experiment::new("promql-abort", "60s")
        .probe(health_probe(case.port, "20/s"))
        .fault(fault("pause-sample", "2s").with("duration", "40s").with(
            "exec",
            format!("{{ command: [kill, -STOP, \"{pid}\"], revert: [kill, -CONT, \"{pid}\"] }}"),
        ))
        .spec("prometheus", format!("{{ url: {} }}", quoted(prom.url())))
        .abort(
            "promql",
            "[ { name: sample-down, query: \"up{job=\\\"sample\\\"}\", comparator: \"<\", threshold: 1, every: 500ms } ]",
        );
    let ran = case.run(&case.write(exp));
    assert_eq!(ran.code(), Some(2), "{}", ran.explain());
    let r = ran.report();
    let reason = r.run.reason.clone().unwrap_or_default();
    assert!(reason.contains("promql `sample-down`"), "{reason}");
    assert_eq!(r.fault("pause-sample").status, "reverted");
    assert!(
        ran.elapsed < Duration::from_secs(20),
        "took {:?}",
        ran.elapsed
    );
    assert_ne!(
        kit::state(sample.pid()),
        Some('T'),
        "the service is still stopped"
    );
    assert!(r.promql("sample-down").role == "abort");
}

#[test]
fn alerts_fire_after_a_kill_and_resolve_after_recovery_as_prometheus_recorded() {
    if !prometheus_or_skip(
        "alerts_fire_after_a_kill_and_resolve_after_recovery_as_prometheus_recorded",
    ) {
        return;
    }
    let case = Case::new();
    let am = Alertmanager::start(case.dir());
    // Down now after being up in the last 5 minutes: quiet before the service first
    // starts, so the baseline is not noise.
    let rules = "groups:\n  - name: sample\n    rules:\n      - alert: SampleDown\n        expr: up{job=\"sample\"} == 0 and max_over_time(up{job=\"sample\"}[5m]) == 1\n        for: 2s\n";
    let prom = Prometheus::start(
        case.dir(),
        &[("sample", format!("127.0.0.1:{}", case.port))],
        rules,
        Some(am.port),
    );
    let exp = Experiment::new("alerts", "60s")
        .service(sample_service(case.port).with("restart", "{ policy: onExit, delay: 4s }"))
        .probe(health_probe(case.port, "20/s"))
        .steady_state("{ window: 6s, availability: { min: 99% } }")
        .fault(fault("kill-sample", "6s").with(
            "exec",
            "{ command: [kill, -KILL, \"${service.sample.pid}\"] }",
        ))
        .spec("prometheus", format!("{{ url: {} }}", quoted(prom.url())))
        .spec("alertmanager", format!("{{ url: {} }}", quoted(am.url())))
        .spec(
            "alerts",
            "[ { name: SampleDown, labels: { job: sample }, firesWithin: 15s, resolvesWithin: 10s }, \
               { name: SampleOnFire, firesWithin: 5s } ]",
        );
    let ran = case.run(&case.write(exp));
    // SampleOnFire never fires: that verdict fails the run.
    assert_eq!(ran.code(), Some(1), "{}", ran.explain());
    let r = ran.report();
    for v in ["fires", "resolves", "noise"] {
        let v = r.verdict(&format!("alert/SampleDown/{v}"));
        assert_eq!(v.status, "pass", "{v:#?}\n{:#?}", r.alerts);
    }
    let never = r.verdict("alert/SampleOnFire/fires");
    assert_eq!(never.status, "fail", "{never:#?}");
    assert!(
        never
            .measured
            .as_deref()
            .unwrap_or("")
            .contains("never fired"),
        "{never:#?}"
    );
    assert!(
        never
            .note
            .as_deref()
            .unwrap_or("")
            .contains("seen firing instead: SampleDown"),
        "{never:#?}"
    );

    let a = r.alert("SampleDown");
    assert_eq!(a.evaluation_interval_ms, Some(1000.0), "{a:#?}");
    let resolution = (a.poll_ms + 1000.0) / 1000.0;
    let fired = a.changes.iter().find(|c| c.firing).expect("seen firing");
    let gone = a
        .changes
        .iter()
        .rev()
        .find(|c| !c.firing)
        .expect("seen gone");
    // After the kill: at least the rule's `for`, at most `for` plus a scrape, two
    // evaluations and a poll.
    let kill_ms = r.event_ms("kill-sample");
    let after_kill = (fired.at_ms - kill_ms) / 1000.0;
    assert!(
        (2.0..=2.0 + 1.0 + 2.0 + 1.0 + 0.5).contains(&after_kill),
        "fired {after_kill}s after the kill"
    );
    // The truth: Prometheus's own ALERTS samples, one per evaluation while firing.
    let samples = prom.query("ALERTS{alertname=\"SampleDown\",alertstate=\"firing\"}[10m]");
    let values = samples[0]["values"]
        .as_array()
        .expect("ALERTS samples")
        .clone();
    let first = values[0][0].as_f64().unwrap();
    let last = values[values.len() - 1][0].as_f64().unwrap();
    let seen_fire = fired.unix_ms / 1000.0 - first;
    // Resolved at the evaluation after the last firing one.
    let seen_gone = gone.unix_ms / 1000.0 - (last + 1.0);
    let slack = 0.5;
    assert!(
        (-slack..=resolution + slack).contains(&seen_fire),
        "firing seen {seen_fire:.3}s after Prometheus's first firing sample (resolution {resolution}s)"
    );
    assert!(
        (-slack..=resolution + slack).contains(&seen_gone),
        "gone seen {seen_gone:.3}s after Prometheus resolved it (resolution {resolution}s)"
    );
}

#[test]
fn metrics_listen_is_scraped_during_the_run_and_a_taken_port_stops_it() {
    if !prometheus_or_skip("metrics_listen_is_scraped_during_the_run_and_a_taken_port_stops_it") {
        return;
    }
    let case = Case::new();
    let port = kit::free_port();
    let prom = Prometheus::start(
        case.dir(),
        &[("shakeout", format!("127.0.0.1:{port}"))],
        "",
        None,
    );
    let marker = case.path("service-ran");
    let exp = Experiment::new("metrics", "30s")
        .service(
            sample_service(case.port)
                .with("command", format!("[sh, -c, \"touch {} && exec \\\"$0\\\" sample-service --listen 127.0.0.1:{}\", \"${{exe}}\"]", marker.display(), case.port)),
        )
        .probe(health_probe(case.port, "50/s"))
        .steady_state("{ window: 5s }");
    let file = case.write(exp);
    let ran = case.run_with(&file, &["--metrics-listen", &format!("127.0.0.1:{port}")]);
    assert_eq!(ran.code(), Some(0), "{}", ran.explain());
    assert!(marker.exists(), "the service did not run");
    let scheduled = prom
        .value("max_over_time(shakeout_probe_scheduled_total{probe=\"health\"}[5m])")
        .unwrap_or_else(|| {
            panic!(
                "Prometheus scraped no shakeout_probe_scheduled_total; up: {:?}",
                prom.query("up[5m]")
            )
        });
    assert!(scheduled >= 50.0, "{scheduled}");
    assert!(prom
        .value("max_over_time(shakeout_run_phase{phase=\"baseline\"}[5m])")
        .is_some_and(|v| v == 1.0));
    assert!(prom
        .value("max_over_time(shakeout_probe_latency_seconds_count{probe=\"health\"}[5m])")
        .is_some_and(|v| v > 0.0));

    // The port taken: refused before the service starts.
    std::fs::remove_file(&marker).unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let ran = case.run_with(&file, &["--metrics-listen", &addr]);
    assert_eq!(ran.code(), Some(3), "{}", ran.explain());
    let stderr = String::from_utf8_lossy(&ran.output.stderr);
    assert!(
        stderr.contains(&format!("--metrics-listen {addr}: cannot listen"))
            && stderr.to_lowercase().contains("address already in use"),
        "{stderr}"
    );
    assert!(
        !marker.exists(),
        "the service started although the run could not"
    );
}

#[test]
fn prometheus_over_https_is_trusted_by_its_ca_or_on_request_only() {
    if !prometheus_or_skip("prometheus_over_https_is_trusted_by_its_ca_or_on_request_only") {
        return;
    }
    let case = Case::new();
    let (cert, key) = kit::agent::self_signed(case.dir(), "prometheus", "IP:127.0.0.1");
    let prom = Prometheus::start_tls(case.dir(), (&cert, &key));
    let url = format!("https://127.0.0.1:{}", prom.port);
    let exp = |tls: String| {
        Experiment::new("promql-tls", "30s")
            .probe(health_probe(case.port, "10/s"))
            .steady_state("{ window: 2s }")
            .spec("prometheus", format!("{{ url: {}, tls: {tls} }}", quoted(&url)))
            .objective(
                "promql",
                "[ { name: answers, query: \"vector(1)\", comparator: \"==\", threshold: 1, during: run, every: 500ms } ]",
            )
    };
    let _sample = Owned::spawn(&mut kit::process::sample_service(case.port));
    kit::process::wait_listening(case.port);
    for tls in [
        format!("{{ ca: {} }}", quoted(cert.display())),
        "{ insecureSkipVerify: true }".to_string(),
    ] {
        let ran = case.run(&case.write(exp(tls.clone())));
        assert_eq!(ran.code(), Some(0), "tls {tls}: {}", ran.explain());
        let v = ran.report().verdict("promql/answers/run");
        assert_eq!(v.status, "pass", "tls {tls}: {v:#?}");
    }
    // Another CA: the certificate is refused before anything runs.
    let (other, _) = kit::agent::self_signed(case.dir(), "other", "IP:127.0.0.1");
    let ran = case.run(&case.write(exp(format!("{{ ca: {} }}", quoted(other.display())))));
    assert_eq!(ran.code(), Some(3), "{}", ran.explain());
    let reason = ran.report().run.reason.clone().unwrap_or_default();
    assert!(
        reason.contains("TLS") && reason.contains("certificate"),
        "{reason}"
    );
}

/// `experiments/monitoring.yaml` as the README walks through it, against a real
/// Prometheus (with `docs/monitoring/rules.yml`) and Alertmanager on ephemeral ports:
/// PromQL objectives, the alert's verdicts, an https probe over HTTP/2 and a gRPC health
/// probe trusting the example's private CA, and its certificate objective all pass.
#[test]
fn the_monitoring_example_runs_as_the_readme_walks_through_it() {
    if !prometheus_or_skip("the_monitoring_example_runs_as_the_readme_walks_through_it") {
        return;
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules = std::fs::read_to_string(root.join("docs/monitoring/rules.yml")).unwrap();
    let case = Case::new();
    let sample = format!("127.0.0.1:{}", case.port);
    let am = Alertmanager::start(case.dir());
    let prom = Prometheus::start(
        case.dir(),
        &[("shakeout-sample", sample.clone())],
        &rules,
        Some(am.port),
    );
    let vars = [
        format!("PROMETHEUS={}", prom.url()),
        format!("ALERTMANAGER={}", am.url()),
        format!("SAMPLE={sample}"),
        format!("EDGE=127.0.0.1:{}", kit::free_port()),
        format!("EDGE_GRPC=127.0.0.1:{}", kit::free_port()),
    ];
    let mut args = Vec::new();
    for v in &vars {
        args.extend(["--var", v.as_str()]);
    }
    let ran = case.run_with(&root.join("experiments/monitoring.yaml"), &args);
    assert_eq!(ran.code(), Some(0), "{}", ran.explain());
    let r = ran.report();
    for id in [
        "promql/served/baseline",
        "promql/no-server-errors/run",
        "alert/SampleDown/fires",
        "alert/SampleDown/resolves",
        "alert/SampleDown/noise",
        "certificate/edge-h2",
        "certificate/edge-grpc",
        "rto/sample-health",
    ] {
        assert_eq!(r.verdict(id).status, "pass", "{id}: {:#?}", r.verdict(id));
    }
    // The TLS probes answered throughout: the kill was of the other service.
    for probe in ["edge-h2", "edge-grpc"] {
        let run = r.probe(probe).phase("run");
        assert!(run.errors.is_empty() && run.ok > 0, "{probe}: {run:#?}");
    }
}
