//! Reaching the API server, through the real `shakeout` binary: a server that refuses the
//! connection and one whose certificate the kubeconfig's CA did not sign are told apart
//! and named (no raw `kube_client` log line on the way), and `KUBECONFIG` lists are read
//! as kubectl reads them (a listed file that does not exist is skipped).

#![allow(clippy::unwrap_used)] // test helpers: a failed setup should panic loudly

mod kit;

use std::path::Path;
use std::process::Output;

use kit::agent::self_signed;
use kit::exp;
use kit::kube_case::{delete_checkout, KubeCase};
use kit::{explain, free_port, shakeout};

/// A kubeconfig (context `remote`) for the API server at `server`, trusting `ca`.
fn kubeconfig(path: &Path, server: &str, ca: Option<&Path>) {
    let ca = ca
        .map(|c| format!(", certificate-authority: {}", c.display()))
        .unwrap_or_default();
    std::fs::write(
        path,
        format!(
            "apiVersion: v1\nkind: Config\n\
             clusters: [{{name: remote, cluster: {{server: \"{server}\"{ca}}}}}]\n\
             users: [{{name: remote, user: {{token: t0ken}}}}]\n\
             contexts: [{{name: remote, context: {{cluster: remote, user: remote}}}}]\n\
             current-context: remote\n"
        ),
    )
    .unwrap();
}

/// `shakeout preflight` and `shakeout run` on a pod deletion against the kubeconfig
/// `remote` in the case's directory: both outputs.
fn preflight_and_run(case: &KubeCase) -> (Output, kit::Ran) {
    let file = case.write(
        case.experiment()
            .kubernetes("{ kubeconfig: remote }")
            .service(exp::sample_service(case.port))
            .fault(delete_checkout("mode: one")),
    );
    let preflight = shakeout()
        .arg("preflight")
        .arg(&file)
        .env_remove("KUBECONFIG")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    (preflight, case.run(&file))
}

/// Neither command let kube's own ERROR log line through.
fn no_raw_log(out: &str) {
    assert!(
        !out.contains("kube_client") && !out.contains("ERROR"),
        "a raw log line escaped:\n{out}"
    );
}

#[test]
fn a_closed_port_is_said_refused_with_the_servers_address() {
    let case = KubeCase::new();
    let server = format!("https://127.0.0.1:{}", free_port());
    kubeconfig(&case.path("remote"), &server, None);
    let (preflight, ran) = preflight_and_run(&case);
    for (what, out, code) in [
        ("preflight", explain(&preflight), preflight.status.code()),
        ("run", ran.explain(), ran.code()),
    ] {
        assert_eq!(code, Some(3), "{what}: {out}");
        assert!(
            out.contains(&format!(
                "the API server at {server} refused the connection"
            )),
            "{what}: {out}"
        );
        assert!(!out.contains("client error (Connect)"), "{what}: {out}");
        no_raw_log(&out);
    }
}

#[test]
fn a_certificate_from_another_ca_is_said_so() {
    let case = KubeCase::new();
    // The "API server": a TLS server (a real agent) with its own certificate for
    // 127.0.0.1; the kubeconfig trusts another CA.
    let (cert, key) = self_signed(case.dir(), "server", "IP:127.0.0.1");
    let (other, _) = self_signed(case.dir(), "other-ca", "IP:127.0.0.1");
    let (mut agent, port) = case.start_agent(&kit::agent::tls_args(&cert, &key));
    let server = format!("https://127.0.0.1:{port}");
    kubeconfig(&case.path("remote"), &server, Some(&other));
    let (preflight, ran) = preflight_and_run(&case);
    agent.kill();
    for (what, out, code) in [
        ("preflight", explain(&preflight), preflight.status.code()),
        ("run", ran.explain(), ran.code()),
    ] {
        assert_eq!(code, Some(3), "{what}: {out}");
        assert!(
            out.contains(&format!(
                "the API server at {server} failed the certificate check"
            )) && out.contains("not signed by the CA the kubeconfig trusts"),
            "{what}: {out}"
        );
        assert!(!out.contains("refused the connection"), "{what}: {out}");
        no_raw_log(&out);
    }
}

#[test]
fn a_kubeconfig_list_skips_files_that_do_not_exist() {
    let case = KubeCase::new();
    case.checkout(2, &["node-1"], std::time::Duration::from_millis(100));
    // No `kubeconfig:` in the file: KUBECONFIG decides.
    let file = case.write(
        case.experiment()
            .kubernetes("{ context: fake }")
            .service(exp::sample_service(case.port))
            .fault(delete_checkout("mode: one")),
    );
    let missing = case.path("not-there");
    let dry_run = |kubeconfig: String| {
        shakeout()
            .args(["run", "--dry-run"])
            .arg(&file)
            .env("KUBECONFIG", kubeconfig)
            .output()
            .unwrap()
    };
    let out = dry_run(format!(
        "{}:{}",
        missing.display(),
        case.kubeconfig().display()
    ));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert!(
        stdout.contains(&format!(
            "cluster: kubeconfig {} context fake",
            case.kubeconfig().display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("would delete shop/checkout-7d9f-"),
        "{stdout}"
    );

    // Only when none of them exists is it an error, naming them.
    let out = dry_run(format!("{0}:{0}-too", missing.display()));
    assert_eq!(out.status.code(), Some(3), "{}", explain(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "KUBECONFIG={0}:{0}-too: none of these files exists",
            missing.display()
        )),
        "{}",
        explain(&out)
    );
    assert!(case.fake.deleted().is_empty());
}
