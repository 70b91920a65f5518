//! The controller's environment: where its policy is, who it is (for the Lease), where it serves
//! health and metrics, how it logs. Parsed once; a bad value exits 2 naming the variable.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use certboot_core::timefmt::parse_duration;
use certboot_core::{config_error::ConfigError, logging::LogFormat};

/// Where the approver's policy is read from by default (a mounted ConfigMap).
pub const DEFAULT_POLICY: &str = "/etc/certboot/policy/policy.json";
/// The default Lease name.
pub const DEFAULT_LEASE: &str = "certboot-controller";
/// The default health and metrics address.
pub const DEFAULT_HEALTH_ADDR: &str = "0.0.0.0:9402";

/// The controller's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub policy: PathBuf,
    /// This replica's identity in the Lease (its pod name).
    pub identity: String,
    /// The namespace of the Lease (the controller's own).
    pub namespace: String,
    pub leader_election: bool,
    pub lease_name: String,
    pub lease_duration: Duration,
    /// `/healthz`, `/readyz` and `/metrics`; `None`: off.
    pub health_addr: Option<SocketAddr>,
    pub log_format: LogFormat,
    /// The signer: off when no signer name is configured.
    pub signing: Option<Signing>,
}

/// The signer's settings (`CERTBOOT_SIGNER_NAMES` turns it on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signing {
    pub signer_names: Vec<String>,
    /// The mounted `kubernetes.io/tls` Secret of the CA.
    pub ca_dir: PathBuf,
    /// Lifetime when a CSR asks for none.
    pub default_lifetime: Duration,
    /// The most any certificate gets.
    pub max_lifetime: Duration,
    /// Namespaces that get the ConfigMap `certboot-ca`.
    pub trust_namespaces: Vec<String>,
}

impl Settings {
    /// Reads the settings from `vars`; `namespace_file` is the service account's namespace file.
    pub fn from_env(
        vars: impl IntoIterator<Item = (String, String)>,
        namespace_file: &Path,
    ) -> Result<Settings, ConfigError> {
        let env: HashMap<String, String> = vars
            .into_iter()
            .filter(|(k, v)| {
                !v.trim().is_empty() && (k.starts_with("CERTBOOT_") || k.starts_with("POD_"))
            })
            .collect();
        let get = |k: &str| env.get(k).map(|v| v.trim().to_string());
        let namespace = match get("POD_NAMESPACE") {
            Some(ns) => ns,
            None => std::fs::read_to_string(namespace_file)
                .map(|s| s.trim().to_string())
                .ok()
                .filter(|s| !s.is_empty())
                .ok_or(ConfigError::Missing {
                    var: "POD_NAMESPACE",
                    hint: "set it from the Downward API (fieldRef metadata.namespace); the Lease lives in this namespace",
                })?,
        };
        let identity = get("POD_NAME").ok_or(ConfigError::Missing {
            var: "POD_NAME",
            hint: "set it from the Downward API (fieldRef metadata.name); it names this replica in the Lease",
        })?;
        let leader_election = match get("CERTBOOT_LEADER_ELECTION").as_deref() {
            None | Some("true") => true,
            Some("false") => false,
            Some(other) => {
                return Err(invalid(
                    "CERTBOOT_LEADER_ELECTION",
                    other,
                    "not a boolean",
                    "true or false",
                ))
            }
        };
        let lease_duration = match get("CERTBOOT_LEASE_DURATION") {
            None => Duration::from_secs(8),
            Some(v) => parse_duration(&v)
                .filter(|d| (Duration::from_secs(4)..=Duration::from_secs(300)).contains(d))
                .ok_or_else(|| {
                    invalid(
                        "CERTBOOT_LEASE_DURATION",
                        &v,
                        "not a duration between 4s and 5m",
                        "e.g. 8s, 15s",
                    )
                })?,
        };
        let health_addr = match get("CERTBOOT_HEALTH_ADDR").as_deref() {
            Some("off") => None,
            value => {
                let text = value.unwrap_or(DEFAULT_HEALTH_ADDR);
                Some(text.parse().map_err(|_| {
                    invalid(
                        "CERTBOOT_HEALTH_ADDR",
                        text,
                        "not an address",
                        "IP:port, e.g. 0.0.0.0:9402, or off",
                    )
                })?)
            }
        };
        let log_format = match get("CERTBOOT_LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(invalid(
                    "CERTBOOT_LOG_FORMAT",
                    other,
                    "unknown format",
                    "text or json",
                ))
            }
        };
        let signing = signing(&get)?;
        Ok(Settings {
            signing,
            policy: get("CERTBOOT_POLICY")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_POLICY)),
            identity,
            namespace,
            leader_election,
            lease_name: get("CERTBOOT_LEASE_NAME").unwrap_or_else(|| DEFAULT_LEASE.to_string()),
            lease_duration,
            health_addr,
            log_format,
        })
    }
}

/// The default directory of the CA Secret.
pub const DEFAULT_CA_DIR: &str = "/etc/certboot/ca";

fn signing(get: &impl Fn(&str) -> Option<String>) -> Result<Option<Signing>, ConfigError> {
    let list = |var: &str| -> Vec<String> {
        get(var)
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    };
    let signer_names = list("CERTBOOT_SIGNER_NAMES");
    if signer_names.is_empty() {
        return Ok(None);
    }
    let lifetime = |var: &'static str, default: Duration| -> Result<Duration, ConfigError> {
        match get(var) {
            None => Ok(default),
            Some(v) => parse_duration(&v)
                .filter(|d| {
                    (Duration::from_secs(600)..=Duration::from_secs(10 * 365 * 86400)).contains(d)
                })
                .ok_or_else(|| {
                    invalid(
                        var,
                        &v,
                        "not a duration between 10m and 10 years",
                        "e.g. 24h, 30d",
                    )
                }),
        }
    };
    let default_lifetime = lifetime("CERTBOOT_SIGNER_DURATION", Duration::from_secs(30 * 86400))?;
    let max_lifetime = lifetime(
        "CERTBOOT_SIGNER_MAX_DURATION",
        Duration::from_secs(30 * 86400),
    )?;
    Ok(Some(Signing {
        signer_names,
        ca_dir: get("CERTBOOT_SIGNER_CA_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CA_DIR)),
        default_lifetime: default_lifetime.min(max_lifetime),
        max_lifetime,
        trust_namespaces: list("CERTBOOT_TRUST_NAMESPACES"),
    }))
}

fn invalid(var: &'static str, value: &str, reason: &str, accepted: &str) -> ConfigError {
    ConfigError::Invalid {
        var,
        value: value.to_string(),
        reason: reason.to_string(),
        accepted: accepted.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_with_the_downward_api_inputs() {
        let s = Settings::from_env(
            env(&[("POD_NAME", "c-1"), ("POD_NAMESPACE", "certboot-system")]),
            Path::new("/nonexistent"),
        )
        .unwrap();
        assert_eq!(s.policy, PathBuf::from(DEFAULT_POLICY));
        assert!(s.leader_election);
        assert_eq!(s.lease_name, DEFAULT_LEASE);
        assert_eq!(s.lease_duration, Duration::from_secs(8));
        assert_eq!(s.health_addr, Some(DEFAULT_HEALTH_ADDR.parse().unwrap()));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let base = [("POD_NAME", "c-1"), ("POD_NAMESPACE", "x")];
        for (var, value) in [
            ("CERTBOOT_LEADER_ELECTION", "yes"),
            ("CERTBOOT_LEASE_DURATION", "1s"),
            ("CERTBOOT_HEALTH_ADDR", "localhost"),
            ("CERTBOOT_LOG_FORMAT", "xml"),
        ] {
            let mut pairs = base.to_vec();
            pairs.push((var, value));
            let err = Settings::from_env(env(&pairs), Path::new("/nonexistent")).unwrap_err();
            assert!(err.to_string().contains(var), "{err}");
        }
        let err = Settings::from_env(env(&[("POD_NAMESPACE", "x")]), Path::new("/nonexistent"))
            .unwrap_err();
        assert!(err.to_string().contains("POD_NAME"), "{err}");
    }
}
