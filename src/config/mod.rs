//! Configuration: every environment variable certboot reads, parsed once into one typed [`Config`].
//!
//! Parsing happens in two steps. `envy` collects the raw strings (so a bad value never turns into a
//! serde message nobody can act on); then each value is validated here, and the first bad one becomes
//! a [`ConfigError`] that names the variable, the value and what is accepted. Nothing in this module
//! touches the network or the output directory, so a bad configuration exits before any side effect.
//!
//! The environment is passed in as an iterator, never read with `std::env::var` inside, so tests
//! never need `set_var`.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use crate::pki::key::KeyAlgorithm;
use crate::timefmt::parse_duration;

/// Where Kubernetes mounts the pod's service-account namespace; the fallback for `POD_NAMESPACE`.
pub const SERVICE_ACCOUNT_NAMESPACE_FILE: &str =
    "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// The smallest `expirationSeconds` the certificates.k8s.io/v1 API accepts.
pub const MIN_EXPIRATION_SECONDS: u32 = 600;

/// The key usages the certificates.k8s.io/v1 API defines.
pub const KNOWN_USAGES: &[&str] = &[
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp signing",
    "microsoft sgc",
    "netscape sgc",
];

/// A configuration problem, reported before any API call or file write (exit code 2).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A required variable is absent or empty.
    #[error("{var} is not set: {hint}")]
    Missing {
        var: &'static str,
        hint: &'static str,
    },
    /// A variable holds a value certboot cannot use.
    #[error("{var}={value:?} is invalid: {reason}; accepted: {accepted}")]
    Invalid {
        var: &'static str,
        value: String,
        reason: String,
        accepted: String,
    },
}

impl ConfigError {
    fn invalid(
        var: &'static str,
        value: &str,
        reason: impl Into<String>,
        accepted: impl Into<String>,
    ) -> Self {
        ConfigError::Invalid {
            var,
            value: value.to_string(),
            reason: reason.into(),
            accepted: accepted.into(),
        }
    }
}

/// Whether certboot exits after the first certificate or keeps renewing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Obtain a certificate once and exit (initContainer).
    Init,
    /// Obtain a certificate, then renew it before it expires for as long as the pod lives.
    Sidecar,
}

/// How log lines are rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per state change.
    Text,
    /// One JSON object per line.
    Json,
}

/// The pod certboot runs in, from the Downward API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodIdentity {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub ips: Vec<IpAddr>,
}

/// What goes into the certificate request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestConfig {
    pub signer_name: String,
    pub common_name: String,
    pub organizations: Vec<String>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    pub uris: Vec<String>,
    pub usages: Vec<String>,
    pub key_algorithm: KeyAlgorithm,
    pub expiration_seconds: Option<u32>,
}

/// Where and how the certificate and key are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputConfig {
    pub dir: PathBuf,
    pub cert_file: String,
    pub key_file: String,
    pub ca_file: String,
    /// A PEM bundle to copy beside the pair as `ca_file`.
    pub ca_bundle: Option<PathBuf>,
    pub key_mode: u32,
}

/// Renewal behaviour in sidecar mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewConfig {
    /// Renew this long before expiry; `None` renews at two thirds of the lifetime.
    pub renew_before: Option<Duration>,
    pub reload_signal: Option<i32>,
    pub reload_process: Option<String>,
    pub delete_csr: bool,
    pub metrics_addr: Option<SocketAddr>,
}

/// certboot's whole configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub mode: Mode,
    pub pod: PodIdentity,
    pub request: RequestConfig,
    pub output: OutputConfig,
    pub renew: RenewConfig,
    /// Overall deadline for obtaining a certificate; `None` waits indefinitely (with progress logs).
    pub timeout: Option<Duration>,
    pub progress_interval: Duration,
    pub log_format: LogFormat,
    pub events: bool,
    pub termination_log: Option<PathBuf>,
    /// Problems that did not stop certboot (e.g. one of two pod IP inputs malformed), logged at start.
    pub warnings: Vec<String>,
}

/// Downward API variables (no prefix).
#[derive(Debug, Default, Deserialize)]
struct DownwardEnv {
    pod_name: Option<String>,
    pod_namespace: Option<String>,
    pod_uid: Option<String>,
    pod_ip: Option<String>,
    pod_ips: Option<String>,
}

/// certboot's own variables, prefix `CERTBOOT_`. All raw strings: validation is ours.
#[derive(Debug, Default, Deserialize)]
struct CertbootEnv {
    mode: Option<String>,
    signer_name: Option<String>,
    common_name: Option<String>,
    organizations: Option<String>,
    dns_names: Option<String>,
    ip_addresses: Option<String>,
    uris: Option<String>,
    include_pod_ips: Option<String>,
    usages: Option<String>,
    key_algorithm: Option<String>,
    expiration_seconds: Option<String>,
    cert_dir: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    ca_file: Option<String>,
    ca_bundle: Option<String>,
    key_mode: Option<String>,
    timeout: Option<String>,
    progress_interval: Option<String>,
    log_format: Option<String>,
    renew_before: Option<String>,
    reload_signal: Option<String>,
    reload_process: Option<String>,
    delete_csr: Option<String>,
    metrics_addr: Option<String>,
    events: Option<String>,
    termination_log: Option<String>,
}

/// Placeholders used by `--dry-run` when the Downward API variables are absent.
pub const PLACEHOLDER_POD: (&str, &str, &str) = (
    "example-pod",
    "default",
    "00000000-0000-0000-0000-000000000000",
);

impl Config {
    /// Parses the configuration from `vars`; `namespace_file` is read only when `POD_NAMESPACE` is unset.
    pub fn from_env<I>(vars: I, namespace_file: &Path) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        Self::parse(vars, namespace_file, false)
    }

    /// Like [`Config::from_env`], but fills a placeholder pod identity where the Downward API
    /// variables are absent (for `--dry-run`).
    pub fn for_dry_run<I>(vars: I, namespace_file: &Path) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        Self::parse(vars, namespace_file, true)
    }

    fn parse<I>(vars: I, namespace_file: &Path, placeholders: bool) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let vars: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .collect();
        // All fields are Option<String>, so envy cannot fail on a value; it can only fail on
        // non-Unicode input, which `std::env::vars` already refuses.
        let downward: DownwardEnv = envy::from_iter(vars.clone()).unwrap_or_default();
        let own: CertbootEnv = envy::prefixed("CERTBOOT_")
            .from_iter(vars)
            .unwrap_or_default();
        let mut warnings = Vec::new();
        let pod = pod_identity(&downward, namespace_file, placeholders, &mut warnings)?;
        let request = request_config(&own, &pod)?;
        Ok(Config {
            mode: parse_mode(own.mode.as_deref())?,
            request,
            output: output_config(&own)?,
            renew: renew_config(&own)?,
            timeout: optional_duration("CERTBOOT_TIMEOUT", own.timeout.as_deref())?,
            progress_interval: optional_duration(
                "CERTBOOT_PROGRESS_INTERVAL",
                own.progress_interval.as_deref(),
            )?
            .unwrap_or(Duration::from_secs(30)),
            log_format: parse_log_format(own.log_format.as_deref())?,
            events: parse_bool("CERTBOOT_EVENTS", own.events.as_deref(), true)?,
            termination_log: parse_termination_log(own.termination_log.as_deref()),
            pod,
            warnings,
        })
    }
}

impl OutputConfig {
    /// The contents of `CERTBOOT_CA_BUNDLE`, when set. Read once at start, so a bundle that
    /// vanished or became unreadable after validation is a configuration error (exit 2).
    pub fn read_ca_bundle(&self) -> Result<Option<Vec<u8>>, ConfigError> {
        let Some(path) = &self.ca_bundle else {
            return Ok(None);
        };
        std::fs::read(path)
            .map(Some)
            .map_err(|e| unreadable_ca_bundle(path, &e))
    }

    /// Reads only the output settings (for `certboot check`, which needs nothing else).
    pub fn from_env<I>(vars: I) -> Result<OutputConfig, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let vars = vars.into_iter().filter(|(_, v)| !v.trim().is_empty());
        let own: CertbootEnv = envy::prefixed("CERTBOOT_")
            .from_iter(vars)
            .unwrap_or_default();
        output_config(&own)
    }
}

fn pod_identity(
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

fn parse_ip_list(var: &'static str, value: &str) -> Result<Vec<IpAddr>, ConfigError> {
    let mut out = Vec::new();
    for item in split_list(value) {
        let ip = IpAddr::from_str(&item).map_err(|_| {
            ConfigError::invalid(
                var,
                value,
                format!("{item:?} is not an IP address"),
                "comma-separated IPv4/IPv6 addresses, e.g. 10.0.0.7,fd00::7",
            )
        })?;
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    Ok(out)
}

fn request_config(env: &CertbootEnv, pod: &PodIdentity) -> Result<RequestConfig, ConfigError> {
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
    let key_algorithm = match env.key_algorithm.as_deref() {
        None => KeyAlgorithm::EcdsaP256,
        Some(v) => KeyAlgorithm::from_str(v.trim()).map_err(|_| {
            ConfigError::invalid(
                "CERTBOOT_KEY_ALGORITHM",
                v,
                "unknown key algorithm",
                KeyAlgorithm::NAMES.join(", "),
            )
        })?,
    };
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
    let Some(value) = value else {
        return Ok(default_usages(signer, algorithm));
    };
    let mut out = Vec::new();
    for item in split_list(value) {
        let usage = item.to_ascii_lowercase();
        if !KNOWN_USAGES.contains(&usage.as_str()) {
            return Err(ConfigError::invalid(
                "CERTBOOT_USAGES",
                value,
                format!("{item:?} is not a key usage the API knows"),
                KNOWN_USAGES.join(", "),
            ));
        }
        if !out.contains(&usage) {
            out.push(usage);
        }
    }
    Ok(out)
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
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let mut out: Vec<String> = Vec::new();
    for item in split_list(value) {
        let name = item.to_ascii_lowercase();
        let bare = name.strip_prefix("*.").unwrap_or(&name);
        if !is_dns_subdomain(bare) {
            return Err(ConfigError::invalid(
                "CERTBOOT_DNS_NAMES",
                value,
                format!("{item:?} is not a DNS name"),
                "comma-separated DNS names (letters, digits, '-', '.'; optional leading '*.'), e.g. my-svc.my-ns.svc",
            ));
        }
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

fn uris(value: Option<&str>) -> Result<Vec<String>, ConfigError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for item in split_list(value) {
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
        if !scheme_ok || !item.chars().all(|c| c.is_ascii_graphic()) {
            return Err(ConfigError::invalid(
                "CERTBOOT_URIS",
                value,
                format!("{item:?} is not an absolute URI"),
                "comma-separated absolute URIs, e.g. spiffe://cluster.local/ns/default/sa/web",
            ));
        }
        if !out.contains(&item) {
            out.push(item);
        }
    }
    Ok(out)
}

fn output_config(env: &CertbootEnv) -> Result<OutputConfig, ConfigError> {
    let dir = PathBuf::from(env.cert_dir.as_deref().map(str::trim).unwrap_or("/certs"));
    if !dir.is_absolute() {
        return Err(ConfigError::invalid(
            "CERTBOOT_CERT_DIR",
            &dir.display().to_string(),
            "not an absolute path",
            "an absolute directory path, e.g. /certs",
        ));
    }
    let cert_file = file_name("CERTBOOT_CERT_FILE", env.cert_file.as_deref(), "cert.pem")?;
    let key_file = file_name("CERTBOOT_KEY_FILE", env.key_file.as_deref(), "key.pem")?;
    let ca_file = file_name("CERTBOOT_CA_FILE", env.ca_file.as_deref(), "ca.pem")?;
    let distinct: BTreeSet<&String> = [&cert_file, &key_file, &ca_file].into_iter().collect();
    if distinct.len() != 3 {
        return Err(ConfigError::invalid(
            "CERTBOOT_KEY_FILE",
            &key_file,
            "CERTBOOT_CERT_FILE, CERTBOOT_KEY_FILE and CERTBOOT_CA_FILE must differ",
            "three different file names",
        ));
    }
    Ok(OutputConfig {
        dir,
        cert_file,
        key_file,
        ca_file,
        ca_bundle: ca_bundle(env.ca_bundle.as_deref())?,
        key_mode: key_mode(env.key_mode.as_deref())?,
    })
}

fn file_name(var: &'static str, value: Option<&str>, default: &str) -> Result<String, ConfigError> {
    let name = value.map(str::trim).unwrap_or(default);
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && !name.contains('/')
        && name.len() <= 255
        && name.chars().all(|c| c.is_ascii_graphic());
    if ok {
        Ok(name.to_string())
    } else {
        Err(ConfigError::invalid(
            var,
            name,
            "not a plain file name",
            "a file name without '/' that does not start with '.', e.g. cert.pem",
        ))
    }
}

/// What `CERTBOOT_CA_BUNDLE` accepts.
const CA_BUNDLE_ACCEPTED: &str = "the path of a readable PEM file";

fn ca_bundle(value: Option<&str>) -> Result<Option<PathBuf>, ConfigError> {
    let Some(value) = value else { return Ok(None) };
    let path = PathBuf::from(value.trim());
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_file() => Ok(Some(path)),
        Ok(_) => Err(ConfigError::invalid(
            "CERTBOOT_CA_BUNDLE",
            value,
            "not a regular file",
            CA_BUNDLE_ACCEPTED,
        )),
        Err(e) => Err(unreadable_ca_bundle(&path, &e)),
    }
}

fn unreadable_ca_bundle(path: &Path, err: &std::io::Error) -> ConfigError {
    ConfigError::invalid(
        "CERTBOOT_CA_BUNDLE",
        &path.display().to_string(),
        format!("cannot read it ({err})"),
        CA_BUNDLE_ACCEPTED,
    )
}

fn key_mode(value: Option<&str>) -> Result<u32, ConfigError> {
    const ACCEPTED: &[u32] = &[0o600, 0o640, 0o400, 0o440];
    let Some(value) = value else { return Ok(0o600) };
    let accepted =
        "0600 (default), 0640 (group-readable, for apps running under fsGroup), 0400 or 0440";
    let mode = u32::from_str_radix(value.trim().trim_start_matches("0o"), 8).map_err(|_| {
        ConfigError::invalid(
            "CERTBOOT_KEY_MODE",
            value,
            "not an octal file mode",
            accepted,
        )
    })?;
    if ACCEPTED.contains(&mode) {
        Ok(mode)
    } else {
        Err(ConfigError::invalid(
            "CERTBOOT_KEY_MODE",
            value,
            "would make the key world-readable or writable",
            accepted,
        ))
    }
}

fn renew_config(env: &CertbootEnv) -> Result<RenewConfig, ConfigError> {
    let reload_signal = match env.reload_signal.as_deref() {
        None => None,
        Some(v) => Some(crate::renew::reload::parse_signal(v).ok_or_else(|| {
            ConfigError::invalid(
                "CERTBOOT_RELOAD_SIGNAL",
                v,
                "unknown signal",
                crate::renew::reload::SIGNAL_NAMES,
            )
        })?),
    };
    let reload_process = env.reload_process.as_deref().map(|s| s.trim().to_string());
    if reload_signal.is_some() != reload_process.is_some() {
        let (var, value) = match &reload_process {
            Some(p) => ("CERTBOOT_RELOAD_PROCESS", p.clone()),
            None => (
                "CERTBOOT_RELOAD_SIGNAL",
                env.reload_signal.clone().unwrap_or_default(),
            ),
        };
        return Err(ConfigError::invalid(
            var,
            &value,
            "CERTBOOT_RELOAD_SIGNAL and CERTBOOT_RELOAD_PROCESS go together",
            "set both (e.g. SIGHUP and nginx) or neither",
        ));
    }
    let metrics_addr = match env.metrics_addr.as_deref() {
        None => None,
        Some(v) => Some(SocketAddr::from_str(v.trim()).map_err(|_| {
            ConfigError::invalid(
                "CERTBOOT_METRICS_ADDR",
                v,
                "not a socket address",
                "IP:PORT, e.g. 0.0.0.0:9402 or [::]:9402",
            )
        })?),
    };
    Ok(RenewConfig {
        renew_before: optional_duration("CERTBOOT_RENEW_BEFORE", env.renew_before.as_deref())?,
        reload_signal,
        reload_process,
        delete_csr: parse_bool("CERTBOOT_DELETE_CSR", env.delete_csr.as_deref(), false)?,
        metrics_addr,
    })
}

fn parse_mode(value: Option<&str>) -> Result<Mode, ConfigError> {
    match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("init") => Ok(Mode::Init),
        Some("sidecar") => Ok(Mode::Sidecar),
        Some(_) => Err(ConfigError::invalid(
            "CERTBOOT_MODE",
            value.unwrap_or_default(),
            "unknown mode",
            "init (default), sidecar",
        )),
    }
}

fn parse_log_format(value: Option<&str>) -> Result<LogFormat, ConfigError> {
    match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("text") => Ok(LogFormat::Text),
        Some("json") => Ok(LogFormat::Json),
        Some(_) => Err(ConfigError::invalid(
            "CERTBOOT_LOG_FORMAT",
            value.unwrap_or_default(),
            "unknown format",
            "text (default), json",
        )),
    }
}

/// `CERTBOOT_TERMINATION_LOG`: a path, or off/none/false; default `/dev/termination-log`.
pub fn parse_termination_log(value: Option<&str>) -> Option<PathBuf> {
    match value.map(str::trim) {
        None | Some("") => Some(PathBuf::from("/dev/termination-log")),
        Some("off") | Some("none") | Some("false") => None,
        Some(path) => Some(PathBuf::from(path)),
    }
}

/// Parses a boolean variable: true/false, 1/0, yes/no, on/off.
pub fn parse_bool(
    var: &'static str,
    value: Option<&str>,
    default: bool,
) -> Result<bool, ConfigError> {
    let Some(value) = value else {
        return Ok(default);
    };
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::invalid(
            var,
            value,
            "not a boolean",
            "true or false",
        )),
    }
}

fn optional_duration(
    var: &'static str,
    value: Option<&str>,
) -> Result<Option<Duration>, ConfigError> {
    let Some(value) = value else { return Ok(None) };
    let d = parse_duration(value).ok_or_else(|| {
        ConfigError::invalid(
            var,
            value,
            "not a duration",
            "a duration such as 90s, 5m, 1h30m, or plain seconds",
        )
    })?;
    if d.is_zero() {
        return Err(ConfigError::invalid(
            var,
            value,
            "must be longer than zero",
            "a positive duration such as 90s or 5m",
        ));
    }
    Ok(Some(d))
}

/// Splits a comma-separated list, trimming blanks and dropping empty items.
fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn is_dns_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-')
}

fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty() && name.len() <= 253 && name.split('.').all(is_dns_label)
}

fn validate_dns_subdomain(var: &'static str, value: &str) -> Result<(), ConfigError> {
    if is_dns_subdomain(value) {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            var,
            value,
            "not a Kubernetes object name",
            "a DNS subdomain (lowercase letters, digits, '-', '.')",
        ))
    }
}

fn validate_dns_label(var: &'static str, value: &str) -> Result<(), ConfigError> {
    if is_dns_label(value) {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            var,
            value,
            "not a namespace name",
            "a DNS label (lowercase letters, digits, '-', at most 63)",
        ))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("POD_NAME", "web-0"),
            ("POD_NAMESPACE", "shop"),
            ("POD_UID", "6f1d3c52-2b0e-4b7a-9d4e-0c8f1a2b3c4d"),
            ("POD_IP", "10.1.2.3"),
            ("CERTBOOT_SIGNER_NAME", "example.com/web"),
        ]
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_env(env(pairs), Path::new("/nonexistent/namespace"))
    }

    fn with(extra: &[(&'static str, &'static str)]) -> Result<Config, ConfigError> {
        let mut pairs = base();
        pairs.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
        pairs.extend_from_slice(extra);
        parse(&pairs)
    }

    fn invalid_var(result: Result<Config, ConfigError>) -> &'static str {
        match result {
            Err(ConfigError::Invalid { var, .. }) | Err(ConfigError::Missing { var, .. }) => var,
            Ok(_) => panic!("expected a configuration error"),
        }
    }

    #[test]
    fn defaults_are_documented_values() {
        let c = with(&[]).unwrap();
        assert_eq!(c.mode, Mode::Init);
        assert_eq!(c.request.common_name, "web-0.shop");
        assert_eq!(c.request.key_algorithm, KeyAlgorithm::EcdsaP256);
        assert_eq!(c.request.usages, vec!["digital signature", "server auth"]);
        assert_eq!(
            c.request.ip_addresses,
            vec!["10.1.2.3".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(c.output.dir, PathBuf::from("/certs"));
        assert_eq!(
            (c.output.cert_file.as_str(), c.output.key_file.as_str()),
            ("cert.pem", "key.pem")
        );
        assert_eq!(c.output.key_mode, 0o600);
        assert_eq!(c.timeout, None);
        assert_eq!(c.request.expiration_seconds, None);
        assert!(c.events);
        assert_eq!(
            c.termination_log,
            Some(PathBuf::from("/dev/termination-log"))
        );
    }

    #[test]
    fn client_signer_defaults_to_client_auth_and_rsa_adds_key_encipherment() {
        let c = with(&[
            (
                "CERTBOOT_SIGNER_NAME",
                "kubernetes.io/kube-apiserver-client",
            ),
            ("CERTBOOT_KEY_ALGORITHM", "rsa-2048"),
        ])
        .unwrap();
        assert_eq!(
            c.request.usages,
            vec!["digital signature", "key encipherment", "client auth"]
        );
    }

    #[test]
    fn missing_signer_names_the_variable() {
        let mut pairs = base();
        pairs.retain(|(k, _)| *k != "CERTBOOT_SIGNER_NAME");
        let err = parse(&pairs).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("CERTBOOT_SIGNER_NAME is not set"),
            "{err}"
        );
    }

    #[test]
    fn bad_values_name_variable_value_and_accepted_forms() {
        let err = with(&[("CERTBOOT_KEY_ALGORITHM", "dsa")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("CERTBOOT_KEY_ALGORITHM=\"dsa\""), "{err}");
        assert!(
            err.contains("ecdsa-p256") && err.contains("rsa-4096"),
            "{err}"
        );
        let err = with(&[("CERTBOOT_EXPIRATION_SECONDS", "599")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("599") && err.contains("600"), "{err}");
        assert_eq!(
            invalid_var(with(&[("CERTBOOT_IP_ADDRESSES", "10.0.0.300")])),
            "CERTBOOT_IP_ADDRESSES"
        );
        assert_eq!(
            invalid_var(with(&[("CERTBOOT_DNS_NAMES", "bad_name.svc")])),
            "CERTBOOT_DNS_NAMES"
        );
        assert_eq!(
            invalid_var(with(&[("CERTBOOT_USAGES", "server auth,teleport")])),
            "CERTBOOT_USAGES"
        );
        assert_eq!(
            invalid_var(with(&[("CERTBOOT_TIMEOUT", "soon")])),
            "CERTBOOT_TIMEOUT"
        );
        assert_eq!(
            invalid_var(with(&[("CERTBOOT_KEY_MODE", "0644")])),
            "CERTBOOT_KEY_MODE"
        );
        assert_eq!(
            invalid_var(with(&[("CERTBOOT_CERT_DIR", "certs")])),
            "CERTBOOT_CERT_DIR"
        );
        assert_eq!(
            invalid_var(with(&[("CERTBOOT_KEY_FILE", "../key.pem")])),
            "CERTBOOT_KEY_FILE"
        );
        assert_eq!(
            invalid_var(with(&[("CERTBOOT_MODE", "daemon")])),
            "CERTBOOT_MODE"
        );
        assert_eq!(
            invalid_var(with(&[("CERTBOOT_SIGNER_NAME", "no-slash")])),
            "CERTBOOT_SIGNER_NAME"
        );
        assert_eq!(
            invalid_var(with(&[("CERTBOOT_URIS", "not a uri")])),
            "CERTBOOT_URIS"
        );
        assert_eq!(
            invalid_var(with(&[("CERTBOOT_RELOAD_SIGNAL", "SIGHUP")])),
            "CERTBOOT_RELOAD_SIGNAL"
        );
        assert_eq!(invalid_var(with(&[("POD_UID", "x")])), "POD_UID");
    }

    #[test]
    fn expiration_of_600_is_accepted() {
        assert_eq!(
            with(&[("CERTBOOT_EXPIRATION_SECONDS", "600")])
                .unwrap()
                .request
                .expiration_seconds,
            Some(600)
        );
    }

    #[test]
    fn pod_ips_win_over_pod_ip_and_one_bad_input_is_a_warning() {
        let c = with(&[("POD_IPS", "10.1.2.3,fd00::3")]).unwrap();
        assert_eq!(c.pod.ips.len(), 2);
        let c = with(&[("POD_IPS", "garbage")]).unwrap();
        assert_eq!(c.pod.ips, vec!["10.1.2.3".parse::<IpAddr>().unwrap()]);
        assert_eq!(c.warnings.len(), 1);
        let err = with(&[("POD_IPS", "garbage"), ("POD_IP", "also-garbage")]).unwrap_err();
        assert!(err.to_string().contains("POD_IPS"), "{err}");
    }

    #[test]
    fn pod_ips_can_be_left_out_of_sans() {
        let c = with(&[("CERTBOOT_INCLUDE_POD_IPS", "false")]).unwrap();
        assert!(c.request.ip_addresses.is_empty());
    }

    #[test]
    fn namespace_falls_back_to_service_account_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("namespace");
        std::fs::write(&file, "payments\n").unwrap();
        let mut pairs = base();
        pairs.retain(|(k, _)| *k != "POD_NAMESPACE");
        let c = Config::from_env(env(&pairs), &file).unwrap();
        assert_eq!(c.pod.namespace, "payments");
        let err = Config::from_env(env(&pairs), Path::new("/nonexistent")).unwrap_err();
        assert!(
            err.to_string().starts_with("POD_NAMESPACE is not set"),
            "{err}"
        );
    }

    #[test]
    fn dry_run_uses_placeholders_but_still_needs_a_signer() {
        let c = Config::for_dry_run(
            env(&[("CERTBOOT_SIGNER_NAME", "example.com/x")]),
            Path::new("/nonexistent"),
        )
        .unwrap();
        assert_eq!(c.pod.name, PLACEHOLDER_POD.0);
        assert!(Config::for_dry_run(env(&[]), Path::new("/nonexistent")).is_err());
    }

    #[test]
    fn blank_values_count_as_unset() {
        let c = with(&[("CERTBOOT_TIMEOUT", "  "), ("CERTBOOT_KEY_ALGORITHM", "")]).unwrap();
        assert_eq!(c.timeout, None);
        assert_eq!(c.request.key_algorithm, KeyAlgorithm::EcdsaP256);
    }

    #[test]
    fn reload_settings_go_together_and_parse() {
        let c = with(&[
            ("CERTBOOT_RELOAD_SIGNAL", "SIGHUP"),
            ("CERTBOOT_RELOAD_PROCESS", "nginx"),
        ])
        .unwrap();
        assert_eq!(c.renew.reload_signal, Some(libc::SIGHUP));
        assert_eq!(c.renew.reload_process.as_deref(), Some("nginx"));
    }
}
