//! End-to-end integrity against a real control plane (`KUBEBUILDER_ASSETS`): certboot
//! treats `status.certificate` as untrusted (hostile signers: garbage PEM, not X.509, another
//! key, expired, not yet valid, CA:true, chain out of order, chain through a non-CA leaf → exit 5,
//! nothing written, with the signer's CA as CERTBOOT_CA_BUNDLE), never
//! leaves a partial or mismatched pair (read-only or full output directory → exit 6; kill -9 at
//! arbitrary points during rotations), and never leaks the private key into its output, even
//! with every log filter at `trace`.

mod harness;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use harness::{HostileCertificate, SignerBehaviour};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{Api, PostParams};
use support::{entries, mode, no_pair, read_pair, Certboot};

const NS: &str = "default";
const SIGNER: &str = "example.com/integrity";

fn certboot(kubeconfig: &Path, dir: &Path, pod: &str, signer: &str) -> Certboot {
    Certboot::new(kubeconfig, dir, NS, pod)
        .env("CERTBOOT_SIGNER_NAME", signer)
        .env("CERTBOOT_EVENTS", "false")
}

/// The pair in `dir` matches, or there is none at all: never one without the other, never a
/// mismatched or partial pair. Returns the serial when there is a pair.
fn matching_pair_or_nothing(dir: &Path) -> Option<String> {
    let cert = std::fs::read(dir.join("cert.pem"));
    let key = std::fs::read_to_string(dir.join("key.pem"));
    match (cert, key) {
        (Err(_), Err(_)) => None,
        (Ok(cert), Ok(key)) => {
            let verified = certboot_core::pki::verify::verify_pair(
                &cert,
                &key,
                certboot_core::timefmt::unix_now(),
            )
            .unwrap_or_else(|e| panic!("mismatched or partial pair on disk: {e}"));
            Some(verified.serial)
        }
        (cert, key) => panic!(
            "half a pair on disk: cert.pem {:?}, key.pem {:?}; {:?}",
            cert.map(|_| "present"),
            key.map(|_| "present"),
            entries(dir)
        ),
    }
}

#[tokio::test]
async fn hostile_status_certificate_is_rejected_with_exit_5_and_nothing_written() {
    let Some((cp, kubeconfig, tmp)) = harness::with_certboot_rbac(NS).await else {
        return;
    };
    for (index, kind) in HostileCertificate::ACCEPTED_BY_THE_API_SERVER
        .into_iter()
        .enumerate()
    {
        let expected = match kind {
            HostileCertificate::GarbagePem | HostileCertificate::NotX509 => unreachable!(),
            HostileCertificate::OtherKey => "public key is not ours",
            HostileCertificate::Expired => "the certificate has expired",
            HostileCertificate::NotYetValid => "is not valid yet",
            HostileCertificate::CaCertificate => "is a CA certificate",
            HostileCertificate::ChainWrongOrder => "the chain is out of order",
            HostileCertificate::ThroughNonCaLeaf => {
                "certificate 1 of the chain (CN=another-pod.default) issues certificate 0 of the chain but is not a CA certificate"
            }
        };
        let signer_name = format!("example.com/hostile-{index}");
        let signer = cp.custom_signer_with(
            &signer_name,
            Duration::from_secs(3600),
            SignerBehaviour::Hostile(kind),
        );
        let dir = tmp.path().join(format!("certs-{index}"));
        // With the signer's CA as CERTBOOT_CA_BUNDLE: each chain is refused all the same.
        let bundle = tmp.path().join(format!("ca-{index}.pem"));
        std::fs::write(&bundle, signer.ca_pem()).expect("write the CA bundle");
        let run = certboot(&kubeconfig, &dir, &format!("hostile-{index}"), &signer_name)
            .env("CERTBOOT_CA_BUNDLE", &bundle.display().to_string())
            .run()
            .await;
        run.assert_code(5);
        assert!(
            run.stderr.contains(expected)
                && run.stderr.contains("Nothing was written; check the signer"),
            "{kind:?}: expected {expected:?} in:\n{}",
            run.stderr
        );
        no_pair(&dir);
    }

    // Garbage PEM and PEM that is not X.509 cannot even be stored: kube-apiserver validates
    // status.certificate itself (certboot's own checks for them are unit- and fuzz-tested).
    let admin = cp.admin_client();
    let csrs = Api::<CertificateSigningRequest>::all(admin.clone());
    let ca = harness::Ca::new("hostile test CA");
    for (index, kind) in HostileCertificate::REJECTED_BY_THE_API_SERVER
        .into_iter()
        .enumerate()
    {
        let name = format!("garbage-{index}");
        let (_, request) = harness::new_key_and_csr("garbage", &[]);
        let object = harness::csr_object(&name, &request, SIGNER, &["server auth"]);
        csrs.create(&PostParams::default(), &object)
            .await
            .expect("create CSR");
        let mut csr = cp
            .approve_csr(&name, "TestApprove", "approved by the test")
            .await;
        let usages = vec!["server auth".to_string()];
        let pem = kind
            .certificate(&ca, &request, &usages, Duration::from_secs(3600))
            .expect("hostile certificate");
        csr.status.get_or_insert_with(Default::default).certificate =
            Some(k8s_openapi::ByteString(pem.into_bytes()));
        match csrs
            .replace_status(&name, &PostParams::default(), &csr)
            .await
        {
            Err(kube::Error::Api(status)) => assert_eq!(status.code, 422, "{kind:?}: {status:?}"),
            other => panic!("{kind:?}: kube-apiserver accepted garbage: {other:?}"),
        }
    }
}

/// A tmpfs mounted for one test, unmounted (lazily) on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs with `options` at `dir`; `None` (with a message) when mounting is not
    /// permitted here (no CAP_SYS_ADMIN, e.g. an unprivileged container).
    fn mount(dir: &Path, options: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).expect("mount point");
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        if output.status.success() {
            Some(Tmpfs(dir.to_path_buf()))
        } else {
            let message = format!(
                "mount -t tmpfs -o {options} is not permitted here ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
            assert!(
                std::env::var("CI").is_err(),
                "{message}; CI must be able to run this test"
            );
            eprintln!("SKIPPED: {message}");
            None
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test]
async fn read_only_or_full_output_directory_exits_6_and_leaves_no_pair() {
    let Some((cp, kubeconfig, tmp)) = harness::with_certboot_rbac(NS).await else {
        return;
    };
    let _signer = cp.custom_signer(SIGNER, Duration::from_secs(3600));

    let read_only = tmp.path().join("read-only");
    let Some(_ro) = Tmpfs::mount(&read_only, "size=64k,ro") else {
        return;
    };
    let run = certboot(&kubeconfig, &read_only, "ro-0", SIGNER)
        .run()
        .await;
    run.assert_code(6);
    run.assert_stderr_contains("Read-only file system");
    run.assert_stderr_contains(&read_only.display().to_string());
    no_pair(&read_only);

    // 12 KiB, filled up before certboot runs: every write fails with ENOSPC.
    let full = tmp.path().join("full");
    // Room for one pair: key, certificate and the record .certboot.json, a 4 KiB page each.
    let Some(_full) = Tmpfs::mount(&full, "size=12k") else {
        return;
    };
    let filler = full.join("filler");
    let chunk = vec![0u8; 1024];
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&filler).expect("filler");
        for _ in 0..64 {
            if file
                .write_all(&chunk)
                .and_then(|_| file.sync_all())
                .is_err()
            {
                break;
            }
        }
    }
    let run = certboot(&kubeconfig, &full, "full-0", SIGNER).run().await;
    run.assert_code(6);
    run.assert_stderr_contains("No space left on device");
    no_pair(&full);
    let leftovers: Vec<String> = entries(&full)
        .into_iter()
        .filter(|e| e != "filler")
        .collect();
    assert!(
        leftovers.is_empty(),
        "no half-written generation: {leftovers:?}"
    );

    // With space again, the same directory gets a good pair (another pod name: the harness
    // signer issues each CSR name once).
    std::fs::remove_file(&filler).expect("remove filler");
    certboot(&kubeconfig, &full, "full-1", SIGNER)
        .run()
        .await
        .assert_code(0);
    read_pair(&full);
}

#[tokio::test]
async fn kill_9_at_any_point_during_rotations_leaves_a_matching_pair_or_nothing() {
    let Some((cp, kubeconfig, tmp)) = harness::with_certboot_rbac(NS).await else {
        return;
    };
    // 120 s certificates renewed 117 s (plus jitter) before expiry: the sidecar rotates every
    // few seconds at most, so the kills land in every phase of a rotation.
    let _signer = cp.custom_signer(SIGNER, Duration::from_secs(120));
    let dir = tmp.path().join("certs");
    // A pod name per run: the harness signer issues each CSR name once, and a restarted run
    // re-files its first CSR under the same name.
    let sidecar = |run: u64| {
        certboot(&kubeconfig, &dir, &format!("kill-{run}"), SIGNER)
            .env("CERTBOOT_MODE", "sidecar")
            .env("CERTBOOT_RENEW_BEFORE", "117s")
    };
    let mut serials = std::collections::BTreeSet::new();
    let mut kills = 0;
    // Kill points spread over start-up, key generation, CSR, wait, write and renewal.
    for step in 0..16u64 {
        let running = sidecar(step).spawn();
        let delay = Duration::from_millis(100 + (step * 389) % 2500);
        let until = std::time::Instant::now() + delay;
        while std::time::Instant::now() < until {
            // Also check while it runs: a reader never sees half a pair either.
            if let Some(serial) = matching_pair_or_nothing_racy(&dir) {
                serials.insert(serial);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        running.kill9();
        kills += 1;
        if let Some(serial) = matching_pair_or_nothing(&dir) {
            serials.insert(serial);
        }
    }
    assert_eq!(kills, 16);
    eprintln!("{kills} kills, {} certificates seen on disk", serials.len());
    assert!(
        serials.len() >= 2,
        "rotations happened between the kills: {serials:?}"
    );

    // A final, uninterrupted run cleans up what the kills left behind.
    let mut running = sidecar(99).spawn();
    running
        .wait_for_log("next renewal at", Duration::from_secs(30))
        .await;
    running.signal(libc::SIGTERM);
    running.finish(Duration::from_secs(10)).await.assert_code(0);
    read_pair(&dir);
    let stray: Vec<String> = entries(&dir)
        .into_iter()
        .filter(|e| e.ends_with("_tmp"))
        .collect();
    assert!(stray.is_empty(), "temp links cleaned up: {stray:?}");
}

/// Like [`matching_pair_or_nothing`] while certboot may be swapping `..data`: reads the pair
/// through one resolution of `..data`, as an app holding the directory open would.
fn matching_pair_or_nothing_racy(dir: &Path) -> Option<String> {
    let generation = std::fs::read_link(dir.join("..data")).ok()?;
    let generation = dir.join(generation);
    let cert = std::fs::read(generation.join("cert.pem")).ok()?;
    let key = std::fs::read_to_string(generation.join("key.pem")).ok()?;
    let verified =
        certboot_core::pki::verify::verify_pair(&cert, &key, certboot_core::timefmt::unix_now())
            .unwrap_or_else(|e| {
                panic!(
                    "mismatched or partial pair in {}: {e}",
                    generation.display()
                )
            });
    Some(verified.serial)
}

#[tokio::test]
async fn the_private_key_never_appears_in_output_even_at_trace_level() {
    let Some((cp, kubeconfig, tmp)) = harness::with_certboot_rbac(NS).await else {
        return;
    };
    let _signer = cp.custom_signer(SIGNER, Duration::from_secs(3600));
    for algorithm in ["ecdsa-p256", "rsa-2048", "ed25519"] {
        let dir = tmp.path().join(algorithm);
        let run = certboot(&kubeconfig, &dir, &format!("leak-{algorithm}"), SIGNER)
            .env("CERTBOOT_KEY_ALGORITHM", algorithm)
            .env("CERTBOOT_LOG", "trace")
            .env("RUST_LOG", "trace")
            .env("RUST_BACKTRACE", "full")
            .run()
            .await;
        run.assert_code(0);
        let (_, key_pem) = read_pair(&dir);
        assert_eq!(
            mode(&dir.join("key.pem")),
            0o600,
            "key.pem is 0600 by default"
        );
        let output = format!("{}\n{}", run.stdout, run.stderr);
        assert!(output.contains("TRACE"), "trace logging is on:\n{output}");
        for needle in key_needles(&key_pem) {
            assert!(
                !output.contains(&needle),
                "{algorithm}: the key leaked into the output as {needle:?}"
            );
        }
    }

    let dir = tmp.path().join("group");
    certboot(&kubeconfig, &dir, "leak-group", SIGNER)
        .env("CERTBOOT_KEY_MODE", "0640")
        .run()
        .await
        .assert_code(0);
    assert_eq!(mode(&dir.join("key.pem")), 0o640, "CERTBOOT_KEY_MODE=0640");
}

/// Ways the key could show up in text: its PEM body lines, its whole base64, and 16-byte
/// windows of its DER as lower/upper hex and as a Rust `Debug` byte list.
fn key_needles(key_pem: &str) -> Vec<String> {
    let mut needles: Vec<String> = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        .map(str::to_string)
        .collect();
    let der = x509_parser::pem::Pem::iter_from_buffer(key_pem.as_bytes())
        .next()
        .expect("a PEM block")
        .expect("key PEM parses")
        .contents;
    // The tail of the DER holds the secret (the header bytes are the same for every key).
    for window in der.windows(16).step_by(8).skip(2) {
        let hex: String = window.iter().map(|b| format!("{b:02x}")).collect();
        needles.push(hex.to_uppercase());
        needles.push(hex);
        let list: Vec<String> = window.iter().map(|b| b.to_string()).collect();
        needles.push(list.join(", "));
    }
    needles
}
