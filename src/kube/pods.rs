//! Pods: list by selector, choose by mode with the run's seed (the one choice the run,
//! its preflight and its dry run share), and take the chosen pods away: a DELETE, or an
//! eviction that honours PodDisruptionBudgets (either one a server-side `dryRun=All`
//! check when asked).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::Eviction;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use kube::api::{DeleteParams, ListParams, PostParams, Preconditions};
use kube::Api;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use super::{Cluster, KubeError};
use crate::experiment::spec::{PodMode, PodSelector};

/// Longest a single pod's DELETE (or eviction) may take, throttling retries included.
pub const DELETE_TIMEOUT: Duration = Duration::from_secs(60);
/// How often an eviction the server throttles (429 without a budget's cause) is tried
/// again.
const EVICTION_RETRIES: u32 = 3;

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
    /// The pod's labels (which disruption budgets cover it).
    #[serde(skip)]
    pub labels: BTreeMap<String, String>,
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
            labels: meta.labels.clone().unwrap_or_default(),
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
        cluster.api_error(
            &format!(
                "listing pods in namespace {} ({})",
                sel.namespace,
                describe_selector(sel)
            ),
            &e,
        )
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

/// The selector's mode as the plan and reports spell it (`one` when not given).
pub fn mode_word(sel: &PodSelector) -> String {
    sel.mode
        .map(|m| format!("{m:?}").to_lowercase())
        .unwrap_or_else(|| "one".into())
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

/// The pods a fault takes from `found` (sorted by name), as the run, its preflight and
/// its dry run all choose them: by the selector's mode, random choices from `seed` (a
/// replay with the same seed and the same pods chooses the same ones). An error, worded
/// for the person, when nothing matches or `mode: fixed` asks for more pods than match.
pub fn select(found: &[PodRef], sel: &PodSelector, seed: u64) -> Result<Vec<PodRef>, String> {
    if found.is_empty() {
        return Err(format!(
            "no pod in namespace {} matches {}",
            sel.namespace,
            describe_selector(sel)
        ));
    }
    if sel.mode == Some(PodMode::Fixed) {
        let want = sel.count.unwrap_or(1) as usize;
        if found.len() < want {
            return Err(format!(
                "`count: {want}` but only {} pods in namespace {} match {}",
                found.len(),
                sel.namespace,
                describe_selector(sel)
            ));
        }
    }
    Ok(choose(found, sel, seed))
}

/// Choose from `pods` (sorted) by the selector's mode with `seed`.
fn choose(pods: &[PodRef], sel: &PodSelector, seed: u64) -> Vec<PodRef> {
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

/// How the chosen pods are taken away.
#[derive(Debug, Clone, Copy, Default)]
pub struct Removal {
    /// Through the Eviction API (PodDisruptionBudgets honoured), not a plain DELETE.
    pub evict: bool,
    /// The deletion's grace period (default: each pod's own).
    pub grace: Option<Duration>,
    /// `dryRun=All`: the server checks everything, changes nothing.
    pub dry_run: bool,
}

impl Removal {
    /// `deleting` or `evicting`, for messages.
    pub fn verb(&self) -> &'static str {
        if self.evict {
            "evicting"
        } else {
            "deleting"
        }
    }
}

/// What became of one pod.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Deleted or evicted (or, for a dry run, accepted by the server).
    Removed,
    /// The pod was gone, or replaced under the same name, before the call (404 or a
    /// failed uid precondition, 409): not an error, but not removed by this fault either.
    AlreadyGone(String),
    /// An eviction a PodDisruptionBudget refused (429): the budget did its job.
    Blocked(String),
    /// Anything else: RBAC, admission, no answer.
    Failed(String),
}

/// What a removal did to one pod.
#[derive(Debug, Clone)]
pub struct Removed {
    pub pod: PodRef,
    pub outcome: Outcome,
}

/// Take each pod away as `how` says, one after the other (an eviction's budget check
/// sees the ones before it). Each call carries the pod's uid as a precondition: a pod
/// recreated under the same name since the listing (a StatefulSet's) is not the one
/// chosen, and must not be touched.
pub async fn remove(cluster: &Cluster, pods: &[PodRef], how: Removal) -> Vec<Removed> {
    let mut out = Vec::new();
    for pod in pods {
        let api: Api<Pod> = Api::namespaced(cluster.client.clone(), &pod.namespace);
        let once: Api<Pod> = Api::namespaced(cluster.once.clone(), &pod.namespace);
        let grace = how
            .grace
            .map(|g| g.as_secs().min(u64::from(u32::MAX)) as u32);
        let call = async {
            if how.evict {
                let eviction = Eviction {
                    metadata: meta::ObjectMeta {
                        name: Some(pod.name.clone()),
                        namespace: Some(pod.namespace.clone()),
                        ..Default::default()
                    },
                    delete_options: Some(meta::DeleteOptions {
                        grace_period_seconds: grace.map(i64::from),
                        preconditions: Some(meta::Preconditions {
                            uid: Some(pod.uid.clone()),
                            resource_version: None,
                        }),
                        ..Default::default()
                    }),
                };
                // Not kube's `Api::evict`: its body spells `delete_options`, which the
                // API server does not read, so the uid precondition would be lost.
                let pp = PostParams {
                    dry_run: how.dry_run,
                    ..Default::default()
                };
                // A 429 here is a budget's "no" unless the server says it is throttling
                // (no DisruptionBudget cause): only that is tried again, as it asks.
                let mut attempts = 0;
                loop {
                    let r = once
                        .create_subresource::<_, kube::core::Status>(
                            "eviction", &pod.name, &pp, &eviction,
                        )
                        .await;
                    match r {
                        Err(kube::Error::Api(s))
                            if s.code == 429
                                && !super::blocked_by_budget(&s)
                                && attempts < EVICTION_RETRIES =>
                        {
                            attempts += 1;
                            let wait = s.details.as_ref().map_or(0, |d| d.retry_after_seconds);
                            tokio::time::sleep(Duration::from_secs(wait.clamp(1, 10).into())).await;
                        }
                        r => break r.map(drop),
                    }
                }
            } else {
                let dp = DeleteParams {
                    dry_run: how.dry_run,
                    grace_period_seconds: grace,
                    preconditions: Some(Preconditions {
                        uid: Some(pod.uid.clone()),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                api.delete(&pod.name, &dp).await.map(drop)
            }
        };
        let doing = format!(
            "{} pod {}{}",
            how.verb(),
            pod.key(),
            if how.dry_run { " (dry run)" } else { "" }
        );
        // kube retries throttling (429) with backoff; a removal still has to end.
        let outcome = match tokio::time::timeout(DELETE_TIMEOUT, call).await {
            Err(_) => Outcome::Failed(format!(
                "{doing}: no answer within {} (the API server may still carry it out)",
                shakeout_api::Dur(DELETE_TIMEOUT)
            )),
            Ok(Ok(())) => Outcome::Removed,
            Ok(Err(kube::Error::Api(s))) if s.code == 404 || s.code == 409 => {
                Outcome::AlreadyGone(format!(
                    "pod {} was gone or replaced before the {} ({} {}: {}): not {} by this fault",
                    pod.key(),
                    if how.evict { "eviction" } else { "delete" },
                    s.code,
                    s.reason,
                    s.message,
                    if how.evict { "evicted" } else { "deleted" },
                ))
            }
            Ok(Err(e)) => {
                let text = cluster.describe(&doing, &e);
                match &e {
                    kube::Error::Api(s) if super::blocked_by_budget(s) => Outcome::Blocked(text),
                    _ => Outcome::Failed(text),
                }
            }
        };
        out.push(Removed {
            pod: pod.clone(),
            outcome,
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
        .map_err(|e| cluster.api_error(&format!("listing pods in namespace {}", sel.namespace), &e))
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
                labels: BTreeMap::new(),
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
        assert_eq!(
            how_many(&sel(PodMode::Percent, None, Some(50.0)), 3),
            2,
            "50% of 3 is 1.5: rounded up, two pods (README, `percent`)"
        );
        assert_eq!(how_many(&sel(PodMode::One, None, None), 0), 0);
    }

    #[test]
    fn select_refuses_what_the_run_would_refuse() {
        let three = pods(3);
        let five = sel(PodMode::Fixed, Some(5), None);
        let e = select(&three, &five, 1).unwrap_err();
        assert!(e.contains("`count: 5` but only 3 pods"), "{e}");
        let e = select(&[], &sel(PodMode::One, None, None), 1).unwrap_err();
        assert!(e.starts_with("no pod in namespace shop matches"), "{e}");
        assert_eq!(
            select(&three, &sel(PodMode::Fixed, Some(2), None), 1)
                .unwrap()
                .len(),
            2
        );
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
