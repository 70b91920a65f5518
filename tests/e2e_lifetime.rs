//! End-to-end: certificate lifetimes chosen by `CERTBOOT_EXPIRATION_SECONDS`
//! (`spec.expirationSeconds`, Kubernetes 1.22+), signed by the real kube-controller-manager
//! (`kubernetes.io/kube-apiserver-client`), on whichever version `KUBEBUILDER_ASSETS` holds:
//!
//! - 1.22+: the lifetime equals the request, capped by `--cluster-signing-duration`;
//! - v1.20: the server drops the field, the certificate lives `--cluster-signing-duration`, and
//!   certboot says so in its log;
//! - 1.22+ only: a sidecar renews 10-minute certificates (600 s, the API's minimum). Renewal
//!   comes 6 to 60 s after issuance here (`CERTBOOT_RENEW_BEFORE=9m`, moved earlier by certboot's
//!   jitter of up to a tenth of that) instead of the default 6m40s, so that three certificates
//!   take one or two minutes.

mod harness;
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use certboot_core::timefmt::unix_now;
use harness::{ControlPlane, ControlPlaneOptions};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::Api;
use support::Certboot;

const NS: &str = "default";
const SIGNER: &str = "kubernetes.io/kube-apiserver-client";
/// kube-controller-manager `--cluster-signing-duration` in the lifetime test.
const SIGNING_DURATION: i64 = 7200;
/// kube-controller-manager backdates `notBefore` by five minutes.
const BACKDATE: i64 = 300;

/// The pair on disk, verified: (serial, notBefore, notAfter).
fn pair(dir: &Path) -> Option<(String, i64, i64)> {
    let cert = std::fs::read(dir.join("cert.pem")).ok()?;
    let key = std::fs::read_to_string(dir.join("key.pem")).ok()?;
    let verified = certboot_core::pki::verify::verify_pair(&cert, &key, unix_now()).ok()?;
    Some((verified.serial, verified.not_before, verified.not_after))
}

/// Runs certboot once asking for `seconds`; returns the certificate's notAfter, the window
/// [start, end] in which it was issued, certboot's log, and the stored CSR.
async fn issue(
    cp: &ControlPlane,
    kubeconfig: &Path,
    dir: &Path,
    pod: &str,
    seconds: i64,
) -> (i64, (i64, i64), String, CertificateSigningRequest) {
    let certboot = Certboot::new(kubeconfig, dir, NS, pod)
        .env("CERTBOOT_SIGNER_NAME", SIGNER)
        .env("CERTBOOT_EXPIRATION_SECONDS", &seconds.to_string());
    let start = unix_now();
    let finished = certboot.run().await;
    let end = unix_now();
    finished.assert_code(0);
    let (_, _, not_after) = pair(dir).expect("a valid pair on disk");
    let csr = Api::<CertificateSigningRequest>::all(cp.admin_client())
        .get(&certboot.csr_name())
        .await
        .expect("the CSR");
    (not_after, (start, end), finished.stderr.clone(), csr)
}

#[tokio::test]
async fn expiration_seconds_sets_the_lifetime_capped_by_the_signing_duration() {
    let options = ControlPlaneOptions {
        cluster_signing_duration: Duration::from_secs(SIGNING_DURATION as u64),
        ..Default::default()
    };
    let Some(cp) = ControlPlane::start_with(options).await else {
        return;
    };
    let rbac = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/rbac.yaml");
    cp.apply_manifest_file(rbac, NS).await;
    let kubeconfig = cp.service_account_kubeconfig(NS, "certboot").await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let _approver = cp.auto_approver(SIGNER);
    let honoured = cp.version().has(22);

    // One hour, within the signing duration.
    let dir = tmp.path().join("hour");
    let (not_after, (start, end), log, csr) = issue(&cp, &kubeconfig, &dir, "life-0", 3600).await;
    if honoured {
        assert_eq!(csr.spec.expiration_seconds, Some(3600));
        assert!(
            (start + 3600 - 1..=end + 3600 + 1).contains(&not_after),
            "1 h requested between {start} and {end}: notAfter {not_after}"
        );
        assert!(!log.contains("ignore expirationSeconds"), "{log}");
    } else {
        // A v1.20 server does not know the field: dropped, the signer's default applies.
        assert_eq!(csr.spec.expiration_seconds, None);
        assert!(
            (start + SIGNING_DURATION - BACKDATE - 1..=end + SIGNING_DURATION + 1)
                .contains(&not_after),
            "--cluster-signing-duration {SIGNING_DURATION}s from {start}..{end}: notAfter {not_after}"
        );
        assert!(
            log.contains("although CERTBOOT_EXPIRATION_SECONDS asked for 1h00m")
                && log
                    .contains("API servers before 1.22 and some signers ignore expirationSeconds"),
            "certboot says it got another lifetime than requested:\n{log}"
        );
    }

    // Three hours: more than the signing duration, capped to it.
    let dir = tmp.path().join("capped");
    let (not_after, (start, end), _, csr) = issue(&cp, &kubeconfig, &dir, "life-1", 3 * 3600).await;
    if honoured {
        assert_eq!(csr.spec.expiration_seconds, Some(3 * 3600));
        assert!(
            (start + SIGNING_DURATION - 1..=end + SIGNING_DURATION + 1).contains(&not_after),
            "3 h requested, capped to {SIGNING_DURATION}s, between {start} and {end}: notAfter {not_after}"
        );
    } else {
        assert!(
            (start + SIGNING_DURATION - BACKDATE - 1..=end + SIGNING_DURATION + 1)
                .contains(&not_after),
            "notAfter {not_after}"
        );
    }
    eprintln!(
        "Kubernetes {}: expirationSeconds {}",
        cp.version(),
        if honoured { "honoured" } else { "ignored" }
    );
}

#[tokio::test]
async fn sidecar_renews_ten_minute_certificates() {
    let Some((cp, kubeconfig, tmp)) =
        harness::with_certboot_rbac_since(NS, 22, "spec.expirationSeconds").await
    else {
        return;
    };
    let _approver = cp.auto_approver(SIGNER);
    let dir = tmp.path().join("certs");
    let mut sidecar = Certboot::new(&kubeconfig, &dir, NS, "ten-0")
        .env("CERTBOOT_SIGNER_NAME", SIGNER)
        .env("CERTBOOT_MODE", "sidecar")
        .env("CERTBOOT_EXPIRATION_SECONDS", "600")
        .env("CERTBOOT_RENEW_BEFORE", "9m")
        .spawn();
    sidecar
        .wait_for_log("next renewal at", Duration::from_secs(30))
        .await;

    // serial → (notBefore, notAfter, first seen)
    let mut seen: BTreeMap<String, (i64, i64, i64)> = BTreeMap::new();
    harness::poll_until(
        Duration::from_secs(180),
        "three 10-minute certificates (the first and two renewals)",
        || {
            if let Some((serial, not_before, not_after)) = pair(&dir) {
                seen.entry(serial)
                    .or_insert((not_before, not_after, unix_now()));
            }
            let done = seen.len() >= 3;
            async move { done.then_some(()) }
        },
    )
    .await;

    for (serial, (not_before, not_after, seen_at)) in &seen {
        assert_eq!(
            not_after - not_before,
            600 + BACKDATE,
            "certificate {serial}: 10 minutes from issuance, notBefore backdated 5 minutes"
        );
        assert!(
            (not_after - seen_at - 600).abs() <= 5,
            "certificate {serial} expires 600 s after it reached the disk: notAfter {not_after}, seen {seen_at}"
        );
    }
    let mut by_age: Vec<_> = seen.values().collect();
    by_age.sort();
    for pair in by_age.windows(2) {
        let (older, newer) = (pair[0], pair[1]);
        let renewed_after = newer.2 - (older.1 - 600);
        assert!(
            (5..=65).contains(&renewed_after),
            "renewed 6-60 s after issuance (9 min before expiry, minus jitter), not {renewed_after} s: \
             {older:?} → {newer:?}"
        );
    }

    let log = sidecar.stderr_so_far();
    assert!(!log.contains("ignore expirationSeconds"), "{log}");
    sidecar.signal(libc::SIGTERM);
    sidecar.finish(Duration::from_secs(5)).await.assert_code(0);
}
