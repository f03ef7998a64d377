//! Pods: list by selector, choose by mode with the run's seed, delete (or have the
//! server check the deletion with `dryRun=All`), and wait until the owning workloads
//! have as many Ready pods as before, which is the pod recovery time.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, Preconditions};
use kube::Api;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{describe, Cluster, KubeError};
use crate::experiment::spec::{PodMode, PodSelector};

/// How often the replacements are checked: the resolution of the pod recovery time.
pub const RECOVERY_POLL: Duration = Duration::from_millis(200);
/// Longest a single pod's DELETE may take, throttling retries included.
pub const DELETE_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for replacements unless the fault sets `recoveryTimeout`.
pub const DEFAULT_RECOVERY_TIMEOUT: Duration = Duration::from_secs(300);

/// One pod, as much as a report and the agents need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// Node the pod runs on (empty while unscheduled).
    pub node: String,
    /// The controlling owner, as `Kind/name` (none for a bare pod).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(skip)]
    pub ready: bool,
    #[serde(skip)]
    pub pod_ip: Option<String>,
    /// `Running`, `Pending`, `Succeeded`, `Failed`.
    #[serde(skip)]
    pub phase: String,
}

impl PodRef {
    pub fn of(pod: &Pod) -> PodRef {
        let meta = &pod.metadata;
        let owner = meta
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .map(|o| format!("{}/{}", o.kind, o.name));
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        PodRef {
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            node: pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default(),
            owner,
            ready: ready && meta.deletion_timestamp.is_none(),
            pod_ip: pod.status.as_ref().and_then(|s| s.pod_ip.clone()),
            phase: pod
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_default(),
        }
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Pods matching `sel`'s namespace and selectors that are Running (unless the field
/// selector names `status.phase` itself) and not already being deleted, sorted by name
/// (so a seed always picks the same pods from the same set). An Evicted or Completed pod
/// is no target: deleting it disrupts nothing.
pub async fn matching(cluster: &Cluster, sel: &PodSelector) -> Result<Vec<PodRef>, KubeError> {
    let mut lp = ListParams::default();
    if let Some(l) = &sel.selector {
        lp = lp.labels(l);
    }
    if let Some(f) = &sel.field_selector {
        lp = lp.fields(f);
    }
    let api: Api<Pod> = Api::namespaced(cluster.client.clone(), &sel.namespace);
    let list = api.list(&lp).await.map_err(|e| {
        KubeError::Api(describe(
            &format!(
                "listing pods in namespace {} ({})",
                sel.namespace,
                describe_selector(sel)
            ),
            &e,
        ))
    })?;
    let any_phase = sel
        .field_selector
        .as_deref()
        .is_some_and(|f| f.contains("status.phase"));
    let mut pods: Vec<PodRef> = list
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(PodRef::of)
        .filter(|p| any_phase || p.phase == "Running")
        .collect();
    pods.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(pods)
}

/// `selector app=x, fieldSelector f=y` for messages.
pub fn describe_selector(sel: &PodSelector) -> String {
    let mut parts = Vec::new();
    parts.push(match &sel.selector {
        Some(l) => format!("selector {l}"),
        None => "every pod".to_owned(),
    });
    if let Some(f) = &sel.field_selector {
        parts.push(format!("fieldSelector {f}"));
    }
    parts.join(", ")
}

/// How many of `n` matching pods the mode takes (at least one when there is one).
pub fn how_many(sel: &PodSelector, n: usize) -> usize {
    let want = match sel.mode.unwrap_or_default() {
        PodMode::One => 1,
        PodMode::All => n,
        PodMode::Fixed => sel.count.unwrap_or(1) as usize,
        PodMode::Percent => {
            let p = sel.percent.map(|p| p.0).unwrap_or(100.0);
            ((n as f64) * p / 100.0).ceil() as usize
        }
    };
    want.clamp(usize::from(n > 0), n)
}

/// Choose from `pods` (sorted) by the selector's mode; random choices come from `seed`,
/// so a replay with the same seed and the same pods chooses the same ones.
pub fn choose(pods: &[PodRef], sel: &PodSelector, seed: u64) -> Vec<PodRef> {
    let k = how_many(sel, pods.len());
    if k == pods.len() {
        return pods.to_vec();
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut picked = rand::seq::index::sample(&mut rng, pods.len(), k).into_vec();
    picked.sort_unstable();
    picked.into_iter().map(|i| pods[i].clone()).collect()
}

/// A seed for one fault's choice: the run's seed mixed with the fault's name, so two
/// faults with the same selector do not always pick the same pods.
pub fn fault_seed(run_seed: u64, fault: &str) -> u64 {
    // FNV-1a over the name: stable across builds and platforms (unlike DefaultHasher).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in fault.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    run_seed ^ h
}

/// What a deletion did to one pod.
#[derive(Debug, Clone)]
pub struct Deleted {
    pub pod: PodRef,
    pub error: Option<String>,
    /// The pod was gone, or replaced under the same name, before the delete (404 or a
    /// failed uid precondition, 409): not an error, but not deleted by this fault either.
    pub already_gone: bool,
}

/// Delete each pod (with `dry_run`, the server checks each deletion and changes nothing).
pub async fn delete(
    cluster: &Cluster,
    pods: &[PodRef],
    grace: Option<Duration>,
    dry_run: bool,
) -> Vec<Deleted> {
    let mut out = Vec::new();
    for pod in pods {
        // The uid precondition: a pod recreated under the same name since the listing
        // (a StatefulSet's) is not the one chosen, and must not be deleted.
        let dp = DeleteParams {
            dry_run,
            grace_period_seconds: grace.map(|g| g.as_secs().min(u64::from(u32::MAX)) as u32),
            preconditions: Some(Preconditions {
                uid: Some(pod.uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        let api: Api<Pod> = Api::namespaced(cluster.client.clone(), &pod.namespace);
        let mut already_gone = false;
        // kube retries throttling (429) with backoff; a delete still has to end.
        let answer = match tokio::time::timeout(DELETE_TIMEOUT, api.delete(&pod.name, &dp)).await {
            Ok(a) => a,
            Err(_) => {
                out.push(Deleted {
                    pod: pod.clone(),
                    error: Some(format!(
                        "deleting pod {}: no answer within {} (the API server may still carry it out)",
                        pod.key(),
                        shakeout_api::Dur(DELETE_TIMEOUT)
                    )),
                    already_gone: false,
                });
                continue;
            }
        };
        let error = match answer {
            Ok(_) => None,
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {
                already_gone = true;
                Some(format!(
                    "pod {} was gone or replaced before the delete ({} {}: {}): not deleted by this fault",
                    pod.key(),
                    s.code,
                    s.reason,
                    s.message
                ))
            }
            Err(e) => Some(describe(
                &format!(
                    "deleting pod {}{}",
                    pod.key(),
                    if dry_run { " (dry run)" } else { "" }
                ),
                &e,
            )),
        };
        out.push(Deleted {
            pod: pod.clone(),
            error,
            already_gone,
        });
    }
    out
}

/// Ready pods per controlling owner among `pods` (bare pods are not counted).
pub fn ready_by_owner(pods: &[PodRef], skip: &BTreeSet<String>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for p in pods {
        if let Some(o) = &p.owner {
            let e = m.entry(o.clone()).or_insert(0);
            if p.ready && !skip.contains(&p.uid) {
                *e += 1;
            }
        }
    }
    m
}

/// How the wait for replacements ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Recovery {
    /// Every owner had its Ready count back, this long after the deletion.
    Recovered(Duration),
    /// Only bare pods were deleted: nothing replaces them.
    NoOwner,
    /// Not within the timeout (or the run ended first); the reason says which.
    NotRecovered(String),
}

/// Every pod of the owners in `before` (listed with the fault's label selector in its
/// namespace), polled until each owner has at least its `before` count of Ready pods
/// that are not among `deleted`.
pub async fn wait_replaced(
    cluster: &Cluster,
    sel: &PodSelector,
    before: &BTreeMap<String, usize>,
    deleted: &BTreeSet<String>,
    since: Instant,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Recovery {
    if before.is_empty() {
        return Recovery::NoOwner;
    }
    let owners_sel = PodSelector {
        field_selector: None,
        ..sel.clone()
    };
    let deadline = since + timeout;
    let ended = |last: &str| {
        Recovery::NotRecovered(format!(
            "the run ended after {:.1}s, before the replacements were Ready ({last})",
            since.elapsed().as_secs_f64()
        ))
    };
    let too_late = |last: &str| {
        Recovery::NotRecovered(format!(
            "not Ready within {} ({last})",
            shakeout_api::Dur(timeout)
        ))
    };
    loop {
        // A list the API server does not answer must not outlive the timeout or the run.
        let listed = tokio::select! {
            r = list_all(cluster, &owners_sel) => r,
            _ = tokio::time::sleep_until(deadline.into()) => return too_late("the API server did not answer in time"),
            _ = cancel.cancelled() => return ended("waiting for the API server"),
        };
        let last = match listed {
            Ok(pods) => {
                let now_ready = ready_by_owner(&pods, deleted);
                let short: Vec<String> = before
                    .iter()
                    .filter_map(|(owner, want)| {
                        let have = now_ready.get(owner).copied().unwrap_or(0);
                        (have < *want).then(|| format!("{owner} {have}/{want} Ready"))
                    })
                    .collect();
                if short.is_empty() {
                    return Recovery::Recovered(since.elapsed());
                }
                short.join(", ")
            }
            Err(e) => e.to_string(),
        };
        let next = Instant::now() + RECOVERY_POLL;
        if next > deadline {
            return too_late(&last);
        }
        tokio::select! {
            _ = tokio::time::sleep_until(next.into()) => {}
            _ = cancel.cancelled() => return ended(&last),
        }
    }
}

/// Every pod of the selector's namespace and labels, terminating ones included.
pub async fn list_all(cluster: &Cluster, sel: &PodSelector) -> Result<Vec<PodRef>, KubeError> {
    let mut lp = ListParams::default();
    if let Some(l) = &sel.selector {
        lp = lp.labels(l);
    }
    let api: Api<Pod> = Api::namespaced(cluster.client.clone(), &sel.namespace);
    api.list(&lp)
        .await
        .map(|l| l.items.iter().map(PodRef::of).collect())
        .map_err(|e| {
            KubeError::Api(describe(
                &format!("listing pods in namespace {}", sel.namespace),
                &e,
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use shakeout_api::Percent;

    fn pods(n: usize) -> Vec<PodRef> {
        (0..n)
            .map(|i| PodRef {
                namespace: "shop".into(),
                name: format!("p{i:02}"),
                uid: format!("u{i}"),
                node: "n1".into(),
                owner: Some("ReplicaSet/rs".into()),
                ready: true,
                pod_ip: None,
                phase: "Running".into(),
            })
            .collect()
    }

    fn sel(mode: PodMode, count: Option<u32>, percent: Option<f64>) -> PodSelector {
        PodSelector {
            namespace: "shop".into(),
            mode: Some(mode),
            count,
            percent: percent.map(Percent),
            ..Default::default()
        }
    }

    #[test]
    fn modes_take_the_right_number() {
        assert_eq!(how_many(&sel(PodMode::One, None, None), 5), 1);
        assert_eq!(how_many(&sel(PodMode::All, None, None), 5), 5);
        assert_eq!(how_many(&sel(PodMode::Fixed, Some(2), None), 5), 2);
        assert_eq!(how_many(&sel(PodMode::Fixed, Some(9), None), 5), 5);
        assert_eq!(
            how_many(&sel(PodMode::Percent, None, Some(50.0)), 5),
            3,
            "rounded up"
        );
        assert_eq!(
            how_many(&sel(PodMode::Percent, None, Some(1.0)), 5),
            1,
            "at least one"
        );
        assert_eq!(how_many(&sel(PodMode::One, None, None), 0), 0);
    }

    #[test]
    fn the_same_seed_chooses_the_same_pods_and_others_differ() {
        let all = pods(20);
        let s = sel(PodMode::Fixed, Some(3), None);
        let a = choose(&all, &s, 7);
        assert_eq!(a.len(), 3);
        assert_eq!(a, choose(&all, &s, 7));
        let distinct: BTreeSet<Vec<String>> = (0..20u64)
            .map(|seed| choose(&all, &s, seed).into_iter().map(|p| p.name).collect())
            .collect();
        assert!(
            distinct.len() > 10,
            "seeds should spread the choice: {distinct:?}"
        );
        assert_ne!(fault_seed(1, "a"), fault_seed(1, "b"));
    }

    #[test]
    fn ready_counts_skip_deleted_and_bare_pods() {
        let mut all = pods(3);
        all[2].ready = false;
        all.push(PodRef {
            owner: None,
            ..all[0].clone()
        });
        let skip: BTreeSet<String> = ["u0".to_string()].into();
        assert_eq!(ready_by_owner(&all, &skip)["ReplicaSet/rs"], 1);
        assert_eq!(ready_by_owner(&all, &BTreeSet::new())["ReplicaSet/rs"], 2);
    }
}
