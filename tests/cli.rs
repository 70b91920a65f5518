//! The command line a user meets first: `--help`, `--version`, `--dry-run`, `check`, and what a
//! configuration error looks like. Golden files live in tests/golden/; regenerate them with
//! `UPDATE_GOLDEN=1 cargo test --test cli` after an intended change, and review the diff.

use std::path::Path;
use std::process::{Command, Output};

fn certboot(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_certboot"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("run certboot")
}

fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).expect("write golden file");
    }
    let expected =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        actual,
        expected,
        "output differs from {}; if intended, rerun with UPDATE_GOLDEN=1",
        path.display()
    );
}

#[test]
fn help_lists_every_variable_exit_code_and_a_pod_spec() {
    let out = certboot(&["--help"], &[]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf-8");
    golden("help.txt", &text);
    // Every variable of the README's configuration tables appears in --help.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    let documented: Vec<&str> = readme
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .filter(|var| var.starts_with("CERTBOOT_") || var.starts_with("POD_"))
        .collect();
    assert!(
        documented.len() > 25,
        "README tables parsed: {documented:?}"
    );
    for var in documented {
        assert!(text.contains(var), "--help does not mention {var}");
    }
    for code in 0..=6 {
        assert!(
            text.contains(&format!("\n    {code}  ")),
            "--help lacks exit code {code}"
        );
    }
}

#[test]
fn version_names_the_release_and_git_revision() {
    let out = certboot(&["--version"], &[]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let expected_prefix = format!("certboot {} (git ", env!("CARGO_PKG_VERSION"));
    assert!(
        text.starts_with(&expected_prefix) && text.ends_with(")\n"),
        "{text}"
    );
}

#[test]
fn dry_run_prints_the_csr_without_touching_anything() {
    let out = certboot(
        &["--dry-run"],
        &[
            ("CERTBOOT_SIGNER_NAME", "example.com/my-signer"),
            ("CERTBOOT_DNS_NAMES", "web.shop.svc"),
            ("CERTBOOT_CERT_DIR", "/nonexistent/certs"),
            ("KUBECONFIG", "/nonexistent/kubeconfig"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    // The request differs every run (fresh key); everything else is stable.
    let shape: String = text
        .lines()
        .map(|l| {
            if l.starts_with("  request: ") {
                "  request: <base64 PKCS#10>"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    golden("dry-run.txt", &(shape + "\n"));
    assert!(!Path::new("/nonexistent/certs").exists());
    assert!(!text.contains("PRIVATE KEY"));
}

#[test]
fn configuration_errors_exit_2_with_one_actionable_line() {
    let out = certboot(
        &[],
        &[
            ("POD_NAME", "web-0"),
            ("POD_UID", "6f1d3c52-aaaa"),
            ("POD_NAMESPACE", "shop"),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).expect("utf-8");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("CERTBOOT_SIGNER_NAME is not set"), "{err}");
    let out = certboot(&["--bogus"], &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn check_exit_codes_for_missing_mismatched_expired_and_good_pairs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [(
        "CERTBOOT_CERT_DIR",
        dir.path().to_str().expect("utf-8 path"),
    )];
    assert_eq!(
        certboot(&["check"], &env).status.code(),
        Some(6),
        "missing pair"
    );

    let key = certboot::pki::key::PrivateKey::generate(certboot::pki::key::KeyAlgorithm::EcdsaP256)
        .expect("key");
    let other =
        certboot::pki::key::PrivateKey::generate(certboot::pki::key::KeyAlgorithm::EcdsaP256)
            .expect("key");
    // Written as certboot writes (check refuses anything else in the directory).
    let store = certboot::store::Store::new(
        &certboot::config::OutputConfig::from_env(
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
        .expect("output config"),
    );
    let write = |cert: &str, key_pem: &str| {
        store
            .write(&certboot::store::Bundle {
                cert_pem: cert,
                key_pem,
                ca_pem: None,
            })
            .expect("write the pair");
    };
    let good = self_signed(&key, 2020, 2090);
    write(&good, &key.to_pem());
    let out = certboot(&["check"], &env);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok: "));
    assert_eq!(
        certboot(&["check", "--min-valid", "100000d"], &env)
            .status
            .code(),
        Some(5),
        "valid for less than the margin"
    );

    write(&good, &other.to_pem());
    let out = certboot(&["check"], &env);
    assert_eq!(out.status.code(), Some(5), "mismatched pair");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not ours"));

    write(&self_signed(&key, 2020, 2021), &key.to_pem());
    let out = certboot(&["check"], &env);
    assert_eq!(out.status.code(), Some(5), "expired pair");
    assert!(String::from_utf8_lossy(&out.stderr).contains("expired"));
}

fn self_signed(key: &certboot::pki::key::PrivateKey, from: i32, to: i32) -> String {
    let mut params =
        rcgen::CertificateParams::new(vec!["web.shop.svc".to_string()]).expect("params");
    params.not_before = rcgen::date_time_ymd(from, 1, 1);
    params.not_after = rcgen::date_time_ymd(to, 1, 1);
    let signing = key.signing_key().expect("signing key");
    params.self_signed(&*signing).expect("self-signed").pem()
}

#[test]
fn check_never_blocks_on_a_fifo_planted_as_cert_pem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = std::ffi::CString::new(format!("{}/cert.pem", dir.path().display())).expect("path");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0, "mkfifo");
    let mut child = Command::new(env!("CARGO_BIN_EXE_certboot"))
        .arg("check")
        .env_clear()
        .env("CERTBOOT_CERT_DIR", dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run certboot check");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("certboot check blocked on a FIFO planted as cert.pem");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let out = child.wait_with_output().expect("output");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(6), "{err}");
    assert!(
        err.contains("cert.pem") && err.contains("never follows"),
        "{err}"
    );
}
