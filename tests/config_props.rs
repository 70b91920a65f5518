//! Property tests: certboot's configuration parser never panics, whatever the environment holds.
//! Every variable certboot reads gets arbitrary strings (any Unicode, and values shaped like
//! durations, numbers, lists, addresses and modes, including overflowing ones);
//! `Config::from_env`, `Config::for_dry_run` and `OutputConfig::from_env` must return `Ok` or a
//! printable `Err`, never panic. And what parses must be usable: every configuration that parses
//! goes through the code that uses its durations (renewal schedule, progress timer, deadline),
//! which must not panic either.

use certboot::config::{Config, OutputConfig};
use certboot::csr::wait::progress_timer;
use certboot::renew::renew_at;
use certboot_core::pki::verify::Verified;
use certboot_core::timefmt::human;
use proptest::prelude::*;

const VARS: &[&str] = &[
    "POD_NAME",
    "POD_NAMESPACE",
    "POD_UID",
    "POD_IP",
    "POD_IPS",
    "CERTBOOT_MODE",
    "CERTBOOT_SIGNER_NAME",
    "CERTBOOT_COMMON_NAME",
    "CERTBOOT_ORGANIZATIONS",
    "CERTBOOT_DNS_NAMES",
    "CERTBOOT_IP_ADDRESSES",
    "CERTBOOT_URIS",
    "CERTBOOT_INCLUDE_POD_IPS",
    "CERTBOOT_USAGES",
    "CERTBOOT_KEY_ALGORITHM",
    "CERTBOOT_EXPIRATION_SECONDS",
    "CERTBOOT_CERT_DIR",
    "CERTBOOT_CERT_FILE",
    "CERTBOOT_KEY_FILE",
    "CERTBOOT_CA_FILE",
    "CERTBOOT_CA_BUNDLE",
    "CERTBOOT_KEY_MODE",
    "CERTBOOT_TIMEOUT",
    "CERTBOOT_PROGRESS_INTERVAL",
    "CERTBOOT_MIN_LIFETIME",
    "CERTBOOT_MAX_LIFETIME",
    "CERTBOOT_LOG_FORMAT",
    "CERTBOOT_RENEW_BEFORE",
    "CERTBOOT_RELOAD_SIGNAL",
    "CERTBOOT_RELOAD_PROCESS",
    "CERTBOOT_RELOAD_ALLOW_TERMINATING",
    "CERTBOOT_DELETE_CSR",
    "CERTBOOT_METRICS_ADDR",
    "CERTBOOT_EVENTS",
    "CERTBOOT_TERMINATION_LOG",
    "CERTBOOT_LOG",
    "RUST_LOG",
    "KUBECONFIG",
];

/// A value for any variable: arbitrary text, or text shaped like what the parsers look for.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        ".*",
        any::<String>(),
        "[0-9]{1,30}",
        "-?[0-9]{1,25}[smhdSMHD]?",
        "([0-9]{1,22}[smhd]){1,5}",
        "0[0-7]{0,6}",
        "(true|false|TRUE|yes|no|1|0| )",
        "(init|sidecar|text|json|off|ecdsa-p256|rsa-4096|ed25519|SIGHUP|SIG|HUP|kill)",
        "([a-z0-9.*-]{0,20},? ?){0,6}",
        "([0-9]{1,4}\\.){0,5}[0-9]{0,4}(/[0-9]{1,3})?",
        "\\[?[0-9a-f:]{0,40}\\]?(:[0-9]{0,6})?",
        "[a-z]{0,8}://[^ ]{0,30}",
        "[a-z0-9.-]{1,70}/[a-z0-9.-]{0,70}",
        Just(String::new()),
        Just(" ".repeat(300)),
        Just("9".repeat(400)),
    ]
}

/// Each variable present or absent, with a value from [`value`].
fn environment() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::vec(proptest::option::weighted(0.7, value()), VARS.len()).prop_map(
        |values| {
            VARS.iter()
                .zip(values)
                .filter_map(|(name, value)| value.map(|v| (name.to_string(), v)))
                .collect()
        },
    )
}

fn namespace_file(contents: &Option<String>) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("namespace");
    if let Some(contents) = contents {
        std::fs::write(&path, contents).expect("write the namespace file");
    }
    (dir, path)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn config_parsing_never_panics(env in environment(), ns in proptest::option::of(value())) {
        let (_dir, path) = namespace_file(&ns);
        for result in [
            Config::from_env(env.clone(), &path),
            Config::for_dry_run(env.clone(), &path),
        ] {
            if let Err(e) = result {
                prop_assert!(!e.to_string().is_empty());
            }
        }
        if let Err(e) = OutputConfig::from_env(env) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn a_valid_base_with_one_arbitrary_variable_never_panics(
        index in 0..VARS.len(),
        value in value(),
    ) {
        let mut env: Vec<(String, String)> = [
            ("POD_NAME", "web-0"),
            ("POD_NAMESPACE", "shop"),
            ("POD_UID", "6f1d3c2a-0000-4000-8000-000000000000"),
            ("CERTBOOT_SIGNER_NAME", "example.com/my-signer"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        env.retain(|(k, _)| k != VARS[index]);
        env.push((VARS[index].to_string(), value));
        let (_dir, path) = namespace_file(&None);
        match Config::from_env(env, &path) {
            Ok(config) => use_the_values(&config),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}

/// Certificates with ordinary and extreme validity periods, and arrival times.
fn certificates() -> Vec<(Verified, i64)> {
    let now = certboot_core::timefmt::unix_now();
    let cert = |not_before, not_after| Verified {
        chain_pem: String::new(),
        serial: String::new(),
        subject: String::new(),
        not_before,
        not_after,
    };
    vec![
        (cert(now - 300, now + 600), now),
        (cert(now, now + 90 * 86_400), now),
        (cert(now, now + 1), now),
        (cert(now + 10, now), now),
        (cert(i64::MIN, i64::MAX), 0),
        (cert(i64::MAX, i64::MIN), i64::MAX),
        (cert(0, i64::MAX), i64::MIN),
    ]
}

/// Runs what certboot does with the parsed durations: the renewal schedule (at start and in the
/// sidecar), the reuse check, the progress timer of the wait, the overall deadline, and the log
/// rendering. None of it may panic for a configuration that parsed.
fn use_the_values(config: &Config) {
    for (cert, received) in certificates() {
        for jitter in [0.0, 0.5, 0.999_999] {
            let at = renew_at(&cert, received, config.renew.renew_before, jitter);
            assert!(at <= cert.not_after);
        }
        let _ = human(std::time::Duration::from_secs(cert.lifetime().max(0) as u64));
    }
    for d in [
        Some(config.progress_interval),
        config.timeout,
        config.renew.renew_before,
    ]
    .into_iter()
    .flatten()
    {
        let _ = human(d);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let mut progress = progress_timer(config.progress_interval);
        progress.tick().await;
        if let Some(limit) = config.timeout {
            let deadline = tokio::time::timeout(limit, std::future::ready(()));
            assert!(deadline.await.is_ok());
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Durations shaped to be huge, tiny or overflowing: what parses is used without a panic.
    #[test]
    fn every_duration_that_parses_is_safe_to_use(
        progress in duration_text(),
        timeout in duration_text(),
        renew_before in duration_text(),
    ) {
        let env: Vec<(String, String)> = [
            ("POD_NAME", "web-0"),
            ("POD_NAMESPACE", "shop"),
            ("POD_UID", "6f1d3c2a-0000-4000-8000-000000000000"),
            ("CERTBOOT_SIGNER_NAME", "example.com/my-signer"),
            ("CERTBOOT_MODE", "sidecar"),
            ("CERTBOOT_PROGRESS_INTERVAL", progress.as_str()),
            ("CERTBOOT_TIMEOUT", timeout.as_str()),
            ("CERTBOOT_RENEW_BEFORE", renew_before.as_str()),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let (_dir, path) = namespace_file(&None);
        match Config::from_env(env, &path) {
            Ok(config) => use_the_values(&config),
            Err(e) => prop_assert!(e.to_string().contains("accepted:")),
        }
    }
}

/// Duration strings around every bound: tiny, ordinary, the edges of the ranges, overflowing.
fn duration_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,20}(ms|s|m|h|d)?",
        "([0-9]{1,6}(ms|s|m|h|d)){1,3}",
        Just("106751991167301d".to_string()),
        Just("18446744073709551615".to_string()),
        Just("1d".to_string()),
        Just("365d".to_string()),
        Just("3650d".to_string()),
        Just("1s".to_string()),
    ]
}
