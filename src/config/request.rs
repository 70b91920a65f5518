//! The request section: signer, subject, SANs, usages, key algorithm and lifetime.

use std::str::FromStr;

use super::pod::parse_ip_list;
use super::value::{is_dns_subdomain, parse_bool, parse_list, parse_optional, split_list};
use super::{
    CertbootEnv, ConfigError, PodIdentity, RequestConfig, KNOWN_USAGES, MIN_EXPIRATION_SECONDS,
};
use certboot_core::pki::key::KeyAlgorithm;

pub(super) fn request_config(
    env: &CertbootEnv,
    pod: &PodIdentity,
) -> Result<RequestConfig, ConfigError> {
    let signer_name = env
        .signer_name
        .as_deref()
        .map(str::trim)
        .unwrap_or_default()
        .to_string();
    if signer_name.is_empty() {
        return Err(ConfigError::Missing {
            var: "CERTBOOT_SIGNER_NAME",
            hint: "set the signer that should issue the certificate, e.g. kubernetes.io/kube-apiserver-client or example.com/my-signer",
        });
    }
    validate_signer_name(&signer_name)?;
    let key_algorithm = parse_optional(
        "CERTBOOT_KEY_ALGORITHM",
        env.key_algorithm.as_deref(),
        "unknown key algorithm",
        &KeyAlgorithm::NAMES.join(", "),
        |v| KeyAlgorithm::from_str(v).ok(),
    )?
    .unwrap_or(KeyAlgorithm::EcdsaP256);
    let common_name = env
        .common_name
        .as_deref()
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| format!("{}.{}", pod.name, pod.namespace));
    if common_name.len() > 64 {
        return Err(ConfigError::invalid(
            "CERTBOOT_COMMON_NAME",
            &common_name,
            "longer than 64 characters (X.509 upper bound)",
            "a name of at most 64 characters",
        ));
    }
    let mut ip_addresses = match env.ip_addresses.as_deref() {
        Some(v) => parse_ip_list("CERTBOOT_IP_ADDRESSES", v)?,
        None => Vec::new(),
    };
    if parse_bool(
        "CERTBOOT_INCLUDE_POD_IPS",
        env.include_pod_ips.as_deref(),
        true,
    )? {
        for ip in &pod.ips {
            if !ip_addresses.contains(ip) {
                ip_addresses.push(*ip);
            }
        }
    }
    Ok(RequestConfig {
        usages: usages(env.usages.as_deref(), &signer_name, key_algorithm)?,
        expiration_seconds: expiration(env.expiration_seconds.as_deref())?,
        organizations: split_list(env.organizations.as_deref().unwrap_or_default()),
        dns_names: dns_names(env.dns_names.as_deref())?,
        uris: uris(env.uris.as_deref())?,
        signer_name,
        common_name,
        ip_addresses,
        key_algorithm,
    })
}

fn validate_signer_name(value: &str) -> Result<(), ConfigError> {
    let accepted = "a qualified name <domain>/<path>, e.g. kubernetes.io/kube-apiserver-client or example.com/my-signer";
    let Some((domain, path)) = value.split_once('/') else {
        return Err(ConfigError::invalid(
            "CERTBOOT_SIGNER_NAME",
            value,
            "no '/' between domain and path",
            accepted,
        ));
    };
    let domain_ok = is_dns_subdomain(domain) && domain.contains('.');
    let path_ok =
        !path.is_empty() && path.len() <= 512 && path.chars().all(|c| c.is_ascii_graphic());
    if domain_ok && path_ok {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            "CERTBOOT_SIGNER_NAME",
            value,
            "not a valid signer name",
            accepted,
        ))
    }
}

/// Default usages per signer, as the API permits them: client auth for the API server's client
/// signers, server auth otherwise; key encipherment only for RSA keys (it means nothing for ECDSA/Ed25519).
pub fn default_usages(signer_name: &str, algorithm: KeyAlgorithm) -> Vec<String> {
    let auth = match signer_name {
        "kubernetes.io/kube-apiserver-client" | "kubernetes.io/kube-apiserver-client-kubelet" => {
            "client auth"
        }
        _ => "server auth",
    };
    let mut usages = vec!["digital signature".to_string()];
    if algorithm.is_rsa() {
        usages.push("key encipherment".to_string());
    }
    usages.push(auth.to_string());
    usages
}

fn usages(
    value: Option<&str>,
    signer: &str,
    algorithm: KeyAlgorithm,
) -> Result<Vec<String>, ConfigError> {
    if value.is_none() {
        return Ok(default_usages(signer, algorithm));
    }
    let accepted = KNOWN_USAGES.join(", ");
    parse_list(
        "CERTBOOT_USAGES",
        value,
        "a key usage the API knows",
        &accepted,
        |item| {
            let usage = item.to_ascii_lowercase();
            KNOWN_USAGES.contains(&usage.as_str()).then_some(usage)
        },
    )
}

fn expiration(value: Option<&str>) -> Result<Option<u32>, ConfigError> {
    let Some(value) = value else { return Ok(None) };
    let accepted = "a whole number of seconds, at least 600 (the API minimum)";
    let seconds: u32 = value.trim().parse().map_err(|_| {
        ConfigError::invalid(
            "CERTBOOT_EXPIRATION_SECONDS",
            value,
            "not a whole number",
            accepted,
        )
    })?;
    if seconds < MIN_EXPIRATION_SECONDS {
        return Err(ConfigError::invalid(
            "CERTBOOT_EXPIRATION_SECONDS",
            value,
            "below the API minimum of 600",
            accepted,
        ));
    }
    Ok(Some(seconds))
}

fn dns_names(value: Option<&str>) -> Result<Vec<String>, ConfigError> {
    let accepted = "comma-separated DNS names (letters, digits, '-', '.'; optional leading '*.'), e.g. my-svc.my-ns.svc";
    parse_list(
        "CERTBOOT_DNS_NAMES",
        value,
        "a DNS name",
        accepted,
        |item| {
            let name = item.to_ascii_lowercase();
            let bare = name.strip_prefix("*.").unwrap_or(&name);
            is_dns_subdomain(bare).then_some(name)
        },
    )
}

fn uris(value: Option<&str>) -> Result<Vec<String>, ConfigError> {
    let accepted = "comma-separated absolute URIs, e.g. spiffe://cluster.local/ns/default/sa/web";
    parse_list(
        "CERTBOOT_URIS",
        value,
        "an absolute URI",
        accepted,
        |item| is_absolute_uri(item).then(|| item.to_string()),
    )
}

fn is_absolute_uri(item: &str) -> bool {
    let scheme_ok = item
        .split_once(':')
        .map(|(scheme, rest)| {
            !rest.is_empty()
                && scheme
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        })
        .unwrap_or(false);
    scheme_ok && item.chars().all(|c| c.is_ascii_graphic())
}
