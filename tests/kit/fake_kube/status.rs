//! API errors as the real server words them: the metav1.Status reasons and messages for
//! what went wrong here, and for failures a test injects with `fail_next`.

use hyper::Method;

use super::server::param;

/// An API error before it is rendered as a metav1.Status.
#[derive(Debug, Clone, Default)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    // Boxed strs, not Strings: errors travel by value in every handler's Result.
    pub name: Option<Box<str>>,
    pub kind: Option<Box<str>>,
    pub group: Option<Box<str>>,
    /// What only some errors carry (boxed: most have none, and errors travel by value).
    pub more: Option<Box<More>>,
}

/// The rarer parts of a Status.
#[derive(Debug, Clone, Default)]
pub struct More {
    /// `details.causes`: (reason, message), e.g. a disruption budget's.
    pub causes: Vec<(String, String)>,
    /// `details.retryAfterSeconds` and the `Retry-After` header, when above 0.
    pub retry_after: u32,
}

impl ApiError {
    /// The `Retry-After` the server sends with it, if any.
    pub fn retry_after(&self) -> Option<u32> {
        self.more.as_ref().map(|m| m.retry_after).filter(|s| *s > 0)
    }

    /// Its `details.causes`.
    pub fn causes(&self) -> &[(String, String)] {
        self.more.as_ref().map_or(&[], |m| &m.causes)
    }
}

impl ApiError {
    pub fn not_found(resource: &str, group: &str, name: &str) -> ApiError {
        let qualified = qualified(resource, group);
        ApiError {
            code: 404,
            reason: "NotFound",
            message: format!("{qualified} \"{name}\" not found"),
            name: Some(name.into()),
            kind: Some(resource.into()),
            group: (!group.is_empty()).then(|| group.into()),
            ..Default::default()
        }
    }

    pub fn unauthorized() -> ApiError {
        ApiError {
            code: 401,
            reason: "Unauthorized",
            message: "Unauthorized".into(),
            name: None,
            kind: None,
            group: None,
            ..Default::default()
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            code: 400,
            reason: "BadRequest",
            message: message.into(),
            name: None,
            kind: None,
            group: None,
            ..Default::default()
        }
    }

    pub fn conflict(resource: &str, group: &str, name: &str, why: &str) -> ApiError {
        ApiError {
            code: 409,
            reason: "Conflict",
            message: format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                qualified(resource, group)
            ),
            name: Some(name.into()),
            kind: Some(resource.into()),
            group: (!group.is_empty()).then(|| group.into()),
            ..Default::default()
        }
    }
}

/// `pods`, `daemonsets.apps`: how the server names a resource in messages.
pub fn qualified(resource: &str, group: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

/// What a request addresses, for realistic error messages.
pub struct Target {
    pub group: String,
    pub ns: Option<String>,
    pub resource: String,
    pub name: Option<String>,
    pub sub: Option<String>,
}

pub fn target(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return None,
    };
    let (ns, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
        _ => (None, rest),
    };
    Some(Target {
        group: group.into(),
        ns,
        resource: rest.first()?.to_string(),
        name: rest.get(1).map(|s| s.to_string()),
        sub: rest.get(2).map(|s| s.to_string()),
    })
}

pub fn verb(method: &Method, t: &Target, query: &[(String, String)]) -> &'static str {
    let watch = matches!(param(query, "watch"), Some("true" | "1"));
    match (method.as_str(), &t.name, t.sub.as_deref()) {
        (_, _, Some("portforward" | "exec" | "attach" | "proxy")) => "create",
        ("GET", Some(_), _) if watch => "watch",
        ("GET", Some(_), _) => "get",
        ("GET", None, _) if watch => "watch",
        ("GET", None, _) => "list",
        ("DELETE", Some(_), _) => "delete",
        ("DELETE", None, _) => "deletecollection",
        ("POST", _, _) => "create",
        ("PUT", _, _) => "update",
        ("PATCH", _, _) => "patch",
        _ => "get",
    }
}

/// The Status a real cluster would send with this code for this request.
pub fn injected_error(
    code: u16,
    method: &Method,
    path: &str,
    query: &[(String, String)],
) -> ApiError {
    let t = target(path);
    let (name, kind, group) = match &t {
        Some(t) => (
            t.name.clone(),
            Some(t.resource.clone()),
            (!t.group.is_empty()).then(|| t.group.clone()),
        ),
        None => (None, None, None),
    };
    let subject = t.as_ref().map(|t| {
        let q = qualified(&t.resource, &t.group);
        match &t.name {
            Some(n) => format!("{q} \"{n}\""),
            None => q,
        }
    });
    let (reason, message) = match code {
        403 => {
            let user = "User \"system:serviceaccount:shakeout:shakeout\"";
            let message = match &t {
                Some(t) => {
                    let resource = match &t.sub {
                        Some(s) => format!("{}/{s}", t.resource),
                        None => t.resource.clone(),
                    };
                    let scope = match &t.ns {
                        Some(ns) => format!("in the namespace \"{ns}\""),
                        None => "at the cluster scope".into(),
                    };
                    format!(
                        "{} is forbidden: {user} cannot {} resource \"{resource}\" in API group \"{}\" {scope}",
                        subject.clone().unwrap_or_default(),
                        verb(method, t, query),
                        t.group
                    )
                }
                None => format!(
                    "forbidden: {user} cannot {} path \"{path}\"",
                    method.as_str().to_lowercase()
                ),
            };
            ("Forbidden", message)
        }
        404 => match (&subject, &name) {
            (Some(s), Some(_)) => ("NotFound", format!("{s} not found")),
            _ => (
                "NotFound",
                "the server could not find the requested resource".into(),
            ),
        },
        409 => (
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {}: the object has been modified; please apply your changes to the latest version and try again",
                subject.unwrap_or_default()
            ),
        ),
        429 => (
            "TooManyRequests",
            "Too many requests, please try again later.".into(),
        ),
        401 => ("Unauthorized", "Unauthorized".into()),
        400 => ("BadRequest", "the server rejected our request for an unknown reason".into()),
        410 => ("Expired", "too old resource version".into()),
        500 => (
            "InternalError",
            "Internal error occurred: etcdserver: request timed out".into(),
        ),
        503 => (
            "ServiceUnavailable",
            "the server is currently unable to handle the request".into(),
        ),
        504 => (
            "Timeout",
            "the server was unable to return a response in the time allotted, but may still be processing the request".into(),
        ),
        _ => ("", format!("an error on the server (\"injected {code}\") has prevented the request from succeeding")),
    };
    ApiError {
        code,
        reason,
        message,
        name: name.map(Into::into),
        kind: kind.map(Into::into),
        group: group.map(Into::into),
        // The server's own throttling says when to come back.
        more: (code == 429).then(|| {
            Box::new(More {
                causes: Vec::new(),
                retry_after: 1,
            })
        }),
    }
}

pub fn method_not_allowed() -> ApiError {
    ApiError {
        code: 405,
        reason: "MethodNotAllowed",
        message: "the server does not allow this method on the requested resource".into(),
        name: None,
        kind: None,
        group: None,
        ..Default::default()
    }
}

pub fn not_found_path() -> ApiError {
    ApiError {
        code: 404,
        reason: "NotFound",
        message: "the server could not find the requested resource".into(),
        name: None,
        kind: None,
        group: None,
        ..Default::default()
    }
}
