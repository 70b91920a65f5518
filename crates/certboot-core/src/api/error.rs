//! A failed API call says what certboot was doing ([`Operation`]: verb, resource, object) and what
//! the user can do about it, e.g. "create certificatesigningrequests "shop:web-0:6f1d3c" failed:
//! ... forbidden ... grant verb create ...". [`ConnectError`]: no client could be set up at all. [`is_transient`] tells the failures worth retrying
//! (used by `retry.rs`) from the rest.

use std::io;
use std::path::{Path, PathBuf};

/// What certboot was doing when a call failed: the RBAC verb and resource, and the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    pub verb: &'static str,
    pub group: &'static str,
    pub resource: &'static str,
    pub name: String,
}

impl Operation {
    /// An operation on a CertificateSigningRequest.
    pub fn csr(verb: &'static str, name: &str) -> Operation {
        Operation {
            verb,
            group: "certificates.k8s.io",
            resource: "certificatesigningrequests",
            name: name.to_string(),
        }
    }

    /// An operation on a core/v1 Event.
    pub fn event(verb: &'static str, name: &str) -> Operation {
        Operation {
            verb,
            group: "",
            resource: "events",
            name: name.to_string(),
        }
    }
}

/// A failed API call, with what certboot was doing and what the user can do about it.
#[derive(Debug, thiserror::Error)]
#[error("{} {} {:?} failed: {}. {}", .op.verb, .op.resource, .op.name, detail(.source), hint(.op, *.code, .source))]
pub struct ApiError {
    pub op: Operation,
    pub code: Option<u16>,
    #[source]
    source: Box<kube::Error>,
}

impl ApiError {
    /// Wraps a kube error with the operation that failed.
    pub fn new(op: Operation, err: kube::Error) -> ApiError {
        ApiError {
            op,
            code: status_code(&err),
            source: Box::new(err),
        }
    }

    /// True when the API server said 403 Forbidden.
    pub fn is_forbidden(&self) -> bool {
        self.code == Some(403)
    }

    /// True when the object does not exist (404).
    pub fn is_not_found(&self) -> bool {
        self.code == Some(404)
    }

    /// True when a precondition or resourceVersion did not hold (409 Conflict).
    pub fn is_conflict(&self) -> bool {
        self.code == Some(409)
    }
}

/// What the server said: its message, code and reason, or the client-side failure.
fn detail(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => {
            format!("{} ({} {})", status.message, status.code, status.reason)
        }
        other => other.to_string(),
    }
}

/// What the user can do about a failed call, from its typed cause.
fn hint(op: &Operation, code: Option<u16>, err: &kube::Error) -> String {
    let group = if op.group.is_empty() {
        "\"\""
    } else {
        op.group
    };
    let rbac = match err {
        kube::Error::Api(status) => status.message.contains(" cannot "),
        _ => true,
    };
    match code {
        Some(403) if denied_by_admission(err) => "An admission policy or webhook refused the request (not RBAC; its message is above): \
             with manifests/policy/, the CSR must be named for the pod the token is bound to and the signer must be listed \
             in the ConfigMap kube-system/certboot-signers"
            .to_string(),
        Some(403) if !rbac => "An admission check of the API server refused the request (not RBAC); its message says why".to_string(),
        Some(403) => format!(
            "RBAC: the pod's service account lacks verb \"{}\" on resource \"{}\" (apiGroup {group}); \
             grant it with a rule {{apiGroups: [{group}], resources: [{}], verbs: [{}]}} bound to the service account \
             (manifests/rbac.yaml has the complete set)",
            op.verb, op.resource, op.resource, op.verb
        ),
        Some(401) => "The API server rejected the credentials: check that the service account token is mounted \
                      (automountServiceAccountToken) or that KUBECONFIG points to a valid config"
            .to_string(),
        Some(422) | Some(400) => "The API server rejected the object: check CERTBOOT_SIGNER_NAME, CERTBOOT_USAGES and the names in the request".to_string(),
        Some(404) if op.verb == "create" => {
            "The certificates.k8s.io/v1 API is not served here: certboot needs Kubernetes 1.19 or newer".to_string()
        }
        Some(404) => "The object does not exist (deleted by someone, or by the controller-manager's CSR cleaner)".to_string(),
        Some(409) => "The object already exists".to_string(),
        Some(429) | Some(500..=599) => "The API server is overloaded or failing; certboot retries with backoff".to_string(),
        _ if is_transient(err) => "Cannot reach the API server: check network policies, KUBERNETES_SERVICE_HOST/PORT or the kubeconfig server address; certboot retries with backoff".to_string(),
        _ => "Check the API server address and credentials (in-cluster service account, or KUBECONFIG)".to_string(),
    }
}

/// True for a 403 from admission (a ValidatingAdmissionPolicy says "denied request", a webhook
/// "denied the request") rather than from RBAC ("cannot <verb> resource").
fn denied_by_admission(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(status) => {
            status.message.contains("denied request")
                || status.message.contains("denied the request")
        }
        _ => false,
    }
}

/// The HTTP status of an API error response, if the server answered.
pub fn status_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// Why no Kubernetes client could be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot configure the Kubernetes client: {0}. In a pod, keep automountServiceAccountToken on; elsewhere, set KUBECONFIG")]
    Config(#[source] kube::Error),
    /// The API server's host name does not resolve (checked first, by the client's constructor).
    #[error(transparent)]
    Unresolvable(#[from] Unresolvable),
    /// The kubeconfig's proxy-url has a scheme certboot cannot use (see [`crate::api::proxy`]).
    #[error(transparent)]
    Proxy(#[from] crate::api::proxy::UnsupportedProxy),
}

/// True for failures worth retrying: the server did not answer, or answered 429 / 5xx.
pub fn is_transient(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(status) => matches!(status.code, 429 | 500 | 502 | 503 | 504),
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => true,
        kube::Error::Auth(_) => false,
        _ => false,
    }
}

/// The API server's host name does not resolve.
#[derive(Debug, thiserror::Error)]
#[error("cannot resolve the API server host {host:?} (server {url}): {source}. {}", unresolvable_hint(.host, .hosts, .resolv_conf))]
pub struct Unresolvable {
    pub host: String,
    pub url: String,
    /// The files a static binary resolves through, named in the hint with whether they exist.
    pub hosts: PathBuf,
    pub resolv_conf: PathBuf,
    #[source]
    pub source: io::Error,
}

fn unresolvable_hint(host: &str, hosts: &Path, resolv_conf: &Path) -> String {
    let present = |path: &Path| {
        if path.exists() {
            "present"
        } else {
            "absent"
        }
    };
    format!(
        "certboot is a static \
         binary and resolves host names only through {} ({}) and the DNS servers in {} ({}); use an \
         IP address in the kubeconfig's server URL, or mount {} with an entry for {host:?} (in a pod, \
         in-cluster configuration uses KUBERNETES_SERVICE_HOST, an IP address, and needs neither)",
        hosts.display(),
        present(hosts),
        resolv_conf.display(),
        present(resolv_conf),
        hosts.display(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    /// The 403 Forbidden the API server answers to a CSR create, with its `message`.
    fn forbidden(csr: &str, message: &str) -> ApiError {
        let mut status = Status::failure(message, "Forbidden");
        status.code = 403;
        ApiError::new(
            Operation::csr("create", csr),
            kube::Error::Api(Box::new(status)),
        )
    }

    #[test]
    fn forbidden_names_verb_resource_and_the_rule_to_add() {
        let err = forbidden("shop:web-0:6f1d3c", "certificatesigningrequests.certificates.k8s.io is forbidden: User \"system:serviceaccount:shop:web\" cannot create resource \"certificatesigningrequests\"");
        let text = err.to_string();
        assert!(err.is_forbidden());
        assert!(text.contains("verb \"create\""), "{text}");
        assert!(text.contains("certificatesigningrequests"), "{text}");
        assert!(text.contains("certificates.k8s.io"), "{text}");
        assert!(text.contains("manifests/rbac.yaml"), "{text}");
    }

    #[test]
    fn a_403_from_admission_is_not_blamed_on_rbac() {
        let text = forbidden("x", "use of kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed")
        .to_string();
        assert!(
            text.contains("system:masters group is not allowed"),
            "{text}"
        );
        assert!(
            text.contains("admission") && !text.contains("RBAC:"),
            "{text}"
        );
    }

    #[test]
    fn forbidden_by_an_admission_policy_does_not_blame_rbac() {
        let err = forbidden("shop:web-0:6f1d3c", "ValidatingAdmissionPolicy 'certboot-csr-guard-rails' with binding 'certboot-csr-guard-rails' denied request: no");
        let text = err.to_string();
        assert!(text.contains("denied request: no"), "{text}");
        assert!(text.contains("admission policy or webhook"), "{text}");
        assert!(!text.contains("RBAC:"), "{text}");
    }
}
