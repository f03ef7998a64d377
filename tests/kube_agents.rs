//! Finding and reaching the cluster's agents, through the real `shakeout` binary against
//! the fake API server and real `shakeout-agent`s behind its port-forward: `shakeout
//! agents` lists the DaemonSet, says why an agent does not answer and what blocks the
//! DaemonSet's pods when there are none, TLS is checked
//! over port-forward and by pod IP, and `preflight` checks each matching pod's node has
//! a Ready agent before anything runs.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup should panic loudly

mod kit;

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::Output;

use kit::agent::{self_signed, tls_args, SECRET};
use kit::exp::{self, fault};
use kit::kube_case::KubeCase;
use kit::{explain, free_port, shakeout};

const NO_ARGS: [&str; 0] = [];

/// `shakeout agents` for the case's cluster with `token` and `extra` arguments.
fn agents<S: AsRef<OsStr>>(
    case: &KubeCase,
    token: &str,
    extra: impl IntoIterator<Item = S>,
) -> Output {
    shakeout()
        .args(["agents", "--kubeconfig"])
        .arg(case.kubeconfig())
        .args(extra)
        .env("SHAKEOUT_TOKEN", token)
        .output()
        .unwrap()
}

#[test]
fn shakeout_agents_lists_the_daemonset_through_port_forward() {
    let case = KubeCase::new();
    let (mut agent, port) = case.start_agent(&[]);
    case.agent_pods(&["node-1"], &[port]);
    let out = agents(&case, SECRET, ["--context", "fake"]);
    agent.kill();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert!(
        stdout.contains("port-forward through the API server"),
        "{stdout}"
    );
    assert!(
        stdout.contains("node node-1: shakeout-agent-node-1 version"),
        "{stdout}"
    );
    assert!(
        case.fake
            .requests()
            .iter()
            .any(|r| r.contains("/pods/shakeout-agent-node-1/portforward")),
        "the agent was not reached through port-forward"
    );

    // A wrong token is refused by the agent, and said so.
    let (mut agent, port) = case.start_agent(&[]);
    let case2 = KubeCase::new();
    case2.agent_pods(&["node-1"], &[port]);
    let out = agents(&case2, "wrong", NO_ARGS);
    agent.kill();
    assert_eq!(out.status.code(), Some(3), "{}", explain(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("NOT ANSWERING"),
        "{}",
        explain(&out)
    );

    // An agent pod whose agent is not listening: the kubelet's dial fails inside the
    // tunnel, and that is said as unreachable (nothing was sent), not as a lost answer.
    let case3 = KubeCase::new();
    case3.agent_pods(&["node-1"], &[free_port()]);
    let out = agents(&case3, SECRET, NO_ARGS);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{}", explain(&out));
    assert!(
        stdout.contains("unreachable: port-forward: error forwarding port")
            && stdout.contains("connection refused"),
        "{}",
        explain(&out)
    );
}

#[test]
fn shakeout_agents_says_what_blocks_the_daemonsets_pods() {
    let case = KubeCase::new();
    // Installed in a namespace whose PodSecurity level (baseline) refuses hostPID: the
    // DaemonSet exists, and none of its pods could be created.
    case.fake.add_blocked_daemonset(
        "shakeout",
        "shakeout-agent",
        &[("app.kubernetes.io/name", "shakeout-agent")],
        &["node-1", "node-2"],
        "violates PodSecurity \"baseline:latest\": host namespaces (hostPID=true), hostPath volumes (volume \"state\")",
    );
    let out = agents(&case, SECRET, NO_ARGS);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // What a person sees (shown with --nocapture).
    eprintln!("{stderr}");
    assert_eq!(out.status.code(), Some(3), "{}", explain(&out));
    assert!(
        stderr.contains("DaemonSet shakeout/shakeout-agent wants 2 agent pods, has created 0, 0 Ready: FailedCreate: Error creating: pods \"shakeout-agent-")
            && stderr.contains("is forbidden: violates PodSecurity \"baseline:latest\": host namespaces (hostPID=true)")
            && stderr.contains("The agent is installed; its pods are what to fix"),
        "{}",
        explain(&out)
    );
    assert!(!stderr.contains("helm install"), "{}", explain(&out));

    // Without a DaemonSet, installing it is the advice.
    let empty = KubeCase::new();
    let out = agents(&empty, SECRET, NO_ARGS);
    assert_eq!(out.status.code(), Some(3), "{}", explain(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("there is no agent DaemonSet: install the agent with `helm install shakeout charts/shakeout -n shakeout`"),
        "{}",
        explain(&out)
    );
}

#[test]
fn preflight_checks_selectors_and_the_agent_on_each_pods_node() {
    let case = KubeCase::new();
    let (_agent, port) = case.start_agent(&[]);
    case.agent_pods(&["node-1"], &[port]);
    case.fake
        .add_pod("shop", "checkout-0", &[("app", "checkout")], "node-1", true);
    let file = case.write(
        case.experiment()
            .service(exp::sample_service(case.port))
            .fault(fault("slow", "1s").with("duration", "2s").with(
                "network",
                "{ latency: { delay: 50ms }, pods: { namespace: shop, selector: app=checkout } }",
            ))
            .fault(fault("lose", "1s").with(
                "pod",
                "{ delete: { namespace: shop, selector: app=checkout } }",
            )),
    );
    let preflight = || {
        shakeout()
            .arg("preflight")
            .arg(&file)
            .env("SHAKEOUT_TOKEN", SECRET)
            .env_remove("KUBECONFIG")
            .output()
            .unwrap()
    };
    let out = preflight();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert!(
        stdout.contains("fault `slow`: 1 pods match in namespace shop"),
        "{stdout}"
    );
    assert!(
        stdout.contains("agent shakeout-agent-node-1 (node node-1) (portforward://shakeout/shakeout-agent-node-1:"),
        "{stdout}"
    );

    // A matching pod on a node without an agent: named, and nothing runs.
    case.fake
        .add_pod("shop", "checkout-1", &[("app", "checkout")], "node-2", true);
    let out = preflight();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(3), "{}", explain(&out));
    assert!(
        stdout.contains("pod shop/checkout-1: no Ready shakeout agent on node `node-2`"),
        "{stdout}"
    );
    assert!(case.fake.deleted().is_empty());
}

/// A self-signed certificate in `dir` for the name the chart's agent certificates carry.
fn agent_certificate(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    self_signed(dir, "shakeout-agent", "DNS:shakeout-agent")
}

#[test]
fn agents_are_reached_over_tls_through_port_forward_and_by_pod_ip() {
    let case = KubeCase::new();
    let (cert, key) = agent_certificate(case.dir());
    let (mut agent, port) = case.start_agent(&tls_args(&cert, &key));
    // The fake's agent pods have the pod IP 127.0.0.1, so `pod-ip` reaches the same agent.
    case.agent_pods(&["node-1"], &[port]);
    let reached = |reach: &str, ca: &Path| {
        let args: [OsString; 6] = [
            "--reach".into(),
            reach.into(),
            "--port".into(),
            port.to_string().into(),
            "--ca".into(),
            ca.into(),
        ];
        agents(&case, SECRET, args)
    };
    for reach in ["port-forward", "pod-ip"] {
        let out = reached(reach, &cert);
        assert_eq!(out.status.code(), Some(0), "{reach}: {}", explain(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout)
                .contains("node node-1: shakeout-agent-node-1 version"),
            "{reach}: {}",
            explain(&out)
        );
    }
    // A CA that did not sign the agent's certificate: refused, over either path.
    let other = tempfile::tempdir().unwrap();
    let (wrong, _) = agent_certificate(other.path());
    for reach in ["port-forward", "pod-ip"] {
        let out = reached(reach, &wrong);
        assert_eq!(out.status.code(), Some(3), "{reach}: {}", explain(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("NOT ANSWERING"),
            "{reach}: {}",
            explain(&out)
        );
    }
    agent.kill();

    // Nothing listening behind the tunnel: the TLS handshake meets an early end, and the
    // kubelet's own error says why.
    let dead = KubeCase::new();
    dead.agent_pods(&["node-1"], &[free_port()]);
    let out = agents(&dead, SECRET, [OsStr::new("--ca"), cert.as_os_str()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{}", explain(&out));
    assert!(
        stdout.contains("unreachable: TLS:")
            && stdout.contains("port-forward: error forwarding port"),
        "{}",
        explain(&out)
    );
}
