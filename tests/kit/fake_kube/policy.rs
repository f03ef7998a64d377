//! PodDisruptionBudgets and the eviction subresource, as the API server and the
//! disruption controller do them: a budget's status (expected, current and desired
//! healthy pods, disruptions allowed) computed from the live pods, as a controller that
//! is never behind would; an eviction that deletes a pod only while its budget allows a
//! disruption, and otherwise answers 429 with the budget's cause.

use std::collections::BTreeMap;

use k8s_openapi::api::policy::v1::{
    PodDisruptionBudget, PodDisruptionBudgetSpec, PodDisruptionBudgetStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use serde_json::{json, Value};

use super::cluster::{Cluster, DeleteOpts, FollowUp, Key, Phase};
use super::status::{ApiError, More};

/// A budget: its selector (matchLabels) and one of minAvailable / maxUnavailable.
#[derive(Debug, Clone)]
pub struct Pdb {
    pub uid: String,
    pub rv: u64,
    pub creation_ts: Timestamp,
    pub selector: BTreeMap<String, String>,
    pub min_available: Option<IntOrString>,
    pub max_unavailable: Option<IntOrString>,
}

/// What the disruption controller writes in a budget's status.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Computed {
    pub expected: i32,
    pub current_healthy: i32,
    pub desired_healthy: i32,
    pub disruptions_allowed: i32,
}

/// `3` or `50%`, as a budget's fields take it.
pub fn int_or_percent(v: &str) -> IntOrString {
    match v.parse::<i32>() {
        Ok(i) => IntOrString::Int(i),
        Err(_) => IntOrString::String(v.to_string()),
    }
}

/// intstr.GetScaledValueFromIntOrPercent with rounding up, as the controller calls it.
fn scaled(v: &IntOrString, total: i32) -> i32 {
    match v {
        IntOrString::Int(i) => *i,
        IntOrString::String(s) => {
            let p: f64 = s.trim_end_matches('%').parse().unwrap_or(0.0);
            (p * f64::from(total) / 100.0).ceil() as i32
        }
    }
}

impl Cluster {
    /// The pods of `ns` a budget's selector covers (terminating ones included).
    fn pdb_pods(&self, ns: &str, pdb: &Pdb) -> Vec<&super::cluster::PodRec> {
        self.pods
            .iter()
            .filter(|(k, p)| {
                k.0 == ns && pdb.selector.iter().all(|(l, v)| p.labels.get(l) == Some(v))
            })
            .map(|(_, p)| p)
            .collect()
    }

    /// The status the disruption controller computes (disruption.go: getExpectedPodCount,
    /// countHealthyPods): an integer minAvailable expects the pods that exist; a
    /// percentage, or maxUnavailable, expects the owners' scale (a pod without an owner
    /// makes that impossible, and no disruption is allowed).
    pub fn pdb_status(&self, ns: &str, pdb: &Pdb) -> Computed {
        let pods = self.pdb_pods(ns, pdb);
        let current_healthy = pods
            .iter()
            .filter(|p| p.deletion.is_none() && p.is_ready())
            .count() as i32;
        let scale = || -> Option<i32> {
            let mut owners = BTreeMap::new();
            for p in &pods {
                let o = p.owner.as_ref()?;
                let replicas = match o.kind {
                    "ReplicaSet" => {
                        self.replicasets
                            .get(&(ns.to_string(), o.name.clone()))?
                            .replicas
                    }
                    _ => self
                        .daemonsets
                        .get(&(ns.to_string(), o.name.clone()))?
                        .nodes
                        .len() as u32,
                };
                owners.insert(o.uid.clone(), replicas as i32);
            }
            Some(owners.values().sum())
        };
        let (expected, desired_healthy) = match (&pdb.max_unavailable, &pdb.min_available) {
            (Some(max), _) => match scale() {
                Some(expected) => (expected, (expected - scaled(max, expected)).max(0)),
                None => (0, 0),
            },
            (None, Some(IntOrString::Int(min))) => (pods.len() as i32, *min),
            (None, Some(min)) => match scale() {
                Some(expected) => (expected, scaled(min, expected)),
                None => (0, 0),
            },
            (None, None) => (pods.len() as i32, 0),
        };
        let allowed = current_healthy - desired_healthy;
        Computed {
            expected,
            current_healthy,
            desired_healthy,
            disruptions_allowed: if expected <= 0 || allowed <= 0 {
                0
            } else {
                allowed
            },
        }
    }

    /// The budgets of `ns` that cover the pod `key`.
    fn pdbs_of(&self, key: &Key) -> Vec<(Key, Pdb)> {
        let Some(pod) = self.pods.get(key) else {
            return Vec::new();
        };
        self.pdbs
            .iter()
            .filter(|(k, b)| {
                k.0 == key.0 && b.selector.iter().all(|(l, v)| pod.labels.get(l) == Some(v))
            })
            .map(|(k, b)| (k.clone(), b.clone()))
            .collect()
    }

    /// POST `pods/{name}/eviction` (registry/core/pod/storage/eviction.go): the pod is
    /// deleted at once when it is not running (or already going), or no budget covers
    /// it; more than one budget is a 500; a budget with no disruption allowed is a 429
    /// whose cause names it; otherwise the pod is deleted with the eviction's options.
    pub fn evict(
        &mut self,
        key: &Key,
        body: &[u8],
        query_dry_run: bool,
    ) -> Result<(Value, Vec<FollowUp>), ApiError> {
        let v: Value = serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf: {e}"
            ))
        })?;
        if v["metadata"]["name"].as_str() != Some(key.1.as_str()) {
            return Err(ApiError::bad_request(
                "name in URL does not match name in Eviction object",
            ));
        }
        let o = &v["deleteOptions"];
        let body_dry_run = o["dryRun"].as_array().is_some_and(|a| !a.is_empty());
        let opts = DeleteOpts {
            grace: o["gracePeriodSeconds"].as_i64().map(|g| {
                if g < 0 {
                    1
                } else {
                    u32::try_from(g).unwrap_or(u32::MAX)
                }
            }),
            dry_run: query_dry_run || body_dry_run,
            uid: o["preconditions"]["uid"].as_str().map(String::from),
            resource_version: o["preconditions"]["resourceVersion"]
                .as_str()
                .map(String::from),
        };
        let Some(pod) = self.pods.get(key).cloned() else {
            return Err(ApiError::not_found("pods", "", &key.1));
        };
        let success = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201
        });
        let can_ignore = pod.phase == Phase::Pending || pod.deletion.is_some();
        let budgets = self.pdbs_of(key);
        if !can_ignore {
            match budgets.as_slice() {
                [] => {}
                [(bk, b)] => {
                    let s = self.pdb_status(&bk.0, b);
                    let unhealthy_ok = !pod.is_ready()
                        && s.current_healthy >= s.desired_healthy
                        && s.desired_healthy > 0;
                    if !unhealthy_ok && s.disruptions_allowed == 0 {
                        return Err(ApiError {
                            code: 429,
                            reason: "TooManyRequests",
                            message: "Cannot evict pod as it would violate the pod's disruption budget.".into(),
                            more: Some(Box::new(More {
                                causes: vec![(
                                    "DisruptionBudget".into(),
                                    format!(
                                        "The disruption budget {} needs {} healthy pods and has {} currently",
                                        bk.1, s.desired_healthy, s.current_healthy
                                    ),
                                )],
                                // NewTooManyRequests(..., 0): no Retry-After.
                                retry_after: 0,
                            })),
                            ..Default::default()
                        });
                    }
                    // The allowed disruption is used up by the pod going away: with the
                    // status computed from live pods, a terminating pod no longer counts.
                }
                _ => {
                    return Err(ApiError {
                        code: 500,
                        reason: "",
                        message: "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.".into(),
                        ..Default::default()
                    })
                }
            }
        }
        let (_, follow) = self.delete_pod(key, &opts)?;
        Ok((success, follow))
    }
}

/// A budget as the API serves it, status included.
pub fn pdb_value(c: &Cluster, key: &Key, b: &Pdb, with_type: bool) -> Value {
    let s = c.pdb_status(&key.0, b);
    let now = Time(Timestamp::now());
    let pdb = PodDisruptionBudget {
        metadata: ObjectMeta {
            name: Some(key.1.clone()),
            namespace: Some(key.0.clone()),
            uid: Some(b.uid.clone()),
            resource_version: Some(b.rv.to_string()),
            generation: Some(1),
            creation_timestamp: Some(Time(b.creation_ts)),
            ..Default::default()
        },
        spec: Some(PodDisruptionBudgetSpec {
            min_available: b.min_available.clone(),
            max_unavailable: b.max_unavailable.clone(),
            selector: Some(LabelSelector {
                match_labels: Some(b.selector.clone()),
                match_expressions: None,
            }),
            ..Default::default()
        }),
        status: Some(PodDisruptionBudgetStatus {
            current_healthy: Some(s.current_healthy),
            desired_healthy: Some(s.desired_healthy),
            disruptions_allowed: Some(s.disruptions_allowed),
            expected_pods: Some(s.expected),
            observed_generation: Some(1),
            conditions: Some(vec![Condition {
                type_: "DisruptionAllowed".into(),
                status: if s.disruptions_allowed > 0 {
                    "True"
                } else {
                    "False"
                }
                .into(),
                reason: if s.disruptions_allowed > 0 {
                    "SufficientPods"
                } else {
                    "InsufficientPods"
                }
                .into(),
                message: String::new(),
                last_transition_time: now,
                observed_generation: Some(1),
            }]),
            ..Default::default()
        }),
    };
    let mut v = serde_json::to_value(&pdb).unwrap_or(Value::Null);
    if !with_type {
        if let Some(m) = v.as_object_mut() {
            m.remove("kind");
            m.remove("apiVersion");
        }
    }
    v
}
