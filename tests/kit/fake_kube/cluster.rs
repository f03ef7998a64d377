//! The cluster's state and how it changes: pods owned by ReplicaSets and DaemonSets, a
//! global resourceVersion, graceful deletion, and the ReplicaSet controller's replacement.
//! No I/O here: changes that happen later come back as [`FollowUp`]s for the caller to
//! schedule, so the state machine itself is plain data.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use rand::Rng;
use serde_json::Value;
use tokio::sync::broadcast;

use super::objects;
use super::selector::{FieldSelector, LabelSelector};
use super::status::ApiError;

/// (namespace, name)
pub type Key = (String, String);

/// A terminating pod disappears after min(grace, this).
pub const MAX_TERMINATION: Duration = Duration::from_secs(2);
/// What the pod spec says when DeleteOptions does not.
pub const DEFAULT_GRACE_SECONDS: u32 = 30;

/// Fields a pod list or watch may select on (a subset of the pod registry's).
pub const POD_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
];
/// Fields every other resource may select on.
pub const META_FIELDS: &[&str] = &["metadata.name", "metadata.namespace"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Pending,
    Running,
}

#[derive(Debug, Clone)]
pub struct OwnerRef {
    pub kind: &'static str,
    pub name: String,
    pub uid: String,
}

#[derive(Debug, Clone)]
pub struct Deletion {
    pub at: Timestamp,
    pub grace: u32,
}

#[derive(Debug, Clone)]
pub struct PodRec {
    pub uid: String,
    pub rv: u64,
    pub labels: BTreeMap<String, String>,
    pub node: String,
    pub phase: Phase,
    pub ready: bool,
    /// When Ready last changed (the condition's lastTransitionTime).
    pub ready_since: Timestamp,
    pub owner: Option<OwnerRef>,
    pub generate_name: Option<String>,
    pub created: Instant,
    pub creation_ts: Timestamp,
    pub pod_ip: String,
    pub host_ip: String,
    pub host_network: bool,
    pub container: String,
    pub image: String,
    /// Port-forwards to this pod go to 127.0.0.1:this (the agent a test started).
    pub forward_to: Option<u16>,
    pub deletion: Option<Deletion>,
}

impl PodRec {
    pub fn field(&self, key: &Key, field: &str) -> String {
        match field {
            "metadata.name" => key.1.clone(),
            "metadata.namespace" => key.0.clone(),
            "spec.nodeName" => self.node.clone(),
            "spec.restartPolicy" => "Always".into(),
            "spec.schedulerName" => "default-scheduler".into(),
            "spec.serviceAccountName" => "default".into(),
            "spec.hostNetwork" => self.host_network.to_string(),
            "status.phase" => match self.phase {
                Phase::Pending => "Pending".into(),
                Phase::Running => "Running".into(),
            },
            "status.podIP" => self.pod_ip.clone(),
            _ => String::new(),
        }
    }

    pub fn is_ready(&self) -> bool {
        self.ready && self.deletion.is_none()
    }
}

/// A ReplicaSet or DaemonSet: its selector is its pods' labels.
#[derive(Debug, Clone)]
pub struct Workload {
    pub uid: String,
    pub rv: u64,
    pub labels: BTreeMap<String, String>,
    pub creation_ts: Timestamp,
    pub nodes: Vec<String>,
    pub replicas: u32,
    pub ready_delay: Duration,
    pub container: String,
    pub image: String,
}

/// A change that happens later: the caller sleeps `after`, then applies it.
#[derive(Debug, Clone)]
pub enum FollowUp {
    /// The pod (if still this uid) becomes Running and Ready.
    Ready {
        key: Key,
        uid: String,
        after: Duration,
    },
    /// The terminating pod (if still this uid) is gone.
    Remove {
        key: Key,
        uid: String,
        after: Duration,
    },
}

/// One pod watch event, kept for replay from a resourceVersion.
#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    pub kind: &'static str,
    pub key: Key,
    pub pod: PodRec,
    pub object: Value,
}

/// An injected failure (see `FakeCluster::fail_next`).
#[derive(Debug, Clone)]
pub struct Failure {
    pub method: String,
    pub path_prefix: String,
    pub status: u16,
    pub times: u32,
}

/// What DeleteOptions (body or query) asked for.
#[derive(Debug, Default, Clone)]
pub struct DeleteOpts {
    pub grace: Option<u32>,
    pub dry_run: bool,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

/// Kubernetes' name-suffix alphabet (no vowels, no look-alikes).
const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

pub fn random_suffix(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| SUFFIX_ALPHABET[rng.random_range(0..SUFFIX_ALPHABET.len())] as char)
        .collect()
}

pub fn new_uid() -> String {
    let b: [u8; 16] = rand::rng().random();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-4{}-{:x}{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        8 | (b[8] & 3),
        &h[17..20],
        &h[20..32]
    )
}

pub fn labels_map(labels: &[(&str, &str)]) -> BTreeMap<String, String> {
    labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Everything the fake API server knows.
pub struct Cluster {
    rv: u64,
    pub nodes: Vec<String>,
    pub pods: BTreeMap<Key, PodRec>,
    pub replicasets: BTreeMap<Key, Workload>,
    pub daemonsets: BTreeMap<Key, Workload>,
    pub pdbs: BTreeMap<Key, super::policy::Pdb>,
    /// Permissions the fake's user does not have (`FakeCluster::deny`).
    pub denied: Vec<super::rbac::Denied>,
    /// core/v1 Events, as the controllers record them.
    pub object_events: Vec<Value>,
    pub deleted: Vec<Key>,
    pub requests: Vec<String>,
    pub failures: Vec<Failure>,
    pub history: Vec<Arc<Event>>,
    pub events: broadcast::Sender<Arc<Event>>,
    next_ip: u32,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster {
            rv: 1000,
            nodes: Vec::new(),
            pods: BTreeMap::new(),
            replicasets: BTreeMap::new(),
            daemonsets: BTreeMap::new(),
            pdbs: BTreeMap::new(),
            denied: Vec::new(),
            object_events: Vec::new(),
            deleted: Vec::new(),
            requests: Vec::new(),
            failures: Vec::new(),
            history: Vec::new(),
            events: broadcast::channel(4096).0,
            next_ip: 10,
        }
    }
}

impl Cluster {
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    pub fn bump(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    pub fn add_node(&mut self, name: &str) {
        if !self.nodes.iter().any(|n| n == name) {
            self.nodes.push(name.to_string());
        }
    }

    fn node_ip(&self, node: &str) -> String {
        let i = self.nodes.iter().position(|n| n == node).unwrap_or(0);
        format!("172.18.0.{}", i + 2)
    }

    fn next_pod_ip(&mut self, node: &str) -> String {
        let n = self.nodes.iter().position(|x| x == node).unwrap_or(0);
        self.next_ip += 1;
        format!("10.244.{}.{}", n, self.next_ip % 250 + 2)
    }

    /// Bumps the pod's (and its owner's) resourceVersion and tells watchers.
    fn touch(&mut self, key: &Key, kind: &'static str) {
        let rv = self.bump();
        let owner = match self.pods.get_mut(key) {
            Some(p) => {
                p.rv = rv;
                p.owner.clone()
            }
            None => return,
        };
        if let Some(o) = owner {
            let owner_key = (key.0.clone(), o.name.clone());
            let w = match o.kind {
                "ReplicaSet" => self.replicasets.get_mut(&owner_key),
                _ => self.daemonsets.get_mut(&owner_key),
            };
            if let Some(w) = w {
                w.rv = rv;
            }
        }
        self.emit(key, kind);
    }

    fn emit(&mut self, key: &Key, kind: &'static str) {
        if let Some(pod) = self.pods.get(key) {
            let event = Arc::new(Event {
                rv: pod.rv,
                kind,
                key: key.clone(),
                pod: pod.clone(),
                object: objects::pod_value(key, pod, true),
            });
            self.history.push(event.clone());
            let _ = self.events.send(event);
        }
    }

    fn insert_pod(&mut self, key: Key, pod: PodRec) {
        self.pods.insert(key.clone(), pod);
        self.touch(&key, "ADDED");
    }

    #[allow(clippy::too_many_arguments)]
    fn new_pod(
        &mut self,
        labels: BTreeMap<String, String>,
        node: &str,
        ready: bool,
        owner: Option<OwnerRef>,
        generate_name: Option<String>,
        container: &str,
        image: &str,
    ) -> PodRec {
        self.add_node(node);
        let now = Timestamp::now();
        PodRec {
            uid: new_uid(),
            rv: 0,
            labels,
            node: node.to_string(),
            phase: if ready {
                Phase::Running
            } else {
                Phase::Pending
            },
            ready,
            ready_since: now,
            owner,
            generate_name,
            created: Instant::now(),
            creation_ts: now,
            pod_ip: self.next_pod_ip(node),
            host_ip: self.node_ip(node),
            host_network: false,
            container: container.to_string(),
            image: image.to_string(),
            forward_to: None,
            deletion: None,
        }
    }

    /// The bare pod `key` (no owner), Running; Ready or failing its readiness probe.
    /// Returns its uid.
    pub fn add_pod(
        &mut self,
        key: Key,
        labels: BTreeMap<String, String>,
        node: &str,
        ready: bool,
    ) -> String {
        let mut pod = self.new_pod(labels, node, ready, None, None, "app", "nginx:1.27");
        // A bare pod that is not ready is running but failing its readiness probe.
        pod.phase = Phase::Running;
        let uid = pod.uid.clone();
        self.insert_pod(key, pod);
        uid
    }

    /// The ReplicaSet `key` with `replicas` Ready pods placed round-robin on `nodes`;
    /// a replacement turns Ready `ready_delay` after it appears.
    pub fn add_replicaset(
        &mut self,
        key: Key,
        labels: BTreeMap<String, String>,
        replicas: u32,
        nodes: Vec<String>,
        ready_delay: Duration,
    ) {
        for n in &nodes {
            self.add_node(n);
        }
        let name = &key.1;
        let rs = Workload {
            uid: new_uid(),
            rv: self.bump(),
            labels,
            creation_ts: Timestamp::now(),
            nodes,
            replicas,
            ready_delay,
            container: name.to_string(),
            image: format!("registry.example/{name}:1.0"),
        };
        self.replicasets.insert(key.clone(), rs.clone());
        for i in 0..replicas as usize {
            let node = rs
                .nodes
                .get(i % rs.nodes.len().max(1))
                .map_or("node-0", String::as_str);
            self.spawn_rs_pod(&key, &rs, node, true);
        }
    }

    /// A pod of ReplicaSet `key`: Ready at once (initial) or Pending (a replacement).
    fn spawn_rs_pod(&mut self, key: &Key, rs: &Workload, node: &str, ready: bool) -> Key {
        let owner = OwnerRef {
            kind: "ReplicaSet",
            name: key.1.clone(),
            uid: rs.uid.clone(),
        };
        let pod = self.new_pod(
            rs.labels.clone(),
            node,
            ready,
            Some(owner),
            Some(format!("{}-", key.1)),
            &rs.container,
            &rs.image,
        );
        let pod_key = loop {
            let candidate = (key.0.clone(), format!("{}-{}", key.1, random_suffix(5)));
            if !self.pods.contains_key(&candidate) {
                break candidate;
            }
        };
        self.insert_pod(pod_key.clone(), pod);
        pod_key
    }

    /// The DaemonSet `key`: one Ready pod `{name}-{node}` per (node, local port) of
    /// `placement`, port-forwarded to that port.
    pub fn add_daemonset(
        &mut self,
        key: Key,
        labels: BTreeMap<String, String>,
        placement: Vec<(String, u16)>,
    ) {
        let ds = Workload {
            uid: new_uid(),
            rv: self.bump(),
            labels,
            creation_ts: Timestamp::now(),
            nodes: placement.iter().map(|(n, _)| n.clone()).collect(),
            replicas: placement.len() as u32,
            ready_delay: Duration::ZERO,
            container: "agent".into(),
            image: "registry.example/shakeout-agent:0.1.0".into(),
        };
        self.daemonsets.insert(key.clone(), ds.clone());
        let (ns, name) = key;
        for (node, port) in placement {
            let owner = OwnerRef {
                kind: "DaemonSet",
                name: name.clone(),
                uid: ds.uid.clone(),
            };
            let mut pod = self.new_pod(
                ds.labels.clone(),
                &node,
                true,
                Some(owner),
                Some(format!("{name}-")),
                &ds.container,
                &ds.image,
            );
            pod.pod_ip = "127.0.0.1".into();
            pod.forward_to = Some(port);
            self.insert_pod((ns.clone(), format!("{name}-{node}")), pod);
        }
    }

    /// DELETE of a pod, as the API server and the controllers react to it. Returns the
    /// object the server answers with and what happens later.
    pub fn delete_pod(
        &mut self,
        key: &Key,
        opts: &DeleteOpts,
    ) -> Result<(Value, Vec<FollowUp>), ApiError> {
        let Some(pod) = self.pods.get(key) else {
            return Err(ApiError::not_found("pods", "", &key.1));
        };
        if let Some(uid) = &opts.uid {
            if *uid != pod.uid {
                return Err(ApiError::conflict(
                    "pods",
                    "",
                    &key.1,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        pod.uid
                    ),
                ));
            }
        }
        if let Some(rv) = &opts.resource_version {
            if *rv != pod.rv.to_string() {
                return Err(ApiError::conflict(
                    "pods",
                    "",
                    &key.1,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        pod.rv
                    ),
                ));
            }
        }
        let grace = opts.grace.unwrap_or(DEFAULT_GRACE_SECONDS);
        let now = Timestamp::now();
        let deadline = now
            .checked_add(Duration::from_secs(grace.into()))
            .unwrap_or(now);
        let shortens = pod
            .deletion
            .as_ref()
            .is_none_or(|d| deadline < d.at || grace == 0);

        let mut after = pod.clone();
        if shortens {
            after.deletion = Some(Deletion {
                at: deadline,
                grace,
            });
            if after.ready {
                after.ready = false;
                after.ready_since = now;
            }
        }
        if opts.dry_run {
            return Ok((objects::pod_value(key, &after, true), Vec::new()));
        }

        let first = pod.deletion.is_none();
        let owner = pod.owner.clone();
        let mut follow = Vec::new();
        if shortens {
            self.pods.insert(key.clone(), after);
            self.touch(key, "MODIFIED");
        }
        if first {
            self.deleted.push(key.clone());
        }
        let answer = objects::pod_value(key, &self.pods[key], true);
        if grace == 0 {
            self.remove_pod(key, None);
        } else if shortens {
            follow.push(FollowUp::Remove {
                key: key.clone(),
                uid: self.pods[key].uid.clone(),
                after: Duration::from_secs(grace.into()).min(MAX_TERMINATION),
            });
        }
        if first {
            follow.extend(self.replace(key, owner));
        }
        Ok((answer, follow))
    }

    /// The ReplicaSet controller: a pod that is going away is replaced at once by a
    /// Pending one on the least-loaded of the ReplicaSet's nodes.
    fn replace(&mut self, gone: &Key, owner: Option<OwnerRef>) -> Vec<FollowUp> {
        let Some(owner) = owner.filter(|o| o.kind == "ReplicaSet") else {
            return Vec::new();
        };
        let rs_key = (gone.0.clone(), owner.name.clone());
        let Some(rs) = self.replicasets.get(&rs_key).cloned() else {
            return Vec::new();
        };
        if rs.uid != owner.uid {
            return Vec::new();
        }
        let load = |node: &str| {
            self.pods
                .values()
                .filter(|p| p.node == node && p.deletion.is_none())
                .filter(|p| p.owner.as_ref().is_some_and(|o| o.uid == rs.uid))
                .count()
        };
        let node = rs
            .nodes
            .iter()
            .min_by_key(|n| load(n))
            .cloned()
            .unwrap_or_else(|| {
                self.pods
                    .get(gone)
                    .map(|p| p.node.clone())
                    .unwrap_or_default()
            });
        let key = self.spawn_rs_pod(&rs_key, &rs, &node, false);
        let uid = self.pods[&key].uid.clone();
        vec![FollowUp::Ready {
            key,
            uid,
            after: rs.ready_delay,
        }]
    }

    /// Removes the pod now (if `uid` is given, only if it is still that pod).
    pub fn remove_pod(&mut self, key: &Key, uid: Option<&str>) {
        if uid.is_some_and(|u| self.pods.get(key).is_none_or(|p| p.uid != u)) {
            return;
        }
        if self.pods.contains_key(key) {
            // The DELETED event carries the last state with a fresh resourceVersion.
            self.touch(key, "DELETED");
            self.pods.remove(key);
        }
    }

    /// A replacement's containers started and its readiness probe passed.
    pub fn mark_ready(&mut self, key: &Key, uid: &str) {
        let Some(p) = self.pods.get_mut(key) else {
            return;
        };
        if p.uid != uid || p.deletion.is_some() {
            return;
        }
        p.phase = Phase::Running;
        p.ready = true;
        p.ready_since = Timestamp::now();
        self.touch(key, "MODIFIED");
    }

    /// A readiness probe starts passing or failing.
    pub fn set_ready(&mut self, key: &Key, ready: bool) {
        let Some(p) = self.pods.get_mut(key) else {
            return;
        };
        if p.ready == ready {
            return;
        }
        p.ready = ready;
        p.phase = Phase::Running;
        p.ready_since = Timestamp::now();
        self.touch(key, "MODIFIED");
    }

    /// Applies a due follow-up.
    pub fn apply(&mut self, f: &FollowUp) {
        match f {
            FollowUp::Ready { key, uid, .. } => self.mark_ready(key, uid),
            FollowUp::Remove { key, uid, .. } => self.remove_pod(key, Some(uid)),
        }
    }

    /// Pods in `ns` (all namespaces if None) matching both selectors, in key order.
    pub fn select_pods(
        &self,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> Vec<(&Key, &PodRec)> {
        self.pods
            .iter()
            .filter(|(k, _)| ns.is_none_or(|n| k.0 == n))
            .filter(|(k, p)| labels.matches(&p.labels) && fields.matches(|f| p.field(k, f)))
            .collect()
    }

    /// (current, ready) pods owned by the workload with this uid; terminating ones excluded.
    pub fn owned_counts(&self, owner_uid: &str) -> (i32, i32) {
        let owned = self
            .pods
            .values()
            .filter(|p| p.owner.as_ref().is_some_and(|o| o.uid == owner_uid))
            .filter(|p| p.deletion.is_none());
        owned.fold((0, 0), |(n, r), p| (n + 1, r + i32::from(p.is_ready())))
    }

    /// The matching failure rule, consumed.
    pub fn take_failure(&mut self, method: &str, path: &str) -> Option<u16> {
        let rule = self.failures.iter_mut().find(|f| {
            f.times > 0 && f.method.eq_ignore_ascii_case(method) && path.starts_with(&f.path_prefix)
        })?;
        rule.times -= 1;
        let status = rule.status;
        self.failures.retain(|f| f.times > 0);
        Some(status)
    }
}
