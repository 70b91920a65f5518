//! What the checks look at besides the CSR ([`Facts`]: the policy, the live pod, the Services of its
//! namespace, now), and the values the policy's templates expand to ([`Vars`]).

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Service};

use super::policy::SignerPolicy;

/// Everything [`super::checks::judge`] looks at besides the CSR.
pub struct Facts<'a> {
    pub policy: &'a SignerPolicy,
    pub cluster_domain: &'a str,
    /// The live pod (`None`: not found).
    pub pod: Option<&'a Pod>,
    /// The Services of the pod's namespace, from the cache.
    pub services: &'a [Arc<Service>],
    /// Now, Unix seconds.
    pub now: i64,
}

/// The values templates expand to.
pub(crate) struct Vars<'a> {
    pub(crate) pod: &'a str,
    pub(crate) namespace: &'a str,
    pub(crate) service_account: &'a str,
    pub(crate) cluster_domain: &'a str,
}

impl Vars<'_> {
    pub(crate) fn expand(&self, template: &str, service: Option<&str>) -> Option<String> {
        let out = template
            .replace("{pod}", self.pod)
            .replace("{namespace}", self.namespace)
            .replace("{serviceAccount}", self.service_account)
            .replace("{clusterDomain}", self.cluster_domain);
        match service {
            Some(svc) => Some(out.replace("{service}", svc)),
            None if out.contains("{service}") => None,
            None => Some(out),
        }
    }
}
