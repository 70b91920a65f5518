//! The pod section: the Downward API variables (`POD_NAME`, `POD_NAMESPACE`, `POD_UID`, `POD_IPS`,
//! `POD_IP`), with the service account's namespace file as the namespace fallback.

use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;

use super::value::{parse_list, validate_dns_label, validate_dns_subdomain};
use super::{ConfigError, DownwardEnv, PodIdentity, PLACEHOLDER_POD};

pub(super) fn pod_identity(
    env: &DownwardEnv,
    namespace_file: &Path,
    placeholders: bool,
    warnings: &mut Vec<String>,
) -> Result<PodIdentity, ConfigError> {
    let (placeholder_name, placeholder_ns, placeholder_uid) = PLACEHOLDER_POD;
    let name = match (&env.pod_name, placeholders) {
        (Some(n), _) => n.trim().to_string(),
        (None, true) => placeholder_name.to_string(),
        (None, false) => {
            return Err(ConfigError::Missing {
                var: "POD_NAME",
                hint: "add it from the Downward API: env POD_NAME valueFrom.fieldRef.fieldPath metadata.name",
            })
        }
    };
    validate_dns_subdomain("POD_NAME", &name)?;
    let namespace = match &env.pod_namespace {
        Some(ns) => ns.trim().to_string(),
        None => match std::fs::read_to_string(namespace_file) {
            Ok(ns) if !ns.trim().is_empty() => ns.trim().to_string(),
            _ if placeholders => placeholder_ns.to_string(),
            _ => {
                return Err(ConfigError::Missing {
                    var: "POD_NAMESPACE",
                    hint: "add it from the Downward API (fieldPath metadata.namespace) or mount the service account token",
                })
            }
        },
    };
    validate_dns_label("POD_NAMESPACE", &namespace)?;
    let uid = match (&env.pod_uid, placeholders) {
        (Some(u), _) => u.trim().to_string(),
        (None, true) => placeholder_uid.to_string(),
        (None, false) => {
            return Err(ConfigError::Missing {
                var: "POD_UID",
                hint: "add it from the Downward API: env POD_UID valueFrom.fieldRef.fieldPath metadata.uid",
            })
        }
    };
    validate_uid(&uid)?;
    let ips = pod_ips(env.pod_ips.as_deref(), env.pod_ip.as_deref(), warnings)?;
    Ok(PodIdentity {
        name,
        namespace,
        uid,
        ips,
    })
}

/// `POD_IPS` (status.podIPs, comma-separated) wins; `POD_IP` is the fallback. One malformed input
/// is a warning when the other is good; both malformed is an error.
fn pod_ips(
    ips: Option<&str>,
    ip: Option<&str>,
    warnings: &mut Vec<String>,
) -> Result<Vec<IpAddr>, ConfigError> {
    let parsed_ips = ips.map(|v| parse_ip_list("POD_IPS", v));
    let parsed_ip = ip.map(|v| parse_ip_list("POD_IP", v));
    match (parsed_ips, parsed_ip) {
        (Some(Ok(list)), _) | (None, Some(Ok(list))) => Ok(list),
        (None, None) => Ok(Vec::new()),
        (Some(Err(e)), Some(Ok(list))) => {
            warnings.push(format!("{e}; using POD_IP instead"));
            Ok(list)
        }
        (Some(Err(e)), _) | (None, Some(Err(e))) => Err(e),
    }
}

/// What IP lists accept.
const IP_LIST_ACCEPTED: &str = "comma-separated IPv4/IPv6 addresses, e.g. 10.0.0.7,fd00::7";

pub(super) fn parse_ip_list(var: &'static str, value: &str) -> Result<Vec<IpAddr>, ConfigError> {
    parse_list(
        var,
        Some(value),
        "an IP address",
        IP_LIST_ACCEPTED,
        |item| IpAddr::from_str(item).ok(),
    )
}

fn validate_uid(value: &str) -> Result<(), ConfigError> {
    let ok = value.len() >= 6
        && value.len() <= 64
        && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            "POD_UID",
            value,
            "not a pod UID",
            "the pod's metadata.uid, e.g. 6f1d3c52-2b0e-4b7a-9d4e-0c8f1a2b3c4d",
        ))
    }
}
