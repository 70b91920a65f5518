//! Property tests: certboot's configuration parser never panics, whatever the environment holds.
//! Every variable certboot reads gets arbitrary strings (any Unicode, and values shaped like
//! durations, numbers, lists, addresses and modes, including overflowing ones);
//! `Config::from_env`, `Config::for_dry_run` and `OutputConfig::from_env` must return `Ok` or a
//! printable `Err`, never panic.

use certboot::config::{Config, OutputConfig};
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
    "CERTBOOT_LOG_FORMAT",
    "CERTBOOT_RENEW_BEFORE",
    "CERTBOOT_RELOAD_SIGNAL",
    "CERTBOOT_RELOAD_PROCESS",
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
        if let Err(e) = Config::from_env(env, &path) {
            prop_assert!(!e.to_string().is_empty());
        }
    }
}
