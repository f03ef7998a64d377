//! PodDisruptionBudgets, through the real `shakeout` binary against the fake API server
//! (whose budgets' status is what the disruption controller would compute, and whose
//! eviction subresource honours them): a plain delete that goes against a budget is said
//! in the dry run and the report (and still done: deletes ignore budgets); an eviction a
//! budget refuses is said to be blocked by it, deletes nothing, and fails the fault in a
//! pod fault's words; the dry run says which evictions would be refused in the run's
//! order, although the server checks each alone.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup should panic loudly

mod kit;

use std::time::Duration;

use kit::exp::{self, fault};
use kit::kube_case::{delete_checkout, KubeCase};

/// `checkout` with 3 Ready replicas and the budget `checkout` over them with `rule`.
fn budgeted(rule: (&str, &str)) -> KubeCase {
    let case = KubeCase::new();
    case.checkout(3, &["node-1", "node-2"], Duration::from_millis(300));
    case.fake
        .add_pdb("shop", "checkout", &[("app", "checkout")], rule);
    case
}

/// Evict pods of `checkout` chosen by `mode`.
fn evict_checkout(mode: &str) -> exp::Map {
    fault("lose-pods", "500ms").with(
        "pod",
        format!("{{ delete: {{ namespace: shop, selector: app=checkout, {mode}, evict: true, gracePeriod: 0s, recoveryTimeout: 20s }} }}"),
    )
}

#[test]
fn a_plain_delete_against_a_budget_is_said_in_the_dry_run_and_the_report() {
    let case = budgeted(("minAvailable", "3"));
    let file = case.write(
        case.experiment()
            .service(exp::sample_service(case.port))
            .fault(delete_checkout("mode: one"))
            .objective("podRecovery", "{ max: 10s }"),
    );
    let against = "deleting 1 Ready pod it covers goes against PodDisruptionBudget shop/checkout (minAvailable 3: 3 healthy, 3 desired, 0 disruptions allowed): 2 healthy would be left, it wants 3";

    let dry = case.run_with(&file, &["--dry-run"]);
    let stdout = dry.stdout();
    // What a person sees (shown with --nocapture).
    eprintln!("{stdout}");
    assert_eq!(dry.code(), Some(0), "{}", dry.explain());
    assert!(
        stdout.contains("would delete shop/checkout-7d9f-"),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("note: {against}")), "{stdout}");

    // The run deletes anyway (a DELETE does not ask the budget), and says so.
    let ran = case.run(&file);
    assert_eq!(ran.code(), Some(0), "{}", ran.explain());
    let pods = ran.report().fault("lose-pods").pods();
    assert_eq!(pods.deleted, 1);
    assert_eq!(pods.disruption_budgets, [against]);
    assert_eq!(case.fake.deleted().len(), 1);
}

#[test]
fn an_eviction_its_budget_refuses_is_blocked_and_deletes_nothing() {
    let case = budgeted(("minAvailable", "3"));
    let file = case.write(
        case.experiment()
            .service(exp::sample_service(case.port))
            .fault(evict_checkout("mode: one"))
            .objective("podRecovery", "{ max: 10s }"),
    );
    let blocked = "blocked by a disruption budget: Cannot evict pod as it would violate the pod's disruption budget. (The disruption budget checkout needs 3 healthy pods and has 3 currently)";

    let dry = case.run_with(&file, &["--dry-run"]);
    assert_eq!(dry.code(), Some(3), "{}", dry.explain());
    assert!(dry.stdout().contains(blocked), "{}", dry.explain());

    let ran = case.run(&file);
    assert_eq!(ran.code(), Some(1), "{}", ran.explain());
    let report = ran.report();
    let f = report.fault("lose-pods");
    assert_eq!(f.status, "failed", "nothing was evicted: {f:#?}");
    let pods = f.pods();
    assert!(pods.evict);
    assert_eq!(pods.deleted, 0);
    assert!(pods.errors[0].contains(blocked), "{:?}", pods.errors);
    assert!(pods.disruption_budgets[0].contains(blocked));
    let verdict = report.verdict("fault/lose-pods");
    assert_eq!(verdict.required, "the pods are evicted");
    assert!(verdict.measured.as_deref().unwrap().contains(blocked));
    assert!(case.fake.deleted().is_empty());
    assert!(
        case.fake.requests().iter().any(|r| r
            .starts_with("POST /api/v1/namespaces/shop/pods/checkout-7d9f-")
            && r.contains("/eviction")),
        "the pod was never evicted through the Eviction API: {:?}",
        case.fake.requests()
    );
}

#[test]
fn an_eviction_within_its_budget_evicts_and_times_the_replacement() {
    let case = budgeted(("maxUnavailable", "1"));
    let file = case.write(
        case.experiment()
            .service(exp::sample_service(case.port))
            .fault(evict_checkout("mode: one"))
            .objective("podRecovery", "{ max: 10s }"),
    );
    let ran = case.run(&file);
    assert_eq!(ran.code(), Some(0), "{}", ran.explain());
    let pods = ran.report().fault("lose-pods").pods();
    assert_eq!(pods.deleted, 1);
    assert!(pods.disruption_budgets.is_empty(), "{pods:#?}");
    assert_eq!(pods.recovery.as_deref(), Some("recovered"));
    assert_eq!(case.fake.deleted().len(), 1);
}

#[test]
fn the_dry_run_says_which_evictions_the_budget_would_refuse_in_order() {
    // One disruption allowed: each dry-run eviction alone is accepted, but the run's
    // second and third would find the budget used up.
    let case = budgeted(("minAvailable", "2"));
    let file = case.write(
        case.experiment()
            .service(exp::sample_service(case.port))
            .fault(evict_checkout("mode: all")),
    );
    let dry = case.run_with(&file, &["--dry-run"]);
    let stdout = dry.stdout();
    assert_eq!(dry.code(), Some(3), "{}", dry.explain());
    assert_eq!(
        stdout.matches("would evict shop/checkout-7d9f-").count(),
        1,
        "{stdout}"
    );
    assert_eq!(
        stdout
            .matches("would be blocked by a disruption budget: PodDisruptionBudget shop/checkout (minAvailable 2: 3 healthy, 2 desired, 1 disruption allowed)")
            .count(),
        2,
        "{stdout}"
    );
    assert!(case.fake.deleted().is_empty());
}
