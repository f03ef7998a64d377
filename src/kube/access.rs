//! What the controller's account may do, asked of the API server before anything runs
//! (a SelfSubjectAccessReview per permission, which every authenticated user may make):
//! a permission a run will need and lacks stops it at preflight, named with the RBAC
//! rule that grants it, instead of failing halfway through the run.

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::Api;

use super::Cluster;

/// One permission: a verb on a resource (or its subresource) in a namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Permission {
    pub verb: &'static str,
    /// API group: `""` for the core group, `policy`, `apps`.
    pub group: &'static str,
    pub resource: &'static str,
    pub subresource: Option<&'static str>,
    pub namespace: String,
}

impl Permission {
    /// A permission on a core-group resource.
    pub fn core(verb: &'static str, resource: &'static str, namespace: &str) -> Permission {
        Permission::new(verb, "", resource, namespace)
    }

    pub fn new(
        verb: &'static str,
        group: &'static str,
        resource: &'static str,
        namespace: &str,
    ) -> Permission {
        let (resource, subresource) = match resource.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (resource, None),
        };
        Permission {
            verb,
            group,
            resource,
            subresource,
            namespace: namespace.to_owned(),
        }
    }

    /// `pods/eviction`, `poddisruptionbudgets.policy`: the resource as RBAC rules and
    /// the API server's messages name it.
    fn resource_name(&self) -> String {
        let mut r = self.resource.to_owned();
        if let Some(s) = self.subresource {
            r = format!("{r}/{s}");
        }
        if !self.group.is_empty() {
            r = format!("{r}.{}", self.group);
        }
        r
    }

    /// `delete pods in namespace shop`.
    pub fn describe(&self) -> String {
        format!(
            "{} {} in namespace {}",
            self.verb,
            self.resource_name(),
            self.namespace
        )
    }

    /// The Role rule that grants it.
    pub fn rule(&self) -> String {
        let resource = match self.subresource {
            Some(s) => format!("{}/{s}", self.resource),
            None => self.resource.to_owned(),
        };
        format!(
            "apiGroups: [\"{}\"], resources: [{resource}], verbs: [{}] in namespace {}",
            self.group, self.verb, self.namespace
        )
    }
}

/// What the API server said of a permission.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Allowed,
    /// Not allowed; the authorizer's reason when it gave one.
    Denied(String),
    /// The review itself could not be made (an old or unusual API server): unknown.
    Unknown(String),
}

/// Ask whether the controller's account has `p`.
pub async fn check(cluster: &Cluster, p: &Permission) -> Answer {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(p.verb.to_owned()),
                group: Some(p.group.to_owned()),
                resource: Some(p.resource.to_owned()),
                subresource: p.subresource.map(str::to_owned),
                namespace: Some(p.namespace.clone()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(cluster.client.clone());
    match api.create(&PostParams::default(), &review).await {
        Err(e) => Answer::Unknown(cluster.describe(
            "asking the API server what this account may do (SelfSubjectAccessReview)",
            &e,
        )),
        Ok(r) => {
            let status = r.status.unwrap_or_default();
            if status.allowed {
                Answer::Allowed
            } else {
                let reason = [status.reason, status.evaluation_error]
                    .into_iter()
                    .flatten()
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join("; ");
                Answer::Denied(reason)
            }
        }
    }
}
