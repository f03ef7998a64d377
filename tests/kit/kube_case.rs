//! A case against the fake API server, as the Kubernetes tests share it: a fresh fake
//! cluster with two nodes and a kubeconfig for it in the case's directory, the workloads
//! the tests use (the `checkout` ReplicaSet, the agent DaemonSet) and the experiment
//! they start from.

use std::ops::Deref;
use std::path::PathBuf;
use std::time::Duration;

use super::agent;
use super::case::Case;
use super::exp::{health_probe, Experiment, Map};
use super::fake_kube::FakeCluster;
use super::process::Owned;

/// `spec.kubernetes` for the cluster agents: their token from `KUBE_TEST_TOKEN`, and a
/// short lease.
pub const WITH_AGENTS: &str = "{ kubeconfig: kubeconfig, context: fake, agents: { tokenFrom: { env: KUBE_TEST_TOKEN }, lease: 3s } }";

/// A [`Case`] (it derefs to one) whose runs see the fake cluster through the kubeconfig
/// in its directory, never through `KUBECONFIG`, and get the agents' token.
pub struct KubeCase {
    case: Case,
    pub fake: FakeCluster,
}

impl KubeCase {
    pub fn new() -> KubeCase {
        let case = Case::new()
            .env("KUBE_TEST_TOKEN", agent::SECRET)
            .env_remove("KUBECONFIG");
        let fake = FakeCluster::start();
        fake.write_kubeconfig(&case.path("kubeconfig"), "fake");
        fake.add_node("node-1");
        fake.add_node("node-2");
        KubeCase { case, fake }
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.case.path("kubeconfig")
    }

    /// `kube-test`: 30 s, seed 42, this cluster, and the probe `health` of the service on
    /// the case's port (50/s); faults, objectives and the service itself are the test's.
    pub fn experiment(&self) -> Experiment {
        Experiment::new("kube-test", "30s")
            .seed(42)
            .kubernetes("{ kubeconfig: kubeconfig, context: fake }")
            .probe(health_probe(self.case.port, "50/s"))
    }

    /// The standard workload: ReplicaSet `checkout-7d9f` in `shop`, labelled app=checkout.
    pub fn checkout(&self, replicas: u32, nodes: &[&str], ready_delay: Duration) {
        self.fake.add_replicaset(
            "shop",
            "checkout-7d9f",
            &[("app", "checkout")],
            replicas,
            nodes,
            ready_delay,
        );
    }

    /// The agent DaemonSet as the Helm chart labels it; node i's agent is `ports[i]`.
    pub fn agent_pods(&self, nodes: &[&str], ports: &[u16]) {
        self.fake.add_daemonset(
            "shakeout",
            "shakeout-agent",
            &[("app.kubernetes.io/name", "shakeout-agent")],
            nodes,
            ports,
        );
    }

    /// A real agent on 127.0.0.1, as the agent pod of one node, with `extra` arguments;
    /// its files are in `agent/` of the case's directory (a restart sweeps its ledger).
    pub fn start_agent(&self, extra: &[&std::ffi::OsStr]) -> (Owned, u16) {
        let (agent, addr) = agent::start_agent(&self.case.path("agent"), "controller", extra);
        (agent, addr.port())
    }
}

impl Deref for KubeCase {
    type Target = Case;

    fn deref(&self) -> &Case {
        &self.case
    }
}

/// The fault `lose-pods`: delete pods of `checkout` in `shop` chosen by `mode` (e.g.
/// `mode: one`), at once (grace 0), waiting up to 20 s for the replacements.
pub fn delete_checkout(mode: &str) -> Map {
    super::exp::fault("lose-pods", "500ms").with(
        "pod",
        format!("{{ delete: {{ namespace: shop, selector: app=checkout, {mode}, gracePeriod: 0s, recoveryTimeout: 20s }} }}"),
    )
}
