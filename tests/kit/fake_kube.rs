//! A fake Kubernetes API server for the integration tests: it serves the REST paths the
//! `kube` crate calls (pods, evictions, nodes, ReplicaSets, DaemonSets,
//! PodDisruptionBudgets, events, SelfSubjectAccessReviews, pod watch, port-forward over
//! WebSocket) and behaves like a cluster (deleted ReplicaSet pods are replaced and turn
//! Ready after a delay; graceful deletion; budgets that refuse evictions; RBAC denials a
//! test sets, answered alike by the request and its access review; injected
//! 403/404/409/429 Status errors).
//! It runs on its own thread and runtime so sync tests can drive it; dropping the
//! handle stops the server, every connection and every pending state change.
//!
//! Two ways in, one server: over HTTP (`url`, `write_kubeconfig`: the `shakeout` binary,
//! or a `kube` client from a kubeconfig) and in process (`client`: a `kube::Client` with
//! no socket, for library code under test). Either way the handle sets the cluster up,
//! injects failures (`fail_next`, `set_ready`) and shows what happened (`pods`,
//! `deleted`, `requests`).

mod cluster;
mod events;
mod in_process;
mod objects;
mod policy;
mod portforward;
mod rbac;
pub mod selector;
mod server;
mod status;
mod watch;

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use cluster::labels_map;
#[allow(unused_imports)]
pub use cluster::MAX_TERMINATION;
#[allow(unused_imports)]
pub use portforward::PROTOCOL as PORTFORWARD_PROTOCOL;
use server::Shared;

/// The Kubernetes version the fake reports (matches k8s-openapi's `latest`).
pub const VERSION: &str = "v1.37.0";

/// A running fake API server; drop it to stop it.
pub struct FakeCluster {
    shared: Arc<Shared>,
    cancel: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

/// A pod as the test sees it.
#[derive(Debug, Clone)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub node: String,
    pub ready: bool,
    pub terminating: bool,
    /// `ReplicaSet/name` or `DaemonSet/name`; None for a bare pod.
    pub owner: Option<String>,
    pub created: Instant,
}

impl FakeCluster {
    /// The bearer token every request must carry.
    pub const TOKEN: &'static str = "fake-token";

    /// Binds 127.0.0.1:0 and serves on a new thread with its own runtime.
    pub fn start() -> FakeCluster {
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("fake-kube".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("fake-kube runtime");
                let listener = rt
                    .block_on(TcpListener::bind("127.0.0.1:0"))
                    .expect("fake-kube bind 127.0.0.1:0");
                let port = listener.local_addr().expect("local addr").port();
                let shared = Arc::new(Shared::new(rt.handle().clone(), port));
                let _ = tx.send(shared.clone());
                rt.block_on(server::serve(listener, shared, stop));
                // Dropping the runtime drops every connection, forward and timer task.
                drop(rt);
            })
            .expect("spawn fake-kube thread");
        let shared = rx.recv().expect("fake-kube started");
        FakeCluster {
            shared,
            cancel,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.shared.port)
    }

    pub fn port(&self) -> u16 {
        self.shared.port
    }

    /// A client talking to this server in process: no socket, no kubeconfig (default
    /// namespace `default`). Port-forward needs the HTTP server (`url`,
    /// `write_kubeconfig`). Call it inside a Tokio runtime.
    pub fn client(&self) -> kube::Client {
        kube::Client::new(in_process::InProcess(self.shared.clone()), "default")
    }

    /// Writes a kubeconfig (server = url(), user token TOKEN, namespace default) with one
    /// context named `context`, set as current-context.
    pub fn write_kubeconfig(&self, path: &Path, context: &str) {
        let config = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "preferences": {},
            "clusters": [{"name": "fake", "cluster": {"server": self.url()}}],
            "users": [{"name": "fake", "user": {"token": Self::TOKEN}}],
            "contexts": [{
                "name": context,
                "context": {"cluster": "fake", "user": "fake", "namespace": "default"}
            }],
            "current-context": context,
        });
        let yaml = serde_yaml::to_string(&config).expect("kubeconfig yaml");
        std::fs::write(path, yaml).expect("write kubeconfig");
    }

    pub fn add_node(&self, name: &str) {
        self.shared.lock().add_node(name);
    }

    /// A Deployment-like ReplicaSet `name` in `ns` with `replicas` pods, all Running and
    /// Ready, spread round-robin over `nodes`, named `{name}-{5 random}`, labelled
    /// `labels`, owned by the ReplicaSet. A deleted pod (not dry run) is replaced at once
    /// by a Pending, not Ready pod that turns Running and Ready after `ready_delay`.
    pub fn add_replicaset(
        &self,
        ns: &str,
        name: &str,
        labels: &[(&str, &str)],
        replicas: u32,
        nodes: &[&str],
        ready_delay: Duration,
    ) {
        let nodes = nodes.iter().map(|n| n.to_string()).collect();
        self.shared.lock().add_replicaset(
            (ns.into(), name.into()),
            labels_map(labels),
            replicas,
            nodes,
            ready_delay,
        );
    }

    /// A bare pod (no owner): not replaced when deleted. Returns its uid. A pod that is
    /// not ready is Running with a failing readiness probe.
    pub fn add_pod(
        &self,
        ns: &str,
        name: &str,
        labels: &[(&str, &str)],
        node: &str,
        ready: bool,
    ) -> String {
        self.shared
            .lock()
            .add_pod((ns.into(), name.into()), labels_map(labels), node, ready)
    }

    /// The agent DaemonSet: the DaemonSet `name` in `ns` selecting `labels`, and one
    /// Ready pod `{name}-{node}` (podIP 127.0.0.1) per node. A port-forward to the i-th
    /// pod, on any port, is connected to 127.0.0.1:`local_ports[i]`.
    pub fn add_daemonset(
        &self,
        ns: &str,
        name: &str,
        labels: &[(&str, &str)],
        nodes: &[&str],
        local_ports: &[u16],
    ) {
        assert_eq!(
            nodes.len(),
            local_ports.len(),
            "add_daemonset: one local port per node"
        );
        let placement = nodes
            .iter()
            .map(|n| n.to_string())
            .zip(local_ports.iter().copied())
            .collect();
        self.shared
            .lock()
            .add_daemonset((ns.into(), name.into()), labels_map(labels), placement);
    }

    /// The agent DaemonSet `name` in `ns` selecting `labels`, wanted on `nodes`, whose
    /// pods admission refuses with `message` (e.g. `violates PodSecurity
    /// "baseline:latest": host namespaces (hostPID=true)`): no pod, and the DaemonSet
    /// controller's `FailedCreate` Warning events.
    pub fn add_blocked_daemonset(
        &self,
        ns: &str,
        name: &str,
        labels: &[(&str, &str)],
        nodes: &[&str],
        message: &str,
    ) {
        self.shared.lock().add_blocked_daemonset(
            (ns.into(), name.into()),
            labels_map(labels),
            nodes.iter().map(|n| n.to_string()).collect(),
            message,
        );
    }

    /// A PodDisruptionBudget `name` in `ns` covering the pods with `labels`, with
    /// `rule` = (`minAvailable` or `maxUnavailable`, `3` or `50%`). Its status is what
    /// the disruption controller would compute from the pods at each request; evictions
    /// honour it, deletes do not.
    pub fn add_pdb(&self, ns: &str, name: &str, labels: &[(&str, &str)], rule: (&str, &str)) {
        let value = policy::int_or_percent(rule.1);
        let (min_available, max_unavailable) = match rule.0 {
            "minAvailable" => (Some(value), None),
            "maxUnavailable" => (None, Some(value)),
            other => panic!("add_pdb: {other} is neither minAvailable nor maxUnavailable"),
        };
        let mut c = self.shared.lock();
        let rv = c.bump();
        c.pdbs.insert(
            (ns.into(), name.into()),
            policy::Pdb {
                uid: cluster::new_uid(),
                rv,
                creation_ts: k8s_openapi::jiff::Timestamp::now(),
                selector: labels_map(labels),
                min_available,
                max_unavailable,
            },
        );
    }

    /// Takes a permission from the fake's user, as a missing RBAC rule would: `verb` on
    /// `resource` (`pods`, `pods/eviction`, `poddisruptionbudgets.policy`,
    /// `daemonsets.apps`) in `namespace` (`None`: everywhere). Requests needing it get
    /// the API server's 403, and access reviews for it answer `allowed: false`.
    pub fn deny(&self, verb: &str, resource: &str, namespace: Option<&str>) {
        self.shared
            .lock()
            .denied
            .push(rbac::Denied::parse(verb, resource, namespace));
    }

    /// Current pods in `ns` (including terminating ones), by name.
    pub fn pods(&self, ns: &str) -> Vec<PodInfo> {
        let c = self.shared.lock();
        c.pods
            .iter()
            .filter(|(k, _)| k.0 == ns)
            .map(|(k, p)| PodInfo {
                namespace: k.0.clone(),
                name: k.1.clone(),
                uid: p.uid.clone(),
                node: p.node.clone(),
                ready: p.is_ready(),
                terminating: p.deletion.is_some(),
                owner: p.owner.as_ref().map(|o| format!("{}/{}", o.kind, o.name)),
                created: p.created,
            })
            .collect()
    }

    /// The pod `ns/name`, if it exists.
    pub fn pod(&self, ns: &str, name: &str) -> Option<PodInfo> {
        self.pods(ns).into_iter().find(|p| p.name == name)
    }

    /// (ns, name) of every pod actually deleted (not dry run), in order; a pod that is
    /// deleted again while terminating is listed once.
    pub fn deleted(&self) -> Vec<(String, String)> {
        self.shared.lock().deleted.clone()
    }

    /// `METHOD path?query` of every request (401s included), in order, the query exactly
    /// as sent: percent-encoded, and kube 5 starts it with `&`
    /// (`GET /api/v1/namespaces/shop/pods?&labelSelector=app%3Dweb`). The `?` is left
    /// out when the query is empty (kube's DELETE sends `.../pods/x?`).
    pub fn requests(&self) -> Vec<String> {
        self.shared.lock().requests.clone()
    }

    /// Forgets the requests seen so far.
    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }

    /// Makes the pod pass or fail its readiness probe (e.g. an agent that stopped
    /// answering) without deleting it.
    pub fn set_ready(&self, ns: &str, name: &str, ready: bool) {
        self.shared
            .lock()
            .set_ready(&(ns.into(), name.into()), ready);
    }

    /// The next `times` requests whose method matches and whose path (without query)
    /// starts with `path_prefix` get `status` with the metav1.Status the real server
    /// would send (reason Forbidden/NotFound/Conflict/TooManyRequests/...); 429 also
    /// sets `Retry-After: 1`. Checked after authentication, before routing.
    pub fn fail_next(&self, method: &str, path_prefix: &str, status: u16, times: u32) {
        self.shared.lock().failures.push(cluster::Failure {
            method: method.to_string(),
            path_prefix: path_prefix.to_string(),
            status,
            times,
        });
    }
}

impl Drop for FakeCluster {
    fn drop(&mut self) {
        self.cancel.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
