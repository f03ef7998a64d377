//! Authorization as RBAC does it, in one place for both ways of asking: a request the
//! fake's user may not make is refused with the API server's 403 before it reaches its
//! handler, and a SelfSubjectAccessReview for the same verb and resource answers
//! `allowed: false`. Everything is allowed unless a test denies it (`FakeCluster::deny`).

use hyper::Method;
use serde_json::{json, Value};

use super::cluster::Cluster;
use super::status::{injected_error, target, verb, ApiError};

/// The service account the fake authenticates every request as (its 403s name it).
pub const USER: &str = "system:serviceaccount:shakeout:shakeout";

/// One denied permission: `verb` on `resource` (`pods`, `pods/eviction`) of `group` in
/// `namespace` (`None`: every namespace and the cluster scope).
#[derive(Debug, Clone)]
pub struct Denied {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub namespace: Option<String>,
}

impl Denied {
    /// From `resource[.group]` as RBAC names it: `pods`, `pods/eviction`,
    /// `poddisruptionbudgets.policy`, `daemonsets.apps`.
    pub fn parse(verb: &str, resource: &str, namespace: Option<&str>) -> Denied {
        let (resource, group) = match resource.split_once('.') {
            Some((r, g)) => (r, g),
            None => (resource, ""),
        };
        Denied {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            namespace: namespace.map(String::from),
        }
    }

    fn covers(&self, verb: &str, group: &str, resource: &str, namespace: Option<&str>) -> bool {
        self.verb == verb
            && self.group == group
            && self.resource == resource
            && self
                .namespace
                .as_deref()
                .is_none_or(|n| Some(n) == namespace)
    }
}

impl Cluster {
    /// Whether the fake's user may `verb` `resource` (with `/subresource`) of `group` in
    /// `namespace`.
    pub fn allowed(
        &self,
        verb: &str,
        group: &str,
        resource: &str,
        namespace: Option<&str>,
    ) -> bool {
        !self
            .denied
            .iter()
            .any(|d| d.covers(verb, group, resource, namespace))
    }
}

/// The 403 a request gets when the user may not make it, as the authorizer answers
/// before any handler runs.
pub fn authorize(
    c: &Cluster,
    method: &Method,
    path: &str,
    query: &[(String, String)],
) -> Result<(), ApiError> {
    let Some(t) = target(path) else {
        return Ok(());
    };
    let resource = match &t.sub {
        Some(s) => format!("{}/{s}", t.resource),
        None => t.resource.clone(),
    };
    let verb = verb(method, &t, query);
    if c.allowed(verb, &t.group, &resource, t.ns.as_deref()) {
        Ok(())
    } else {
        Err(injected_error(403, method, path, query))
    }
}

/// `POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews`: the review, answered
/// from the same rules (201 Created, as the real server answers a create).
pub fn review(c: &Cluster, body: &[u8]) -> Result<Value, ApiError> {
    let mut v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf: {e}"
        ))
    })?;
    let attrs = &v["spec"]["resourceAttributes"];
    if !attrs.is_object() && !v["spec"]["nonResourceAttributes"].is_object() {
        return Err(ApiError {
            code: 422,
            reason: "Invalid",
            message: "SelfSubjectAccessReview.authorization.k8s.io \"\" is invalid: spec.resourceAttributes: Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified".into(),
            kind: Some("SelfSubjectAccessReview".into()),
            group: Some("authorization.k8s.io".into()),
            ..Default::default()
        });
    }
    let text = |k: &str| attrs[k].as_str().unwrap_or_default().to_string();
    let resource = match text("subresource").as_str() {
        "" => text("resource"),
        sub => format!("{}/{sub}", text("resource")),
    };
    let ns = text("namespace");
    let ns = (!ns.is_empty()).then_some(ns.as_str());
    let allowed = c.allowed(&text("verb"), &text("group"), &resource, ns);
    // RBAC has no "deny": a missing rule is no opinion, so no reason is given.
    let status = if allowed {
        json!({
            "allowed": true,
            "reason": "RBAC: allowed by ClusterRoleBinding \"shakeout-controller\" of ClusterRole \"shakeout-controller\" to ServiceAccount \"shakeout/shakeout\""
        })
    } else {
        json!({"allowed": false})
    };
    v["apiVersion"] = json!("authorization.k8s.io/v1");
    v["kind"] = json!("SelfSubjectAccessReview");
    v["metadata"] = json!({"creationTimestamp": null});
    v["status"] = status;
    Ok(v)
}
