//! core/v1 Events as the controllers record them, and a DaemonSet the DaemonSet
//! controller cannot create pods for (the PodSecurity admission of a `baseline`
//! namespace refusing hostPID, say): its status wants pods it does not have, and a
//! Warning `FailedCreate` event, repeated, says why.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use serde_json::{json, Value};

use super::cluster::{new_uid, random_suffix, Cluster, Key, Workload};

/// Fields an event list may select on (a subset of the event registry's).
pub const EVENT_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "involvedObject.kind",
    "involvedObject.name",
    "involvedObject.namespace",
    "involvedObject.uid",
    "reason",
    "type",
];

impl Cluster {
    /// A Warning event `reason: message` about `kind/name` in `ns`, seen `count` times
    /// (the controller's retries), by `component`.
    pub fn record_event(
        &mut self,
        (ns, name): (&str, &str),
        (kind, api_version, uid): (&str, &str, &str),
        component: &str,
        reason: &str,
        message: &str,
        count: i32,
    ) {
        let rv = self.bump();
        let now = Timestamp::now();
        let first = now
            .checked_sub(Duration::from_secs(60))
            .unwrap_or(now)
            .to_string();
        self.object_events.push(json!({
            "metadata": {
                "name": format!("{name}.{:016x}", rand::random::<u64>()),
                "namespace": ns,
                "uid": new_uid(),
                "resourceVersion": rv.to_string(),
                "creationTimestamp": first,
            },
            "involvedObject": {
                "kind": kind,
                "namespace": ns,
                "name": name,
                "uid": uid,
                "apiVersion": api_version,
                "resourceVersion": rv.to_string(),
            },
            "reason": reason,
            "message": message,
            "source": {"component": component},
            "firstTimestamp": first,
            "lastTimestamp": now.to_string(),
            "count": count,
            "type": "Warning",
            "eventTime": null,
            "reportingComponent": component,
            "reportingInstance": "",
        }));
    }

    /// The DaemonSet `key` selecting `labels`, scheduled on `nodes`, whose every pod
    /// creation is refused with `message` (a `FailedCreate` event per node, as the
    /// DaemonSet controller records it): desired `nodes.len()`, created 0, ready 0.
    pub fn add_blocked_daemonset(
        &mut self,
        key: Key,
        labels: BTreeMap<String, String>,
        nodes: Vec<String>,
        message: &str,
    ) {
        for n in &nodes {
            self.add_node(n);
        }
        let ds = Workload {
            uid: new_uid(),
            rv: self.bump(),
            labels,
            creation_ts: Timestamp::now(),
            nodes: nodes.clone(),
            replicas: nodes.len() as u32,
            ready_delay: Duration::ZERO,
            container: "agent".into(),
            image: "registry.example/shakeout-agent:0.1.0".into(),
        };
        let uid = ds.uid.clone();
        self.daemonsets.insert(key.clone(), ds);
        for _ in &nodes {
            let pod = format!("{}-{}", key.1, random_suffix(5));
            self.record_event(
                (&key.0, &key.1),
                ("DaemonSet", "apps/v1", &uid),
                "daemonset-controller",
                "FailedCreate",
                &format!("Error creating: pods \"{pod}\" is forbidden: {message}"),
                12,
            );
        }
    }
}

/// The value of an event field a field selector names.
pub fn event_field(e: &Value, field: &str) -> String {
    let path: Vec<&str> = field.split('.').collect();
    let mut v = e;
    for p in path {
        v = &v[p];
    }
    v.as_str().unwrap_or_default().to_string()
}
