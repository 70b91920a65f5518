//! The approver's decision: named checks, each with a stable reason when it fails.
//!
//! Deny only on proof, approve only on proof: when a fact the decision needs is not there yet
//! (the kubelet has not published the pod's IPs, a Service is not in the cache yet), the verdict
//! is [`Verdict::Wait`] and the CSR is looked at again later.
//!
//! The checks, numbered as in docs/approver.md ("What it checks"); they run in the order 0-6, 8, 9,
//! 7, so that what is denied at once comes before the SANs, which may wait for a fact:
//! 0. `request` size, before anything else: at most 16 KiB of DER and 100 SANs;
//! 1. `requester`: `spec.username` is a service account, in a namespace the policy allows;
//! 2. `pod-binding`: `spec.extra` names the pod the token was bound to;
//! 3. `pod`: that pod exists now, with that UID, runs as that service account, is not ending;
//! 4. `name`: the CSR name (and certboot's labels) name that pod;
//! 5. `request`: the PKCS#10 request decodes strictly, is signed by its key, of an allowed type,
//!    not for a CA, and asks for no key usage beyond `spec.usages`;
//! 6. `subject`: CN and O as the policy allows;
//! 7. `sans`: IPs of the pod, DNS names of Services selecting it or policy templates, URIs by policy;
//! 8. `usages`: `spec.usages` within the policy, with at least one extended key usage;
//! 9. `lifetime`: `spec.expirationSeconds` set and within the policy's maximum (see [`lifetime`]).
//!
//! Every denial message is bounded ([`message::bounded`]): a CSR condition stays within 1 KiB.

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::Pod;

use super::identity::{self, BoundPod, ServiceAccount};
use super::message::few;
use super::policy::{SignerPolicy, KUBE_APISERVER_CLIENT};
use super::requested::{self, Requested, RequestedKey};
use super::usages;
use super::{lifetime, sans};

use super::denial::{deny, reason, Denial};
use super::facts::{Facts, Vars};

/// The outcome for one CSR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every check passed; the message lists what was checked.
    Approve(String),
    Deny(Denial),
    /// A fact is missing for now; look again later.
    Wait(String),
}

/// The pod a CSR claims to come from, established from the requester (steps 1-2): the pod to
/// look up before [`judge`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub service_account: ServiceAccount,
    pub pod_name: String,
    /// The UID from the pod-bound token; `None` in the weaker mode without one.
    pub bound_uid: Option<String>,
}

/// Steps 0-2: the request's size, who asks, and for which pod.
pub fn claim(csr: &CertificateSigningRequest, policy: &SignerPolicy) -> Result<Claim, Denial> {
    check_size(csr)?;
    let username = csr.spec.username.as_deref().unwrap_or_default();
    let Some(sa) = identity::service_account(username) else {
        return Err(deny(
            "requester",
            reason::NOT_SERVICE_ACCOUNT,
            format!("requester {username:?} is not a service account (system:serviceaccount:<namespace>:<name>); only pods get certificates from this approver"),
        ));
    };
    if !policy.allows_namespace(&sa.namespace) {
        return Err(deny(
            "requester",
            reason::NAMESPACE_NOT_ALLOWED,
            format!(
                "namespace {:?} is not among the namespaces the policy allows for signer {}",
                sa.namespace, policy.signer_name
            ),
        ));
    }
    match identity::bound_pod(csr.spec.extra.as_ref()) {
        Some(BoundPod { name, uid }) => Ok(Claim {
            service_account: sa,
            pod_name: name,
            bound_uid: Some(uid),
        }),
        None if policy.require_pod_bound_token => Err(deny(
            "pod-binding",
            reason::POD_BINDING_MISSING,
            format!(
                "the requester's token is not bound to a pod (spec.extra has no {} and {}); use the pod's default token (Kubernetes 1.21+) or a projected serviceAccountToken volume",
                identity::EXTRA_POD_NAME,
                identity::EXTRA_POD_UID
            ),
        )),
        None => {
            let name = csr.metadata.name.as_deref().unwrap_or_default();
            match identity::claimed_name(name) {
                Some(claimed) => Ok(Claim {
                    service_account: sa,
                    pod_name: claimed.pod,
                    bound_uid: None,
                }),
                None => Err(name_denial(name, "<namespace>:<pod>:<uid6>")),
            }
        }
    }
}

/// Steps 3-9 for a CSR whose [`claim`] held.
pub fn judge(csr: &CertificateSigningRequest, claim: &Claim, facts: &Facts<'_>) -> Verdict {
    match judge_inner(csr, claim, facts) {
        Ok(Some(wait)) => Verdict::Wait(wait),
        Ok(None) => {
            let ns = &claim.service_account.namespace;
            Verdict::Approve(format!(
                "certboot approver: requester system:serviceaccount:{ns}:{} {} pod {ns}/{}; checked requester, pod-binding, pod, name, request, subject, sans, usages, lifetime",
                claim.service_account.name,
                if claim.bound_uid.is_some() { "bound to" } else { "(no pod-bound token; policy allows it) claims" },
                claim.pod_name
            ))
        }
        Err(denial) => Verdict::Deny(denial),
    }
}

/// `Ok(None)`: approve; `Ok(Some(why))`: wait; `Err`: deny.
fn judge_inner(
    csr: &CertificateSigningRequest,
    claim: &Claim,
    facts: &Facts<'_>,
) -> Result<Option<String>, Denial> {
    let pod = check_pod(claim, facts.pod)?;
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    check_name(csr, claim, uid)?;
    let requested = check_request(csr, facts.policy)?;
    check_fingerprint(csr, &requested)?;
    let vars = Vars {
        pod: &claim.pod_name,
        namespace: &claim.service_account.namespace,
        service_account: &claim.service_account.name,
        cluster_domain: facts.cluster_domain,
    };
    check_subject(&requested, facts.policy, &vars)?;
    check_usages(csr, facts.policy)?;
    lifetime::check_lifetime(csr, facts.policy)?;
    let wait_ips = sans::check_ips(&requested, facts.policy, pod)?;
    let wait_dns = sans::check_dns(csr, &requested, facts, pod, &vars)?;
    sans::check_uris(&requested, facts.policy, &vars)?;
    if !requested.other_sans.is_empty() {
        return Err(deny(
            "sans",
            reason::SAN_NOT_ALLOWED,
            format!(
                "SANs of a kind the approver never grants: {}",
                few(&requested.other_sans)
            ),
        ));
    }
    Ok(wait_ips.or(wait_dns))
}

/// Step 3.
fn check_pod<'p>(claim: &Claim, pod: Option<&'p Pod>) -> Result<&'p Pod, Denial> {
    let ns = &claim.service_account.namespace;
    let name = &claim.pod_name;
    let Some(pod) = pod else {
        return Err(deny(
            "pod",
            reason::POD_NOT_FOUND,
            format!("pod {ns}/{name} does not exist"),
        ));
    };
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    match &claim.bound_uid {
        Some(bound) if bound != uid => {
            return Err(deny(
                "pod",
                reason::POD_UID_MISMATCH,
                format!("the requester's token was bound to pod {ns}/{name} with UID {bound}, but that pod now has UID {uid} (deleted and re-created)"),
            ))
        }
        _ => {}
    }
    let spec_sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.as_deref())
        .unwrap_or("default");
    if spec_sa != claim.service_account.name {
        return Err(deny(
            "pod",
            reason::SERVICE_ACCOUNT_MISMATCH,
            format!(
                "pod {ns}/{name} runs as service account {spec_sa:?}, but the CSR was filed by {:?}",
                claim.service_account.name
            ),
        ));
    }
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if pod.metadata.deletion_timestamp.is_some() || matches!(phase, Some("Succeeded" | "Failed")) {
        return Err(deny(
            "pod",
            reason::POD_ENDING,
            format!("pod {ns}/{name} is being deleted or has finished"),
        ));
    }
    Ok(pod)
}

fn name_denial(name: &str, expected: &str) -> Denial {
    deny(
        "name",
        reason::NAME_MISMATCH,
        format!("CSR name {name:?} is not certboot's name for the requesting pod: expected {expected:?} or its renewal form {expected}:<8 hex of the key's SHA-256>"),
    )
}

/// Step 4.
fn check_name(csr: &CertificateSigningRequest, claim: &Claim, uid: &str) -> Result<(), Denial> {
    let ns = &claim.service_account.namespace;
    let name = csr.metadata.name.as_deref().unwrap_or_default();
    let expected = format!("{ns}:{}:{}", claim.pod_name, identity::uid6(uid));
    let matches = identity::claimed_name(name).is_some_and(|c| {
        c.namespace == *ns && c.pod == claim.pod_name && c.uid6 == identity::uid6(uid)
    });
    if !matches {
        return Err(name_denial(name, &expected));
    }
    let wrong = identity::disagreeing_labels(csr, ns, &claim.pod_name, uid);
    if !wrong.is_empty() {
        return Err(deny(
            "name",
            reason::LABEL_MISMATCH,
            format!(
                "certboot labels/annotations on the CSR name another pod: {}",
                wrong.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Step 0: a request over the size limits is refused before any other work (no API call, no
/// signature check).
fn check_size(csr: &CertificateSigningRequest) -> Result<(), Denial> {
    requested::check_size(&csr.spec.request.0).map_err(request_denial)
}

pub(crate) fn request_denial(e: requested::RequestedError) -> Denial {
    let reason = if e.is_size() {
        reason::REQUEST_TOO_LARGE
    } else {
        reason::INVALID_REQUEST
    };
    deny("request", reason, e.to_string())
}

/// Step 5.
fn check_request(
    csr: &CertificateSigningRequest,
    policy: &SignerPolicy,
) -> Result<Requested, Denial> {
    let requested = requested::decode(&csr.spec.request.0).map_err(request_denial)?;
    if !requested.signature_valid {
        return Err(deny(
            "request",
            reason::SIGNATURE_INVALID,
            "the PKCS#10 signature does not verify with the request's own key (no proof of possession)",
        ));
    }
    match &requested.key {
        RequestedKey::Known(alg) if policy.key_algorithms.contains(alg) => {}
        other => {
            let shown = match other {
                RequestedKey::Known(alg) => alg.name().to_string(),
                RequestedKey::Other(text) => text.clone(),
            };
            let allowed: Vec<&str> = policy.key_algorithms.iter().map(|a| a.name()).collect();
            return Err(deny(
                "request",
                reason::KEY_NOT_ALLOWED,
                format!(
                    "key {shown} is not allowed; allowed: {}",
                    allowed.join(", ")
                ),
            ));
        }
    }
    if requested.asks_for_ca {
        return Err(deny(
            "request",
            reason::CA_REQUESTED,
            "the request asks for a CA certificate (basicConstraints CA:TRUE or keyCertSign/cRLSign)",
        ));
    }
    usages::check_requested(csr, &requested)?;
    Ok(requested)
}

/// Step 4, renewal form: the fingerprint in the name is the request's key.
fn check_fingerprint(csr: &CertificateSigningRequest, requested: &Requested) -> Result<(), Denial> {
    let name = csr.metadata.name.as_deref().unwrap_or_default();
    match identity::claimed_name(name).and_then(|c| c.key_fingerprint) {
        Some(fp) if !fp.eq_ignore_ascii_case(&requested.key_fingerprint()) => Err(deny(
            "name",
            reason::NAME_MISMATCH,
            format!(
                "CSR name {name:?} ends in key fingerprint {fp}, but the request's key has fingerprint {}",
                requested.key_fingerprint()
            ),
        )),
        _ => Ok(()),
    }
}

/// Step 6.
fn check_subject(
    requested: &Requested,
    policy: &SignerPolicy,
    vars: &Vars<'_>,
) -> Result<(), Denial> {
    if !requested.other_subject.is_empty() {
        return Err(deny(
            "subject",
            reason::SUBJECT_NOT_ALLOWED,
            format!(
                "subject attributes other than CN and O are not allowed: {}",
                few(&requested.other_subject)
            ),
        ));
    }
    let allowed: Vec<String> = policy
        .common_names
        .iter()
        .filter_map(|t| vars.expand(t, None))
        .collect();
    let cn_ok = match requested.common_names.as_slice() {
        [] => allowed.is_empty(),
        [cn] => allowed.iter().any(|a| a == cn),
        _ => false,
    };
    if !cn_ok {
        return Err(deny(
            "subject",
            reason::SUBJECT_NOT_ALLOWED,
            format!(
                "subject CN {:?} is not allowed; allowed: {:?}",
                requested.common_names, allowed
            ),
        ));
    }
    let api_client = policy.signer_name == KUBE_APISERVER_CLIENT;
    for org in &requested.organizations {
        if api_client && org.starts_with("system:") {
            return Err(deny(
                "subject",
                reason::FORBIDDEN_GROUP,
                format!("subject O {org:?} would make the certificate a member of a system: group of the Kubernetes API"),
            ));
        }
        if !policy.organizations.contains(org) {
            return Err(deny(
                "subject",
                reason::SUBJECT_NOT_ALLOWED,
                format!(
                    "subject O {org:?} is not allowed; allowed: {:?}",
                    policy.organizations
                ),
            ));
        }
    }
    Ok(())
}

/// Step 8 (the lifetime is step 9, [`lifetime::check_lifetime`]).
fn check_usages(csr: &CertificateSigningRequest, policy: &SignerPolicy) -> Result<(), Denial> {
    let usages = csr.spec.usages.as_deref().unwrap_or_default();
    let extra: Vec<&String> = usages
        .iter()
        .filter(|u| !policy.usages.contains(*u))
        .collect();
    if !extra.is_empty() {
        return Err(deny(
            "usages",
            reason::USAGE_NOT_ALLOWED,
            format!(
                "usages {} are not allowed for signer {}; allowed: {:?}",
                few(&extra),
                policy.signer_name,
                policy.usages
            ),
        ));
    }
    usages::check_extended(usages, policy)?;
    Ok(())
}

#[cfg(test)]
#[path = "checks_tests.rs"]
mod tests;
