//! The controller's command line, as an operator meets it before any cluster is involved. (Being
//! an integration test, this also makes `cargo test` at the workspace root build the
//! `certboot-controller` binary that the root package's end-to-end tests run.)

use std::process::{Command, Output};

fn controller(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_certboot-controller"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("run certboot-controller")
}

#[test]
fn version_names_the_program_and_its_version() {
    let out = controller(&["--version"], &[]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!(
            "certboot-controller {} (git ",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
}

#[test]
fn help_lists_the_settings_and_exit_codes() {
    let out = controller(&["--help"], &[]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in ["CERTBOOT_POLICY", "CERTBOOT_SIGNER_NAMES", "Exit codes"] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
}

#[test]
fn an_unknown_argument_exits_2_pointing_at_help() {
    let out = controller(&["--frobnicate"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("\"--frobnicate\"") && text.contains("certboot-controller --help"),
        "{text}"
    );
}

#[test]
fn a_missing_pod_name_exits_2_naming_the_variable_before_any_api_call() {
    let out = controller(&[], &[("POD_NAMESPACE", "certboot-system")]);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("POD_NAME is not set") && text.contains("Downward API"),
        "{text}"
    );
}
