//! `certboot --dry-run`: the CSR certboot would file, as `kubectl get csr -o yaml` would show it,
//! and the decoded request. No API call, no file written; placeholder pod identity where the
//! Downward API variables are absent.

use std::fmt::Write;

use crate::config::{Config, PLACEHOLDER_POD};
use crate::csr;
use crate::csr::yaml::to_yaml;
use crate::error::Error;
use certboot_core::pki::key::PrivateKey;
use certboot_core::pki::pkcs10::{build_pkcs10, decode_pkcs10};

/// Builds the dry-run report for `config`.
pub fn report(config: &Config) -> Result<String, Error> {
    let key = PrivateKey::generate(config.request.key_algorithm)?;
    let pkcs10 = build_pkcs10(&config.request, &key)?;
    let name = csr::initial_name(&config.pod);
    let object = csr::build(&name, &pkcs10, &config.pod, &config.request);
    let value = serde_json::to_value(&object).unwrap_or_default();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# certboot --dry-run: nothing was sent to an API server and nothing was written."
    );
    if config.pod.name == PLACEHOLDER_POD.0 || config.pod.uid == PLACEHOLDER_POD.2 {
        let _ = writeln!(
            out,
            "# POD_NAME / POD_UID not set: a placeholder pod identity is shown."
        );
    }
    let _ = writeln!(
        out,
        "# The CertificateSigningRequest certboot would create:"
    );
    out.push_str(&to_yaml(&value));
    out.push_str(&summary(config, &pkcs10));
    Ok(out)
}

fn summary(config: &Config, pkcs10: &str) -> String {
    let decoded = decode_pkcs10(pkcs10.as_bytes());
    let (subject, sans) = match &decoded {
        Some(d) => (d.subject.clone(), d.sans.join(", ")),
        None => ("(could not decode)".into(), String::new()),
    };
    let request = &config.request;
    let output = &config.output;
    let expiration = match request.expiration_seconds {
        Some(s) => {
            format!("{s}s requested (spec.expirationSeconds; ignored by API servers before 1.22)")
        }
        None => "the signer's default".into(),
    };
    let rows = [
        ("subject", subject),
        (
            "SANs",
            if sans.is_empty() {
                "(none)".into()
            } else {
                sans
            },
        ),
        ("key algorithm", request.key_algorithm.to_string()),
        ("usages", request.usages.join(", ")),
        ("signer", request.signer_name.clone()),
        ("lifetime", expiration),
        ("mode", format!("{:?}", config.mode).to_lowercase()),
        (
            "files",
            format!(
                "{}/{} (0644), {}/{} ({:04o})",
                output.dir.display(),
                output.cert_file,
                output.dir.display(),
                output.key_file,
                output.key_mode
            ),
        ),
    ];
    let mut out = String::from("# Decoded request:\n");
    for (label, value) in rows {
        let _ = writeln!(out, "#   {:<14} {value}", format!("{label}:"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn report_shows_the_object_and_the_decoded_request() {
        let vars = [
            ("CERTBOOT_SIGNER_NAME", "example.com/web"),
            ("CERTBOOT_DNS_NAMES", "web.shop.svc"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let config = Config::for_dry_run(vars, Path::new("/nonexistent")).unwrap();
        let text = report(&config).unwrap();
        assert!(text.contains("kind: CertificateSigningRequest"), "{text}");
        assert!(
            text.contains("name: \"default:example-pod:000000\""),
            "{text}"
        );
        assert!(text.contains("signerName: example.com/web"), "{text}");
        assert!(
            text.contains("#   SANs:          DNS:web.shop.svc"),
            "{text}"
        );
        assert!(text.contains("placeholder"), "{text}");
        assert!(!text.contains("PRIVATE KEY"));
    }
}
