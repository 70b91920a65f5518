//! The decision on one PodCertificateRequest, from the same policy entry as a CSR of its signer.
//!
//! A PCR asks for nothing but a key: the kubelet's stub PKCS#10 request carries no subject and no
//! SANs. So the signer does not judge a requested identity, it grants the policy's identity for the
//! pod the request names, once the request is proven to come from that pod. The checks, in order:
//!
//! 1. `namespace`: the PCR's namespace is one the policy allows for its signer;
//! 2. `annotations`: no `unverifiedUserAnnotations` (certboot knows none; a key it does not
//!    know could be a promise it would silently not keep);
//! 3. `pod`: the pod exists now (a live GET) with exactly the request's UID, service account and
//!    node, and is not ending;
//! 4. `request`: the stub request decodes strictly, is signed by its key, and its key is of a
//!    type certboot issues for (`UnsupportedKeyType` otherwise, the reason the kubelet knows) and
//!    the policy allows;
//! 5. `identity`: CN from the first `commonNames` template, DNS names of the Services that select
//!    the pod (and `dnsNameTemplates`), URIs from `uriTemplates`; no IP SANs (the pod has no IP
//!    when its first certificate is signed); at least one name;
//! 6. `usages`: the policy's usages, `key encipherment` only for an RSA key, at least one extended
//!    key usage.

use std::sync::Arc;

use k8s_openapi::api::certificates::v1::PodCertificateRequest;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::ResourceExt;

use crate::approver::checks::request_denial;
use crate::approver::denial::{deny, Denial};
use crate::approver::facts::Vars;
use crate::approver::message::few;
use crate::approver::policy::SignerPolicy;
use crate::approver::requested::{self, RequestedKey};
use crate::approver::sans::{selects, service_names};
use certboot_core::pki::key::KeyAlgorithm;

/// The stable reasons of a Denied PCR (`UnsupportedKeyType` is the one Kubernetes defines).
pub mod reason {
    pub use crate::approver::denial::reason::{
        INVALID_REQUEST, KEY_NOT_ALLOWED, NAMESPACE_NOT_ALLOWED, POD_ENDING, POD_NOT_FOUND,
        POD_UID_MISMATCH, REQUEST_TOO_LARGE, SERVICE_ACCOUNT_MISMATCH, SIGNATURE_INVALID,
    };
    pub const ISSUED: &str = "CertbootIssued";
    pub const UNKNOWN_USER_ANNOTATION: &str = "UnknownUserAnnotation";
    pub const NODE_MISMATCH: &str = "NodeMismatch";
    pub const UNSUPPORTED_KEY_TYPE: &str = "UnsupportedKeyType";
    pub const NO_IDENTITY: &str = "NoIdentity";
    pub const USAGES_NOT_ISSUABLE: &str = "UsagesNotIssuable";
}

/// What the signer grants: the policy's identity for the pod, for the stub request's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub common_name: Option<String>,
    pub dns_names: Vec<String>,
    pub uris: Vec<String>,
    pub key: KeyAlgorithm,
    /// The stub request's SubjectPublicKeyInfo (DER): the leaf's key.
    pub spki_der: Vec<u8>,
    /// `spec.usages`-style names, mapped like a CSR's by the signer.
    pub usages: Vec<String>,
}

/// Everything [`decide`] looks at besides the PCR.
pub struct Facts<'a> {
    pub policy: &'a SignerPolicy,
    pub cluster_domain: &'a str,
    /// The live pod (`None`: not found).
    pub pod: Option<&'a Pod>,
    /// The Services of the pod's namespace, from the approver's cache.
    pub services: &'a [Arc<Service>],
}

/// Checks 1-6: the grant, or the first denial.
pub fn decide(pcr: &PodCertificateRequest, facts: &Facts<'_>) -> Result<Grant, Denial> {
    let namespace = pcr.namespace().unwrap_or_default();
    check_namespace(&namespace, facts.policy)?;
    check_annotations(pcr)?;
    let pod = check_pod(pcr, &namespace, facts.pod)?;
    let (key, spki_der) = check_request(pcr, facts.policy)?;
    let vars = Vars {
        pod: &pcr.spec.pod_name,
        namespace: &namespace,
        service_account: &pcr.spec.service_account_name,
        cluster_domain: facts.cluster_domain,
    };
    let (common_name, dns_names, uris) = identity(facts, pod, &vars)?;
    let usages = usages(facts.policy, key)?;
    Ok(Grant {
        common_name,
        dns_names,
        uris,
        key,
        spki_der,
        usages,
    })
}

fn check_namespace(namespace: &str, policy: &SignerPolicy) -> Result<(), Denial> {
    if policy.allows_namespace(namespace) {
        return Ok(());
    }
    Err(deny(
        "namespace",
        reason::NAMESPACE_NOT_ALLOWED,
        format!(
            "namespace {namespace:?} is not among the namespaces the policy allows for signer {}",
            policy.signer_name
        ),
    ))
}

fn check_annotations(pcr: &PodCertificateRequest) -> Result<(), Denial> {
    let keys: Vec<&String> = pcr
        .spec
        .unverified_user_annotations
        .iter()
        .flat_map(|m| m.keys())
        .collect();
    if keys.is_empty() {
        return Ok(());
    }
    Err(deny(
        "annotations",
        reason::UNKNOWN_USER_ANNOTATION,
        format!(
            "the pod's podCertificate volume sets userAnnotations {}, which certboot's signer does not know; remove them (certboot takes the identity from its policy)",
            few(&keys)
        ),
    ))
}

/// Check 3: the pod the request names is the live one, on the request's node.
fn check_pod<'p>(
    pcr: &PodCertificateRequest,
    namespace: &str,
    pod: Option<&'p Pod>,
) -> Result<&'p Pod, Denial> {
    let spec = &pcr.spec;
    let name = &spec.pod_name;
    let Some(pod) = pod else {
        return Err(deny(
            "pod",
            reason::POD_NOT_FOUND,
            format!("pod {namespace}/{name} does not exist"),
        ));
    };
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    if uid != spec.pod_uid {
        return Err(deny(
            "pod",
            reason::POD_UID_MISMATCH,
            format!("the request is for pod {namespace}/{name} with UID {}, but that pod now has UID {uid} (deleted and re-created)", spec.pod_uid),
        ));
    }
    let pod_spec = pod.spec.as_ref();
    let account = pod_spec
        .and_then(|s| s.service_account_name.as_deref())
        .unwrap_or("default");
    if account != spec.service_account_name {
        return Err(deny(
            "pod",
            reason::SERVICE_ACCOUNT_MISMATCH,
            format!(
                "pod {namespace}/{name} runs as service account {account:?}, but the request names {:?}",
                spec.service_account_name
            ),
        ));
    }
    let node = pod_spec
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or_default();
    if node != spec.node_name {
        return Err(deny(
            "pod",
            reason::NODE_MISMATCH,
            format!(
                "pod {namespace}/{name} is bound to node {node:?}, but the request comes from node {:?}",
                spec.node_name
            ),
        ));
    }
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if pod.metadata.deletion_timestamp.is_some() || matches!(phase, Some("Succeeded" | "Failed")) {
        return Err(deny(
            "pod",
            reason::POD_ENDING,
            format!("pod {namespace}/{name} is being deleted or has finished"),
        ));
    }
    Ok(pod)
}

/// Check 4: the key of the stub request, read strictly.
fn check_request(
    pcr: &PodCertificateRequest,
    policy: &SignerPolicy,
) -> Result<(KeyAlgorithm, Vec<u8>), Denial> {
    let der = &pcr.spec.stub_pkc_s10_request.0;
    if der.is_empty() {
        // The API also takes pkixPublicKey + proofOfPossession instead; the kubelet sends a stub.
        return Err(deny(
            "request",
            reason::INVALID_REQUEST,
            "the request carries no stubPKCS10Request; certboot's signer reads the key only from it (the kubelet always sends one), not from pkixPublicKey and proofOfPossession",
        ));
    }
    let requested = requested::decode_der(der).map_err(request_denial)?;
    let key = match requested.key {
        RequestedKey::Known(key) => key,
        RequestedKey::Other(shown) => {
            return Err(deny(
                "request",
                reason::UNSUPPORTED_KEY_TYPE,
                format!(
                    "key {shown} cannot be issued by certboot's signer; set the podCertificate volume's keyType to one of {}",
                    kubelet_key_types(policy).join(", ")
                ),
            ))
        }
    };
    if !requested.signature_valid {
        return Err(deny(
            "request",
            reason::SIGNATURE_INVALID,
            "the stub PKCS#10 request's signature does not verify with its own key",
        ));
    }
    if !policy.key_algorithms.contains(&key) {
        return Err(deny(
            "request",
            reason::KEY_NOT_ALLOWED,
            format!(
                "key {} is not allowed for signer {}; set the podCertificate volume's keyType to one of {}",
                key.name(),
                policy.signer_name,
                kubelet_key_types(policy).join(", ")
            ),
        ));
    }
    Ok((key, requested.spki_der))
}

/// The kubelet's `keyType` names of the key algorithms the policy allows.
fn kubelet_key_types(policy: &SignerPolicy) -> Vec<&'static str> {
    let types: Vec<&'static str> = policy
        .key_algorithms
        .iter()
        .filter_map(|k| kubelet_key_type(*k))
        .collect();
    if types.is_empty() {
        vec!["(none: the policy's keyAlgorithms allow no key type the kubelet generates)"]
    } else {
        types
    }
}

/// The kubelet's name for `key`, where the kubelet generates such keys.
pub fn kubelet_key_type(key: KeyAlgorithm) -> Option<&'static str> {
    match key {
        KeyAlgorithm::EcdsaP256 => Some("ECDSAP256"),
        KeyAlgorithm::EcdsaP384 => Some("ECDSAP384"),
        KeyAlgorithm::EcdsaP521 => Some("ECDSAP521"),
        KeyAlgorithm::Ed25519 => Some("ED25519"),
        KeyAlgorithm::Rsa3072 => Some("RSA3072"),
        KeyAlgorithm::Rsa4096 => Some("RSA4096"),
        _ => None,
    }
}

type Names = (Option<String>, Vec<String>, Vec<String>);

/// Check 5: the policy's identity for the pod.
fn identity(facts: &Facts<'_>, pod: &Pod, vars: &Vars<'_>) -> Result<Names, Denial> {
    let policy = facts.policy;
    let common_name = policy
        .common_names
        .iter()
        .find_map(|t| vars.expand(t, None));
    let selecting: Vec<String> = facts
        .services
        .iter()
        .filter(|s| s.metadata.namespace.as_deref() == Some(vars.namespace) && selects(s, pod))
        .filter_map(|s| s.metadata.name.clone())
        .collect();
    let mut dns_names = Vec::new();
    if policy.service_dns_names {
        for service in &selecting {
            dns_names.extend(service_names(service, policy, vars));
        }
    }
    for template in &policy.dns_name_templates {
        match vars.expand(template, None) {
            Some(name) => dns_names.push(name),
            None => dns_names.extend(
                selecting
                    .iter()
                    .filter_map(|service| vars.expand(template, Some(service))),
            ),
        }
    }
    dedup(&mut dns_names);
    let mut uris: Vec<String> = policy
        .uri_templates
        .iter()
        .filter_map(|t| vars.expand(t, None))
        .collect();
    dedup(&mut uris);
    if common_name.is_none() && dns_names.is_empty() && uris.is_empty() {
        return Err(deny(
            "identity",
            reason::NO_IDENTITY,
            format!(
                "the policy grants pod {}/{} no name for signer {}: no commonNames, no Service selects it, no dnsNameTemplates or uriTemplates; add one to the policy entry",
                vars.namespace, vars.pod, policy.signer_name
            ),
        ));
    }
    Ok((common_name, dns_names, uris))
}

fn dedup(list: &mut Vec<String>) {
    let mut seen = std::collections::BTreeSet::new();
    list.retain(|x| seen.insert(x.clone()));
}

/// Check 6: the usages of the certificate, from the policy.
fn usages(policy: &SignerPolicy, key: KeyAlgorithm) -> Result<Vec<String>, Denial> {
    let usages: Vec<String> = policy
        .usages
        .iter()
        .filter(|u| key.is_rsa() || u.as_str() != "key encipherment")
        .cloned()
        .collect();
    match crate::signer::issue::map_usages(&usages) {
        Ok(_) => Ok(usages),
        Err(refusal) => Err(deny(
            "usages",
            reason::USAGES_NOT_ISSUABLE,
            format!(
                "the policy's usages for signer {} cannot be issued: {}",
                policy.signer_name, refusal.message
            ),
        )),
    }
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
