//! The CertificateSigningRequest object: its name, labels, spec, and how to read its state.
//!
//! Names follow Calico's key-cert-provisioner: `<namespace>:<pod>:<first 6 chars of pod UID>` for
//! the first certificate of a pod. Each renewal appends the new key's fingerprint
//! (`<namespace>:<pod>:<uid6>:<8 hex>`), so every renewal has its own CSR and a retried create of the
//! same renewal finds its own object again.

use std::collections::BTreeMap;

use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec, CertificateSigningRequestStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;

use crate::{identity::PodIdentity, request::RequestConfig};

/// Label marking CSRs filed by certboot.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Labels (and annotations of the same keys) naming the pod, so an approver can find it.
pub const LABEL_POD_NAME: &str = "certboot.io/pod-name";
pub const LABEL_POD_NAMESPACE: &str = "certboot.io/pod-namespace";
pub const LABEL_POD_UID: &str = "certboot.io/pod-uid";

/// The name of the first CSR of this pod: `<namespace>:<pod>:<first 6 chars of pod UID>`.
pub fn initial_name(pod: &PodIdentity) -> String {
    let uid6: String = pod.uid.chars().take(6).collect();
    format!("{}:{}:{}", pod.namespace, pod.name, uid6)
}

/// The name of a renewal CSR: the initial name plus the new key's fingerprint.
pub fn renewal_name(pod: &PodIdentity, key_fingerprint: &str) -> String {
    format!("{}:{}", initial_name(pod), key_fingerprint)
}

/// Builds the CSR object to create.
pub fn build(
    name: &str,
    pkcs10_pem: &str,
    pod: &PodIdentity,
    request: &RequestConfig,
) -> CertificateSigningRequest {
    let mut labels = BTreeMap::from([(LABEL_MANAGED_BY.to_string(), "certboot".to_string())]);
    let mut annotations = BTreeMap::new();
    for (key, value) in [
        (LABEL_POD_NAME, &pod.name),
        (LABEL_POD_NAMESPACE, &pod.namespace),
        (LABEL_POD_UID, &pod.uid),
    ] {
        // Label values are limited to 63 characters; annotations always carry the full value.
        if value.len() <= 63 {
            labels.insert(key.to_string(), value.clone());
        }
        annotations.insert(key.to_string(), value.clone());
    }
    CertificateSigningRequest {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(pkcs10_pem.as_bytes().to_vec()),
            signer_name: request.signer_name.clone(),
            usages: Some(request.usages.clone()),
            expiration_seconds: request
                .expiration_seconds
                .map(i32::try_from)
                .and_then(Result::ok),
            ..CertificateSigningRequestSpec::default()
        },
        status: None,
    }
}

/// Where a CSR stands, as certboot reads it. "Approved" alone is not done: only a non-empty
/// `status.certificate` is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CsrState {
    /// Neither approved nor denied yet.
    Pending,
    /// Approved, but the signer has not written `status.certificate` yet.
    Approved,
    /// The signer wrote a certificate (not yet verified: untrusted input).
    Issued(Vec<u8>),
    /// An approver denied it.
    Denied { reason: String, message: String },
    /// The signer failed it.
    Failed { reason: String, message: String },
}

impl CsrState {
    /// A short word for logs and the `phase` field.
    pub fn phase(&self) -> &'static str {
        match self {
            CsrState::Pending => "pending",
            CsrState::Approved => "approved",
            CsrState::Issued(_) => "issued",
            CsrState::Denied { .. } => "denied",
            CsrState::Failed { .. } => "failed",
        }
    }
}

/// Reads the state of a CSR. Denied and Failed win over everything; then a certificate; then Approved.
pub fn state_of(csr: &CertificateSigningRequest) -> CsrState {
    let Some(status) = &csr.status else {
        return CsrState::Pending;
    };
    if let Some(state) = terminal_condition(status) {
        return state;
    }
    match &status.certificate {
        Some(cert) if !cert.0.iter().all(u8::is_ascii_whitespace) => {
            CsrState::Issued(cert.0.clone())
        }
        _ if has_condition(status, "Approved") => CsrState::Approved,
        _ => CsrState::Pending,
    }
}

fn terminal_condition(status: &CertificateSigningRequestStatus) -> Option<CsrState> {
    let conditions = status.conditions.as_deref().unwrap_or_default();
    conditions
        .iter()
        .filter(|c| c.status != "False")
        .find_map(|c| {
            let reason = c.reason.clone().unwrap_or_default();
            let message = c.message.clone().unwrap_or_default();
            match c.type_.as_str() {
                "Denied" => Some(CsrState::Denied { reason, message }),
                "Failed" => Some(CsrState::Failed { reason, message }),
                _ => None,
            }
        })
}

fn has_condition(status: &CertificateSigningRequestStatus, kind: &str) -> bool {
    status
        .conditions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == kind && c.status != "False")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::certificates::v1::CertificateSigningRequestCondition;

    fn pod() -> PodIdentity {
        PodIdentity {
            name: "web-0".into(),
            namespace: "shop".into(),
            uid: "6f1d3c52-2b0e-4b7a-9d4e-0c8f1a2b3c4d".into(),
            ips: vec![],
        }
    }

    fn condition(kind: &str, status: &str) -> CertificateSigningRequestCondition {
        CertificateSigningRequestCondition {
            type_: kind.into(),
            status: status.into(),
            reason: Some(format!("{kind}Reason")),
            message: Some(format!("{kind} message")),
            ..Default::default()
        }
    }

    fn with_status(
        conditions: Vec<CertificateSigningRequestCondition>,
        cert: Option<&[u8]>,
    ) -> CertificateSigningRequest {
        CertificateSigningRequest {
            status: Some(CertificateSigningRequestStatus {
                conditions: Some(conditions),
                certificate: cert.map(|c| ByteString(c.to_vec())),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn names_follow_the_calico_convention() {
        assert_eq!(initial_name(&pod()), "shop:web-0:6f1d3c");
        assert_eq!(
            renewal_name(&pod(), "0a1b2c3d"),
            "shop:web-0:6f1d3c:0a1b2c3d"
        );
    }

    #[test]
    fn object_lets_an_approver_find_the_pod() {
        let request = RequestConfig {
            expiration_seconds: Some(3600),
            ..RequestConfig::example("example.com/web", "web")
        };
        let csr = build("shop:web-0:6f1d3c", "PEM", &pod(), &request);
        let labels = csr.metadata.labels.unwrap();
        assert_eq!(labels[LABEL_MANAGED_BY], "certboot");
        assert_eq!(labels[LABEL_POD_UID], pod().uid);
        assert_eq!(csr.spec.signer_name, "example.com/web");
        assert_eq!(csr.spec.expiration_seconds, Some(3600));
        assert_eq!(csr.spec.request.0, b"PEM");
    }

    #[test]
    fn approved_alone_is_not_done() {
        assert_eq!(
            state_of(&CertificateSigningRequest::default()),
            CsrState::Pending
        );
        assert_eq!(
            state_of(&with_status(vec![condition("Approved", "True")], None)),
            CsrState::Approved
        );
        assert_eq!(
            state_of(&with_status(
                vec![condition("Approved", "True")],
                Some(b" \n")
            )),
            CsrState::Approved
        );
        assert_eq!(
            state_of(&with_status(
                vec![condition("Approved", "True")],
                Some(b"CERT")
            )),
            CsrState::Issued(b"CERT".to_vec())
        );
    }

    #[test]
    fn denied_and_failed_win_and_carry_reason_and_message() {
        let denied = state_of(&with_status(vec![condition("Denied", "True")], None));
        assert_eq!(
            denied,
            CsrState::Denied {
                reason: "DeniedReason".into(),
                message: "Denied message".into()
            }
        );
        let failed = state_of(&with_status(
            vec![condition("Approved", "True"), condition("Failed", "True")],
            Some(b"X"),
        ));
        assert_eq!(failed.phase(), "failed");
        assert_eq!(
            state_of(&with_status(vec![condition("Denied", "False")], None)),
            CsrState::Pending
        );
    }
}
