//! Parsing the whole configuration, as `certboot` does at start.

use super::*;
use certboot_core::pki::key::KeyAlgorithm;
use std::net::IpAddr;

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
        Err(ConfigError::Invalid { var, .. })
        | Err(ConfigError::Missing { var, .. })
        | Err(ConfigError::Unreadable { var, .. }) => var,
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

#[test]
fn the_lifetime_floor_defaults_to_the_api_minimum_and_can_be_lowered_for_tests() {
    assert_eq!(with(&[]).unwrap().min_lifetime, Duration::from_secs(600));
    let c = with(&[("CERTBOOT_MIN_LIFETIME", "1s")]).unwrap();
    assert_eq!(c.min_lifetime, Duration::from_secs(1));
    assert_eq!(
        invalid_var(with(&[("CERTBOOT_MIN_LIFETIME", "0")])),
        "CERTBOOT_MIN_LIFETIME"
    );
    assert_eq!(
        invalid_var(with(&[
            ("CERTBOOT_MIN_LIFETIME", "1h"),
            ("CERTBOOT_EXPIRATION_SECONDS", "600")
        ])),
        "CERTBOOT_MIN_LIFETIME"
    );
}

#[test]
fn the_lifetime_cap_defaults_to_398_days_and_must_leave_room_for_the_request() {
    assert_eq!(
        with(&[]).unwrap().max_lifetime,
        Duration::from_secs(398 * 86_400)
    );
    let c = with(&[("CERTBOOT_MAX_LIFETIME", "30d")]).unwrap();
    assert_eq!(c.max_lifetime, Duration::from_secs(30 * 86_400));
    assert_eq!(
        invalid_var(with(&[
            ("CERTBOOT_MAX_LIFETIME", "1h"),
            ("CERTBOOT_EXPIRATION_SECONDS", "86400")
        ])),
        "CERTBOOT_MAX_LIFETIME"
    );
    assert_eq!(
        invalid_var(with(&[("CERTBOOT_MAX_LIFETIME", "100000d")])),
        "CERTBOOT_MAX_LIFETIME"
    );
}

#[test]
fn terminating_reload_signals_are_refused_unless_allowed() {
    for signal in ["SIGTERM", "int", "SIGQUIT", "KILL"] {
        let err = with(&[
            ("CERTBOOT_RELOAD_SIGNAL", signal),
            ("CERTBOOT_RELOAD_PROCESS", "nginx"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("CERTBOOT_RELOAD_SIGNAL=")
                && err.contains("CERTBOOT_RELOAD_ALLOW_TERMINATING=true"),
            "{err}"
        );
    }
    let c = with(&[
        ("CERTBOOT_RELOAD_SIGNAL", "SIGTERM"),
        ("CERTBOOT_RELOAD_PROCESS", "nginx"),
        ("CERTBOOT_RELOAD_ALLOW_TERMINATING", "true"),
    ])
    .unwrap();
    assert_eq!(c.renew.reload_signal, Some(libc::SIGTERM));
}

#[test]
fn durations_are_bounded_at_parse_time() {
    for (var, value) in [
        ("CERTBOOT_PROGRESS_INTERVAL", "106751991167301d"),
        ("CERTBOOT_PROGRESS_INTERVAL", "2d"),
        ("CERTBOOT_PROGRESS_INTERVAL", "10ms"),
        ("CERTBOOT_TIMEOUT", "366d"),
        ("CERTBOOT_RENEW_BEFORE", "18446744073709551615"),
        ("CERTBOOT_RENEW_BEFORE", "3651d"),
    ] {
        let err = with(&[(var, value)]).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{var}={value:?} is invalid")),
            "{err}"
        );
        assert!(err.contains("accepted: a duration from"), "{err}");
    }
    let c = with(&[
        ("CERTBOOT_PROGRESS_INTERVAL", "1d"),
        ("CERTBOOT_TIMEOUT", "365d"),
        ("CERTBOOT_RENEW_BEFORE", "3650d"),
    ])
    .unwrap();
    assert_eq!(c.progress_interval, PROGRESS_INTERVAL_RANGE.max);
}

#[test]
fn an_unreadable_ca_bundle_names_the_variable_and_keeps_the_cause() {
    let err = with(&[("CERTBOOT_CA_BUNDLE", "/nonexistent/ca.pem")]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("CERTBOOT_CA_BUNDLE=\"/nonexistent/ca.pem\" is invalid: cannot read it ("),
        "{err}"
    );
    let cause = std::error::Error::source(&err).expect("the I/O error is kept");
    assert!(cause.to_string().contains("No such file"), "{cause}");
}
