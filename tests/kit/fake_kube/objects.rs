//! The JSON the fake server answers with, built from `k8s-openapi` types so the shapes are
//! exactly the ones `kube` deserializes; Status bodies as the API server writes them.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetSpec, DaemonSetStatus, ReplicaSet, ReplicaSetSpec, ReplicaSetStatus,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, ContainerState, ContainerStateRunning, ContainerStateWaiting,
    ContainerStatus, HostIP, Node, NodeAddress, NodeCondition, NodeStatus, NodeSystemInfo, Pod,
    PodCondition, PodIP, PodSpec, PodStatus, PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, ObjectMeta, OwnerReference, Time,
};
use k8s_openapi::jiff::Timestamp;
use serde_json::{json, Value};

use super::cluster::{Key, Phase, PodRec, Workload};
use super::status::ApiError;

/// The value a k8s-openapi object serializes to; list items drop `kind`/`apiVersion` as
/// the real server's do.
fn to_value<T: serde::Serialize>(obj: &T, with_type: bool) -> Value {
    let mut v = serde_json::to_value(obj).unwrap_or(Value::Null);
    if !with_type {
        if let Some(m) = v.as_object_mut() {
            m.remove("kind");
            m.remove("apiVersion");
        }
    }
    v
}

fn condition(type_: &str, ok: bool, since: Timestamp, not_ready: Option<&str>) -> PodCondition {
    PodCondition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        last_transition_time: Some(Time(since)),
        reason: (!ok).then(|| "ContainersNotReady".to_string()),
        message: (!ok).then(|| not_ready.unwrap_or_default().to_string()),
        ..Default::default()
    }
}

pub fn pod(key: &Key, p: &PodRec) -> Pod {
    let ready = p.is_ready();
    let running = p.phase == Phase::Running;
    let not_ready = format!("containers with unready status: [{}]", p.container);
    let owner = p.owner.as_ref().map(|o| {
        vec![OwnerReference {
            api_version: "apps/v1".into(),
            kind: o.kind.into(),
            name: o.name.clone(),
            uid: o.uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]
    });
    let state = if running {
        ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(Time(p.creation_ts)),
            }),
            ..Default::default()
        }
    } else {
        ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some("ContainerCreating".into()),
                message: None,
            }),
            ..Default::default()
        }
    };
    Pod {
        metadata: ObjectMeta {
            name: Some(key.1.clone()),
            generate_name: p.generate_name.clone(),
            namespace: Some(key.0.clone()),
            uid: Some(p.uid.clone()),
            resource_version: Some(p.rv.to_string()),
            creation_timestamp: Some(Time(p.creation_ts)),
            deletion_timestamp: p.deletion.as_ref().map(|d| Time(d.at)),
            deletion_grace_period_seconds: p.deletion.as_ref().map(|d| d.grace.into()),
            labels: Some(p.labels.clone()),
            owner_references: owner,
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some(p.node.clone()),
            host_network: p.host_network.then_some(true),
            containers: vec![Container {
                name: p.container.clone(),
                image: Some(p.image.clone()),
                ports: p.forward_to.map(|_| {
                    vec![ContainerPort {
                        container_port: 7070,
                        name: Some("api".into()),
                        protocol: Some("TCP".into()),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }],
            restart_policy: Some("Always".into()),
            scheduler_name: Some("default-scheduler".into()),
            service_account_name: Some("default".into()),
            termination_grace_period_seconds: Some(30),
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some(if running { "Running" } else { "Pending" }.into()),
            conditions: Some(vec![
                condition("PodReadyToStartContainers", running, p.creation_ts, None),
                condition("Initialized", true, p.creation_ts, None),
                condition("Ready", ready, p.ready_since, Some(&not_ready)),
                condition("ContainersReady", ready, p.ready_since, Some(&not_ready)),
                condition("PodScheduled", true, p.creation_ts, None),
            ]),
            host_ip: Some(p.host_ip.clone()),
            host_ips: Some(vec![HostIP {
                ip: p.host_ip.clone(),
            }]),
            pod_ip: Some(p.pod_ip.clone()),
            pod_ips: Some(vec![PodIP {
                ip: p.pod_ip.clone(),
            }]),
            start_time: Some(Time(p.creation_ts)),
            qos_class: Some("BestEffort".into()),
            container_statuses: Some(vec![ContainerStatus {
                name: p.container.clone(),
                ready,
                started: Some(running),
                restart_count: 0,
                image: p.image.clone(),
                image_id: if running {
                    format!("{}@sha256:{}", p.image, "0".repeat(64))
                } else {
                    String::new()
                },
                container_id: running.then(|| format!("containerd://{}", p.uid.replace('-', ""))),
                state: Some(state),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

pub fn pod_value(key: &Key, p: &PodRec, with_type: bool) -> Value {
    to_value(&pod(key, p), with_type)
}

fn template(w: &Workload) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(w.labels.clone()),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: w.container.clone(),
                image: Some(w.image.clone()),
                ..Default::default()
            }],
            ..Default::default()
        }),
    }
}

fn workload_meta(key: &Key, w: &Workload) -> ObjectMeta {
    ObjectMeta {
        name: Some(key.1.clone()),
        namespace: Some(key.0.clone()),
        uid: Some(w.uid.clone()),
        resource_version: Some(w.rv.to_string()),
        generation: Some(1),
        creation_timestamp: Some(Time(w.creation_ts)),
        labels: Some(w.labels.clone()),
        ..Default::default()
    }
}

fn selector(labels: &BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels.clone()),
        match_expressions: None,
    }
}

/// `counts` = (current, ready) pods.
pub fn replicaset_value(key: &Key, w: &Workload, counts: (i32, i32), with_type: bool) -> Value {
    let rs = ReplicaSet {
        metadata: workload_meta(key, w),
        spec: ReplicaSetSpec {
            replicas: Some(w.replicas as i32),
            selector: selector(&w.labels),
            template: Some(template(w)),
            ..Default::default()
        },
        status: Some(ReplicaSetStatus {
            replicas: counts.0,
            fully_labeled_replicas: Some(counts.0),
            ready_replicas: Some(counts.1),
            available_replicas: Some(counts.1),
            observed_generation: Some(1),
            ..Default::default()
        }),
    };
    to_value(&rs, with_type)
}

pub fn daemonset_value(key: &Key, w: &Workload, counts: (i32, i32), with_type: bool) -> Value {
    let desired = w.nodes.len() as i32;
    let ds = DaemonSet {
        metadata: workload_meta(key, w),
        spec: DaemonSetSpec {
            selector: selector(&w.labels),
            template: template(w),
            ..Default::default()
        },
        status: Some(DaemonSetStatus {
            current_number_scheduled: counts.0,
            desired_number_scheduled: desired,
            number_ready: counts.1,
            number_available: Some(counts.1),
            number_unavailable: Some(desired - counts.1).filter(|n| *n > 0),
            number_misscheduled: 0,
            updated_number_scheduled: Some(counts.0),
            observed_generation: Some(1),
            ..Default::default()
        }),
    };
    to_value(&ds, with_type)
}

pub fn node_value(name: &str, index: usize, rv: u64, with_type: bool) -> Value {
    let node = Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            uid: Some(format!("00000000-0000-4000-8000-{index:012}")),
            resource_version: Some(rv.to_string()),
            labels: Some(BTreeMap::from([
                ("kubernetes.io/hostname".to_string(), name.to_string()),
                ("kubernetes.io/os".to_string(), "linux".to_string()),
            ])),
            ..Default::default()
        },
        spec: None,
        status: Some(NodeStatus {
            addresses: Some(vec![
                NodeAddress {
                    type_: "InternalIP".into(),
                    address: format!("172.18.0.{}", index + 2),
                },
                NodeAddress {
                    type_: "Hostname".into(),
                    address: name.into(),
                },
            ]),
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                reason: Some("KubeletReady".into()),
                message: Some("kubelet is posting ready status".into()),
                ..Default::default()
            }]),
            node_info: Some(NodeSystemInfo {
                kubelet_version: super::VERSION.into(),
                kube_proxy_version: super::VERSION.into(),
                operating_system: "linux".into(),
                architecture: "amd64".into(),
                container_runtime_version: "containerd://2.1.0".into(),
                os_image: "Debian GNU/Linux 12 (bookworm)".into(),
                kernel_version: "6.1.0".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
    };
    to_value(&node, with_type)
}

/// A `kind: List` answer of the given kind (`PodList`, ...).
pub fn list(
    kind: &str,
    api_version: &str,
    rv: u64,
    items: Vec<Value>,
    cont: Option<String>,
    remaining: usize,
) -> Value {
    let mut metadata = json!({ "resourceVersion": rv.to_string() });
    if let Some(c) = cont {
        metadata["continue"] = json!(c);
        metadata["remainingItemCount"] = json!(remaining);
    }
    json!({ "kind": kind, "apiVersion": api_version, "metadata": metadata, "items": items })
}

/// The metav1.Status body of a failed request.
pub fn status(e: &ApiError) -> Value {
    let retry_after = e.retry_after();
    let mut v = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": e.message,
        "reason": e.reason,
        "code": e.code,
    });
    let mut details = serde_json::Map::new();
    if let Some(n) = &e.name {
        details.insert("name".into(), json!(n));
    }
    if let Some(g) = &e.group {
        details.insert("group".into(), json!(g));
    }
    if let Some(k) = &e.kind {
        details.insert("kind".into(), json!(k));
    }
    if let Some(s) = retry_after {
        details.insert("retryAfterSeconds".into(), json!(s));
    }
    if !e.causes().is_empty() {
        let causes: Vec<Value> = e
            .causes()
            .iter()
            .map(|(reason, message)| json!({"reason": reason, "message": message}))
            .collect();
        details.insert("causes".into(), Value::Array(causes));
    }
    if !details.is_empty() || e.code == 404 || e.code == 429 {
        v["details"] = Value::Object(details);
    }
    v
}
