//! The HTTP side: authentication, authorization (RBAC as the tests set it), injected
//! failures, and the REST paths `kube` calls (discovery, pods, evictions, nodes,
//! ReplicaSets, DaemonSets, PodDisruptionBudgets, events, SelfSubjectAccessReviews, pod
//! watch, port-forward).

use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use super::cluster::{Cluster, DeleteOpts, FollowUp, Key, Workload, META_FIELDS, POD_FIELDS};
use super::selector::{FieldSelector, LabelSelector};
use super::status::{injected_error, method_not_allowed, not_found_path, target, ApiError};
use super::{events, objects, policy, portforward, rbac, watch, FakeCluster, VERSION};

pub type Body = BoxBody<Bytes, Infallible>;

/// A request body the server reads: hyper's from a connection, or the in-process
/// client's.
pub trait RequestBody:
    hyper::body::Body<Data = Bytes, Error: std::fmt::Display> + Send + 'static
{
}

impl<B: hyper::body::Body<Data = Bytes, Error: std::fmt::Display> + Send + 'static> RequestBody
    for B
{
}

/// State shared by the server's tasks and the test's `FakeCluster` handle.
pub struct Shared {
    cluster: Mutex<Cluster>,
    pub rt: Handle,
    pub port: u16,
}

impl Shared {
    pub fn new(rt: Handle, port: u16) -> Shared {
        Shared {
            cluster: Mutex::new(Cluster::default()),
            rt,
            port,
        }
    }

    /// The cluster; a panic elsewhere must not hide the state from the test's asserts.
    pub fn lock(&self) -> MutexGuard<'_, Cluster> {
        self.cluster.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs each follow-up when it is due, on the server's runtime.
    pub fn schedule(self: &Arc<Self>, follow: Vec<FollowUp>) {
        for f in follow {
            let shared = self.clone();
            let after = match &f {
                FollowUp::Ready { after, .. } | FollowUp::Remove { after, .. } => *after,
            };
            self.rt.spawn(async move {
                tokio::time::sleep(after).await;
                shared.lock().apply(&f);
            });
        }
    }
}

/// Accepts connections until `cancel`; each connection is served on its own task.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, cancel: CancellationToken) {
    loop {
        let stream = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(shared.clone(), req));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades()
                .await;
        });
    }
}

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

pub fn json_response(code: u16, v: &Value) -> Response<Body> {
    let mut res = Response::new(full(v.to_string()));
    *res.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

pub fn error_response(e: &ApiError) -> Response<Body> {
    let mut res = json_response(e.code, &objects::status(e));
    if let Some(s) = e.retry_after() {
        if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
            res.headers_mut().insert(RETRY_AFTER, v);
        }
    }
    res
}

/// Query pairs, percent-decoded (`+` is a space), empty pairs skipped.
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Answers one request, whichever way it came (a connection or the in-process client).
pub async fn handle(
    shared: Arc<Shared>,
    req: Request<impl RequestBody>,
) -> Result<Response<Body>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let raw_query = req.uri().query().unwrap_or("").to_string();
    shared.lock().requests.push(if raw_query.is_empty() {
        format!("{method} {path}")
    } else {
        format!("{method} {path}?{raw_query}")
    });
    let token = format!("Bearer {}", FakeCluster::TOKEN);
    let authorized = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .is_some_and(|h| h.as_bytes() == token.as_bytes());
    if !authorized {
        return Ok(error_response(&ApiError::unauthorized()));
    }
    let query = parse_query(&raw_query);
    let denied = rbac::authorize(&shared.lock(), &method, &path, &query);
    if let Err(e) = denied {
        return Ok(error_response(&e));
    }
    let injected = shared.lock().take_failure(method.as_str(), &path);
    if let Some(code) = injected {
        return Ok(error_response(&injected_error(
            code, &method, &path, &query,
        )));
    }
    Ok(route(shared, req, &method, &path, &query)
        .await
        .unwrap_or_else(|e| error_response(&e)))
}

async fn route(
    shared: Arc<Shared>,
    req: Request<impl RequestBody>,
    method: &Method,
    path: &str,
    query: &[(String, String)],
) -> Result<Response<Body>, ApiError> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let get = method == Method::GET;
    let ok = |v: Value| Ok(json_response(200, &v));
    match segs.as_slice() {
        ["version"] if get => ok(version()),
        ["api"] if get => ok(json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": format!("127.0.0.1:{}", shared.port)}
            ]
        })),
        ["apis"] if get => {
            let group = |name: &str| {
                let gv = format!("{name}/v1");
                json!({
                    "name": name,
                    "versions": [{"groupVersion": gv, "version": "v1"}],
                    "preferredVersion": {"groupVersion": gv, "version": "v1"}
                })
            };
            ok(json!({
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [group("apps"), group("authorization.k8s.io"), group("policy")]
            }))
        }
        ["api", "v1"] if get => ok(resource_list(
            "v1",
            &[
                ("pods", "Pod", true, "get,list,watch,delete"),
                ("pods/eviction", "Eviction", true, "create"),
                ("pods/portforward", "PodPortForwardOptions", true, "create,get"),
                ("nodes", "Node", false, "get,list"),
                ("events", "Event", true, "list"),
            ],
        )),
        ["apis", "policy", "v1"] if get => ok(resource_list(
            "policy/v1",
            &[("poddisruptionbudgets", "PodDisruptionBudget", true, "get,list")],
        )),
        ["apis", "authorization.k8s.io", "v1"] if get => ok(resource_list(
            "authorization.k8s.io/v1",
            &[("selfsubjectaccessreviews", "SelfSubjectAccessReview", false, "create")],
        )),
        ["apis", "authorization.k8s.io", "v1", "selfsubjectaccessreviews"]
            if method == Method::POST =>
        {
            let body = read_body(req).await;
            let review = rbac::review(&shared.lock(), &body)?;
            Ok(json_response(201, &review))
        }
        ["api", "v1", "namespaces", ns, "pods", name, "eviction"] if method == Method::POST => {
            let key: Key = (ns.to_string(), name.to_string());
            let dry_run = dry_run_query(query)?;
            let body = read_body(req).await;
            let (status, follow) = shared.lock().evict(&key, &body, dry_run)?;
            shared.schedule(follow);
            Ok(json_response(201, &status))
        }
        ["apis", "policy", "v1", "poddisruptionbudgets"] if get => list_pdbs(&shared, None, query),
        ["apis", "policy", "v1", "namespaces", ns, "poddisruptionbudgets"] if get => {
            list_pdbs(&shared, Some(ns), query)
        }
        ["apis", "policy", "v1", "namespaces", ns, "poddisruptionbudgets", name] if get => {
            let c = shared.lock();
            let key: Key = (ns.to_string(), name.to_string());
            let b = c
                .pdbs
                .get(&key)
                .ok_or_else(|| ApiError::not_found("poddisruptionbudgets", "policy", name))?;
            ok(policy::pdb_value(&c, &key, b, true))
        }
        ["api", "v1", "events"] if get => list_events(&shared, None, query),
        ["api", "v1", "namespaces", ns, "events"] if get => list_events(&shared, Some(ns), query),
        ["apis", "apps", "v1"] if get => ok(resource_list(
            "apps/v1",
            &[
                ("daemonsets", "DaemonSet", true, "get,list"),
                ("replicasets", "ReplicaSet", true, "get,list"),
            ],
        )),

        ["api", "v1", "pods"] if get => list_pods(&shared, None, query),
        ["api", "v1", "namespaces", ns, "pods"] if get => list_pods(&shared, Some(ns), query),
        ["api", "v1", "namespaces", ns, "pods", name] => {
            let key: Key = (ns.to_string(), name.to_string());
            match *method {
                Method::GET => {
                    let c = shared.lock();
                    let pod = c
                        .pods
                        .get(&key)
                        .ok_or_else(|| ApiError::not_found("pods", "", name))?;
                    ok(objects::pod_value(&key, pod, true))
                }
                Method::DELETE => delete_pod(&shared, req, key, query).await,
                _ => Err(method_not_allowed()),
            }
        }
        ["api", "v1", "namespaces", ns, "pods", name, "portforward"] if get => {
            portforward::upgrade(&shared, req, (ns.to_string(), name.to_string()), query)
        }
        ["api", "v1", "namespaces", _, "pods", _, "portforward"] => Err(ApiError::bad_request(
            "the fake API server serves port-forward over WebSocket only (GET with Upgrade: websocket); SPDY is not supported",
        )),

        ["api", "v1", "nodes"] if get => {
            no_watch(query)?;
            let c = shared.lock();
            let labels = label_selector(query)?;
            let fields = field_selector(query, &["metadata.name"])?;
            let items = c
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| {
                    labels.matches(&node_labels(n)) && fields.matches(|_| n.to_string())
                })
                .map(|(i, n)| objects::node_value(n, i, c.resource_version(), false))
                .collect();
            ok(objects::list("NodeList", "v1", c.resource_version(), items, None, 0))
        }
        ["api", "v1", "nodes", name] if get => {
            let c = shared.lock();
            let i = c
                .nodes
                .iter()
                .position(|n| n == name)
                .ok_or_else(|| ApiError::not_found("nodes", "", name))?;
            ok(objects::node_value(name, i, c.resource_version(), true))
        }

        ["apis", "apps", "v1", res @ ("daemonsets" | "replicasets")] if get => {
            list_workloads(&shared, res, None, query)
        }
        ["apis", "apps", "v1", "namespaces", ns, res @ ("daemonsets" | "replicasets")] if get => {
            list_workloads(&shared, res, Some(ns), query)
        }
        ["apis", "apps", "v1", "namespaces", ns, res @ ("daemonsets" | "replicasets"), name]
            if get =>
        {
            let c = shared.lock();
            let key: Key = (ns.to_string(), name.to_string());
            let map = workloads(&c, res);
            let w = map
                .get(&key)
                .ok_or_else(|| ApiError::not_found(res, "apps", name))?;
            ok(workload_value(&c, res, &key, w, true))
        }

        ["api", "v1", ..] | ["apis", "apps" | "policy", "v1", ..] if target(path).is_some_and(|t| {
            matches!(
                t.resource.as_str(),
                "pods" | "nodes" | "daemonsets" | "replicasets" | "events" | "poddisruptionbudgets"
            )
        }) =>
        {
            Err(method_not_allowed())
        }
        _ => Err(not_found_path()),
    }
}

fn version() -> Value {
    let minor = VERSION.split('.').nth(1).unwrap_or("37");
    json!({
        "major": "1",
        "minor": minor,
        "emulationMajor": "1",
        "emulationMinor": minor,
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "36",
        "gitVersion": VERSION,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.25.5",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

fn resource_list(group_version: &str, resources: &[(&str, &str, bool, &str)]) -> Value {
    let resources: Vec<Value> = resources
        .iter()
        .map(|(name, kind, namespaced, verbs)| {
            json!({
                "name": name,
                "singularName": "",
                "namespaced": namespaced,
                "kind": kind,
                "verbs": verbs.split(',').collect::<Vec<_>>()
            })
        })
        .collect();
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources
    })
}

fn node_labels(name: &str) -> std::collections::BTreeMap<String, String> {
    std::collections::BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), name.to_string()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
    ])
}

fn label_selector(query: &[(String, String)]) -> Result<LabelSelector, ApiError> {
    LabelSelector::parse(param(query, "labelSelector").unwrap_or("")).map_err(ApiError::bad_request)
}

fn field_selector(query: &[(String, String)], fields: &[&str]) -> Result<FieldSelector, ApiError> {
    FieldSelector::parse(param(query, "fieldSelector").unwrap_or(""), fields)
        .map_err(ApiError::bad_request)
}

fn is_watch(query: &[(String, String)]) -> bool {
    matches!(param(query, "watch"), Some("true" | "1"))
}

fn no_watch(query: &[(String, String)]) -> Result<(), ApiError> {
    if is_watch(query) {
        return Err(ApiError::bad_request(
            "the fake API server supports watch on pods only",
        ));
    }
    Ok(())
}

/// Applies `limit`/`continue` to items in key order; the continue token is the last key.
fn page<T>(
    items: Vec<(Key, T)>,
    query: &[(String, String)],
) -> Result<(Vec<T>, Option<String>, usize), ApiError> {
    let start = match param(query, "continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let (ns, name) = token.split_once('/').ok_or_else(|| {
                ApiError::bad_request(format!("continue key is not valid: {token:?}"))
            })?;
            let after = (ns.to_string(), name.to_string());
            items.iter().take_while(|(k, _)| *k <= after).count()
        }
        None => 0,
    };
    let limit = param(query, "limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let rest: Vec<(Key, T)> = items.into_iter().skip(start).collect();
    let total = rest.len();
    if total <= limit {
        return Ok((rest.into_iter().map(|(_, v)| v).collect(), None, 0));
    }
    let mut taken: Vec<(Key, T)> = rest.into_iter().take(limit).collect();
    let token = taken.last().map(|(k, _)| format!("{}/{}", k.0, k.1));
    Ok((
        taken.drain(..).map(|(_, v)| v).collect(),
        token,
        total - limit,
    ))
}

fn list_pods(
    shared: &Arc<Shared>,
    ns: Option<&str>,
    query: &[(String, String)],
) -> Result<Response<Body>, ApiError> {
    let labels = label_selector(query)?;
    let fields = field_selector(query, POD_FIELDS)?;
    if is_watch(query) {
        return watch::watch_pods(shared, ns.map(str::to_string), labels, fields, query);
    }
    let c = shared.lock();
    let items: Vec<(Key, Value)> = c
        .select_pods(ns, &labels, &fields)
        .into_iter()
        .map(|(k, p)| (k.clone(), objects::pod_value(k, p, false)))
        .collect();
    let (items, cont, remaining) = page(items, query)?;
    Ok(json_response(
        200,
        &objects::list(
            "PodList",
            "v1",
            c.resource_version(),
            items,
            cont,
            remaining,
        ),
    ))
}

fn workloads<'a>(c: &'a Cluster, res: &str) -> &'a std::collections::BTreeMap<Key, Workload> {
    if res == "daemonsets" {
        &c.daemonsets
    } else {
        &c.replicasets
    }
}

fn workload_value(c: &Cluster, res: &str, key: &Key, w: &Workload, with_type: bool) -> Value {
    let counts = c.owned_counts(&w.uid);
    if res == "daemonsets" {
        objects::daemonset_value(key, w, counts, with_type)
    } else {
        objects::replicaset_value(key, w, counts, with_type)
    }
}

fn list_workloads(
    shared: &Arc<Shared>,
    res: &str,
    ns: Option<&str>,
    query: &[(String, String)],
) -> Result<Response<Body>, ApiError> {
    no_watch(query)?;
    let labels = label_selector(query)?;
    let fields = field_selector(query, META_FIELDS)?;
    let c = shared.lock();
    let items: Vec<(Key, Value)> = workloads(&c, res)
        .iter()
        .filter(|(k, _)| ns.is_none_or(|n| k.0 == n))
        .filter(|(k, w)| {
            labels.matches(&w.labels)
                && fields.matches(|f| match f {
                    "metadata.name" => k.1.clone(),
                    _ => k.0.clone(),
                })
        })
        .map(|(k, w)| (k.clone(), workload_value(&c, res, k, w, false)))
        .collect();
    let (items, cont, remaining) = page(items, query)?;
    let kind = if res == "daemonsets" {
        "DaemonSetList"
    } else {
        "ReplicaSetList"
    };
    Ok(json_response(
        200,
        &objects::list(
            kind,
            "apps/v1",
            c.resource_version(),
            items,
            cont,
            remaining,
        ),
    ))
}

fn invalid_delete_options(detail: String) -> ApiError {
    ApiError {
        code: 422,
        reason: "Invalid",
        message: format!("DeleteOptions.meta.k8s.io \"\" is invalid: {detail}"),
        name: None,
        kind: Some("DeleteOptions".into()),
        group: Some("meta.k8s.io".into()),
        ..Default::default()
    }
}

/// DeleteOptions from the JSON body (what `kube` sends) and the query (what others send).
fn delete_options(body: &[u8], query: &[(String, String)]) -> Result<DeleteOpts, ApiError> {
    let v: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf: {e}"
            ))
        })?
    };
    let mut opts = DeleteOpts::default();
    let mut dry: Vec<String> = v["dryRun"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    dry.extend(
        query
            .iter()
            .filter(|(k, _)| k == "dryRun")
            .map(|(_, v)| v.clone()),
    );
    for d in &dry {
        if d != "All" {
            return Err(invalid_delete_options(format!(
                "dryRun: Unsupported value: \"{d}\": supported values: \"All\""
            )));
        }
    }
    opts.dry_run = !dry.is_empty();
    let grace = v["gracePeriodSeconds"]
        .as_i64()
        .or_else(|| param(query, "gracePeriodSeconds").and_then(|g| g.parse().ok()));
    // The pod registry turns a negative grace period into 1 second.
    opts.grace = grace.map(|g| match g {
        0 => 0,
        g if g < 0 => 1,
        g => u32::try_from(g).unwrap_or(u32::MAX),
    });
    let policy = v["propagationPolicy"]
        .as_str()
        .map(String::from)
        .or_else(|| param(query, "propagationPolicy").map(String::from));
    if let Some(p) = policy {
        if !matches!(p.as_str(), "Orphan" | "Background" | "Foreground") {
            return Err(invalid_delete_options(format!(
                "propagationPolicy: Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
            )));
        }
    }
    opts.uid = v["preconditions"]["uid"].as_str().map(String::from);
    opts.resource_version = v["preconditions"]["resourceVersion"]
        .as_str()
        .map(String::from);
    Ok(opts)
}

/// The request's body (empty if it cannot be read).
async fn read_body(req: Request<impl RequestBody>) -> Bytes {
    req.into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default()
}

/// `dryRun` of a create's query: only `All` is valid.
fn dry_run_query(query: &[(String, String)]) -> Result<bool, ApiError> {
    let mut dry = false;
    for (_, v) in query.iter().filter(|(k, _)| k == "dryRun") {
        if v != "All" {
            return Err(ApiError::bad_request(format!(
                "Invalid dryRun value: \"{v}\": supported values: \"All\""
            )));
        }
        dry = true;
    }
    Ok(dry)
}

fn list_pdbs(
    shared: &Arc<Shared>,
    ns: Option<&str>,
    query: &[(String, String)],
) -> Result<Response<Body>, ApiError> {
    no_watch(query)?;
    let fields = field_selector(query, META_FIELDS)?;
    let c = shared.lock();
    let items: Vec<(Key, Value)> = c
        .pdbs
        .iter()
        .filter(|(k, _)| ns.is_none_or(|n| k.0 == n))
        .filter(|(k, _)| {
            fields.matches(|f| match f {
                "metadata.name" => k.1.clone(),
                _ => k.0.clone(),
            })
        })
        .map(|(k, b)| (k.clone(), policy::pdb_value(&c, k, b, false)))
        .collect();
    let (items, cont, remaining) = page(items, query)?;
    Ok(json_response(
        200,
        &objects::list(
            "PodDisruptionBudgetList",
            "policy/v1",
            c.resource_version(),
            items,
            cont,
            remaining,
        ),
    ))
}

fn list_events(
    shared: &Arc<Shared>,
    ns: Option<&str>,
    query: &[(String, String)],
) -> Result<Response<Body>, ApiError> {
    no_watch(query)?;
    let fields = field_selector(query, events::EVENT_FIELDS)?;
    let c = shared.lock();
    let mut items: Vec<(Key, Value)> = c
        .object_events
        .iter()
        .filter(|e| ns.is_none_or(|n| events::event_field(e, "metadata.namespace") == n))
        .filter(|e| fields.matches(|f| events::event_field(e, f)))
        .map(|e| {
            let key = (
                events::event_field(e, "metadata.namespace"),
                events::event_field(e, "metadata.name"),
            );
            (key, e.clone())
        })
        .collect();
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let (items, cont, remaining) = page(items, query)?;
    Ok(json_response(
        200,
        &objects::list(
            "EventList",
            "v1",
            c.resource_version(),
            items,
            cont,
            remaining,
        ),
    ))
}

async fn delete_pod(
    shared: &Arc<Shared>,
    req: Request<impl RequestBody>,
    key: Key,
    query: &[(String, String)],
) -> Result<Response<Body>, ApiError> {
    let body = read_body(req).await;
    let opts = delete_options(&body, query)?;
    let (object, follow) = shared.lock().delete_pod(&key, &opts)?;
    shared.schedule(follow);
    Ok(json_response(200, &object))
}
