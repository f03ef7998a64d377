//! `shakeout preflight` against real agents, before anything runs: a node agent is
//! reported ready, refusing the token, or unreachable; TLS trusts only the configured
//! CA; and the embedded agent is checked the way `run` uses it, saying what it lacks
//! when unprivileged.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup should panic loudly

use std::path::Path;
use std::process::{Command, Output};

mod kit;

use kit::agent::{self_signed, start_agent, tls_args, LocalAgent, SECRET};
use kit::exp::{fault, node_agent, quoted, tcp_probe, Experiment};
use kit::{free_port, root_or_skip, shakeout, Case};

/// `shakeout preflight FILE` with `token` for the agents.
fn preflight(file: &Path, token: &str) -> Output {
    shakeout()
        .arg("preflight")
        .arg(file)
        .env("AGENT_TOKEN", token)
        .output()
        .unwrap()
}

#[test]
fn preflight_reports_ready_wrong_token_and_unreachable() {
    let agent = LocalAgent::start();
    let case = Case::new();
    let experiment = |url: &str| {
        Experiment::new("pre", "10s")
            .agent("node", node_agent(url))
            .probe(tcp_probe("p", "127.0.0.1:9", "1/s"))
            .fault(fault("slow", "1s").with("duration", "2s").with(
                "network",
                "{ agent: node, blackhole: true, to: { ports: [9] } }",
            ))
    };
    let file = case.write(experiment(&agent.url));
    let ok = preflight(&file, SECRET);
    let text = String::from_utf8_lossy(&ok.stdout);
    let nft_ok = text.contains("nftables: available");
    // Ready when this machine has nftables (CI does); otherwise it must say why not.
    if nft_ok {
        assert_eq!(ok.status.code(), Some(0), "{text}");
        assert!(
            text.contains("agent node") && text.contains("ready"),
            "{text}"
        );
    } else {
        assert_eq!(ok.status.code(), Some(3), "{text}");
        assert!(text.contains("blackhole needs nftables"), "{text}");
    }
    let bad = preflight(&file, "not-the-secret-at-all");
    assert_eq!(bad.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&bad.stdout).contains("401 unauthorized"),
        "{}",
        String::from_utf8_lossy(&bad.stdout)
    );
    let file = case.write(experiment(&format!("http://127.0.0.1:{}", free_port())));
    let down = preflight(&file, SECRET);
    assert_eq!(down.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&down.stdout).contains("unreachable"),
        "{}",
        String::from_utf8_lossy(&down.stdout)
    );
}

/// `preflight` checks the embedded agent the way `run` uses it: it starts the guardian,
/// reads what it can do, and says what is missing. As root the demo is ready; the same
/// binary run as an unprivileged user (uid 65534) is not, and says it lacks CAP_NET_ADMIN.
#[test]
fn preflight_checks_the_embedded_agent_and_says_what_is_missing() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/demo.yaml");
    let state = tempfile::tempdir().unwrap();
    let out = shakeout()
        .arg("preflight")
        .arg(&demo)
        .env("SHAKEOUT_STATE_DIR", state.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("agent embedded (http://127.0.0.1:"), "{text}");
    if !root_or_skip(
        "preflight_checks_the_embedded_agent_and_says_what_is_missing (as root)",
        "root's capabilities, and an unprivileged user to compare",
    ) {
        return;
    }
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("ready") && text.contains("CAP_NET_ADMIN"),
        "{text}"
    );
    // No guardian is left once preflight has answered.
    assert!(
        !std::fs::read_dir(state.path().join("embedded"))
            .unwrap()
            .flatten()
            .any(|e| e.path().is_dir()),
        "a guardian state directory was left behind"
    );

    // The same, unprivileged: a copy of the binary and a state root it may use.
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let open = tempfile::tempdir().unwrap();
    std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let bin = open.path().join("shakeout");
    std::fs::copy(kit::process::BIN, &bin).unwrap();
    let exp = open.path().join("demo.yaml");
    std::fs::copy(&demo, &exp).unwrap();
    let mut command = Command::new(&bin);
    command
        .arg("preflight")
        .arg(&exp)
        .env("SHAKEOUT_STATE_DIR", open.path().join("state"))
        .env("HOME", open.path())
        .current_dir(open.path())
        .uid(65534)
        .gid(65534);
    let out = kit::process::output_of_fresh_copy(&mut command);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("NOT READY")
            && text.contains("runs as uid 65534")
            && text.contains("network faults need CAP_NET_ADMIN"),
        "{text}"
    );
}

#[test]
fn preflight_over_tls_trusts_only_the_configured_ca() {
    let case = Case::new();
    let (cert, key) = self_signed(case.dir(), "agent", "IP:127.0.0.1");
    let (other, _) = self_signed(case.dir(), "other", "IP:127.0.0.1");
    let (_agent, addr) = start_agent(&case.path("agent"), "ci", &tls_args(&cert, &key));
    let check = |ca: &Path| {
        let file = case.write(
            Experiment::new("tls", "10s")
                .agent(
                    "node",
                    node_agent(format!("https://{addr}")).with("ca", quoted(ca.display())),
                )
                .probe(tcp_probe("p", addr, "1/s"))
                .fault(
                    fault("freeze", "1s")
                        .with("duration", "1s")
                        .with("process", "{ agent: node, target: { pid: 1 }, pause: {} }"),
                ),
        );
        preflight(&file, SECRET)
    };
    let good = check(&cert);
    let text = String::from_utf8_lossy(&good.stdout);
    assert_eq!(good.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!("agent node (https://{addr}): ready")),
        "{text}"
    );
    let bad = check(&other);
    let text = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(3), "{text}");
    assert!(text.contains("TLS"), "{text}");
}
