//! Why a DaemonSet (the agents') has no Ready pod, as the cluster says it: the
//! DaemonSet's status (desired, created, ready), the DaemonSet controller's warnings (a
//! `FailedCreate` when a PodSecurity level refuses hostPID, a quota, a missing service
//! account) and its pods' own reasons (unschedulable, an image that does not pull, a
//! container that keeps crashing).

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::ListParams;
use kube::Api;

use super::{Cluster, KubeError};

/// What was found of the DaemonSets selected by `selector` in `namespace`, one sentence
/// each; empty when there is none.
pub async fn why_not_ready(
    cluster: &Cluster,
    namespace: &str,
    selector: &str,
) -> Result<Vec<String>, KubeError> {
    let sets: Api<DaemonSet> = Api::namespaced(cluster.client.clone(), namespace);
    let found = sets
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(|e| {
            cluster.api_error(
                &format!("reading the agents' DaemonSet in namespace {namespace} ({selector})"),
                &e,
            )
        })?;
    let mut out = Vec::new();
    for ds in &found.items {
        let name = ds.metadata.name.clone().unwrap_or_default();
        let status = ds.status.clone().unwrap_or_default();
        let mut said = format!(
            "DaemonSet {namespace}/{name} wants {} agent pod{}, has created {}, {} Ready",
            status.desired_number_scheduled,
            if status.desired_number_scheduled == 1 {
                ""
            } else {
                "s"
            },
            status.current_number_scheduled,
            status.number_ready
        );
        let mut reasons = warnings(cluster, namespace, "DaemonSet", &name).await;
        reasons.extend(pod_reasons(cluster, namespace, selector).await);
        if status.desired_number_scheduled == 0 {
            reasons.push("no node matches its nodeSelector, affinity and tolerations".into());
        }
        if !reasons.is_empty() {
            said.push_str(": ");
            said.push_str(&reasons.join("; "));
        }
        out.push(said);
    }
    Ok(out)
}

/// The newest Warning event of each reason about one object: `FailedCreate: message`
/// (the controller retries, each time with a new pod name in the message). An account
/// that may not read events gets none (the status still speaks).
async fn warnings(cluster: &Cluster, namespace: &str, kind: &str, name: &str) -> Vec<String> {
    let events: Api<Event> = Api::namespaced(cluster.client.clone(), namespace);
    let lp = ListParams::default().fields(&format!(
        "involvedObject.kind={kind},involvedObject.name={name},type=Warning"
    ));
    let Ok(list) = events.list(&lp).await else {
        return Vec::new();
    };
    let mut items = list.items;
    items.sort_by_key(|e| e.last_timestamp.clone().map(|t| t.0));
    let mut seen: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    for e in items.iter().rev() {
        let reason = e.reason.as_deref().unwrap_or("Warning");
        if seen.contains(&reason) {
            continue;
        }
        seen.push(reason);
        out.push(format!(
            "{reason}: {}",
            e.message.as_deref().unwrap_or_default()
        ));
        if out.len() == 3 {
            break;
        }
    }
    out
}

/// Why each agent pod that exists is not Ready: the scheduler's or the kubelet's reason.
async fn pod_reasons(cluster: &Cluster, namespace: &str, selector: &str) -> Vec<String> {
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), namespace);
    let Ok(list) = pods.list(&ListParams::default().labels(selector)).await else {
        return Vec::new();
    };
    list.items
        .iter()
        .filter_map(|p| {
            let why = pod_reason(p)?;
            Some(format!(
                "pod {} {why}",
                p.metadata.name.as_deref().unwrap_or_default()
            ))
        })
        .collect()
}

/// Why one pod is not Ready, if the cluster says: a waiting container's reason, else an
/// unmet condition's.
pub fn pod_reason(p: &Pod) -> Option<String> {
    let status = p.status.as_ref()?;
    let phase = status.phase.as_deref().unwrap_or("Unknown");
    let waiting = status
        .container_statuses
        .iter()
        .flatten()
        .chain(status.init_container_statuses.iter().flatten())
        .filter_map(|c| c.state.as_ref()?.waiting.as_ref())
        .find(|w| {
            w.reason
                .as_deref()
                .is_some_and(|r| r != "ContainerCreating")
        });
    if let Some(w) = waiting {
        return Some(format!(
            "is {phase}: {}{}",
            w.reason.as_deref().unwrap_or_default(),
            w.message
                .as_deref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default()
        ));
    }
    let unmet = status
        .conditions
        .iter()
        .flatten()
        .filter(|c| c.status != "True")
        .find(|c| c.type_ == "PodScheduled" || c.message.is_some())?;
    Some(format!(
        "is {phase}: {} {}{}",
        unmet.type_,
        unmet.reason.as_deref().unwrap_or("False"),
        unmet
            .message
            .as_deref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default()
    ))
}
