//! The approver's policy: one file (a mounted ConfigMap), reviewable in a pull request, with one
//! entry per signer the approver serves. Every field has a safe default; a bad file stops the
//! approver at start (exit 2) with a message naming the field.
//!
//! ```json
//! {
//!   "clusterDomain": "cluster.local",
//!   "signers": [
//!     {
//!       "signerName": "certboot.io/serving",
//!       "dnsNameTemplates": ["{pod}.{service}.{namespace}.svc"],
//!       "maxExpirationSeconds": 604800
//!     }
//!   ]
//! }
//! ```
//!
//! Templates may use `{pod}`, `{namespace}`, `{serviceAccount}`, `{clusterDomain}`, and in
//! `dnsNameTemplates` also `{service}` (expanded once per Service that selects the pod).

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;

use certboot_core::pki::key::KeyAlgorithm;
use certboot_core::request::KNOWN_USAGES;

/// The signer whose certificates become Kubernetes API client identities (O becomes groups).
pub const KUBE_APISERVER_CLIENT: &str = "kubernetes.io/kube-apiserver-client";

/// Signer names Kubernetes itself owns (kube-controller-manager signs some of them).
const KUBERNETES_SIGNER_PREFIX: &str = "kubernetes.io/";

/// Placeholders every template may use.
const PLACEHOLDERS: &[&str] = &["pod", "namespace", "serviceAccount", "clusterDomain"];

/// Usages a pod never needs and the approver never grants.
const NEVER_USAGES: &[&str] = &["cert sign", "crl sign", "any"];

/// The file could not be used; names the field and what is accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("cannot read the policy file {path}: {reason}. Mount the policy ConfigMap there, or set CERTBOOT_POLICY to its path")]
    Read { path: String, reason: String },
    #[error("the policy file {path} is not valid: {reason}. See the README's policy reference")]
    Parse { path: String, reason: String },
    #[error("policy field {field} is invalid: {reason}")]
    Field { field: String, reason: String },
}

fn field_error(field: impl Into<String>, reason: impl Into<String>) -> PolicyError {
    PolicyError::Field {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The whole policy, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub cluster_domain: String,
    pub signers: Vec<SignerPolicy>,
}

/// What the approver allows for one signer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerPolicy {
    pub signer_name: String,
    /// Namespaces whose pods may get certificates from this signer; empty: every namespace.
    pub namespaces: BTreeSet<String>,
    /// Require `spec.extra` pod name and UID (a pod-bound service-account token). Turning this off
    /// is the weaker mode for clusters older than 1.21: any pod of the same service account could
    /// then ask for another pod's names.
    pub require_pod_bound_token: bool,
    /// The subject CNs allowed (templates); empty: the request must carry no CN.
    pub common_names: Vec<String>,
    /// Subject O values allowed (literal). Never a `system:` group for the API-client signer.
    pub organizations: BTreeSet<String>,
    /// DNS SANs of Services that select the pod: `svc.ns.svc` and `svc.ns.svc.<domain>`.
    pub service_dns_names: bool,
    /// Also the short forms `svc` and `svc.ns` (off by default: a Service `db` in any namespace
    /// would yield the bare name `db`, and a namespace `com` real-looking domains).
    pub service_short_names: bool,
    /// Further DNS SANs allowed (templates).
    pub dns_name_templates: Vec<String>,
    /// IP SANs from the pod's `status.podIPs`.
    pub pod_ips: bool,
    /// Also for a `hostNetwork: true` pod, whose "pod IPs" are its node's (off by default).
    pub host_network_ips: bool,
    /// URI SANs allowed (templates), e.g. `spiffe://{clusterDomain}/ns/{namespace}/sa/{serviceAccount}`.
    pub uri_templates: Vec<String>,
    /// `spec.usages` allowed.
    pub usages: BTreeSet<String>,
    /// Key algorithms allowed, by certboot's names (`ecdsa-p256`, ..., `rsa-8192`).
    pub key_algorithms: BTreeSet<KeyAlgorithm>,
    /// The longest certificate this entry approves; `None`: no limit. A CSR must then ask for at
    /// most this (`spec.expirationSeconds`), and one that asks for nothing is denied, unless
    /// certboot's own signer signs this signer in this process (see `signed_here`).
    pub max_expiration_seconds: Option<u32>,
    /// certboot's signer also signs PodCertificateRequests of this signer (Kubernetes 1.37+, the
    /// kubelet's `podCertificate` volume), with this entry's identity (`podCertificates`).
    pub pod_certificates: bool,
    /// Not from the file: certboot's own signer signs this signerName in this process
    /// (`CERTBOOT_SIGNER_NAMES`), and caps every certificate at `max_expiration_seconds` itself.
    /// Set at start by [`Policy::mark_signed_here`].
    pub signed_here: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    cluster_domain: Option<String>,
    signers: Vec<RawSigner>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawSigner {
    signer_name: String,
    #[serde(default)]
    namespaces: Vec<String>,
    require_pod_bound_token: Option<bool>,
    common_names: Option<Vec<String>>,
    #[serde(default)]
    organizations: Vec<String>,
    #[serde(rename = "serviceDNSNames")]
    service_dns_names: Option<bool>,
    service_short_names: Option<bool>,
    #[serde(default)]
    dns_name_templates: Vec<String>,
    #[serde(rename = "podIPs")]
    pod_ips: Option<bool>,
    #[serde(rename = "hostNetworkIPs")]
    host_network_ips: Option<bool>,
    #[serde(default)]
    uri_templates: Vec<String>,
    usages: Option<Vec<String>>,
    key_algorithms: Option<Vec<String>>,
    max_expiration_seconds: Option<u32>,
    pod_certificates: Option<bool>,
}

impl Policy {
    /// Reads and validates the policy file.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::parse(&text).map_err(|e| match e {
            PolicyError::Parse { reason, .. } => PolicyError::Parse {
                path: path.display().to_string(),
                reason,
            },
            other => other,
        })
    }

    /// Parses and validates policy text (JSON).
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let raw: RawPolicy = serde_json::from_str(text).map_err(|e| PolicyError::Parse {
            path: String::new(),
            reason: e.to_string(),
        })?;
        let cluster_domain = raw
            .cluster_domain
            .unwrap_or_else(|| "cluster.local".to_string());
        if !is_dns_name(&cluster_domain) {
            return Err(field_error(
                "clusterDomain",
                format!("{cluster_domain:?} is not a DNS name"),
            ));
        }
        if raw.signers.is_empty() {
            return Err(field_error(
                "signers",
                "lists no signer; add at least one {\"signerName\": \"...\"}",
            ));
        }
        let mut seen = BTreeSet::new();
        let mut signers = Vec::new();
        for (i, signer) in raw.signers.into_iter().enumerate() {
            let signer = SignerPolicy::from_raw(signer, &format!("signers[{i}]"))?;
            if !seen.insert(signer.signer_name.clone()) {
                return Err(field_error(
                    format!("signers[{i}].signerName"),
                    format!("{:?} is listed twice", signer.signer_name),
                ));
            }
            signers.push(signer);
        }
        Ok(Policy {
            cluster_domain,
            signers,
        })
    }

    /// The policy for `signer_name`, if the approver serves it.
    pub fn signer(&self, signer_name: &str) -> Option<&SignerPolicy> {
        self.signers.iter().find(|s| s.signer_name == signer_name)
    }

    /// The signer names the approver serves.
    pub fn signer_names(&self) -> Vec<String> {
        self.signers.iter().map(|s| s.signer_name.clone()).collect()
    }

    /// Records which signers certboot's own signer signs in this process (`CERTBOOT_SIGNER_NAMES`):
    /// it caps their certificates at the entry's `maxExpirationSeconds` itself.
    /// A `kubernetes.io/` signer is never counted: kube-controller-manager signs those names too,
    /// so certboot's cap would not bound what the other signer issues.
    pub fn mark_signed_here(&mut self, signed: &[String]) {
        for entry in &mut self.signers {
            entry.signed_here = signed.contains(&entry.signer_name)
                && !entry.signer_name.starts_with(KUBERNETES_SIGNER_PREFIX);
        }
    }

    /// The entries with `podCertificates: true`.
    pub fn pod_certificate_signers(&self) -> Vec<&SignerPolicy> {
        self.signers.iter().filter(|s| s.pod_certificates).collect()
    }

    /// Fails unless certboot's signer signs (`signed`: `CERTBOOT_SIGNER_NAMES`) every signer whose
    /// entry turns `podCertificates` on: nobody else would answer those PodCertificateRequests.
    pub fn check_pod_certificate_signers(&self, signed: &[String]) -> Result<(), PolicyError> {
        for (i, entry) in self.signers.iter().enumerate() {
            if entry.pod_certificates && !signed.contains(&entry.signer_name) {
                return Err(field_error(
                    format!("signers[{i}].podCertificates"),
                    format!(
                        "is true, but certboot-controller does not sign {:?} (CERTBOOT_SIGNER_NAMES is {:?}); add the signer to CERTBOOT_SIGNER_NAMES and mount its CA, or drop podCertificates",
                        entry.signer_name,
                        signed.join(",")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The entries whose `maxExpirationSeconds` only the approver could enforce (no signer of
    /// this process signs them), with their index in `signers`.
    pub fn maxima_left_to_the_approver(&self) -> Vec<(usize, &SignerPolicy)> {
        self.signers
            .iter()
            .enumerate()
            .filter(|(_, s)| s.max_expiration_seconds.is_some() && !s.signed_here)
            .collect()
    }
}

impl SignerPolicy {
    fn from_raw(raw: RawSigner, at: &str) -> Result<SignerPolicy, PolicyError> {
        check_opt_ins(&raw, at)?;
        let signer_name = raw.signer_name;
        if !is_signer_name(&signer_name) {
            return Err(field_error(
                format!("{at}.signerName"),
                format!("{signer_name:?} is not a signer name; accepted: <domain>/<path>, e.g. certboot.io/serving"),
            ));
        }
        if raw.pod_certificates == Some(true) && signer_name.starts_with(KUBERNETES_SIGNER_PREFIX) {
            return Err(field_error(
                format!("{at}.podCertificates"),
                format!("is true for {signer_name:?}, a signer name Kubernetes owns; certboot signs PodCertificateRequests only for signers of its own (e.g. certboot.io/serving)"),
            ));
        }
        let api_client = signer_name == KUBE_APISERVER_CLIENT;
        for (j, org) in raw.organizations.iter().enumerate() {
            if api_client && org.starts_with("system:") {
                return Err(field_error(
                    format!("{at}.organizations[{j}]"),
                    format!("{org:?} would become a system: group of the Kubernetes API; never allowed for {KUBE_APISERVER_CLIENT}"),
                ));
            }
        }
        let common_names = raw
            .common_names
            .unwrap_or_else(|| vec!["{pod}.{namespace}".to_string()]);
        check_templates(&common_names, &format!("{at}.commonNames"), false)?;
        check_templates(
            &raw.dns_name_templates,
            &format!("{at}.dnsNameTemplates"),
            true,
        )?;
        check_templates(&raw.uri_templates, &format!("{at}.uriTemplates"), false)?;
        let usages = match raw.usages {
            Some(list) => check_usages(list, &format!("{at}.usages"))?,
            None => default_usages(api_client),
        };
        let key_algorithms = match raw.key_algorithms {
            Some(list) => check_algorithms(list, &format!("{at}.keyAlgorithms"))?,
            None => KeyAlgorithm::ALL.into_iter().collect(),
        };
        if let Some(max) = raw.max_expiration_seconds {
            if max < certboot_core::request::MIN_EXPIRATION_SECONDS {
                return Err(field_error(
                    format!("{at}.maxExpirationSeconds"),
                    format!(
                        "{max} is below the API's minimum of {}",
                        certboot_core::request::MIN_EXPIRATION_SECONDS
                    ),
                ));
            }
        }
        Ok(SignerPolicy {
            signer_name,
            namespaces: raw.namespaces.into_iter().collect(),
            require_pod_bound_token: raw.require_pod_bound_token.unwrap_or(true),
            common_names,
            organizations: raw.organizations.into_iter().collect(),
            service_dns_names: raw.service_dns_names.unwrap_or(true),
            service_short_names: raw.service_short_names.unwrap_or(false),
            dns_name_templates: raw.dns_name_templates,
            pod_ips: raw.pod_ips.unwrap_or(true),
            host_network_ips: raw.host_network_ips.unwrap_or(false),
            uri_templates: raw.uri_templates,
            usages,
            key_algorithms,
            max_expiration_seconds: raw.max_expiration_seconds,
            pod_certificates: raw.pod_certificates.unwrap_or(false),
            signed_here: false,
        })
    }

    /// True when pods of `namespace` may use this signer.
    pub fn allows_namespace(&self, namespace: &str) -> bool {
        self.namespaces.is_empty() || self.namespaces.contains(namespace)
    }
}

/// An opt-in that widens a grant the entry turns off is a contradiction, not a no-op.
fn check_opt_ins(raw: &RawSigner, at: &str) -> Result<(), PolicyError> {
    if raw.service_short_names == Some(true) && raw.service_dns_names == Some(false) {
        return Err(field_error(
            format!("{at}.serviceShortNames"),
            "is true, but serviceDNSNames is false (no Service names at all); set serviceDNSNames to true or drop serviceShortNames",
        ));
    }
    if raw.host_network_ips == Some(true) && raw.pod_ips == Some(false) {
        return Err(field_error(
            format!("{at}.hostNetworkIPs"),
            "is true, but podIPs is false (no IP SANs at all); set podIPs to true or drop hostNetworkIPs",
        ));
    }
    Ok(())
}

/// certboot's own default usages: client auth for the API-client signer, serving (and client)
/// otherwise; key encipherment because certboot adds it for RSA keys.
fn default_usages(api_client: bool) -> BTreeSet<String> {
    let list: &[&str] = if api_client {
        &["digital signature", "key encipherment", "client auth"]
    } else {
        &[
            "digital signature",
            "key encipherment",
            "server auth",
            "client auth",
        ]
    };
    list.iter().map(|s| s.to_string()).collect()
}

fn check_usages(list: Vec<String>, field: &str) -> Result<BTreeSet<String>, PolicyError> {
    for (j, usage) in list.iter().enumerate() {
        if NEVER_USAGES.contains(&usage.as_str()) {
            return Err(field_error(
                format!("{field}[{j}]"),
                format!("{usage:?} is a CA usage; the approver never grants it to a pod"),
            ));
        }
        if !KNOWN_USAGES.contains(&usage.as_str()) {
            return Err(field_error(
                format!("{field}[{j}]"),
                format!(
                    "{usage:?} is not a certificates.k8s.io/v1 usage; accepted: {}",
                    KNOWN_USAGES.join(", ")
                ),
            ));
        }
    }
    Ok(list.into_iter().collect())
}

fn check_algorithms(list: Vec<String>, field: &str) -> Result<BTreeSet<KeyAlgorithm>, PolicyError> {
    list.iter()
        .enumerate()
        .map(|(j, name)| {
            name.parse::<KeyAlgorithm>().map_err(|_| {
                field_error(
                    format!("{field}[{j}]"),
                    format!(
                        "{name:?} is not a key algorithm; accepted: {}",
                        KeyAlgorithm::NAMES.join(", ")
                    ),
                )
            })
        })
        .collect()
}

/// Every `{placeholder}` in each template is known (and `{service}` only where allowed).
fn check_templates(list: &[String], field: &str, service: bool) -> Result<(), PolicyError> {
    for (j, template) in list.iter().enumerate() {
        let mut rest = template.as_str();
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}') else {
                return Err(field_error(
                    format!("{field}[{j}]"),
                    format!("{template:?} has an unclosed '{{'"),
                ));
            };
            let name = &rest[open + 1..open + close];
            if !(PLACEHOLDERS.contains(&name) || (service && name == "service")) {
                let mut accepted: Vec<&str> = PLACEHOLDERS.to_vec();
                if service {
                    accepted.push("service");
                }
                return Err(field_error(
                    format!("{field}[{j}]"),
                    format!(
                        "{template:?} uses {{{name}}}; accepted placeholders: {}",
                        accepted
                            .iter()
                            .map(|p| format!("{{{p}}}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            rest = &rest[open + close + 1..];
        }
        if template.is_empty() {
            return Err(field_error(format!("{field}[{j}]"), "is empty"));
        }
    }
    Ok(())
}

fn is_signer_name(name: &str) -> bool {
    match name.split_once('/') {
        Some((domain, path)) => is_dns_name(domain) && !path.is_empty() && !path.contains(' '),
        None => false,
    }
}

fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
