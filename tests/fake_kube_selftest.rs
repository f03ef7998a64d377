//! The fake API server answers what the real `kube` client sends: a client configured
//! from the kubeconfig `write_kubeconfig` writes lists, gets, deletes (graceful, at once,
//! dry run), evicts against PodDisruptionBudgets, asks access reviews that agree with the
//! 403s, reads a blocked DaemonSet's events, sees injected errors as `kube::Error::Api`,
//! watches, and port-forwards to a local TCP server; the in-process client (`FakeCluster::client`, no socket) is answered
//! as over HTTP. If `kube` changes a path, a parameter or the WebSocket framing, these
//! fail before the controller's tests do.
#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

mod kit;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{DaemonSet, ReplicaSet};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kit::fake_kube::{self, FakeCluster, PodInfo};
use kit::wait::wait_for_async;
use kube::api::{Api, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{Expression, Selector};
use kube::{Client, Config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const CONTEXT: &str = "fake-ctx";
/// Generous bound for anything that should happen "now" on a loaded 2-core machine.
const SLACK: Duration = Duration::from_secs(10);

async fn config(cluster: &FakeCluster, dir: &tempfile::TempDir) -> Config {
    let path = dir.path().join("kubeconfig");
    cluster.write_kubeconfig(&path, CONTEXT);
    let kubeconfig = Kubeconfig::read_from(&path).unwrap();
    let options = KubeConfigOptions {
        context: Some(CONTEXT.into()),
        ..Default::default()
    };
    Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .unwrap()
}

async fn client(cluster: &FakeCluster) -> Client {
    let dir = tempfile::tempdir().unwrap();
    Client::try_from(config(cluster, &dir).await).unwrap()
}

/// The API error a call failed with.
fn api_error<T: std::fmt::Debug>(r: kube::Result<T>) -> kube::core::Status {
    match r {
        Err(kube::Error::Api(s)) => *s,
        other => panic!("expected kube::Error::Api, got {other:?}"),
    }
}

fn ready_condition(p: &Pod, type_: &str) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == type_))
        .map(|c| c.status.clone())
        .unwrap_or_default()
}

async fn names(api: &Api<Pod>, lp: &ListParams) -> BTreeSet<String> {
    api.list(lp)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| p.metadata.name.unwrap())
        .collect()
}

fn fake_names(pods: &[PodInfo], pred: impl Fn(&PodInfo) -> bool) -> BTreeSet<String> {
    pods.iter()
        .filter(|p| pred(p))
        .map(|p| p.name.clone())
        .collect()
}

/// shop: web (3, app=web tier=front), db (2, app=db tier=back), bare `debug` (app=tools);
/// other: web (1, app=web).
fn shop() -> FakeCluster {
    let c = FakeCluster::start();
    c.add_node("node-a");
    c.add_node("node-b");
    let nodes = ["node-a", "node-b"];
    let d = Duration::from_secs(1);
    c.add_replicaset(
        "shop",
        "web",
        &[("app", "web"), ("tier", "front")],
        3,
        &nodes,
        d,
    );
    c.add_replicaset(
        "shop",
        "db",
        &[("app", "db"), ("tier", "back")],
        2,
        &nodes,
        d,
    );
    c.add_pod("shop", "debug", &[("app", "tools")], "node-b", true);
    c.add_replicaset("other", "web", &[("app", "web")], 1, &nodes, d);
    c
}

#[tokio::test]
async fn kubeconfig_context_and_version() {
    let c = FakeCluster::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&c, &dir).await;
    assert_eq!(cfg.default_namespace, "default");
    assert_eq!(cfg.cluster_url.to_string(), format!("{}/", c.url()));
    let info = Client::try_from(cfg)
        .unwrap()
        .apiserver_version()
        .await
        .unwrap();
    assert_eq!(info.git_version, fake_kube::VERSION);
    assert_eq!(c.requests(), vec!["GET /version".to_string()]);
}

#[tokio::test]
async fn label_selectors_select_like_the_api_server() {
    let c = shop();
    let api: Api<Pod> = Api::namespaced(client(&c).await, "shop");
    let pods = c.pods("shop");
    let web = fake_names(&pods, |p| p.owner.as_deref() == Some("ReplicaSet/web"));
    let db = fake_names(&pods, |p| p.owner.as_deref() == Some("ReplicaSet/db"));
    assert_eq!((web.len(), db.len(), pods.len()), (3, 2, 6));
    let debug = BTreeSet::from(["debug".to_string()]);
    let union = |a: &BTreeSet<String>, b: &BTreeSet<String>| a | b;

    for (selector, want) in [
        ("app=web", web.clone()),
        ("app==web", web.clone()),
        ("app!=web", union(&db, &debug)),
        ("app in (web,db)", union(&web, &db)),
        ("app in (web, db)", union(&web, &db)),
        ("app notin (web)", union(&db, &debug)),
        ("tier", union(&web, &db)),
        ("!tier", debug.clone()),
        ("app=web,tier=front", web.clone()),
        ("tier,app!=web", db.clone()),
        ("app in (web,db),tier notin (back),!nope", web.clone()),
        ("app=nope", BTreeSet::new()),
        ("", fake_names(&pods, |_| true)),
    ] {
        let got = names(&api, &ListParams::default().labels(selector)).await;
        assert_eq!(got, want, "labelSelector {selector:?}");
    }

    // kube's own selector builder serializes to the same grammar.
    let selector: Selector = [
        Expression::In("app".into(), ["web".into(), "db".into()].into()),
        Expression::DoesNotExist("nope".into()),
        Expression::NotEqual("tier".into(), "back".into()),
    ]
    .into_iter()
    .collect();
    let got = names(&api, &ListParams::default().labels_from(&selector)).await;
    assert_eq!(got, web);

    // All namespaces.
    let all: Api<Pod> = Api::all(client(&c).await);
    let got = all
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    let mut by_ns: Vec<_> = got
        .items
        .iter()
        .map(|p| p.metadata.namespace.clone().unwrap())
        .collect();
    by_ns.dedup();
    assert_eq!(by_ns, ["other", "shop"]);
    assert_eq!(got.items.len(), 4);
    assert!(got
        .metadata
        .resource_version
        .unwrap()
        .parse::<u64>()
        .is_ok());

    // Malformed selectors are a 400 Status, as the real server answers.
    for bad in [
        "app in (web",
        "app=web,",
        "app in ()",
        "a b",
        "!",
        "app=(x)",
        "-bad=x",
    ] {
        let err = api_error(api.list(&ListParams::default().labels(bad)).await);
        assert_eq!(
            (err.code, err.reason.as_str()),
            (400, "BadRequest"),
            "{bad:?}: {err:?}"
        );
        assert!(!err.message.is_empty());
    }

    // requests() keeps the query as kube 5 sends it: percent-encoded, after `?&`.
    let seen = c.requests();
    assert!(
        seen.iter()
            .any(|r| r == "GET /api/v1/namespaces/shop/pods?&labelSelector=app%3Dweb"),
        "{seen:#?}"
    );
    assert!(seen.iter().any(|r| r.starts_with("GET /api/v1/pods?")));
}

#[tokio::test]
async fn field_selectors_select_like_the_api_server() {
    let c = shop();
    let api: Api<Pod> = Api::namespaced(client(&c).await, "shop");
    let pods = c.pods("shop");
    let on_a = fake_names(&pods, |p| p.node == "node-a");
    assert!(!on_a.is_empty() && on_a.len() < pods.len());
    let all = fake_names(&pods, |_| true);
    let one = BTreeSet::from(["debug".to_string()]);
    let others: BTreeSet<String> = &all - &one;

    for (selector, want) in [
        ("metadata.name=debug", one.clone()),
        ("metadata.name==debug", one.clone()),
        ("metadata.name!=debug", others.clone()),
        ("spec.nodeName=node-a", on_a.clone()),
        ("spec.nodeName!=node-a", &all - &on_a),
        ("status.phase=Running", all.clone()),
        ("status.phase!=Running", BTreeSet::new()),
        ("metadata.namespace=shop", all.clone()),
        ("metadata.namespace=other", BTreeSet::new()),
        ("spec.nodeName=node-a,metadata.name!=debug", &on_a - &one),
    ] {
        let got = names(&api, &ListParams::default().fields(selector)).await;
        assert_eq!(got, want, "fieldSelector {selector:?}");
    }
    // Field and label selectors together.
    let got = names(
        &api,
        &ListParams::default()
            .labels("app=web")
            .fields("spec.nodeName=node-a"),
    )
    .await;
    let want = fake_names(&pods, |p| {
        p.node == "node-a" && p.owner.as_deref() == Some("ReplicaSet/web")
    });
    assert_eq!(got, want);

    // A pending replacement is selected by its phase.
    let victim = pods.iter().find(|p| p.name.starts_with("web-")).unwrap();
    api.delete(&victim.name, &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    let pending = names(&api, &ListParams::default().fields("status.phase=Pending")).await;
    assert_eq!(pending.len(), 1, "{pending:?}");

    // All namespaces, narrowed by namespace field.
    let everywhere: Api<Pod> = Api::all(client(&c).await);
    let got = names(
        &everywhere,
        &ListParams::default().fields("metadata.namespace=other"),
    )
    .await;
    assert_eq!(got, fake_names(&c.pods("other"), |_| true));

    for bad in ["spec.nope=x", "metadata.name"] {
        let err = api_error(api.list(&ListParams::default().fields(bad)).await);
        assert_eq!(err.code, 400, "{bad:?}: {err:?}");
    }
    let err = api_error(api.list(&ListParams::default().fields("spec.nope=x")).await);
    assert_eq!(err.message, "field label not supported: spec.nope");

    // limit/continue pages through everything exactly once.
    let mut seen = BTreeSet::new();
    let mut lp = ListParams::default().limit(2);
    loop {
        let page = api.list(&lp).await.unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.into_iter().map(|p| p.metadata.name.unwrap()));
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => lp = lp.continue_token(&token),
            _ => break,
        }
    }
    assert_eq!(seen, names(&api, &ListParams::default()).await);
}

#[tokio::test]
async fn get_pod_has_the_status_a_controller_reads() {
    let c = shop();
    let api: Api<Pod> = Api::namespaced(client(&c).await, "shop");
    let info = c
        .pods("shop")
        .into_iter()
        .find(|p| p.name.starts_with("web-"))
        .unwrap();
    assert_eq!(info.name.len(), "web-".len() + 5);
    assert!(info.name["web-".len()..]
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));

    let pod = api.get(&info.name).await.unwrap();
    let meta = &pod.metadata;
    assert_eq!(meta.uid.as_deref(), Some(info.uid.as_str()));
    assert!(meta
        .resource_version
        .as_ref()
        .unwrap()
        .parse::<u64>()
        .is_ok());
    assert!(meta.creation_timestamp.is_some());
    assert_eq!(meta.labels.as_ref().unwrap()["app"], "web");
    let owner = &meta.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("ReplicaSet", "web")
    );
    assert_eq!(owner.controller, Some(true));
    assert_eq!(
        pod.spec.as_ref().unwrap().node_name.as_deref(),
        Some(info.node.as_str())
    );
    let status = pod.status.as_ref().unwrap();
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert!(status.pod_ip.is_some() && status.start_time.is_some());
    assert!(status.container_statuses.as_ref().unwrap()[0].ready);
    assert_eq!(ready_condition(&pod, "Ready"), "True");
    assert_eq!(ready_condition(&pod, "ContainersReady"), "True");

    // The ReplicaSet's status is true to its pods.
    let rs: Api<ReplicaSet> = Api::namespaced(client(&c).await, "shop");
    let web = rs.get("web").await.unwrap();
    let st = web.status.unwrap();
    assert_eq!((st.replicas, st.ready_replicas), (3, Some(3)));
    assert_eq!(
        rs.list(&ListParams::default()).await.unwrap().items.len(),
        2
    );

    let err = api_error(api.get("nope").await);
    assert_eq!((err.code, err.reason.as_str()), (404, "NotFound"));
    assert_eq!(err.message, "pods \"nope\" not found");
    let err = api_error(rs.get("nope").await);
    assert_eq!(err.message, "replicasets.apps \"nope\" not found");
}

#[tokio::test]
async fn deleted_replicaset_pod_is_replaced_and_turns_ready_after_the_delay() {
    let delay = Duration::from_millis(1500);
    let c = FakeCluster::start();
    c.add_replicaset(
        "shop",
        "web",
        &[("app", "web")],
        3,
        &["node-a", "node-b"],
        delay,
    );
    let api: Api<Pod> = Api::namespaced(client(&c).await, "shop");
    let rs: Api<ReplicaSet> = Api::namespaced(client(&c).await, "shop");
    let before = c.pods("shop");
    let victim = before[0].clone();

    let gone = api
        .delete(&victim.name, &DeleteParams::default().grace_period(0))
        .await
        .unwrap()
        .left()
        .expect("a pod delete answers with the pod");
    assert_eq!(gone.metadata.uid.as_deref(), Some(victim.uid.as_str()));
    assert_eq!(c.deleted(), vec![("shop".to_string(), victim.name.clone())]);

    let now = c.pods("shop");
    assert!(
        now.iter().all(|p| p.uid != victim.uid),
        "grace 0 removes at once"
    );
    let fresh: Vec<_> = now
        .iter()
        .filter(|p| before.iter().all(|b| b.uid != p.uid))
        .cloned()
        .collect();
    assert_eq!(fresh.len(), 1, "exactly one replacement: {now:#?}");
    let fresh = &fresh[0];
    assert_eq!(fresh.owner.as_deref(), Some("ReplicaSet/web"));
    assert!(fresh.name.starts_with("web-") && fresh.name != victim.name);

    // Observe it through the API until Ready: never Ready before the delay.
    let mut saw_not_ready = false;
    let deadline = Instant::now() + delay + SLACK;
    loop {
        let pod = api.get(&fresh.name).await.unwrap();
        let age = fresh.created.elapsed();
        let ready = ready_condition(&pod, "Ready") == "True";
        if ready {
            assert!(
                age >= delay,
                "Ready after {age:?}, before the {delay:?} delay"
            );
            assert_eq!(pod.status.unwrap().phase.as_deref(), Some("Running"));
            break;
        }
        saw_not_ready = true;
        assert_eq!(ready_condition(&pod, "ContainersReady"), "False");
        assert_eq!(
            pod.status.as_ref().unwrap().phase.as_deref(),
            Some("Pending")
        );
        if age < delay / 2 {
            let st = rs.get("web").await.unwrap().status.unwrap();
            assert_eq!((st.replicas, st.ready_replicas), (3, Some(2)));
        }
        assert!(Instant::now() < deadline, "replacement never became Ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(saw_not_ready, "the replacement was Ready at first sight");
    let st = rs.get("web").await.unwrap().status.unwrap();
    assert_eq!((st.replicas, st.ready_replicas), (3, Some(3)));
}

#[tokio::test]
async fn graceful_delete_terminates_then_disappears() {
    let c = shop();
    let api: Api<Pod> = Api::namespaced(client(&c).await, "shop");

    // A bare pod with grace 1: terminating and not Ready, gone after the grace, not replaced.
    let started = Instant::now();
    let answer = api
        .delete("debug", &DeleteParams::default().grace_period(1))
        .await
        .unwrap()
        .left()
        .expect("a pod delete answers with the pod");
    assert!(answer.metadata.deletion_timestamp.is_some());
    assert_eq!(answer.metadata.deletion_grace_period_seconds, Some(1));
    assert_eq!(ready_condition(&answer, "Ready"), "False");
    let pod = api.get("debug").await.unwrap();
    if started.elapsed() < Duration::from_secs(1) {
        assert!(pod.metadata.deletion_timestamp.is_some());
        let info = c.pod("shop", "debug").unwrap();
        assert!(info.terminating && !info.ready);
    }
    wait_for_async("debug to disappear", SLACK, || {
        c.pod("shop", "debug").is_none()
    })
    .await;
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(api_error(api.get("debug").await).code, 404);
    assert_eq!(c.pods("shop").len(), 5, "a bare pod is not replaced");

    // An RS pod with the default grace (30 s): replaced at once while it terminates, gone
    // after min(grace, 2 s).
    let victim = c
        .pods("shop")
        .into_iter()
        .find(|p| p.name.starts_with("db-"))
        .unwrap();
    let started = Instant::now();
    api.delete(&victim.name, &DeleteParams::default())
        .await
        .unwrap();
    let now = c.pods("shop");
    if started.elapsed() < fake_kube::MAX_TERMINATION {
        assert_eq!(
            now.len(),
            6,
            "terminating pod plus its replacement: {now:#?}"
        );
        assert!(now.iter().any(|p| p.uid == victim.uid && p.terminating));
        let rs: Api<ReplicaSet> = Api::namespaced(client(&c).await, "shop");
        assert_eq!(rs.get("db").await.unwrap().status.unwrap().replicas, 2);
    }
    wait_for_async("the terminating pod to disappear", SLACK, || {
        c.pods("shop").iter().all(|p| p.uid != victim.uid)
    })
    .await;
    assert!(started.elapsed() >= fake_kube::MAX_TERMINATION);
    assert_eq!(
        c.deleted(),
        vec![
            ("shop".to_string(), "debug".to_string()),
            ("shop".to_string(), victim.name.clone())
        ]
    );
}

#[tokio::test]
async fn dry_run_deletes_nothing() {
    let c = shop();
    let api: Api<Pod> = Api::namespaced(client(&c).await, "shop");
    let before: Vec<String> = c.pods("shop").iter().map(|p| p.uid.clone()).collect();
    let victim = c
        .pods("shop")
        .into_iter()
        .find(|p| p.name.starts_with("web-"))
        .unwrap();

    for dp in [
        DeleteParams::default().dry_run(),
        DeleteParams::default().dry_run().grace_period(0),
        DeleteParams::background().dry_run().grace_period(5),
    ] {
        let pod = api
            .delete(&victim.name, &dp)
            .await
            .unwrap()
            .left()
            .expect("a dry-run delete answers with the pod");
        assert_eq!(pod.metadata.uid.as_deref(), Some(victim.uid.as_str()));
    }
    let err = api_error(api.delete("nope", &DeleteParams::default().dry_run()).await);
    assert_eq!(
        (err.code, err.message.as_str()),
        (404, "pods \"nope\" not found")
    );

    let after = c.pods("shop");
    assert_eq!(
        after.iter().map(|p| p.uid.clone()).collect::<Vec<_>>(),
        before
    );
    assert!(after.iter().all(|p| p.ready && !p.terminating));
    assert!(c.deleted().is_empty());
    let deletes: Vec<_> = c
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("DELETE "))
        .collect();
    assert_eq!(deletes.len(), 4, "{deletes:?}");
    assert!(deletes[0].starts_with(&format!(
        "DELETE /api/v1/namespaces/shop/pods/{}",
        victim.name
    )));
}

#[tokio::test]
async fn injected_errors_reach_the_kube_error() {
    let c = shop();
    let api: Api<Pod> = Api::namespaced(client(&c).await, "shop");
    let victim = c.pods("shop")[0].name.clone();

    c.fail_next("DELETE", "/api/v1/namespaces/shop/pods/", 403, 1);
    let err = api_error(api.delete(&victim, &DeleteParams::default()).await);
    assert_eq!((err.code, err.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        err.message,
        format!(
            "pods \"{victim}\" is forbidden: User \"system:serviceaccount:shakeout:shakeout\" cannot delete resource \"pods\" in API group \"\" in the namespace \"shop\""
        )
    );
    assert!(c.deleted().is_empty());

    c.fail_next("GET", "/api/v1/namespaces/shop/pods", 403, 1);
    let err = api_error(api.list(&ListParams::default()).await);
    assert_eq!(
        err.message,
        "pods is forbidden: User \"system:serviceaccount:shakeout:shakeout\" cannot list resource \"pods\" in API group \"\" in the namespace \"shop\""
    );

    c.fail_next("GET", "/api/v1/namespaces/shop/pods", 404, 1);
    let err = api_error(api.get(&victim).await);
    assert_eq!((err.code, err.reason.as_str()), (404, "NotFound"));
    assert_eq!(err.message, format!("pods \"{victim}\" not found"));

    c.fail_next("delete", "/api/v1/namespaces/shop/pods", 409, 1);
    let err = api_error(
        api.delete(&victim, &DeleteParams::default().grace_period(0))
            .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert!(
        err.message.contains("the object has been modified"),
        "{}",
        err.message
    );
    assert!(c.deleted().is_empty());

    // Consumed: the next delete goes through.
    api.delete(&victim, &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    assert_eq!(c.deleted().len(), 1);

    // 429 with Retry-After: 1. kube's default client retries it after the server's
    // delay, so one 429 is invisible to the caller ...
    c.clear_requests();
    c.fail_next("GET", "/api/v1/namespaces/shop/pods", 429, 1);
    let started = Instant::now();
    api.list(&ListParams::default()).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After honoured"
    );
    assert_eq!(c.requests().len(), 2, "{:?}", c.requests());

    // ... and a client without the default retry sees it.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&c, &dir).await;
    cfg.default_retry = false;
    let no_retry: Api<Pod> = Api::namespaced(Client::try_from(cfg).unwrap(), "shop");
    c.fail_next("GET", "/api/v1/namespaces/shop/pods", 429, 1);
    let err = api_error(no_retry.list(&ListParams::default()).await);
    assert_eq!((err.code, err.reason.as_str()), (429, "TooManyRequests"));
    assert_eq!(err.details.unwrap().retry_after_seconds, 1);

    // Apps resources name their group.
    let ds: Api<DaemonSet> = Api::namespaced(client(&c).await, "shakeout");
    c.fail_next(
        "GET",
        "/apis/apps/v1/namespaces/shakeout/daemonsets/",
        403,
        1,
    );
    let err = api_error(ds.get("agent").await);
    assert_eq!(
        err.message,
        "daemonsets.apps \"agent\" is forbidden: User \"system:serviceaccount:shakeout:shakeout\" cannot get resource \"daemonsets\" in API group \"apps\" in the namespace \"shakeout\""
    );
}

#[tokio::test]
async fn missing_or_wrong_token_is_401() {
    let c = shop();
    let dir = tempfile::tempdir().unwrap();
    for token in [None, Some("wrong-token")] {
        let mut cfg = config(&c, &dir).await;
        cfg.auth_info.token = token.map(|t| t.to_string().into());
        let api: Api<Pod> = Api::namespaced(Client::try_from(cfg).unwrap(), "shop");
        let err = api_error(api.list(&ListParams::default()).await);
        assert_eq!(
            (err.code, err.reason.as_str()),
            (401, "Unauthorized"),
            "{token:?}"
        );
    }
    assert_eq!(c.requests().len(), 2);
}

#[tokio::test]
async fn pod_watch_streams_changes() {
    let c = shop();
    let api: Api<Pod> = Api::namespaced(client(&c).await, "shop");
    let list = api
        .list(&ListParams::default().labels("app=db"))
        .await
        .unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let victim = list.items[0].metadata.name.clone().unwrap();
    let stream = api
        .watch(&WatchParams::default().labels("app=db").timeout(10), &rv)
        .await
        .unwrap();
    let mut stream = stream.boxed();
    api.delete(&victim, &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let ev = tokio::time::timeout(SLACK, stream.try_next())
            .await
            .expect("watch event in time")
            .unwrap()
            .expect("watch still open");
        seen.push(match ev {
            WatchEvent::Added(p) => ("ADDED", p.metadata.name.unwrap()),
            WatchEvent::Modified(p) => ("MODIFIED", p.metadata.name.unwrap()),
            WatchEvent::Deleted(p) => ("DELETED", p.metadata.name.unwrap()),
            other => panic!("unexpected {other:?}"),
        });
    }
    assert_eq!(seen[0], ("MODIFIED", victim.clone()));
    assert_eq!(seen[1], ("DELETED", victim.clone()));
    assert_eq!(seen[2].0, "ADDED");
    assert!(seen[2].1.starts_with("db-"));
}

#[tokio::test]
async fn the_in_process_client_is_answered_as_over_http() {
    let c = shop();
    let inproc: Api<Pod> = Api::namespaced(c.client(), "shop");
    let http: Api<Pod> = Api::namespaced(client(&c).await, "shop");

    // Lists and gets: the same pods, the same objects.
    for lp in [
        ListParams::default(),
        ListParams::default().labels("app=web"),
        ListParams::default().fields("spec.nodeName=node-a"),
    ] {
        assert_eq!(names(&inproc, &lp).await, names(&http, &lp).await);
    }
    let web = c
        .pods("shop")
        .into_iter()
        .find(|p| p.name.starts_with("web-"))
        .unwrap();
    let (a, b) = (
        inproc.get(&web.name).await.unwrap(),
        http.get(&web.name).await.unwrap(),
    );
    assert_eq!(a.metadata.uid.as_deref(), Some(web.uid.as_str()));
    assert_eq!(a.metadata, b.metadata);
    assert_eq!(a.status, b.status);
    // Recorded as sent, the query as kube writes it.
    let seen = c.requests();
    assert_eq!(
        seen.iter()
            .filter(|r| *r == "GET /api/v1/namespaces/shop/pods?&labelSelector=app%3Dweb")
            .count(),
        2,
        "{seen:#?}"
    );

    // Injected errors and deletions reach the cluster the same way.
    c.fail_next("DELETE", "/api/v1/namespaces/shop/pods/", 403, 1);
    let err = api_error(inproc.delete(&web.name, &DeleteParams::default()).await);
    assert_eq!((err.code, err.reason.as_str()), (403, "Forbidden"));
    assert!(c.deleted().is_empty());
    inproc
        .delete(&web.name, &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    assert_eq!(c.deleted(), vec![("shop".to_string(), web.name.clone())]);
    assert_eq!(c.pods("shop").len(), 6, "replaced at once");

    // A watch streams from the in-process client too.
    let db = names(&inproc, &ListParams::default().labels("app=db")).await;
    let victim = db.iter().next().unwrap().clone();
    let rv = inproc
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = inproc
        .watch(&WatchParams::default().labels("app=db").timeout(10), &rv)
        .await
        .unwrap()
        .boxed();
    http.delete(&victim, &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    let ev = tokio::time::timeout(SLACK, stream.try_next())
        .await
        .expect("watch event in time")
        .unwrap()
        .expect("watch still open");
    assert!(
        matches!(&ev, WatchEvent::Modified(p) if p.metadata.name.as_deref() == Some(victim.as_str())),
        "{ev:?}"
    );

    // Port-forward needs a connection to upgrade: refused, not hung.
    let pf = tokio::time::timeout(SLACK, inproc.portforward("debug", &[80]))
        .await
        .expect("port-forward answered in time");
    let err = api_error(pf.map(|_| ()));
    assert_eq!(err.code, 400);
    assert!(err.message.contains("in-process client"), "{}", err.message);
}

/// A TCP echo server on 127.0.0.1:0 that counts its connections.
async fn echo_server() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        // "bye" makes the pod side close the connection.
                        Ok(n) if &buf[..n] == b"bye" => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    (port, accepted)
}

#[tokio::test]
async fn port_forward_round_trips_to_the_agent_on_the_pods_node() {
    let c = FakeCluster::start();
    let (port_a, conns_a) = echo_server().await;
    let (port_b, conns_b) = echo_server().await;
    c.add_daemonset(
        "shakeout",
        "shakeout-agent",
        &[("app.kubernetes.io/name", "shakeout-agent")],
        &["node-a", "node-b"],
        &[port_a, port_b],
    );
    c.add_pod("shop", "web-0", &[("app", "web")], "node-a", true);
    let client = client(&c).await;
    let agents: Api<Pod> = Api::namespaced(client.clone(), "shakeout");

    // Agents are found the way the controller finds them.
    let ds: Api<DaemonSet> = Api::namespaced(client.clone(), "shakeout");
    let st = ds.get("shakeout-agent").await.unwrap().status.unwrap();
    assert_eq!((st.desired_number_scheduled, st.number_ready), (2, 2));
    let listed = agents
        .list(&ListParams::default().labels("app.kubernetes.io/name=shakeout-agent"))
        .await
        .unwrap();
    let ips: Vec<_> = listed
        .items
        .iter()
        .map(|p| p.status.as_ref().unwrap().pod_ip.clone().unwrap())
        .collect();
    assert_eq!(ips, ["127.0.0.1", "127.0.0.1"]);

    for (pod, conns, other) in [
        ("shakeout-agent-node-a", &conns_a, &conns_b),
        ("shakeout-agent-node-b", &conns_b, &conns_a),
    ] {
        let before_other = other.load(Ordering::SeqCst);
        let mut pf = agents.portforward(pod, &[7070]).await.unwrap();
        let mut stream = pf.take_stream(7070).unwrap();
        for msg in [&b"hello agent"[..], &b"second message"[..]] {
            stream.write_all(msg).await.unwrap();
            let mut back = vec![0u8; msg.len()];
            tokio::time::timeout(SLACK, stream.read_exact(&mut back))
                .await
                .expect("echo in time")
                .unwrap();
            assert_eq!(back, msg);
        }
        assert_eq!(
            conns.load(Ordering::SeqCst),
            1,
            "{pod} reached its node's agent"
        );
        assert_eq!(other.load(Ordering::SeqCst), before_other);
        // Our side closes: the forward ends cleanly.
        drop(stream);
        tokio::time::timeout(SLACK, pf.join())
            .await
            .expect("forward closed in time")
            .unwrap();
    }

    // The pod side closes: the client reads EOF and the forward ends. The server's
    // WebSocket Close comes first (as the kubelet's does once every port's connection is
    // done), so kube's own Close after the stream is dropped fails with SendAfterClosing:
    // kube 5 behaviour against a real cluster too, not an unclean close.
    let mut pf = agents
        .portforward("shakeout-agent-node-a", &[7070])
        .await
        .unwrap();
    let mut stream = pf.take_stream(7070).unwrap();
    stream.write_all(b"bye").await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(SLACK, stream.read_to_end(&mut rest))
        .await
        .expect("EOF in time")
        .unwrap();
    assert!(rest.is_empty());
    drop(stream);
    let joined = tokio::time::timeout(SLACK, pf.join())
        .await
        .expect("forward ended in time");
    if let Err(e) = joined {
        assert!(
            e.to_string().contains("failed to send a WebSocket message"),
            "{e}"
        );
    }

    // A pod with nothing listening: the kubelet's error on the error channel.
    let shop: Api<Pod> = Api::namespaced(client.clone(), "shop");
    let mut pf = shop.portforward("web-0", &[8080]).await.unwrap();
    let err = tokio::time::timeout(SLACK, pf.take_error(8080).unwrap())
        .await
        .unwrap()
        .expect("an error message");
    assert!(
        err.starts_with("error forwarding port 8080 to pod") && err.contains("connection refused"),
        "{err}"
    );

    // Errors before the upgrade are Status errors.
    let err = api_error(shop.portforward("nope", &[80]).await.map(|_| ()));
    assert_eq!(
        (err.code, err.message.as_str()),
        (404, "pods \"nope\" not found")
    );
    c.fail_next(
        "GET",
        "/api/v1/namespaces/shakeout/pods/shakeout-agent-node-a/portforward",
        403,
        1,
    );
    let err = api_error(
        agents
            .portforward("shakeout-agent-node-a", &[7070])
            .await
            .map(|_| ()),
    );
    assert_eq!(err.code, 403);
    assert!(
        err.message
            .contains("cannot create resource \"pods/portforward\""),
        "{}",
        err.message
    );

    let forwards: Vec<_> = c
        .requests()
        .into_iter()
        .filter(|r| r.contains("/portforward"))
        .collect();
    assert!(
        forwards[0]
            .starts_with("GET /api/v1/namespaces/shakeout/pods/shakeout-agent-node-a/portforward?")
            && forwards[0].ends_with("ports=7070"),
        "{forwards:?}"
    );
}

#[tokio::test]
async fn dropping_the_cluster_stops_the_server_and_open_forwards() {
    let c = FakeCluster::start();
    let (port, _) = echo_server().await;
    c.add_daemonset(
        "shakeout",
        "agent",
        &[("app", "agent")],
        &["node-a"],
        &[port],
    );
    let api: Api<Pod> = Api::namespaced(client(&c).await, "shakeout");
    let mut pf = api.portforward("agent-node-a", &[7070]).await.unwrap();
    let mut stream = pf.take_stream(7070).unwrap();
    stream.write_all(b"ping").await.unwrap();
    let mut back = [0u8; 4];
    stream.read_exact(&mut back).await.unwrap();
    let server_port = c.port();

    drop(c);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", server_port)).is_err(),
        "listener closed"
    );
    let mut rest = Vec::new();
    let read = tokio::time::timeout(SLACK, stream.read_to_end(&mut rest))
        .await
        .expect("the forward ends when the cluster is dropped");
    assert!(read.is_err() || rest.is_empty());
    assert!(api.list(&ListParams::default()).await.is_err());
}

#[test]
fn selector_semantics_match_apimachinery() {
    use fake_kube::selector::{FieldSelector, LabelSelector};
    use std::collections::BTreeMap;
    let labels: BTreeMap<String, String> = [("app".to_string(), "web".to_string())]
        .into_iter()
        .collect();
    let sel = |s: &str| LabelSelector::parse(s).unwrap().matches(&labels);
    // != and notin also select objects without the key; in requires it.
    assert!(sel("tier!=front") && sel("tier notin (front)") && !sel("tier in (front)"));
    assert!(sel("app=web,!tier") && !sel("app,tier"));
    assert!(sel("app in (web,)") && !sel("tier=") && sel("app!="));
    assert!(LabelSelector::parse("app=web,,tier").is_err());
    assert!(LabelSelector::parse("example.com/app=web").is_ok());
    let f = FieldSelector::parse(
        "status.phase!=Pending,spec.nodeName=",
        &["status.phase", "spec.nodeName"],
    )
    .unwrap();
    let escaped = FieldSelector::parse(r"metadata.name=a\=b\,c", &["metadata.name"]).unwrap();
    assert_eq!(escaped.0[0].value, "a=b,c");
    assert!(f.matches(|field| if field == "status.phase" {
        "Running".into()
    } else {
        String::new()
    }));
}

/// A client from the kubeconfig without kube's retries of 429 (as the controller makes
/// evictions: a budget's 429 is an answer, not throttling).
async fn client_once(cluster: &FakeCluster) -> Client {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(cluster, &dir).await;
    cfg.default_retry = false;
    Client::try_from(cfg).unwrap()
}

fn eviction(name: &str, delete_options: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": name, "namespace": "shop"},
        "deleteOptions": delete_options
    })
}

#[tokio::test]
async fn evictions_honour_budgets_counted_as_the_disruption_controller_counts() {
    let c = FakeCluster::start();
    c.add_replicaset(
        "shop",
        "web",
        &[("app", "web")],
        3,
        &["n"],
        Duration::from_secs(30),
    );
    c.add_pdb("shop", "web", &[("app", "web")], ("minAvailable", "2"));
    c.add_pdb(
        "shop",
        "ratio",
        &[("app", "nope")],
        ("maxUnavailable", "50%"),
    );
    let client = client_once(&c).await;
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "shop");
    let status = |b: PodDisruptionBudget| {
        let s = b.status.unwrap();
        (
            s.expected_pods,
            s.current_healthy,
            s.desired_healthy,
            s.disruptions_allowed,
        )
    };
    let web = pdbs.get("web").await.unwrap();
    assert_eq!(status(web.clone()), (Some(3), Some(3), Some(2), Some(1)));
    assert_eq!(
        web.metadata.generation,
        web.status.unwrap().observed_generation
    );
    assert_eq!(
        pdbs.list(&ListParams::default()).await.unwrap().items.len(),
        2
    );

    let pods: Api<Pod> = Api::namespaced(client, "shop");
    let names: Vec<String> = c.pods("shop").into_iter().map(|p| p.name).collect();
    let evict = |name: &str, body: serde_json::Value, dry_run: bool| {
        let pods = pods.clone();
        let name = name.to_string();
        async move {
            let pp = PostParams {
                dry_run,
                ..Default::default()
            };
            pods.create_subresource::<_, kube::core::Status>("eviction", &name, &pp, &body)
                .await
        }
    };
    // A dry run is checked and changes nothing.
    let ok = evict(&names[0], eviction(&names[0], serde_json::json!({})), true)
        .await
        .unwrap();
    assert_eq!(ok.code, 201);
    assert!(c.deleted().is_empty());
    // A uid precondition that is not the pod's: 409, as the DELETE it becomes.
    let wrong = eviction(
        &names[0],
        serde_json::json!({"preconditions": {"uid": "not-it"}}),
    );
    assert_eq!(api_error(evict(&names[0], wrong, false).await).code, 409);
    // The one allowed disruption: evicted (terminating), and the budget is used up.
    let uid = c.pod("shop", &names[0]).unwrap().uid;
    let first = eviction(
        &names[0],
        serde_json::json!({"preconditions": {"uid": uid}}),
    );
    assert_eq!(evict(&names[0], first, false).await.unwrap().code, 201);
    assert!(c.pod("shop", &names[0]).unwrap().terminating);
    assert_eq!(c.deleted().len(), 1);
    assert_eq!(
        status(pdbs.get("web").await.unwrap()),
        (Some(4), Some(2), Some(2), Some(0))
    );
    // The next: 429 with the budget's cause, and no Retry-After to come back after.
    let refused =
        api_error(evict(&names[1], eviction(&names[1], serde_json::json!({})), false).await);
    assert_eq!(
        (refused.code, refused.reason.as_str()),
        (429, "TooManyRequests")
    );
    assert_eq!(
        refused.message,
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    let cause = &refused.details.unwrap().causes[0];
    assert_eq!(cause.reason, "DisruptionBudget");
    assert_eq!(
        cause.message,
        "The disruption budget web needs 2 healthy pods and has 2 currently"
    );
    assert_eq!(c.deleted().len(), 1);
    // The Eviction must name the pod of its URL.
    let mismatch =
        api_error(evict(&names[1], eviction(&names[2], serde_json::json!({})), false).await);
    assert_eq!(mismatch.code, 400);
}

#[tokio::test]
async fn access_reviews_answer_as_the_requests_are_answered() {
    let c = shop();
    c.deny("delete", "pods", Some("shop"));
    let client = client(&c).await;
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let may = |verb: &str, resource: &str, ns: &str| {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(verb.into()),
                    resource: Some(resource.into()),
                    group: Some(String::new()),
                    namespace: Some(ns.into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let reviews = reviews.clone();
        async move {
            reviews
                .create(&PostParams::default(), &review)
                .await
                .unwrap()
                .status
                .unwrap()
        }
    };
    let denied = may("delete", "pods", "shop").await;
    assert!(!denied.allowed);
    let allowed = may("list", "pods", "shop").await;
    assert!(allowed.allowed && allowed.reason.unwrap().starts_with("RBAC: allowed by"));
    assert!(may("delete", "pods", "other").await.allowed);
    // The request itself: the authorizer's 403, naming verb, resource and namespace.
    let pods: Api<Pod> = Api::namespaced(client, "shop");
    let e = api_error(pods.delete("debug", &DeleteParams::default()).await);
    assert_eq!((e.code, e.reason.as_str()), (403, "Forbidden"));
    assert!(
        e.message.contains(
            "cannot delete resource \"pods\" in API group \"\" in the namespace \"shop\""
        ),
        "{}",
        e.message
    );
    assert!(c.pod("shop", "debug").is_some());
}

#[tokio::test]
async fn a_daemonset_admission_refuses_has_failed_create_events() {
    let c = FakeCluster::start();
    c.add_blocked_daemonset(
        "shakeout",
        "shakeout-agent",
        &[("app.kubernetes.io/name", "shakeout-agent")],
        &["node-a", "node-b"],
        "violates PodSecurity \"baseline:latest\": host namespaces (hostPID=true)",
    );
    let client = client(&c).await;
    let sets: Api<DaemonSet> = Api::namespaced(client.clone(), "shakeout");
    let s = sets.get("shakeout-agent").await.unwrap().status.unwrap();
    assert_eq!(
        (
            s.desired_number_scheduled,
            s.current_number_scheduled,
            s.number_ready
        ),
        (2, 0, 0)
    );
    let events: Api<Event> = Api::namespaced(client, "shakeout");
    let lp = ListParams::default()
        .fields("involvedObject.kind=DaemonSet,involvedObject.name=shakeout-agent,type=Warning");
    let found = events.list(&lp).await.unwrap().items;
    assert_eq!(found.len(), 2);
    assert!(found
        .iter()
        .all(|e| e.reason.as_deref() == Some("FailedCreate")
            && e.message
                .as_deref()
                .unwrap()
                .contains("is forbidden: violates PodSecurity")));
    let none = ListParams::default().fields("involvedObject.name=other");
    assert!(events.list(&none).await.unwrap().items.is_empty());
    assert_eq!(
        api_error(
            events
                .list(&ListParams::default().fields("spec.nope=x"))
                .await
        )
        .code,
        400
    );
}
