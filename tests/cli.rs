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
    // Every variable of the configuration reference's tables appears in --help.
    let reference = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/configuration.md"
    ))
    .expect("docs/configuration.md");
    let documented: Vec<&str> = reference
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .filter(|var| var.starts_with("CERTBOOT_") || var.starts_with("POD_"))
        .collect();
    assert!(
        documented.len() > 25,
        "docs/configuration.md tables parsed: {documented:?}"
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

/// The environment of the certboot container `certboot check` runs in (its exec probe).
fn check_env(dir: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("CERTBOOT_CERT_DIR", dir.display().to_string()),
        ("POD_NAME", "web-0".into()),
        ("POD_NAMESPACE", "shop".into()),
        ("POD_UID", "6f1d3c52-2b0e-4b7a-9d4e-0c8f1a2b3c4d".into()),
        ("CERTBOOT_SIGNER_NAME", "example.com/web".into()),
        ("CERTBOOT_DNS_NAMES", "web.shop.svc".into()),
    ]
}

fn run_check(args: &[&str], env: &[(&'static str, String)]) -> Output {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    certboot(args, &env)
}

#[test]
fn check_exit_codes_for_missing_mismatched_expired_planted_and_good_pairs() {
    use certboot_core::pki::key::{KeyAlgorithm, PrivateKey};
    let dir = tempfile::tempdir().expect("tempdir");
    let env = check_env(dir.path());
    assert_eq!(
        run_check(&["check"], &env).status.code(),
        Some(6),
        "missing pair"
    );
    let output = certboot::config::OutputConfig::from_env(
        env.iter().map(|(k, v)| (k.to_string(), v.clone())),
    )
    .expect("output config");
    let store = certboot::store::Store::new(&output);
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).expect("key");
    let other = PrivateKey::generate(KeyAlgorithm::EcdsaP256).expect("key");
    // Written as certboot writes: through the store, with the record of the CSR.
    let write = |cert: &str, key_pem: &str, record: bool| {
        let origin = certboot_core::pki::verify::verify_chain(
            cert.as_bytes(),
            key.public_key_raw(),
            certboot_core::timefmt::unix_now(),
        )
        .map(|v| {
            certboot::store::origin::Origin::new(
                "shop:web-0:6f1d3c",
                "example.com/web",
                "6f1d3c52-2b0e-4b7a-9d4e-0c8f1a2b3c4d",
                &v.leaf_sha256(),
            )
            .to_json()
        })
        .unwrap_or_default();
        store
            .write(&certboot::store::Bundle {
                cert_pem: cert,
                key_pem,
                ca_pem: None,
                origin: record.then_some(origin.as_str()),
            })
            .expect("write the pair");
    };
    let day = 86_400;
    let good = self_signed(&key, -day, 300 * day);
    write(&good, &key.to_pem(), true);
    let out = run_check(&["check"], &env);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok: "));
    assert_eq!(
        run_check(&["check", "--min-valid", "100000d"], &env)
            .status
            .code(),
        Some(5),
        "valid for less than the margin"
    );

    write(&good, &other.to_pem(), true);
    let out = run_check(&["check"], &env);
    assert_eq!(out.status.code(), Some(5), "mismatched pair");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not ours"));

    write(&self_signed(&key, -400 * day, -day), &key.to_pem(), true);
    let out = run_check(&["check"], &env);
    assert_eq!(out.status.code(), Some(5), "expired pair");
    assert!(String::from_utf8_lossy(&out.stderr).contains("expired"));

    // The app drops a self-signed 100-year pair for the right names into the shared directory.
    write(&self_signed(&key, -day, 36_500 * day), &key.to_pem(), false);
    let out = run_check(&["check"], &env);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "planted pair: {err}");
    assert!(
        err.contains("above the cap of 398d") && err.contains("CERTBOOT_MAX_LIFETIME"),
        "{err}"
    );
    // Within the cap, but without certboot's record of the CSR that produced it.
    write(&good, &key.to_pem(), false);
    let out = run_check(&["check"], &env);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "no record: {err}");
    assert!(
        err.contains("not written by certboot for this pod"),
        "{err}"
    );

    // check needs the certboot container's configuration: it says so.
    let out = certboot(&["check"], &[("CERTBOOT_CERT_DIR", env[0].1.as_str())]);
    assert_eq!(out.status.code(), Some(2));
}

/// A self-signed certificate for `key` naming the identity of [`check_env`], valid from `from` to
/// `to` seconds relative to now.
fn self_signed(key: &certboot_core::pki::key::PrivateKey, from: i64, to: i64) -> String {
    let at = |offset: i64| {
        let now = std::time::SystemTime::now();
        let delta = std::time::Duration::from_secs(offset.unsigned_abs());
        if offset < 0 {
            now - delta
        } else {
            now + delta
        }
    };
    let mut params =
        rcgen::CertificateParams::new(vec!["web.shop.svc".to_string()]).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "web-0.shop");
    params.not_before = at(from).into();
    params.not_after = at(to).into();
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
        .envs(check_env(dir.path()))
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

/// A certificate for `key` naming `cn` and the DNS name of [`check_env`], signed by `issuer`,
/// valid for 30 days.
fn issue(
    issuer: &rcgen::Issuer<'_, &rcgen::KeyPair>,
    cn: &str,
    is_ca: rcgen::IsCa,
    key: &rcgen::KeyPair,
) -> (rcgen::CertificateParams, String) {
    let mut params =
        rcgen::CertificateParams::new(vec!["web.shop.svc".to_string()]).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.is_ca = is_ca;
    let now = std::time::SystemTime::now();
    params.not_before = (now - std::time::Duration::from_secs(300)).into();
    params.not_after = (now + std::time::Duration::from_secs(30 * 86_400)).into();
    let pem = params.signed_by(key, issuer).expect("sign").pem();
    (params, pem)
}

#[test]
fn check_refuses_a_chain_through_a_non_ca_leaf_with_or_without_a_ca_bundle() {
    use certboot_core::pki::key::{KeyAlgorithm, PrivateKey};
    let dir = tempfile::tempdir().expect("tempdir");
    let trust = tempfile::tempdir().expect("tempdir");
    let mut env = check_env(dir.path());
    let output = certboot::config::OutputConfig::from_env(
        env.iter().map(|(k, v)| (k.to_string(), v.clone())),
    )
    .expect("output config");
    let store = certboot::store::Store::new(&output);
    // The signer's CA, published as the trust bundle.
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "signer CA");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let bundle = trust.path().join("ca.crt");
    std::fs::write(&bundle, ca.self_signed(&ca_key).expect("CA").pem()).expect("bundle");
    let ca_issuer = rcgen::Issuer::from_params(&ca, &ca_key);
    // Another pod's certificate from that CA (CA:false), with its key: it signs one for our key.
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).expect("key");
    let signing = key.signing_key().expect("signing key");
    let victim_key = rcgen::KeyPair::generate().expect("victim key");
    let (victim, victim_pem) = issue(
        &ca_issuer,
        "db-0.shop",
        rcgen::IsCa::ExplicitNoCa,
        &victim_key,
    );
    let (_, forged) = issue(
        &rcgen::Issuer::from_params(&victim, &victim_key),
        "web-0.shop",
        rcgen::IsCa::ExplicitNoCa,
        &signing,
    );
    let (_, genuine) = issue(
        &ca_issuer,
        "web-0.shop",
        rcgen::IsCa::ExplicitNoCa,
        &signing,
    );
    // Written as certboot writes a pair, with the record of this pod's CSR.
    let write = |chain: &str| {
        let leaf = certboot_core::pki::verify::Verified {
            chain_pem: chain.to_string(),
            serial: String::new(),
            subject: String::new(),
            not_before: 0,
            not_after: 0,
        };
        let origin = certboot::store::origin::Origin::new(
            "shop:web-0:6f1d3c",
            "example.com/web",
            "6f1d3c52-2b0e-4b7a-9d4e-0c8f1a2b3c4d",
            &leaf.leaf_sha256(),
        )
        .to_json();
        store
            .write(&certboot::store::Bundle {
                cert_pem: chain,
                key_pem: &key.to_pem(),
                ca_pem: None,
                origin: Some(&origin),
            })
            .expect("write the pair");
    };
    env.push(("CERTBOOT_CA_BUNDLE", bundle.display().to_string()));
    write(&genuine);
    let out = run_check(&["check"], &env);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "the CA's own leaf: {err}");

    write(&format!("{forged}{victim_pem}"));
    let out = run_check(&["check"], &env);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(
        err.contains("certificate 1 of the chain (CN=db-0.shop)")
            && err.contains("is not a CA certificate"),
        "{err}"
    );
    // Without the bundle, the chain's own issuers must be CAs all the same.
    env.pop();
    let out = run_check(&["check"], &env);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(err.contains("is not a CA certificate"), "{err}");
}
