//! Permissions, checked before anything runs, through the real `shakeout` binary against
//! the fake API server (whose RBAC answers requests and access reviews alike): a run that
//! would need a permission the account lacks stops at preflight, naming it and the RBAC
//! rule that grants it, before its services start or a probe is sent; the dry run finds
//! it too, through the server's own check; permissions the run can do without are notes.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup should panic loudly

mod kit;

use std::path::Path;
use std::time::Duration;

use kit::exp::{self, fault};
use kit::kube_case::{delete_checkout, KubeCase};
use kit::{explain, shakeout};

/// The sample service, leaving `marker` behind if it ever starts.
fn service_with_marker(case: &KubeCase, marker: &Path) -> exp::Map {
    exp::sample_service(case.port).with(
        "command",
        format!(
            r#"[sh, -c, 'touch {} && exec "$0" "$@"', "${{exe}}", sample-service, --listen, "127.0.0.1:{}"]"#,
            marker.display(),
            case.port
        ),
    )
}

fn preflight(file: &Path) -> std::process::Output {
    shakeout()
        .arg("preflight")
        .arg(file)
        .env_remove("KUBECONFIG")
        .output()
        .unwrap()
}

#[test]
fn a_missing_delete_permission_stops_the_run_before_it_starts() {
    let case = KubeCase::new();
    case.checkout(2, &["node-1"], Duration::from_millis(100));
    case.fake.deny("delete", "pods", Some("shop"));
    let marker = case.path("service-ran");
    let file = case.write(
        case.experiment()
            .service(service_with_marker(&case, &marker))
            .fault(delete_checkout("mode: one")),
    );
    let missing = "missing permission: delete pods in namespace shop, needed because fault `lose-pods` deletes the chosen pods. RBAC: grant apiGroups: [\"\"], resources: [pods], verbs: [delete] in namespace shop";

    let ran = case.run(&file);
    assert_eq!(ran.code(), Some(3), "{}", ran.explain());
    assert!(ran.explain().contains(missing), "{}", ran.explain());
    assert!(
        !marker.exists(),
        "the service started although the run could not"
    );
    assert!(
        ran.elapsed < Duration::from_secs(10),
        "refused only after {:?}",
        ran.elapsed
    );

    let out = preflight(&file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // What a person sees (shown with --nocapture).
    eprintln!("{stdout}");
    assert_eq!(out.status.code(), Some(3), "{}", explain(&out));
    assert!(stdout.contains(missing), "{stdout}");

    // The dry run finds it through the server's own check of the deletion.
    let dry = case.run_with(&file, &["--dry-run"]);
    assert_eq!(dry.code(), Some(3), "{}", dry.explain());
    assert!(
        dry.stdout().contains("403 Forbidden")
            && dry.stdout().contains("cannot delete resource \"pods\""),
        "{}",
        dry.explain()
    );
    assert!(case.fake.deleted().is_empty());
    assert!(!marker.exists());
}

#[test]
fn an_eviction_needs_create_on_pods_eviction_not_delete() {
    let case = KubeCase::new();
    case.checkout(2, &["node-1"], Duration::from_millis(100));
    // A plain delete is allowed and would not help: the fault evicts.
    case.fake.deny("create", "pods/eviction", Some("shop"));
    let file = case.write(
        case.experiment()
            .service(exp::sample_service(case.port))
            .fault(fault("lose-pods", "500ms").with(
                "pod",
                "{ delete: { namespace: shop, selector: app=checkout, evict: true } }",
            )),
    );
    let out = preflight(&file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{}", explain(&out));
    assert!(
        stdout.contains("missing permission: create pods/eviction in namespace shop")
            && stdout.contains("resources: [pods/eviction], verbs: [create]"),
        "{stdout}"
    );
    assert!(!stdout.contains("delete pods in namespace"), "{stdout}");
}

#[test]
fn permissions_the_run_can_do_without_are_notes() {
    let case = KubeCase::new();
    case.checkout(2, &["node-1"], Duration::from_millis(100));
    case.fake.deny("watch", "pods", Some("shop"));
    case.fake
        .deny("list", "poddisruptionbudgets.policy", Some("shop"));
    let file = case.write(
        case.experiment()
            .service(exp::sample_service(case.port))
            .fault(delete_checkout("mode: one")),
    );
    let out = preflight(&file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert!(
        stdout.contains("may not watch pods in namespace shop: the pod recovery time is polled every 200 ms instead of watched"),
        "{stdout}"
    );
    assert!(
        stdout.contains("may not list poddisruptionbudgets.policy in namespace shop"),
        "{stdout}"
    );
    assert!(
        stdout.contains("2 of 4 permissions the run needs are granted"),
        "{stdout}"
    );
}
