//! Pod deletion through the real `shakeout` binary against the fake API server
//! (`kit::fake_kube`: real REST paths, a ReplicaSet that replaces deleted pods and makes
//! them Ready after a delay): how many pods each mode deletes and which, the recovery
//! time against the fake's truth (watched, or polled when watch is not allowed), dry runs
//! that choose and refuse as the run does, a selector that matches nothing, protected
//! namespaces, and the RTO a probe measures while the test plays the kubelet.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup should panic loudly

mod kit;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kit::exp::{self, fault};
use kit::fake_kube::FakeCluster;
use kit::kube_case::{delete_checkout, KubeCase};
use kit::process::{self, wait_listening};
use kit::{explain, shakeout, Owned};

/// The replacements are watched: the recovery time is taken when the Ready pod's event
/// arrives, late only by the DELETE's round trip and the event's delivery, which on a
/// loaded 2-core machine we bound by 100 ms (a poll every 200 ms would miss it by up to
/// 200 ms plus a list).
const WATCH_SLACK: Duration = Duration::from_millis(100);
/// Without `watch` the pods are listed every 200 ms (`RECOVERY_POLL`): late by up to one
/// poll plus one list round trip, which we bound by 800 ms.
const POLL: Duration = Duration::from_millis(200);
const LIST_SLACK: Duration = Duration::from_millis(800);

#[test]
fn each_mode_deletes_the_right_number_and_times_the_replacements() {
    let ready_delay = Duration::from_millis(700);
    for (mode, expected) in [
        ("mode: one", 1),
        ("mode: all", 4),
        ("mode: fixed, count: 2", 2),
        ("mode: percent, percent: 50%", 2),
        ("mode: percent, percent: 10%", 1),
    ] {
        let case = KubeCase::new();
        case.checkout(4, &["node-1", "node-2"], ready_delay);
        // A pod the selector does not match must never be touched.
        case.fake
            .add_pod("shop", "cart-0", &[("app", "cart")], "node-1", true);
        let file = case.write(
            case.experiment()
                .service(exp::sample_service(case.port))
                .fault(delete_checkout(mode))
                .objective(
                    "podRecovery",
                    format!("{{ max: {}ms }}", ready_delay.as_millis() + 5_000),
                ),
        );
        let ran = case.run(&file);
        assert_eq!(ran.code(), Some(0), "{mode}: {}", ran.explain());
        let deleted = case.fake.deleted();
        assert_eq!(deleted.len(), expected, "{mode}: deleted {deleted:?}");
        assert!(deleted
            .iter()
            .all(|(ns, name)| ns == "shop" && name.starts_with("checkout-7d9f-")));
        let report = ran.report();
        let f = report.fault("lose-pods");
        assert_eq!(f.status, "applied", "{mode}: {f:#?}");
        let pods = f.pods();
        assert_eq!(pods.deleted, expected as u64);
        assert_eq!(pods.matched, 4);
        assert_eq!(
            pods.recovery.as_deref(),
            Some("recovered"),
            "{mode}: {f:#?}"
        );
        // The truth: a replacement is Ready `ready_delay` after its pod was deleted.
        let measured = Duration::from_secs_f64(pods.recovery_ms.unwrap() / 1000.0);
        assert!(
            measured + Duration::from_millis(5) >= ready_delay,
            "{mode}: recovered in {measured:?}, before the replacements could be Ready ({ready_delay:?})"
        );
        eprintln!("{mode}: recovered in {measured:?}, truth {ready_delay:?}");
        assert_eq!(pods.recovery_method.as_deref(), Some("watch"), "{mode}");
        assert_eq!(pods.recovery_resolution_ms, Some(1.0), "{mode}");
        assert!(
            measured <= ready_delay + WATCH_SLACK,
            "{mode}: recovered in {measured:?}, later than a watch sees it ({ready_delay:?} + {WATCH_SLACK:?})"
        );
        // The selector as written in the file, not a description of it.
        assert_eq!(pods.selector, "app=checkout");
        assert_eq!(pods.field_selector, None);
        assert_eq!(report.verdict("podRecovery/lose-pods").status, "pass");
        // Every owner is whole again, and the unmatched pod is untouched.
        let pods = case.fake.pods("shop");
        assert_eq!(
            pods.iter()
                .filter(|p| p.name.starts_with("checkout") && p.ready && !p.terminating)
                .count(),
            4
        );
        assert!(pods.iter().any(|p| p.name == "cart-0"));
    }
}

#[test]
fn without_watch_the_replacements_are_polled_and_the_report_says_so() {
    let ready_delay = Duration::from_millis(700);
    let case = KubeCase::new();
    case.checkout(2, &["node-1"], ready_delay);
    case.fake.deny("watch", "pods", Some("shop"));
    let file = case.write(
        case.experiment()
            .service(exp::sample_service(case.port))
            .fault(delete_checkout("mode: one"))
            .objective("podRecovery", "{ max: 10s }"),
    );
    let ran = case.run(&file);
    assert_eq!(ran.code(), Some(0), "{}", ran.explain());
    let report = ran.report();
    let pods = report.fault("lose-pods").pods();
    assert_eq!(pods.recovery_method.as_deref(), Some("poll"));
    assert_eq!(pods.recovery_resolution_ms, Some(200.0));
    let measured = Duration::from_secs_f64(pods.recovery_ms.unwrap() / 1000.0);
    assert!(
        measured + Duration::from_millis(5) >= ready_delay
            && measured <= ready_delay + POLL + LIST_SLACK,
        "recovered in {measured:?} for a truth of {ready_delay:?}"
    );
    assert!(
        report
            .verdict("podRecovery/lose-pods")
            .measured
            .as_deref()
            .is_some_and(|m| m.contains("(resolution 200ms)")),
        "{:#?}",
        report.verdict("podRecovery/lose-pods")
    );
    assert!(
        ran.report_text().contains("replacements polled every 200ms (a watch was not possible: watching pods in namespace shop: 403 Forbidden"),
        "{}",
        ran.report_text()
    );
}

#[test]
fn the_dry_run_refuses_what_the_run_refuses() {
    let case = KubeCase::new();
    case.checkout(3, &["node-1"], Duration::from_millis(100));
    let file = case.write(
        case.experiment()
            .service(exp::sample_service(case.port))
            .fault(delete_checkout("mode: fixed, count: 5")),
    );
    let refusal = "`count: 5` but only 3 pods in namespace shop match selector app=checkout";
    // The case passes `--json report.json`: with `--dry-run` that file is the plan.
    let plan = case.path("report.json");
    let dry = case.run_with(&file, &["--dry-run"]);
    let stdout = dry.stdout();
    assert_eq!(dry.code(), Some(3), "{}", dry.explain());
    assert!(stdout.contains(refusal), "{stdout}");
    assert!(!stdout.contains("would delete"), "{stdout}");
    // The plan for machines says the same: not ok, and why.
    let plan: serde_json::Value = serde_json::from_slice(&std::fs::read(&plan).unwrap()).unwrap();
    assert_eq!(plan["ok"], false, "{plan:#}");
    let refused = plan["cluster"]["faults"][0]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(refused.contains(refusal), "{plan:#}");
    let ran = case.run(&file);
    assert_eq!(ran.code(), Some(3), "{}", ran.explain());
    assert!(ran.explain().contains(refusal), "{}", ran.explain());
    // Neither sent a DELETE, not even a server-side dry run.
    assert!(
        !case.fake.requests().iter().any(|r| r.starts_with("DELETE")),
        "{:?}",
        case.fake.requests()
    );
}

#[test]
fn the_same_seed_deletes_the_same_pods() {
    let mut chosen = Vec::new();
    for _ in 0..2 {
        let case = KubeCase::new();
        // Pods get random names: compare by position in name order, via a bare set.
        for i in 0..6 {
            case.fake.add_pod(
                "shop",
                &format!("worker-{i}"),
                &[("app", "worker")],
                "node-1",
                true,
            );
        }
        let file = case.write(
            case.experiment()
                .service(exp::sample_service(case.port))
                .fault(fault("lose-pods", "500ms").with(
                    "pod",
                    "{ delete: { namespace: shop, selector: app=worker, mode: fixed, count: 2 } }",
                )),
        );
        let ran = case.run(&file);
        assert_eq!(ran.code(), Some(0), "{}", ran.explain());
        // Bare pods are not replaced: recovery is not applicable, and says why.
        let pods = ran.report().fault("lose-pods").pods();
        assert_eq!(pods.recovery.as_deref(), Some("noOwner"));
        chosen.push(case.fake.deleted());
    }
    assert_eq!(chosen[0], chosen[1], "seed 42 must choose the same pods");
}

#[test]
fn dry_run_has_the_server_check_and_deletes_nothing() {
    let case = KubeCase::new();
    case.checkout(3, &["node-1"], Duration::from_millis(100));
    let experiment = case.experiment().service(exp::sample_service(case.port));
    let file = case.write(experiment.clone().fault(delete_checkout("mode: all")));
    let plan = case.path("report.json");
    let ran = case.run_with(&file, &["--dry-run"]);
    let stdout = ran.stdout();
    assert_eq!(ran.code(), Some(0), "{}", ran.explain());
    assert_eq!(
        stdout.matches("would delete shop/checkout-7d9f-").count(),
        3,
        "{stdout}"
    );
    let plan: serde_json::Value = serde_json::from_slice(&std::fs::read(&plan).unwrap()).unwrap();
    assert_eq!(plan["ok"], true, "{plan:#}");
    let pods = plan["cluster"]["faults"][0]["pods"].as_array().unwrap();
    assert_eq!(pods.len(), 3, "{plan:#}");
    assert!(
        pods.iter()
            .all(|p| p["action"] == "delete" && p["accepted"] == true),
        "{plan:#}"
    );
    assert!(case.fake.deleted().is_empty());
    let dry: Vec<String> = case
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("DELETE"))
        .collect();
    assert_eq!(dry.len(), 3, "{dry:?}");
    assert_eq!(case.fake.pods("shop").len(), 3);

    // The same as a fault option during a real run.
    let file = case.write(
        experiment
            .fault(fault("lose-pods", "500ms").with(
                "pod",
                "{ delete: { namespace: shop, selector: app=checkout, mode: all, dryRun: true } }",
            ))
            .objective("podRecovery", "{ max: 10s }"),
    );
    let ran = case.run(&file);
    assert_eq!(ran.code(), Some(0), "{}", ran.explain());
    assert!(case.fake.deleted().is_empty());
    let report = ran.report();
    let f = report.fault("lose-pods");
    assert_eq!(f.status, "dryRun");
    assert!(f.pods().dry_run);
    assert_eq!(
        report.verdict("podRecovery/lose-pods").status,
        "notMeasured"
    );
}

#[test]
fn a_selector_that_matches_nothing_stops_the_run_before_it_starts() {
    let case = KubeCase::new();
    case.fake
        .add_pod("shop", "cart-0", &[("app", "cart")], "node-1", true);
    let marker = case.path("service-ran");
    // The service would leave a trace if it started: it must not.
    let service = exp::sample_service(case.port).with(
        "command",
        format!(
            r#"[sh, -c, 'touch {} && exec "$0" "$@"', "${{exe}}", sample-service, --listen, "127.0.0.1:{}"]"#,
            marker.display(),
            case.port
        ),
    );
    let file = case.write(case.experiment().service(service).fault(
        fault("lose-pods", "500ms").with(
            "pod",
            "{ delete: { namespace: shop, selector: app=checkout } }",
        ),
    ));
    let ran = case.run(&file);
    assert_eq!(ran.code(), Some(3), "{}", ran.explain());
    let all = ran.explain() + &ran.report_text();
    assert!(
        all.contains("no pod in namespace shop matches selector app=checkout"),
        "{all}"
    );
    assert!(
        !marker.exists(),
        "the service started although the run could not"
    );
    assert!(case.fake.deleted().is_empty());
}

#[test]
fn a_protected_namespace_named_explicitly_may_be_used() {
    let case = KubeCase::new();
    case.fake.add_replicaset(
        "kube-system",
        "coredns-5d78",
        &[("k8s-app", "kube-dns")],
        2,
        &["node-1"],
        Duration::from_millis(100),
    );
    // The kubeconfig from KUBECONFIG this time, with no `kubeconfig:` in the file.
    let file = case.write(
        case.experiment()
            .kubernetes("{ context: fake }")
            .service(exp::sample_service(case.port))
            .fault(fault("lose-dns", "500ms").with(
                "pod",
                "{ delete: { namespace: kube-system, selector: k8s-app=kube-dns, allowProtected: [kube-system] } }",
            )),
    );
    let out = shakeout()
        .arg("run")
        .arg(&file)
        .arg("--quiet")
        .env("KUBECONFIG", case.kubeconfig())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert_eq!(
        case.fake.deleted(),
        [("kube-system".to_string(), case.fake.deleted()[0].1.clone())]
    );
    assert!(case.fake.deleted()[0].1.starts_with("coredns-5d78-"));
}

/// The fake's kubelet side, played by the test: the checkout pod is the sample service;
/// deleting it kills the process, and the replacement starts a new one, Ready
/// `ready_delay` later (as the fake marks the replacement pod).
fn kubelet(
    fake: &FakeCluster,
    port: u16,
    ready_delay: Duration,
    stop: &AtomicBool,
) -> Vec<(Instant, Instant)> {
    let start = || Owned::spawn(&mut process::sample_service(port));
    let mut service = start();
    let mut outages = Vec::new();
    let mut seen = 0;
    while !stop.load(Ordering::SeqCst) {
        if fake.deleted().len() > seen {
            seen = fake.deleted().len();
            let killed = Instant::now();
            service.kill();
            std::thread::sleep(ready_delay);
            service = start();
            outages.push((killed, Instant::now()));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    outages
}

#[test]
fn pod_deletion_with_an_http_probe_gives_an_rto_verdict() {
    let case = KubeCase::new();
    let ready_delay = Duration::from_millis(1500);
    case.checkout(1, &["node-1"], ready_delay);
    let stop = AtomicBool::new(false);
    let (ran, outages) = std::thread::scope(|s| {
        let k = s.spawn(|| kubelet(&case.fake, case.port, ready_delay, &stop));
        // Wait for the service, then run an experiment that does not supervise it.
        wait_listening(case.port);
        let file = case.write(
            case.experiment()
                .steady_state("{ window: 2s, availability: { min: 99% } }")
                .fault(fault("lose-pods", "3s").with(
                    "pod",
                    "{ delete: { namespace: shop, selector: app=checkout, gracePeriod: 0s } }",
                ))
                .objective("rto", "{ max: 10s }")
                .objective("podRecovery", "{ max: 10s }"),
        );
        let ran = case.run(&file);
        stop.store(true, Ordering::SeqCst);
        (ran, k.join().unwrap())
    });
    // What a person sees (shown with --nocapture).
    eprintln!("{}", ran.stdout());
    assert_eq!(ran.code(), Some(0), "{}", ran.explain());
    assert_eq!(outages.len(), 1);
    let report = ran.report();
    let rto = report.verdict("rto/health");
    assert_eq!(rto.status, "pass", "{rto:#?}");
    let probe = report.probe("health");
    let ttr = probe
        .rto()
        .time_to_recover_ms
        .unwrap_or_else(|| panic!("{:#?}", probe.rto));
    // The outage lasts the replacement's start delay (plus the restart itself).
    assert!(
        ttr + 200.0 >= ready_delay.as_millis() as f64
            && ttr <= ready_delay.as_millis() as f64 + 1_500.0,
        "time to recover {ttr}ms for an outage of {ready_delay:?}"
    );
    assert_eq!(report.verdict("podRecovery/lose-pods").status, "pass");
}
