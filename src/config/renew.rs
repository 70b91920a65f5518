//! The renewal section (sidecar mode): when to renew, whom to signal, CSR cleanup, metrics.

use std::net::SocketAddr;
use std::str::FromStr;

use super::value::{optional_duration, parse_bool, parse_optional};
use super::{CertbootEnv, ConfigError, RenewConfig};

pub(super) fn renew_config(env: &CertbootEnv) -> Result<RenewConfig, ConfigError> {
    let reload_signal = parse_optional(
        "CERTBOOT_RELOAD_SIGNAL",
        env.reload_signal.as_deref(),
        "unknown signal",
        crate::renew::reload::SIGNAL_NAMES,
        crate::renew::reload::parse_signal,
    )?;
    let allow_terminating = parse_bool(
        "CERTBOOT_RELOAD_ALLOW_TERMINATING",
        env.reload_allow_terminating.as_deref(),
        false,
    )?;
    if let Some(signal) = reload_signal.filter(|s| crate::renew::reload::is_terminating(*s)) {
        if !allow_terminating {
            return Err(ConfigError::invalid(
                "CERTBOOT_RELOAD_SIGNAL",
                env.reload_signal.as_deref().unwrap_or_default(),
                format!("signal {signal} ends most processes instead of making them reload"),
                "SIGHUP, SIGUSR1, SIGUSR2 or SIGWINCH; to send SIGTERM, SIGINT, SIGQUIT or SIGKILL on purpose, also set CERTBOOT_RELOAD_ALLOW_TERMINATING=true",
            ));
        }
    }
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
    let metrics_addr = parse_optional(
        "CERTBOOT_METRICS_ADDR",
        env.metrics_addr.as_deref(),
        "not a socket address",
        "IP:PORT, e.g. 0.0.0.0:9402 or [::]:9402",
        |v| SocketAddr::from_str(v).ok(),
    )?;
    Ok(RenewConfig {
        renew_before: optional_duration(
            "CERTBOOT_RENEW_BEFORE",
            env.renew_before.as_deref(),
            super::RENEW_BEFORE_RANGE,
        )?,
        reload_signal,
        reload_process,
        delete_csr: parse_bool("CERTBOOT_DELETE_CSR", env.delete_csr.as_deref(), false)?,
        metrics_addr,
    })
}
