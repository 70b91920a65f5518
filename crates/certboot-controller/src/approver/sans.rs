//! Check 7, the subject alternative names: IPs of the pod (not of its node: a `hostNetwork` pod's
//! IPs only by opt-in), `.svc` DNS names of the Services that select it (the short forms only by
//! opt-in) or the policy's templates, URIs by policy. A fact not there yet (the pod's IPs, a Service
//! not yet cached) means wait, not deny.

use std::collections::BTreeSet;
use std::net::IpAddr;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::{Pod, Service};

use super::denial::{deny, reason, Denial};
use super::facts::{Facts, Vars};
use super::policy::SignerPolicy;
use super::requested::Requested;

/// How long a DNS name that looks like a Service of the pod's namespace may wait for that Service
/// to appear in the approver's cache before the CSR is denied.
pub const SERVICE_GRACE_SECONDS: i64 = 30;

/// The pod's IPs from `status.podIPs` (and `status.podIP`).
pub fn pod_ips(pod: &Pod) -> BTreeSet<IpAddr> {
    let Some(status) = &pod.status else {
        return BTreeSet::new();
    };
    status
        .pod_ips
        .iter()
        .flatten()
        .map(|p| p.ip.as_str())
        .chain(status.pod_ip.as_deref())
        .filter_map(|ip| ip.parse().ok())
        .collect()
}

/// Step 7, IP SANs. `Ok(Some)`: wait for the kubelet to publish the pod's IPs.
pub(super) fn check_ips(
    requested: &Requested,
    policy: &SignerPolicy,
    pod: &Pod,
) -> Result<Option<String>, Denial> {
    if requested.ip_addresses.is_empty() {
        return Ok(None);
    }
    let shown = |ips: &[IpAddr]| {
        ips.iter()
            .map(|ip| ip.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if host_network(pod) && !policy.host_network_ips {
        return Err(deny(
            "sans",
            reason::IP_NOT_ALLOWED,
            format!(
                "IP SANs {} are not allowed: the pod runs with hostNetwork: true, so its \"pod IPs\" are its node's, shared with every pod and daemon on that node; leave the IPs out (CERTBOOT_INCLUDE_POD_IPS=false), or set hostNetworkIPs: true in the policy entry for signer {}",
                shown(&requested.ip_addresses),
                policy.signer_name
            ),
        ));
    }
    if !policy.pod_ips {
        return Err(deny(
            "sans",
            reason::IP_NOT_ALLOWED,
            format!(
                "IP SANs are not allowed by the policy: {}",
                shown(&requested.ip_addresses)
            ),
        ));
    }
    let ips = pod_ips(pod);
    if ips.is_empty() {
        return Ok(Some("the pod's IPs are not in its status yet (the kubelet publishes them shortly after start)".into()));
    }
    let foreign: Vec<IpAddr> = requested
        .ip_addresses
        .iter()
        .filter(|ip| !ips.contains(ip))
        .copied()
        .collect();
    if !foreign.is_empty() {
        let pod_list: Vec<IpAddr> = ips.into_iter().collect();
        return Err(deny(
            "sans",
            reason::IP_NOT_ALLOWED,
            format!(
                "IP SANs {} are not the pod's IPs ({})",
                shown(&foreign),
                shown(&pod_list)
            ),
        ));
    }
    Ok(None)
}

/// True when the pod shares its node's network namespace (its `status.podIPs` are the node's).
fn host_network(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
}

/// True when `service` selects `pod` (a Service without a selector selects nothing).
pub fn selects(service: &Service, pod: &Pod) -> bool {
    let Some(selector) = service.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return false;
    };
    let labels = pod.metadata.labels.as_ref();
    !selector.is_empty()
        && selector
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// The DNS names of a Service the policy grants: `svc.ns.svc` and `svc.ns.svc.<domain>`, and with
/// `serviceShortNames` also `svc` and `svc.ns`.
pub(crate) fn service_names(service: &str, policy: &SignerPolicy, vars: &Vars<'_>) -> Vec<String> {
    service_suffixes(policy, vars)
        .into_iter()
        .map(|suffix| format!("{service}{suffix}"))
        .collect()
}

/// What follows the Service's name in each granted form (`""` is the bare name).
fn service_suffixes(policy: &SignerPolicy, vars: &Vars<'_>) -> Vec<String> {
    let ns = vars.namespace;
    let mut suffixes = vec![
        format!(".{ns}.svc"),
        format!(".{ns}.svc.{}", vars.cluster_domain),
    ];
    if policy.service_short_names {
        suffixes.extend([String::new(), format!(".{ns}")]);
    }
    suffixes
}

/// The Service a DNS name would belong to in this namespace, if it has a granted shape.
fn service_of<'n>(name: &'n str, policy: &SignerPolicy, vars: &Vars<'_>) -> Option<&'n str> {
    let (first, rest) = name.split_once('.').unwrap_or((name, ""));
    let rest = if rest.is_empty() {
        String::new()
    } else {
        format!(".{rest}")
    };
    service_suffixes(policy, vars)
        .contains(&rest)
        .then_some(first)
}

/// The hint for a refused bare `svc` or `svc.ns` name of a selecting Service.
fn short_name_hint(
    refused: &[&String],
    selecting: &[&str],
    policy: &SignerPolicy,
    vars: &Vars<'_>,
) -> String {
    let ns = vars.namespace;
    let short = refused.iter().any(|name| {
        selecting.iter().any(|svc| {
            name.eq_ignore_ascii_case(svc) || name.eq_ignore_ascii_case(&format!("{svc}.{ns}"))
        })
    });
    if short && policy.service_dns_names && !policy.service_short_names {
        format!("; the short forms <service> and <service>.{ns} are granted only with serviceShortNames: true in the policy entry (ask for <service>.{ns}.svc instead)")
    } else {
        String::new()
    }
}

/// Step 7, DNS SANs. `Ok(Some)`: a name's Service may still be on its way into the cache.
pub(super) fn check_dns(
    csr: &CertificateSigningRequest,
    requested: &Requested,
    facts: &Facts<'_>,
    pod: &Pod,
    vars: &Vars<'_>,
) -> Result<Option<String>, Denial> {
    if requested.dns_names.is_empty() {
        return Ok(None);
    }
    let selecting: Vec<&str> = facts
        .services
        .iter()
        .filter(|s| selects(s, pod))
        .filter_map(|s| s.metadata.name.as_deref())
        .collect();
    let mut allowed = BTreeSet::new();
    if facts.policy.service_dns_names {
        for svc in &selecting {
            allowed.extend(service_names(svc, facts.policy, vars));
        }
    }
    for template in &facts.policy.dns_name_templates {
        if template.contains("{service}") {
            allowed.extend(
                selecting
                    .iter()
                    .filter_map(|svc| vars.expand(template, Some(svc))),
            );
        } else {
            allowed.extend(vars.expand(template, None));
        }
    }
    let allowed: BTreeSet<String> = allowed
        .into_iter()
        .map(|n| n.to_ascii_lowercase())
        .collect();
    let refused: Vec<&String> = requested
        .dns_names
        .iter()
        .filter(|n| !allowed.contains(&n.to_ascii_lowercase()))
        .collect();
    if refused.is_empty() {
        return Ok(None);
    }
    let known: BTreeSet<&str> = facts
        .services
        .iter()
        .filter_map(|s| s.metadata.name.as_deref())
        .collect();
    let age = csr
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| facts.now - t.0.as_second())
        .unwrap_or(0);
    let unknown_service = refused
        .iter()
        .filter_map(|n| service_of(n, facts.policy, vars))
        .find(|svc| !known.contains(svc));
    if let Some(svc) = unknown_service {
        if age < SERVICE_GRACE_SECONDS {
            return Ok(Some(format!(
                "DNS SAN names Service {}/{svc}, which the approver has not seen (yet); waiting up to {SERVICE_GRACE_SECONDS}s for it",
                vars.namespace
            )));
        }
    }
    Err(deny(
        "sans",
        reason::DNS_NOT_ALLOWED,
        format!(
            "DNS SANs {refused:?} are neither names of a Service in {} that selects the pod (selecting: {selecting:?}) nor allowed by the policy's dnsNameTemplates{}",
            vars.namespace,
            short_name_hint(&refused, &selecting, facts.policy, vars)
        ),
    ))
}

/// Step 7, URI SANs.
pub(super) fn check_uris(
    requested: &Requested,
    policy: &SignerPolicy,
    vars: &Vars<'_>,
) -> Result<(), Denial> {
    let allowed: Vec<String> = policy
        .uri_templates
        .iter()
        .filter_map(|t| vars.expand(t, None))
        .collect();
    let refused: Vec<&String> = requested
        .uris
        .iter()
        .filter(|u| !allowed.contains(u))
        .collect();
    if refused.is_empty() {
        Ok(())
    } else {
        Err(deny(
            "sans",
            reason::URI_NOT_ALLOWED,
            format!("URI SANs {refused:?} are not allowed; allowed by the policy's uriTemplates: {allowed:?}"),
        ))
    }
}
