//! Configuration: every environment variable certboot reads, parsed once into one typed [`Config`].
//!
//! Parsing happens in two steps. `envy` collects the raw strings (so a bad value never turns into a
//! serde message nobody can act on); then each value is validated here, and the first bad one becomes
//! a [`ConfigError`] that names the variable, the value and what is accepted. Nothing in this module
//! touches the network or the output directory, so a bad configuration exits before any side effect.
//!
//! One file per section: [`pod`](self) identity (`pod.rs`), the certificate request
//! (`request.rs`), the output files (`output.rs`), renewal (`renew.rs`); `value.rs` holds the value
//! parsers they share.
//!
//! The environment is passed in as an iterator, never read with `std::env::var` inside, so tests
//! never need `set_var`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use certboot_core::config_error::ConfigError;
pub use certboot_core::identity::{PodIdentity, SERVICE_ACCOUNT_NAMESPACE_FILE};
pub use certboot_core::logging::LogFormat;
pub use certboot_core::request::{RequestConfig, KNOWN_USAGES, MIN_EXPIRATION_SECONDS};

mod output;
mod pod;
mod renew;
mod request;
mod value;

pub use request::default_usages;
pub use value::{parse_bool, DurationRange};

use output::output_config;
use pod::pod_identity;
use renew::renew_config;
use request::request_config;
use value::optional_duration;

const DAY: u64 = 86_400;

/// `CERTBOOT_TIMEOUT`: 1 s to 365 days.
pub const TIMEOUT_RANGE: DurationRange = DurationRange {
    min: Duration::from_secs(1),
    max: Duration::from_secs(365 * DAY),
};
/// `CERTBOOT_PROGRESS_INTERVAL`: 1 s to 1 day.
pub const PROGRESS_INTERVAL_RANGE: DurationRange = DurationRange {
    min: Duration::from_secs(1),
    max: Duration::from_secs(DAY),
};
/// `CERTBOOT_RENEW_BEFORE`: 1 s to 3650 days.
pub const RENEW_BEFORE_RANGE: DurationRange = DurationRange {
    min: Duration::from_secs(1),
    max: Duration::from_secs(3650 * DAY),
};

/// `CERTBOOT_MIN_LIFETIME`: 1 s to 1 day; 600 s (the API's own minimum) by default.
pub const MIN_LIFETIME_RANGE: DurationRange = DurationRange {
    min: Duration::from_secs(1),
    max: Duration::from_secs(DAY),
};
/// The shortest certificate certboot accepts by default: the API's minimum `expirationSeconds`.
pub const DEFAULT_MIN_LIFETIME: Duration = Duration::from_secs(600);

/// `CERTBOOT_MAX_LIFETIME`: 1 h to 3650 days.
pub const MAX_LIFETIME_RANGE: DurationRange = DurationRange {
    min: Duration::from_secs(3600),
    max: Duration::from_secs(3650 * DAY),
};
/// The longest certificate certboot accepts by default: 398 days, the most the CA/Browser Forum
/// allows a TLS certificate (kube-controller-manager issues one year by default).
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(398 * DAY);

/// Whether certboot exits after the first certificate or keeps renewing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Obtain a certificate once and exit (initContainer).
    Init,
    /// Obtain a certificate, then renew it before it expires for as long as the pod lives.
    Sidecar,
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
    /// The shortest issued certificate certboot accepts (`CERTBOOT_MIN_LIFETIME`); it also sets
    /// the minimum interval between two renewals (a tenth of it).
    pub min_lifetime: Duration,
    /// The longest certificate certboot accepts, issued or found on disk (`CERTBOOT_MAX_LIFETIME`).
    pub max_lifetime: Duration,
    pub log_format: LogFormat,
    pub events: bool,
    pub termination_log: Option<PathBuf>,
    /// Problems that did not stop certboot (e.g. one of two pod IP inputs malformed), logged at start.
    pub warnings: Vec<String>,
}

/// Downward API variables (no prefix).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct DownwardEnv {
    pod_name: Option<String>,
    pod_namespace: Option<String>,
    pod_uid: Option<String>,
    pod_ip: Option<String>,
    pod_ips: Option<String>,
}

/// certboot's own variables, prefix `CERTBOOT_`. All raw strings: validation is ours.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct CertbootEnv {
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
    min_lifetime: Option<String>,
    max_lifetime: Option<String>,
    log_format: Option<String>,
    renew_before: Option<String>,
    reload_signal: Option<String>,
    reload_process: Option<String>,
    reload_allow_terminating: Option<String>,
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
        let min_lifetime = min_lifetime(own.min_lifetime.as_deref(), request.expiration_seconds)?;
        let max_lifetime = max_lifetime(
            own.max_lifetime.as_deref(),
            min_lifetime,
            request.expiration_seconds,
        )?;
        Ok(Config {
            min_lifetime,
            max_lifetime,
            mode: parse_mode(own.mode.as_deref())?,
            request,
            output: output_config(&own)?,
            renew: renew_config(&own)?,
            timeout: optional_duration("CERTBOOT_TIMEOUT", own.timeout.as_deref(), TIMEOUT_RANGE)?,
            progress_interval: optional_duration(
                "CERTBOOT_PROGRESS_INTERVAL",
                own.progress_interval.as_deref(),
                PROGRESS_INTERVAL_RANGE,
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

/// `CERTBOOT_MIN_LIFETIME`, which must not exceed the lifetime certboot itself asks for.
fn min_lifetime(value: Option<&str>, expiration: Option<u32>) -> Result<Duration, ConfigError> {
    let floor = optional_duration("CERTBOOT_MIN_LIFETIME", value, MIN_LIFETIME_RANGE)?
        .unwrap_or(DEFAULT_MIN_LIFETIME);
    match expiration {
        Some(seconds) if floor > Duration::from_secs(u64::from(seconds)) => {
            Err(ConfigError::invalid(
                "CERTBOOT_MIN_LIFETIME",
                value.unwrap_or_default(),
                format!("longer than CERTBOOT_EXPIRATION_SECONDS={seconds}: every certificate would be refused"),
                "a duration no longer than the lifetime requested",
            ))
        }
        _ => Ok(floor),
    }
}

/// `CERTBOOT_MAX_LIFETIME`, which must leave room for the floor and the lifetime requested.
fn max_lifetime(
    value: Option<&str>,
    floor: Duration,
    expiration: Option<u32>,
) -> Result<Duration, ConfigError> {
    let cap = optional_duration("CERTBOOT_MAX_LIFETIME", value, MAX_LIFETIME_RANGE)?
        .unwrap_or(DEFAULT_MAX_LIFETIME);
    let requested = expiration.map(|s| Duration::from_secs(u64::from(s)));
    if cap < floor || requested.is_some_and(|r| cap < r) {
        return Err(ConfigError::invalid(
            "CERTBOOT_MAX_LIFETIME",
            value.unwrap_or_default(),
            "shorter than CERTBOOT_MIN_LIFETIME or CERTBOOT_EXPIRATION_SECONDS: every certificate would be refused",
            "a duration no shorter than the lifetime requested",
        ));
    }
    Ok(cap)
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

#[cfg(test)]
mod tests;
