//! Who filed a CSR, as the API server recorded it (`spec.username`, `spec.extra`), and which pod
//! its name claims. These are facts the requester cannot forge: the API server fills `spec.username`
//! and `spec.extra` from the credentials of the create call.

use std::collections::BTreeMap;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;

use certboot_core::csr::{LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID};

/// `spec.extra` key the API server sets for a pod-bound service-account token: the pod's name.
pub const EXTRA_POD_NAME: &str = "authentication.kubernetes.io/pod-name";
/// `spec.extra` key the API server sets for a pod-bound service-account token: the pod's UID.
pub const EXTRA_POD_UID: &str = "authentication.kubernetes.io/pod-uid";

const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

/// A requester that is a service account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccount {
    pub namespace: String,
    pub name: String,
}

/// `spec.username` as a service account, if it is one.
pub fn service_account(username: &str) -> Option<ServiceAccount> {
    let rest = username.strip_prefix(SERVICE_ACCOUNT_PREFIX)?;
    let (namespace, name) = rest.split_once(':')?;
    if namespace.is_empty() || name.is_empty() || name.contains(':') {
        return None;
    }
    Some(ServiceAccount {
        namespace: namespace.to_string(),
        name: name.to_string(),
    })
}

/// The pod a pod-bound token was bound to (`spec.extra`), when both keys carry exactly one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundPod {
    pub name: String,
    pub uid: String,
}

/// The pod binding recorded in `spec.extra`, if any.
pub fn bound_pod(extra: Option<&BTreeMap<String, Vec<String>>>) -> Option<BoundPod> {
    let extra = extra?;
    let single = |key: &str| match extra.get(key).map(Vec::as_slice) {
        Some([value]) if !value.is_empty() => Some(value.clone()),
        _ => None,
    };
    Some(BoundPod {
        name: single(EXTRA_POD_NAME)?,
        uid: single(EXTRA_POD_UID)?,
    })
}

/// What a CSR name says: `<ns>:<pod>:<uid6>` or, for a renewal, `<ns>:<pod>:<uid6>:<8 hex>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedName {
    pub namespace: String,
    pub pod: String,
    pub uid6: String,
    /// The renewal form's key fingerprint.
    pub key_fingerprint: Option<String>,
}

/// Parses a certboot CSR name; `None` when it has neither form.
pub fn claimed_name(name: &str) -> Option<ClaimedName> {
    let parts: Vec<&str> = name.split(':').collect();
    let (namespace, pod, uid6, fingerprint) = match parts.as_slice() {
        [ns, pod, uid6] => (ns, pod, uid6, None),
        [ns, pod, uid6, fp] => (ns, pod, uid6, Some(fp.to_string())),
        _ => return None,
    };
    let hex8 = |s: &str| s.len() == 8 && s.bytes().all(|b| b.is_ascii_hexdigit());
    if namespace.is_empty() || pod.is_empty() || uid6.is_empty() {
        return None;
    }
    if fingerprint.as_deref().is_some_and(|fp| !hex8(fp)) {
        return None;
    }
    Some(ClaimedName {
        namespace: namespace.to_string(),
        pod: pod.to_string(),
        uid6: uid6.to_string(),
        key_fingerprint: fingerprint,
    })
}

/// certboot's pod labels and annotations on the CSR that disagree with `(namespace, pod, uid)`,
/// as `key=value` strings. Absent keys are fine (the CSR may come from another tool).
pub fn disagreeing_labels(
    csr: &CertificateSigningRequest,
    namespace: &str,
    pod: &str,
    uid: &str,
) -> Vec<String> {
    let mut wrong = Vec::new();
    let expected = [
        (LABEL_POD_NAMESPACE, namespace),
        (LABEL_POD_NAME, pod),
        (LABEL_POD_UID, uid),
    ];
    for map in [&csr.metadata.labels, &csr.metadata.annotations]
        .into_iter()
        .flatten()
    {
        for (key, want) in expected {
            if let Some(value) = map.get(key) {
                if value != want {
                    wrong.push(format!("{key}={value}"));
                }
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    wrong
}

/// The first six characters of a UID, as in certboot's CSR names.
pub fn uid6(uid: &str) -> String {
    uid.chars().take(6).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_service_accounts_are_service_accounts() {
        assert_eq!(
            service_account("system:serviceaccount:shop:web"),
            Some(ServiceAccount {
                namespace: "shop".into(),
                name: "web".into()
            })
        );
        for other in [
            "kubernetes-admin",
            "system:node:n1",
            "system:serviceaccount:shop",
            "system:serviceaccount::web",
            "system:serviceaccount:shop:web:extra",
        ] {
            assert_eq!(service_account(other), None, "{other}");
        }
    }

    #[test]
    fn a_pod_binding_needs_exactly_one_name_and_uid() {
        let extra = |pairs: &[(&str, &[&str])]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
                .collect::<BTreeMap<String, Vec<String>>>()
        };
        assert_eq!(
            bound_pod(Some(&extra(&[
                (EXTRA_POD_NAME, &["web-0"]),
                (EXTRA_POD_UID, &["u1"])
            ]))),
            Some(BoundPod {
                name: "web-0".into(),
                uid: "u1".into()
            })
        );
        assert_eq!(bound_pod(None), None);
        assert_eq!(
            bound_pod(Some(&extra(&[(EXTRA_POD_NAME, &["web-0"])]))),
            None
        );
        assert_eq!(
            bound_pod(Some(&extra(&[
                (EXTRA_POD_NAME, &["a", "b"]),
                (EXTRA_POD_UID, &["u"])
            ]))),
            None
        );
    }

    #[test]
    fn names_parse_in_both_forms() {
        let first = claimed_name("shop:web-0:6f1d3c").unwrap();
        assert_eq!(
            (
                first.namespace.as_str(),
                first.pod.as_str(),
                first.uid6.as_str()
            ),
            ("shop", "web-0", "6f1d3c")
        );
        assert_eq!(first.key_fingerprint, None);
        let renewal = claimed_name("shop:web-0:6f1d3c:0a1b2c3d").unwrap();
        assert_eq!(renewal.key_fingerprint.as_deref(), Some("0a1b2c3d"));
        for bad in [
            "web-0",
            "shop:web-0",
            "shop::6f1d3c",
            "shop:web-0:6f1d3c:xyz",
            "a:b:c:d:e",
            "node-csr-abc",
        ] {
            assert_eq!(claimed_name(bad), None, "{bad}");
        }
    }
}
