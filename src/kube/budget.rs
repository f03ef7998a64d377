//! PodDisruptionBudgets: which budgets cover the pods a fault chooses, and what taking
//! them away does to each, read from the budget's status as the disruption controller
//! keeps it (`currentHealthy`, `desiredHealthy`, `disruptionsAllowed`). A plain DELETE
//! ignores budgets, so the dry run and the report say when one goes against a budget; an
//! eviction honours them, and the dry run says which evictions the server would refuse.

use std::collections::BTreeMap;

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ListParams;
use kube::Api;

use super::pods::PodRef;
use super::{Cluster, KubeError};

/// One budget, as much as the analysis needs.
#[derive(Debug, Clone)]
pub struct Budget {
    /// `namespace/name`.
    pub key: String,
    /// `minAvailable 3`, `maxUnavailable 25%`.
    pub rule: String,
    selector: Option<LabelSelector>,
    pub current_healthy: i32,
    pub desired_healthy: i32,
    pub disruptions_allowed: i32,
    /// The controller has not yet seen the budget's latest spec: its status may be stale
    /// (the eviction API refuses every eviction until it has).
    pub stale: bool,
}

impl Budget {
    /// From the API object.
    pub fn of(pdb: &PodDisruptionBudget) -> Budget {
        let meta = &pdb.metadata;
        let spec = pdb.spec.clone().unwrap_or_default();
        let value = |v: &IntOrString| match v {
            IntOrString::Int(i) => i.to_string(),
            IntOrString::String(s) => s.clone(),
        };
        let rule = match (&spec.min_available, &spec.max_unavailable) {
            (Some(m), _) => format!("minAvailable {}", value(m)),
            (None, Some(m)) => format!("maxUnavailable {}", value(m)),
            (None, None) => "no minAvailable or maxUnavailable".into(),
        };
        let status = pdb.status.clone().unwrap_or_default();
        Budget {
            key: format!(
                "{}/{}",
                meta.namespace.as_deref().unwrap_or_default(),
                meta.name.as_deref().unwrap_or_default()
            ),
            rule,
            selector: spec.selector,
            current_healthy: status.current_healthy.unwrap_or(0),
            desired_healthy: status.desired_healthy.unwrap_or(0),
            disruptions_allowed: status.disruptions_allowed.unwrap_or(0),
            stale: status.observed_generation.unwrap_or(0) < meta.generation.unwrap_or(0),
        }
    }

    /// Whether the budget covers a pod with these labels (policy/v1: an empty selector
    /// covers every pod of the namespace, none covers none).
    pub fn covers(&self, labels: &BTreeMap<String, String>) -> bool {
        let Some(sel) = &self.selector else {
            return false;
        };
        let by_label = sel
            .match_labels
            .iter()
            .flatten()
            .all(|(k, v)| labels.get(k) == Some(v));
        let by_expression = sel.match_expressions.iter().flatten().all(|e| {
            let values = e.values.as_deref().unwrap_or_default();
            match e.operator.as_str() {
                "In" => labels.get(&e.key).is_some_and(|v| values.contains(v)),
                "NotIn" => labels.get(&e.key).is_none_or(|v| !values.contains(v)),
                "Exists" => labels.contains_key(&e.key),
                "DoesNotExist" => !labels.contains_key(&e.key),
                _ => false,
            }
        });
        by_label && by_expression
    }

    /// `shop/checkout (minAvailable 3: 3 healthy, 3 desired, 0 disruptions allowed)`.
    pub fn describe(&self) -> String {
        format!(
            "PodDisruptionBudget {} ({}: {} healthy, {} desired, {} disruption{} allowed{})",
            self.key,
            self.rule,
            self.current_healthy,
            self.desired_healthy,
            self.disruptions_allowed,
            if self.disruptions_allowed == 1 {
                ""
            } else {
                "s"
            },
            if self.stale {
                "; status not yet updated for its latest spec"
            } else {
                ""
            }
        )
    }
}

/// The budgets of `namespace`.
pub async fn list(cluster: &Cluster, namespace: &str) -> Result<Vec<Budget>, KubeError> {
    let api: Api<PodDisruptionBudget> = Api::namespaced(cluster.client.clone(), namespace);
    api.list(&ListParams::default())
        .await
        .map(|l| l.items.iter().map(Budget::of).collect())
        .map_err(|e| {
            cluster.api_error(
                &format!("listing PodDisruptionBudgets in namespace {namespace}"),
                &e,
            )
        })
}

/// Each budget a plain deletion of `pods` goes against: the Ready pods it covers among
/// them are more than it allows to be disrupted. One sentence per budget.
pub fn against(budgets: &[Budget], pods: &[PodRef], verb: &str) -> Vec<String> {
    budgets
        .iter()
        .filter_map(|b| {
            let taken = pods.iter().filter(|p| p.ready && b.covers(&p.labels)).count() as i32;
            (taken > 0 && taken > b.disruptions_allowed).then(|| {
                format!(
                    "{verb} {taken} Ready pod{} it covers goes against {}: {} healthy would be left, it wants {}",
                    if taken == 1 { "" } else { "s" },
                    b.describe(),
                    (b.current_healthy - taken).max(0),
                    b.desired_healthy
                )
            })
        })
        .collect()
}

/// For evictions of `pods` in order: `None` where the server would evict the pod, or why
/// it would refuse, as the eviction subresource decides (each eviction of a healthy pod
/// uses one of a budget's allowed disruptions; more than one budget is refused outright;
/// an unready pod goes when the budget is met, and needs an allowed disruption if not).
pub fn evictions(budgets: &[Budget], pods: &[PodRef]) -> Vec<Option<String>> {
    let mut allowed: BTreeMap<&str, i32> = budgets
        .iter()
        .map(|b| (b.key.as_str(), b.disruptions_allowed))
        .collect();
    pods.iter()
        .map(|p| {
            let covering: Vec<&Budget> = budgets.iter().filter(|b| b.covers(&p.labels)).collect();
            let b = match covering.as_slice() {
                [] => return None,
                [b] => *b,
                more => {
                    let names: Vec<&str> = more.iter().map(|b| b.key.as_str()).collect();
                    return Some(format!(
                        "more than one PodDisruptionBudget covers it ({}), which the eviction API refuses (500)",
                        names.join(", ")
                    ));
                }
            };
            if !p.ready && b.current_healthy >= b.desired_healthy && b.desired_healthy > 0 {
                return None;
            }
            let left = allowed.entry(b.key.as_str()).or_insert(0);
            if b.stale {
                return Some(format!("blocked by {}: the server refuses evictions until its status is current (429)", b.describe()));
            }
            if *left <= 0 {
                return Some(format!(
                    "blocked by a disruption budget: {} (429 from the eviction API)",
                    b.describe()
                ));
            }
            *left -= 1;
            None
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::policy::v1::{PodDisruptionBudgetSpec, PodDisruptionBudgetStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn budget(min: i32, healthy: i32) -> Budget {
        Budget::of(&PodDisruptionBudget {
            metadata: ObjectMeta {
                name: Some("checkout".into()),
                namespace: Some("shop".into()),
                generation: Some(1),
                ..Default::default()
            },
            spec: Some(PodDisruptionBudgetSpec {
                min_available: Some(IntOrString::Int(min)),
                selector: Some(LabelSelector {
                    match_labels: Some([("app".to_string(), "checkout".to_string())].into()),
                    match_expressions: None,
                }),
                ..Default::default()
            }),
            status: Some(PodDisruptionBudgetStatus {
                current_healthy: Some(healthy),
                desired_healthy: Some(min),
                disruptions_allowed: Some((healthy - min).max(0)),
                expected_pods: Some(healthy),
                observed_generation: Some(1),
                ..Default::default()
            }),
        })
    }

    fn pod(name: &str, app: &str) -> PodRef {
        PodRef {
            namespace: "shop".into(),
            name: name.into(),
            uid: name.into(),
            node: "n1".into(),
            owner: Some("ReplicaSet/rs".into()),
            ready: true,
            pod_ip: None,
            phase: "Running".into(),
            labels: [("app".to_string(), app.to_string())].into(),
        }
    }

    #[test]
    fn a_deletion_below_min_available_is_said_and_one_within_is_not() {
        let pods = [pod("a", "checkout"), pod("b", "checkout"), pod("x", "cart")];
        let full = [budget(3, 3)];
        let said = against(&full, &pods[..1], "deleting");
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].contains("goes against PodDisruptionBudget shop/checkout (minAvailable 3: 3 healthy, 3 desired, 0 disruptions allowed)"), "{said:?}");
        let roomy = [budget(1, 3)];
        assert!(
            against(&roomy, &pods, "deleting").is_empty(),
            "two of three, one required"
        );
        assert_eq!(against(&[budget(2, 3)], &pods, "deleting").len(), 1);
        assert!(
            against(&full, &pods[2..], "deleting").is_empty(),
            "not covered"
        );
    }

    #[test]
    fn evictions_use_up_the_allowed_disruptions_in_order() {
        let pods = [
            pod("a", "checkout"),
            pod("b", "checkout"),
            pod("c", "checkout"),
        ];
        let plan = evictions(&[budget(2, 3)], &pods);
        assert_eq!(plan[0], None);
        assert!(plan[1]
            .as_deref()
            .unwrap()
            .contains("blocked by a disruption budget"));
        assert!(plan[2].is_some());
        let two = [
            budget(2, 3),
            Budget {
                key: "shop/other".into(),
                ..budget(1, 3)
            },
        ];
        assert!(evictions(&two, &pods[..1])[0]
            .as_deref()
            .unwrap()
            .contains("more than one"));
    }
}
