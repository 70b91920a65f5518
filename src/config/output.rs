//! The output section: the directory, file names, key mode and CA bundle.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::{CertbootEnv, ConfigError, OutputConfig};

impl OutputConfig {
    /// The contents of `CERTBOOT_CA_BUNDLE`, when set. Read at start (a bundle that vanished or
    /// became unreadable after validation is then a configuration error, exit 2), and again for
    /// each renewal and each `/healthz` request, so a rotated bundle is followed.
    pub fn read_ca_bundle(&self) -> Result<Option<Vec<u8>>, ConfigError> {
        let Some(path) = &self.ca_bundle else {
            return Ok(None);
        };
        std::fs::read(path)
            .map(Some)
            .map_err(|e| unreadable_ca_bundle(path, e))
    }
}

pub(super) fn output_config(env: &CertbootEnv) -> Result<OutputConfig, ConfigError> {
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
        Err(e) => Err(unreadable_ca_bundle(&path, e)),
    }
}

fn unreadable_ca_bundle(path: &Path, source: std::io::Error) -> ConfigError {
    ConfigError::Unreadable {
        var: "CERTBOOT_CA_BUNDLE",
        path: path.display().to_string(),
        source,
        accepted: CA_BUNDLE_ACCEPTED,
    }
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
