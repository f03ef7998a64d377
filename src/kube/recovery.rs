//! The pod recovery time: from the deletion until every owner of a deleted Ready pod has
//! as many Ready pods as before, not counting the deleted ones. Watched when the account
//! may watch pods (the change is seen when its event arrives, to the millisecond); listed
//! every 200 ms otherwise, and the report states which, with its resolution.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, WatchEvent, WatchParams};
use kube::Api;
use tokio_util::sync::CancellationToken;

use super::pods::{ready_by_owner, PodRef};
use super::Cluster;
use crate::experiment::spec::PodSelector;

/// How often the replacements are listed when they cannot be watched.
pub const RECOVERY_POLL: Duration = Duration::from_millis(200);
/// Resolution of a watched recovery: the event is timed on arrival, in milliseconds
/// (the API server's own delivery delay, typically a few ms, is inside the measurement).
pub const WATCH_RESOLUTION: Duration = Duration::from_millis(1);
/// Longest wait for replacements unless the fault sets `recoveryTimeout`.
pub const DEFAULT_RECOVERY_TIMEOUT: Duration = Duration::from_secs(300);

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

/// How the replacements were followed.
#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    /// A watch on the pods: each change seen as it arrives.
    Watch,
    /// A list every [`RECOVERY_POLL`]; `why` says why not a watch.
    Poll { why: String },
}

impl Method {
    /// `watch` or `poll`, as the report spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Method::Watch => "watch",
            Method::Poll { .. } => "poll",
        }
    }

    /// How late the recovery time may be, at most.
    pub fn resolution(&self) -> Duration {
        match self {
            Method::Watch => WATCH_RESOLUTION,
            Method::Poll { .. } => RECOVERY_POLL,
        }
    }
}

/// Why waiting stopped before recovery: the deadline, or the run ended.
enum Stop {
    Deadline,
    Cancelled,
}

/// What is being waited for: each owner's Ready count before, the deleted pods' uids,
/// and the pods as last seen (by uid).
struct Want<'a> {
    before: &'a BTreeMap<String, usize>,
    deleted: &'a BTreeSet<String>,
    seen: BTreeMap<String, PodRef>,
    /// What was still short when last checked, for the message if time runs out.
    last: String,
}

impl Want<'_> {
    /// Whether every owner is whole again; `last` says who is not.
    fn met(&mut self) -> bool {
        let pods: Vec<PodRef> = self.seen.values().cloned().collect();
        let now_ready = ready_by_owner(&pods, self.deleted);
        let short: Vec<String> = self
            .before
            .iter()
            .filter_map(|(owner, want)| {
                let have = now_ready.get(owner).copied().unwrap_or(0);
                (have < *want).then(|| format!("{owner} {have}/{want} Ready"))
            })
            .collect();
        self.last = short.join(", ");
        short.is_empty()
    }

    fn replace(&mut self, pods: Vec<PodRef>) {
        self.seen = pods.into_iter().map(|p| (p.uid.clone(), p)).collect();
    }
}

/// Every pod of the owners in `before` (listed with the fault's label selector in its
/// namespace), followed until each owner has at least its `before` count of Ready pods
/// that are not among `deleted` (uids): watched when allowed, else polled.
pub async fn wait_replaced(
    cluster: &Cluster,
    sel: &PodSelector,
    before: &BTreeMap<String, usize>,
    deleted: &BTreeSet<String>,
    since: Instant,
    timeout: Duration,
    cancel: &CancellationToken,
) -> (Recovery, Method) {
    if before.is_empty() {
        // Nothing was followed: the method is moot.
        return (Recovery::NoOwner, Method::Watch);
    }
    let deadline = since + timeout;
    let mut want = Want {
        before,
        deleted,
        seen: BTreeMap::new(),
        last: "the API server did not answer in time".into(),
    };
    let method = match watch(cluster, sel, &mut want, deadline, cancel).await {
        Ok(Ok(())) => return (Recovery::Recovered(since.elapsed()), Method::Watch),
        Ok(Err(why)) => Method::Poll { why },
        Err(stop) => return (ended(stop, since, timeout, &want.last), Method::Watch),
    };
    let recovery = match poll(cluster, sel, &mut want, deadline, cancel).await {
        Ok(()) => Recovery::Recovered(since.elapsed()),
        Err(stop) => ended(stop, since, timeout, &want.last),
    };
    (recovery, method)
}

fn ended(stop: Stop, since: Instant, timeout: Duration, last: &str) -> Recovery {
    Recovery::NotRecovered(match stop {
        Stop::Deadline => format!("not Ready within {} ({last})", shakeout_api::Dur(timeout)),
        Stop::Cancelled => format!(
            "the run ended after {:.1}s, before the replacements were Ready ({last})",
            since.elapsed().as_secs_f64()
        ),
    })
}

/// `f`, unless the deadline passes or the run ends first: no API call may outlive either.
async fn within<T>(
    f: impl Future<Output = T>,
    deadline: Instant,
    cancel: &CancellationToken,
) -> Result<T, Stop> {
    tokio::select! {
        r = f => Ok(r),
        _ = tokio::time::sleep_until(deadline.into()) => Err(Stop::Deadline),
        _ = cancel.cancelled() => Err(Stop::Cancelled),
    }
}

fn label_params(sel: &PodSelector) -> (ListParams, WatchParams) {
    let (mut lp, mut wp) = (ListParams::default(), WatchParams::default());
    if let Some(l) = &sel.selector {
        lp = lp.labels(l);
        wp = wp.labels(l);
    }
    (lp, wp)
}

/// List, then watch from the list's resourceVersion, until recovered (`Ok(Ok)`). A
/// watch the account may not make (403) or that the server does not serve gives
/// `Ok(Err(why))`: the caller polls. A watch that ends or expires (410) is re-listed.
async fn watch(
    cluster: &Cluster,
    sel: &PodSelector,
    want: &mut Want<'_>,
    deadline: Instant,
    cancel: &CancellationToken,
) -> Result<Result<(), String>, Stop> {
    let api: Api<Pod> = Api::namespaced(cluster.client.clone(), &sel.namespace);
    let (lp, wp) = label_params(sel);
    let doing = format!("watching pods in namespace {}", sel.namespace);
    let mut watched_once = false;
    loop {
        let list = match within(api.list(&lp), deadline, cancel).await? {
            Ok(l) => l,
            Err(e) => return Ok(Err(cluster.describe(&doing, &e))),
        };
        want.replace(list.items.iter().map(PodRef::of).collect());
        if want.met() {
            return Ok(Ok(()));
        }
        let rv = list.metadata.resource_version.unwrap_or_default();
        let stream = match within(api.watch(&wp, &rv), deadline, cancel).await? {
            Ok(s) => s,
            Err(e) if !watched_once => return Ok(Err(cluster.describe(&doing, &e))),
            Err(_) => {
                // Worked before: a hiccup of the server; list again after a pause.
                within(tokio::time::sleep(RECOVERY_POLL), deadline, cancel).await?;
                continue;
            }
        };
        watched_once = true;
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = within(stream.next(), deadline, cancel).await? {
            match event {
                Ok(WatchEvent::Added(p)) | Ok(WatchEvent::Modified(p)) => {
                    let p = PodRef::of(&p);
                    want.seen.insert(p.uid.clone(), p);
                }
                Ok(WatchEvent::Deleted(p)) => {
                    want.seen.remove(&PodRef::of(&p).uid);
                }
                Ok(WatchEvent::Bookmark(_)) => continue,
                // 410 Gone (too old a resourceVersion) or a broken stream: list again.
                Ok(WatchEvent::Error(_)) | Err(_) => break,
            }
            if want.met() {
                return Ok(Ok(()));
            }
        }
    }
}

/// List every [`RECOVERY_POLL`] until recovered.
async fn poll(
    cluster: &Cluster,
    sel: &PodSelector,
    want: &mut Want<'_>,
    deadline: Instant,
    cancel: &CancellationToken,
) -> Result<(), Stop> {
    loop {
        match within(super::pods::list_all(cluster, sel), deadline, cancel).await? {
            Ok(pods) => {
                want.replace(pods);
                if want.met() {
                    return Ok(());
                }
            }
            Err(e) => want.last = e.to_string(),
        }
        let next = Instant::now() + RECOVERY_POLL;
        if next > deadline {
            return Err(Stop::Deadline);
        }
        within(tokio::time::sleep_until(next.into()), deadline, cancel).await?;
    }
}
