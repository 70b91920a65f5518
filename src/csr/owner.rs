//! Who filed a CSR that already carries our name: this pod, or someone else.
//!
//! CSR names are predictable (`<ns>:<pod>:<uid6>`), so anyone allowed to create CSRs can file one
//! under a pod's name first. certboot never trusts such a CSR (its key is not ours, so it is never
//! adopted) and never deletes it; it only needs to say which of the two it is. The API server
//! records the requester of every CSR in `spec.username` and, for a service-account token bound
//! to a pod, that pod's name and UID in `spec.extra`. certboot cannot read its own identity without
//! one more API call that 1.20 lacks (SelfSubjectReview is 1.27+), but it does not need to: the CSR
//! it files under the new name carries its identity as the API server sees it. The rule:
//!
//! - **this pod** when the existing CSR has the same `spec.username` as ours and the same pod
//!   binding (`spec.extra` `authentication.kubernetes.io/pod-uid`: both absent, or equal);
//! - **someone else** otherwise: another user, another pod of the same service account (another
//!   pod UID), or the same service account without a token bound to this pod.
//!
//! Before anything is filed (`CERTBOOT_DELETE_CSR=true` deciding whether to delete), only the
//! stricter proof counts: the existing CSR's `spec.extra` names this pod's UID, which only a token
//! bound to this pod yields.

use std::collections::BTreeMap;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;

/// `spec.extra` key the API server fills with the UID of the pod a token is bound to.
pub const EXTRA_POD_UID: &str = "authentication.kubernetes.io/pod-uid";
/// `spec.extra` key the API server fills with the name of the pod a token is bound to.
pub const EXTRA_POD_NAME: &str = "authentication.kubernetes.io/pod-name";

/// True when `existing` was filed by the same requester as `ours` (the CSR certboot just filed):
/// the same `spec.username` and the same pod binding.
pub fn same_requester(
    existing: &CertificateSigningRequest,
    ours: &CertificateSigningRequest,
) -> bool {
    existing.spec.username == ours.spec.username
        && extra(existing, EXTRA_POD_UID) == extra(ours, EXTRA_POD_UID)
}

/// True when `existing` provably comes from the pod with `pod_uid`: its `spec.extra` names that
/// UID (only a service-account token bound to that pod makes the API server record it).
pub fn filed_by_pod(existing: &CertificateSigningRequest, pod_uid: &str) -> bool {
    extra(existing, EXTRA_POD_UID).is_some_and(|uids| uids == [pod_uid])
}

/// Who filed the CSR, for messages: `spec.username`, and the pod its token is bound to, if any.
pub fn requester(csr: &CertificateSigningRequest) -> String {
    let user = match csr.spec.username.as_deref() {
        Some(user) if !user.is_empty() => user,
        _ => "an unknown user (no spec.username)",
    };
    match extra(csr, EXTRA_POD_NAME).and_then(<[String]>::first) {
        Some(pod) => format!("{user} (token bound to pod {pod})"),
        None => user.to_string(),
    }
}

fn extra<'a>(csr: &'a CertificateSigningRequest, key: &str) -> Option<&'a [String]> {
    csr.spec
        .extra
        .as_ref()
        .and_then(|extra: &BTreeMap<String, Vec<String>>| extra.get(key))
        .map(Vec::as_slice)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SA: &str = "system:serviceaccount:shop:certboot";
    const UID: &str = "6f1d3c52-2b0e-4b7a-9d4e-0c8f1a2b3c4d";

    fn filed_by(username: &str, pod: Option<(&str, &str)>) -> CertificateSigningRequest {
        let mut csr = CertificateSigningRequest::default();
        csr.spec.username = Some(username.into());
        csr.spec.extra = pod.map(|(name, uid)| {
            BTreeMap::from([
                (EXTRA_POD_NAME.to_string(), vec![name.to_string()]),
                (EXTRA_POD_UID.to_string(), vec![uid.to_string()]),
            ])
        });
        csr
    }

    #[test]
    fn an_earlier_attempt_of_this_pod_is_the_same_requester() {
        let ours = filed_by(SA, Some(("web-0", UID)));
        assert!(same_requester(&filed_by(SA, Some(("web-0", UID))), &ours));
        // Without pod-bound tokens (1.20's default token): the same service account.
        assert!(same_requester(&filed_by(SA, None), &filed_by(SA, None)));
    }

    #[test]
    fn another_user_another_pod_or_an_unbound_token_is_someone_else() {
        let ours = filed_by(SA, Some(("web-0", UID)));
        let admin = filed_by("kubernetes-admin", None);
        let other_pod = filed_by(SA, Some(("evil-0", "0badc0de-0000-0000-0000-000000000000")));
        let unbound = filed_by(SA, None);
        for (what, existing) in [
            ("another user", admin),
            ("another pod of the same service account", other_pod),
            (
                "the service account without a token bound to this pod",
                unbound,
            ),
        ] {
            assert!(!same_requester(&existing, &ours), "{what}");
        }
    }

    #[test]
    fn only_a_token_bound_to_this_pod_proves_it_before_filing() {
        assert!(filed_by_pod(&filed_by(SA, Some(("web-0", UID))), UID));
        assert!(!filed_by_pod(&filed_by(SA, None), UID));
        assert!(!filed_by_pod(
            &filed_by(SA, Some(("evil-0", "0badc0de"))),
            UID
        ));
    }

    #[test]
    fn the_requester_names_the_user_and_the_bound_pod() {
        assert_eq!(
            requester(&filed_by(SA, Some(("evil-0", "x")))),
            format!("{SA} (token bound to pod evil-0)")
        );
        assert_eq!(
            requester(&filed_by("kubernetes-admin", None)),
            "kubernetes-admin"
        );
        assert_eq!(
            requester(&CertificateSigningRequest::default()),
            "an unknown user (no spec.username)"
        );
    }
}
