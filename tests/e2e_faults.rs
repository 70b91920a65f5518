//! End-to-end fault injection against a real control plane (`KUBEBUILDER_ASSETS`):
//! certboot retries what is transient (429 honouring the server's retryAfterSeconds, 5xx,
//! connection resets, stalled TLS handshakes, a lost answer to its create), fails at once with
//! a fix-it message on what is not (400/401/403/404/422), keeps waiting correctly across a
//! watch that expires (410 Gone), several CSR changes between two watch events and an API
//! server restart, and keeps its overall deadline while the API server is paused or down.
//! Faults come from [`faults::proxy::FaultProxy`], a TLS proxy in front of the apiserver.

mod faults;
mod harness;
mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use faults::proxy::{Fault, FaultProxy, Gate};
use harness::{ControlPlane, CsrSelector, CustomSigner, SignerBehaviour};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{Api, ListParams};
use support::{no_pair, read_pair, Certboot};

const NS: &str = "default";
const SIGNER: &str = "example.com/faults";
const CSRS: &str = "/apis/certificates.k8s.io/v1/certificatesigningrequests";

/// A control plane with certboot's RBAC, a signer for [`SIGNER`], and a fault proxy in front of
/// the API server with a kubeconfig for the `certboot` service account through it. Tests keep the
/// whole value and use its fields: a field destructured into `..` would be dropped (stopped) at once.
struct Proxied {
    cp: ControlPlane,
    tmp: tempfile::TempDir,
    proxy: FaultProxy,
    kubeconfig: PathBuf,
    /// Signs while held.
    _signer: CustomSigner,
}

/// [`Proxied`], or `None` when the control plane is not available (the test is skipped).
async fn proxied(behaviour: SignerBehaviour) -> Option<Proxied> {
    let (cp, _, tmp) = harness::with_certboot_rbac(NS).await?;
    let signer = cp.custom_signer_with(SIGNER, Duration::from_secs(3600), behaviour);
    let proxy = FaultProxy::start(cp.endpoint());
    let token = cp.service_account_token(NS, "certboot").await;
    let kubeconfig = proxy.kubeconfig(&tmp.path().join("proxy"), &token);
    Some(Proxied {
        cp,
        tmp,
        proxy,
        kubeconfig,
        _signer: signer,
    })
}

fn certboot(kubeconfig: &Path, dir: &Path, pod: &str) -> Certboot {
    Certboot::new(kubeconfig, dir, NS, pod)
        .env("CERTBOOT_SIGNER_NAME", SIGNER)
        .env("CERTBOOT_EVENTS", "false")
}

#[tokio::test]
async fn transient_failures_are_retried_with_logged_backoff_honouring_retry_after() {
    let Some(rig) = proxied(SignerBehaviour::Instant).await else {
        return;
    };
    let status = |code, retry_after| Fault::Status { code, retry_after };
    rig.proxy.inject("POST", CSRS, status(429, Some(5)), 1);
    rig.proxy.inject("POST", CSRS, status(503, None), 1);
    rig.proxy.inject("POST", CSRS, status(500, None), 1);
    rig.proxy.inject("POST", CSRS, Fault::Reset, 1);
    rig.proxy.inject("GET", "watch=true", status(503, None), 1);
    rig.proxy.inject("GET", "watch=true", Fault::Reset, 1);
    let dir = rig.tmp.path().join("certs");
    let run = certboot(&rig.kubeconfig, &dir, "retry-0").run().await;
    run.assert_code(0);
    read_pair(&dir);

    let log = &run.stderr;
    let line = |needle: &str| {
        log.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no log line with {needle:?}:\n{log}"))
            .to_string()
    };
    // 429: the server's retryAfterSeconds is the delay, and the line says so.
    let throttled = line("429");
    assert!(
        throttled.contains("create certificatesigningrequests")
            && throttled.contains("retrying in 5s"),
        "{throttled}"
    );
    for needle in ["503", "500", "reset"] {
        assert!(line(needle).contains("retrying in"), "{}", line(needle));
    }
    let retries = log.lines().filter(|l| l.contains("retrying in")).count();
    assert!(retries >= 6, "one line per retry ({retries}):\n{log}");
    assert_eq!(
        rig.proxy.count("POST", CSRS),
        5,
        "four failed creates, then one that worked: {:?}",
        rig.proxy.seen()
    );
}

#[tokio::test]
async fn a_lost_answer_to_create_and_a_stalled_tls_handshake_are_survived() {
    let Some(rig) = proxied(SignerBehaviour::Instant).await else {
        return;
    };
    // The create reaches the API server, but its answer is lost: the retry meets 409 and
    // certboot recognises its own CSR by the key instead of filing a second one.
    rig.proxy.inject("POST", CSRS, Fault::ForwardThenReset, 1);
    let dir = rig.tmp.path().join("certs");
    let pod = "lost-0";
    let cb = certboot(&rig.kubeconfig, &dir, pod);
    let run = cb.run().await;
    run.assert_code(0);
    read_pair(&dir);
    run.assert_stderr_contains("already exists with this process's key");
    let marker = format!(":{pod}:");
    let names: Vec<String> = Api::<CertificateSigningRequest>::all(rig.cp.admin_client())
        .list(&ListParams::default())
        .await
        .expect("list CSRs")
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .filter(|n| n.contains(&marker))
        .collect();
    assert_eq!(names, vec![cb.csr_name()], "exactly one CSR was filed");

    // The first connection gets no TLS handshake: after kube's connect timeout certboot
    // retries on a new connection, logging it.
    rig.proxy.stall_handshakes(1);
    let dir = rig.tmp.path().join("certs-stall");
    let run = certboot(&rig.kubeconfig, &dir, "stall-0").run().await;
    run.assert_code(0);
    read_pair(&dir);
    let retry = run
        .stderr
        .lines()
        .find(|l| l.contains("retrying in"))
        .unwrap_or_else(|| panic!("a logged retry:\n{}", run.stderr));
    assert!(
        retry.contains("create certificatesigningrequests"),
        "{retry}"
    );
    assert!(
        rig.proxy
            .seen()
            .iter()
            .any(|s| s.fault.as_deref() == Some("stalled handshake")),
        "{:?}",
        rig.proxy.seen()
    );
}

#[tokio::test]
async fn permanent_errors_fail_at_once_saying_what_to_fix() {
    let Some(rig) = proxied(SignerBehaviour::Instant).await else {
        return;
    };
    let cases = [
        (400, "rejected the object"),
        (401, "rejected the credentials"),
        (403, "grant it with a rule {apiGroups: [certificates.k8s.io], resources: [certificatesigningrequests], verbs: [create]}"),
        (404, "certificates.k8s.io/v1 API is not served"),
        (422, "check CERTBOOT_SIGNER_NAME"),
    ];
    for (code, hint) in cases {
        // Injected once: a retry would succeed, so exit 1 also proves there was none.
        rig.proxy.inject(
            "POST",
            CSRS,
            Fault::Status {
                code,
                retry_after: None,
            },
            1,
        );
        let before = rig.proxy.count("POST", CSRS);
        let dir = rig.tmp.path().join(format!("certs-{code}"));
        let run = certboot(&rig.kubeconfig, &dir, &format!("perm-{code}"))
            .run()
            .await;
        run.assert_code(1);
        let log = &run.stderr;
        assert!(
            log.contains("create certificatesigningrequests"),
            "{code}: {log}"
        );
        assert!(log.contains(&format!("{code}")), "{code}: {log}");
        assert!(log.contains(hint), "{code}: expected {hint:?} in:\n{log}");
        assert!(
            !log.contains("retrying in"),
            "{code} is not retried:\n{log}"
        );
        assert_eq!(
            rig.proxy.count("POST", CSRS),
            before + 1,
            "{code}: one attempt"
        );
        no_pair(&dir);
    }
}

#[tokio::test]
async fn watch_expiry_and_several_changes_between_watch_events_are_handled() {
    let Some(rig) = proxied(SignerBehaviour::IssueWhenApproved).await else {
        return;
    };
    for (pod, gone) in [("gone-0", true), ("burst-0", false)] {
        // certboot's first watch is held while the CSR is approved and then issued (two
        // changes); then it ends with 410 Gone (certboot must GET afresh) or is let through
        // (certboot sees both changes in one burst of events).
        let gate = Gate::new();
        let fault = if gone {
            Fault::HoldThenGone(gate.clone())
        } else {
            Fault::Hold(gate.clone())
        };
        rig.proxy.inject("GET", "watch=true", fault, 1);
        let dir = rig.tmp.path().join(pod);
        let cb = certboot(&rig.kubeconfig, &dir, pod);
        let running = cb.spawn();
        let name = cb.csr_name();
        harness::poll_until(Duration::from_secs(30), "certboot's watch", || async {
            (rig.proxy.count("GET", "watch=true") > 0).then_some(())
        })
        .await;
        rig.cp
            .wait_for_csr(CsrSelector::Name(&name), Duration::from_secs(10))
            .await;
        rig.cp
            .approve_csr(&name, "TestApprove", "approved by the test")
            .await;
        rig.cp
            .wait_for_certificate(&name, Duration::from_secs(30))
            .await;
        gate.open();
        let run = running.finish(Duration::from_secs(60)).await;
        run.assert_code(0);
        read_pair(&dir);
        let log = &run.stderr;
        assert!(log.contains(&format!("CSR {name} issued")), "{log}");
        if gone {
            assert!(
                log.contains("expired (410 Gone); reading it afresh"),
                "{log}"
            );
        }
    }
}

#[tokio::test]
async fn api_server_restart_while_waiting_then_issue() {
    let Some(rig) = proxied(SignerBehaviour::IssueWhenApproved).await else {
        return;
    };
    let dir = rig.tmp.path().join("certs");
    let pod = "restart-0";
    let cb = certboot(&rig.kubeconfig, &dir, pod);
    let mut running = cb.spawn();
    running
        .wait_for_log("watching CSR", Duration::from_secs(30))
        .await;
    rig.cp.stop_apiserver();
    running
        .wait_for_log("retrying in", Duration::from_secs(60))
        .await;
    // A restarting kube-apiserver answers 403 until its RBAC caches are loaded (seen with this
    // very test before the fix in src/csr/wait.rs); make that window certain.
    rig.proxy.inject(
        "GET",
        "watch=true",
        Fault::Status {
            code: 403,
            retry_after: None,
        },
        2,
    );
    rig.cp.start_apiserver().await;
    let name = cb.csr_name();
    rig.cp
        .approve_csr(&name, "TestApprove", "approved by the test")
        .await;
    let run = running.finish(Duration::from_secs(90)).await;
    run.assert_code(0);
    read_pair(&dir);
    let log = &run.stderr;
    assert!(log.contains(&format!("CSR {name} issued")), "{log}");
    assert!(log.contains("refused with 403"), "{log}");
}

#[tokio::test]
async fn the_deadline_holds_while_the_api_server_is_paused_or_down() {
    let Some((cp, kubeconfig, tmp)) = harness::with_certboot_rbac(NS).await else {
        return;
    };
    let _signer = cp.custom_signer_with(
        SIGNER,
        Duration::from_secs(3600),
        SignerBehaviour::IssueWhenApproved,
    );
    // Paused (SIGSTOP) mid-wait: connections stay open, nothing answers.
    let dir = tmp.path().join("paused");
    let mut running = certboot(&kubeconfig, &dir, "paused-0")
        .env("CERTBOOT_TIMEOUT", "8s")
        .spawn();
    running
        .wait_for_log("is pending", Duration::from_secs(30))
        .await;
    cp.pause_apiserver();
    let run = running.finish(Duration::from_secs(60)).await;
    cp.resume_apiserver();
    run.assert_code(4);
    assert!(run.stderr.contains("CERTBOOT_TIMEOUT=8s"), "{}", run.stderr);
    no_pair(&dir);

    // Down (connection refused) from the start.
    cp.stop_apiserver();
    let dir = tmp.path().join("down");
    let run = certboot(&kubeconfig, &dir, "down-0")
        .env("CERTBOOT_TIMEOUT", "5s")
        .spawn()
        .finish(Duration::from_secs(60))
        .await;
    run.assert_code(4);
    assert!(run.stderr.contains("CERTBOOT_TIMEOUT=5s"), "{}", run.stderr);
    assert!(run.stderr.contains("retrying in"), "{}", run.stderr);
    no_pair(&dir);
}
