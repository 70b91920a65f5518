//! Who the certificate is for: the pod, as the Downward API names it.

use std::net::IpAddr;

/// The pod certboot runs in, from the Downward API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodIdentity {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub ips: Vec<IpAddr>,
}

/// Where a pod's namespace is when `POD_NAMESPACE` is not set: its service account's namespace file.
pub const SERVICE_ACCOUNT_NAMESPACE_FILE: &str =
    "/var/run/secrets/kubernetes.io/serviceaccount/namespace";
