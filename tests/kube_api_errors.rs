//! What the API server's refusals during the run do to a pod deletion, through the real
//! `shakeout` binary against the fake API server: an RBAC denial that preflight could not
//! see (the permission was there when it asked) reaches the user and fails the fault in
//! a pod fault's words, a pod already gone is said so and not counted, and throttling is
//! retried.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup should panic loudly

mod kit;

use std::time::Duration;

use kit::exp;
use kit::kube_case::{delete_checkout, KubeCase};
use kit::Ran;

/// Delete one of `replicas` checkout pods while the API server answers the first `times`
/// DELETEs with `status`.
fn delete_one_answered(replicas: u32, status: u16, times: u32) -> (KubeCase, Ran) {
    let case = KubeCase::new();
    case.checkout(replicas, &["node-1"], Duration::from_millis(100));
    case.fake
        .fail_next("DELETE", "/api/v1/namespaces/shop/pods", status, times);
    let file = case.write(
        case.experiment()
            .service(exp::sample_service(case.port))
            .fault(delete_checkout("mode: one")),
    );
    let ran = case.run(&file);
    (case, ran)
}

#[test]
fn an_rbac_denial_reaches_the_user_and_fails_the_fault() {
    let (case, ran) = delete_one_answered(2, 403, 1);
    assert_eq!(ran.code(), Some(1), "{}", ran.explain());
    let report = ran.report();
    assert_eq!(report.fault("lose-pods").status, "failed");
    let verdict = report.verdict("fault/lose-pods");
    // A pod fault's own words, not an exec fault's "apply command succeeds".
    assert_eq!(verdict.required, "the pods are deleted");
    let measured = verdict.measured.as_deref().unwrap();
    assert!(
        measured.contains("403")
            && measured.contains("cannot delete resource \"pods\"")
            && measured.contains("RBAC"),
        "{measured}"
    );
    assert!(case.fake.deleted().is_empty());
}

#[test]
fn a_pod_gone_before_the_delete_is_said_so_and_not_counted() {
    let (case, ran) = delete_one_answered(1, 404, 1);
    let f = ran.report().fault("lose-pods");
    assert_eq!(f.status, "failed", "nothing was deleted: {f:#?}");
    assert_eq!(f.pods().deleted, 0);
    let error = &f.pods().errors[0];
    assert!(
        error.contains("was gone or replaced before the delete (404"),
        "{error}"
    );
    assert_eq!(ran.code(), Some(1), "{}", ran.explain());
    assert!(case.fake.deleted().is_empty());
}

#[test]
fn throttling_is_retried_with_backoff() {
    let (case, ran) = delete_one_answered(2, 429, 2);
    assert_eq!(ran.code(), Some(0), "{}", ran.explain());
    assert_eq!(ran.report().fault("lose-pods").pods().deleted, 1);
    let deletes = case
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("DELETE"))
        .count();
    assert_eq!(
        deletes, 3,
        "two throttled attempts and one that went through"
    );
}
