//! End-to-end: `certboot-controller` approves a pod's CSR only when it provably comes from that
//! pod, against a real kube-apiserver and kube-controller-manager. Pods are Pod objects (no
//! kubelet: their IPs are published through the status subresource, as a kubelet does) and certboot
//! authenticates with a TokenRequest token bound to its Pod, as the kubelet mounts it.

mod approver_rig;
mod faults;
mod harness;
mod support;

use std::time::{Duration, Instant};

use approver_rig::{condition, Rig, APP_NS, CERTBOOT_SA};
use faults::proxy::{Fault, FaultProxy, Gate};
use harness::{CsrSelector, SignerBehaviour};
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use k8s_openapi::ByteString;
use kube::api::{Api, ObjectMeta, PostParams};
use support::{http_get, read_pair};

const SERVING: &str = "certboot.io/serving";
const LEGACY: &str = "certboot.io/legacy";
const CLIENT: &str = "kubernetes.io/kube-apiserver-client";
const DECIDE: Duration = Duration::from_secs(30);

fn uid6(pod: &k8s_openapi::api::core::v1::Pod) -> String {
    pod.metadata
        .uid
        .as_deref()
        .unwrap_or_default()
        .chars()
        .take(6)
        .collect()
}

#[tokio::test]
async fn approves_the_pods_own_csr_and_its_renewals_then_the_custom_signer_issues() {
    let Some(rig) = Rig::start(&[SERVING]).await else {
        return;
    };
    let _signer = rig.cp.custom_signer_with(
        SERVING,
        Duration::from_secs(15),
        SignerBehaviour::IssueWhenApproved,
    );
    rig.service("web", &[("app", "web")]).await;
    let pod = rig
        .pod("web-0", CERTBOOT_SA, &[("app", "web")], &["10.0.0.7"])
        .await;
    let kubeconfig = rig.bound_kubeconfig(&pod).await;
    let mut controller = rig.controller("approver-a");
    controller.wait_for_log("acquired the lease", DECIDE).await;

    let certboot = rig
        .certboot(&pod, &kubeconfig, SERVING)
        .env("CERTBOOT_DNS_NAMES", "web.shop.svc");
    certboot.run().await.assert_code(0);
    let dir = rig.tmp.path().join("certs-web-0");
    read_pair(&dir);
    let name = certboot.csr_name();
    let csr = rig.wait_for_condition(&name, "Approved", DECIDE).await;
    let (reason, message) = condition(&csr, "Approved");
    assert_eq!(reason, "CertbootApproved");
    assert!(
        message.contains("bound to pod shop/web-0") && message.contains("checked requester"),
        "{message}"
    );
    let extra = csr.spec.extra.clone().unwrap_or_default();
    assert_eq!(
        extra.get("authentication.kubernetes.io/pod-uid"),
        pod.metadata.uid.as_ref().map(|u| vec![u.clone()]).as_ref()
    );

    // The sidecar renews the 15 s certificate: each renewal CSR (<name>:<key fingerprint>) is
    // approved too, with nobody approving by hand.
    let sidecar = certboot.env("CERTBOOT_MODE", "sidecar").spawn();
    let dump = DumpOnPanic(&controller, &sidecar);
    let renewal = rig
        .wait_for_issued_renewal(&name, Duration::from_secs(60))
        .await;
    drop(dump);
    assert_eq!(condition(&renewal, "Approved").0, "CertbootApproved");
    drop(sidecar);

    let health = controller.health_addr().await;
    let metrics = http_get(&health, "/metrics").expect("metrics");
    assert!(
        metrics.contains(
            "\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\n"
        ) && metrics.ends_with("# EOF\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "certboot_approver_decisions_total{result=\"approved\",reason=\"CertbootApproved\"}"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("certboot_controller_leader 1"),
        "{metrics}"
    );
    assert!(http_get(&health, "/readyz")
        .expect("readyz")
        .starts_with("HTTP/1.1 200"));
    controller
        .wait_for_log("approved CSR shop:web-0:", DECIDE)
        .await;

    // `kubectl describe pod web-0` shows the approval.
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(rig.cp.admin_client(), APP_NS);
    harness::poll_until(DECIDE, "a CSRApproved Event on pod web-0", || {
        let events = events.clone();
        async move {
            let list = events.list(&Default::default()).await.ok()?;
            list.items.into_iter().find(|e| {
                e.reason.as_deref() == Some("CSRApproved")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("web-0")
            })
        }
    })
    .await;
}

struct DumpOnPanic<'a>(&'a approver_rig::Controller, &'a support::Running);
impl Drop for DumpOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "controller log:\n{}\nsidecar log:\n{}",
                self.0.log(),
                self.1.stderr_so_far()
            );
        }
    }
}

#[tokio::test]
async fn kube_apiserver_client_certificates_are_approved_but_never_for_system_groups() {
    // kube-controller-manager signs 20-second certificates, so the sidecar renews within the
    // test. Not on 1.20: its signer counts the duration from the 5-minute backdated notBefore, so
    // such a certificate is born expired (certboot rejects it, exit 5); there the renewal step
    // is skipped with a line saying so.
    let renews = harness::version::under_test().is_none_or(|v| v.has(22));
    let mut options = harness::ControlPlaneOptions::default();
    if renews {
        options.cluster_signing_duration = Duration::from_secs(20);
    }
    let policy = approver_rig::shipped_policy_with_signers(&[CLIENT]);
    let Some(rig) = Rig::start_with_options(&[CLIENT], &policy, options).await else {
        return;
    };
    let pod = rig.pod("api-0", CERTBOOT_SA, &[], &["10.0.0.8"]).await;
    let kubeconfig = rig.bound_kubeconfig(&pod).await;
    let _controller = rig.controller("approver-a");

    // kube-controller-manager signs once the approver approved.
    let certboot = rig.certboot(&pod, &kubeconfig, CLIENT);
    certboot.run().await.assert_code(0);
    read_pair(&rig.tmp.path().join("certs-api-0"));

    // Then a sidecar renewal: its CSR (<name>:<key fingerprint>) is approved and signed too.
    let name = certboot.csr_name();
    if renews {
        let sidecar = certboot.env("CERTBOOT_MODE", "sidecar").spawn();
        let renewal = rig
            .wait_for_issued_renewal(&name, Duration::from_secs(60))
            .await;
        assert_eq!(condition(&renewal, "Approved").0, "CertbootApproved");
        drop(sidecar);
    } else {
        eprintln!(
            "SKIPPED renewal step: kube-controller-manager 1.20 cannot sign 20-second certificates"
        );
    }

    let masters = rig.pod("api-1", CERTBOOT_SA, &[], &["10.0.0.9"]).await;
    let kubeconfig = rig.bound_kubeconfig(&masters).await;
    // The API server itself refuses system:masters for this signer (and certboot says it is
    // not RBAC); every other system: group reaches the approver, which denies it.
    let run = rig
        .certboot(&masters, &kubeconfig, CLIENT)
        .env("CERTBOOT_ORGANIZATIONS", "system:masters")
        .run()
        .await;
    run.assert_code(1)
        .assert_stderr_contains("system:masters group is not allowed")
        .assert_stderr_contains("not RBAC");
    let run = rig
        .certboot(&masters, &kubeconfig, CLIENT)
        .env("CERTBOOT_ORGANIZATIONS", "system:nodes")
        .run()
        .await;
    run.assert_code(3).assert_stderr_contains("ForbiddenGroup");
    support::no_pair(&rig.tmp.path().join("certs-api-1"));
}

#[tokio::test]
async fn csrs_that_do_not_provably_come_from_their_pod_are_denied_with_the_failed_check() {
    let policy = approver_rig::shipped_policy_with_signers(&[SERVING, LEGACY]);
    let mut policy: serde_json::Value = serde_json::from_str(&policy).expect("policy");
    policy["signers"][1]["requirePodBoundToken"] = serde_json::Value::Bool(false);
    let Some(rig) = Rig::start_with_policy(&[SERVING, LEGACY], &policy.to_string()).await else {
        return;
    };
    let _signer = rig.cp.custom_signer_with(
        SERVING,
        Duration::from_secs(3600),
        SignerBehaviour::IssueWhenApproved,
    );
    rig.service("web", &[("app", "web")]).await;
    rig.service("db", &[("app", "db")]).await;

    // Filed before the approver runs: the pod is then deleted and re-created under the same name.
    let old = rig
        .pod("web-r", CERTBOOT_SA, &[("app", "web")], &["10.0.1.1"])
        .await;
    let old_kubeconfig = rig.bound_kubeconfig(&old).await;
    let recreated_run = rig.certboot(&old, &old_kubeconfig, SERVING).spawn();
    let recreated_csr = support::csr_name(
        APP_NS,
        "web-r",
        old.metadata.uid.as_deref().unwrap_or_default(),
    );
    rig.cp
        .wait_for_csr(CsrSelector::Name(&recreated_csr), DECIDE)
        .await;
    rig.delete_pod("web-r").await;
    let new = rig
        .pod("web-r", CERTBOOT_SA, &[("app", "web")], &["10.0.1.1"])
        .await;
    assert_ne!(old.metadata.uid, new.metadata.uid);

    let _controller = rig.controller("approver-a");

    // Pod B's token files a CSR named for pod A.
    let victim = rig
        .pod("web-a", CERTBOOT_SA, &[("app", "web")], &["10.0.1.2"])
        .await;
    let impostor = rig
        .pod("web-b", CERTBOOT_SA, &[("app", "web")], &["10.0.1.3"])
        .await;
    let impostor_kubeconfig = rig.bound_kubeconfig(&impostor).await;
    let impostor_run = rig.certboot(&victim, &impostor_kubeconfig, SERVING).spawn();

    // An IP SAN that is not the pod's.
    let ip = rig
        .pod("web-i", CERTBOOT_SA, &[("app", "web")], &["10.0.1.4"])
        .await;
    let ip_run = rig
        .certboot(&ip, &rig.bound_kubeconfig(&ip).await, SERVING)
        .env("CERTBOOT_IP_ADDRESSES", "10.9.9.9")
        .spawn();

    // A DNS SAN of a Service that selects other pods.
    let dns = rig
        .pod("web-d", CERTBOOT_SA, &[("app", "web")], &["10.0.1.5"])
        .await;
    let dns_run = rig
        .certboot(&dns, &rig.bound_kubeconfig(&dns).await, SERVING)
        .env("CERTBOOT_DNS_NAMES", "db.shop.svc")
        .spawn();

    // A token that is not bound to a pod.
    let unbound = rig
        .pod("web-u", CERTBOOT_SA, &[("app", "web")], &["10.0.1.6"])
        .await;
    let unbound_token = rig.cp.service_account_token(APP_NS, CERTBOOT_SA).await;
    let unbound_kubeconfig = rig
        .cp
        .write_kubeconfig(&rig.cp.dir().join("kubeconfigs"), &unbound_token);
    let unbound_run = rig.certboot(&unbound, &unbound_kubeconfig, SERVING).spawn();

    // The weaker mode (no pod-bound token required): the pod runs as another service account.
    let other_sa = rig
        .pod("web-s", "other", &[("app", "web")], &["10.0.1.7"])
        .await;
    let other_sa_run = rig.certboot(&other_sa, &unbound_kubeconfig, LEGACY).spawn();

    // A request for a CA certificate, signed by its own key, under the pod's correct name.
    let ca = rig
        .pod("web-c", CERTBOOT_SA, &[("app", "web")], &["10.0.1.8"])
        .await;
    let ca_token = rig.bound_token(&ca).await;
    let ca_name = format!("{APP_NS}:web-c:{}", uid6(&ca));
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec![]).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "web-c.shop");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let request = params
        .serialize_request(&key)
        .expect("request")
        .pem()
        .expect("pem");
    let as_pod: Api<CertificateSigningRequest> =
        Api::all(rig.cp.endpoint().token_client(&ca_token));
    as_pod
        .create(
            &PostParams::default(),
            &CertificateSigningRequest {
                metadata: ObjectMeta {
                    name: Some(ca_name.clone()),
                    ..ObjectMeta::default()
                },
                spec: CertificateSigningRequestSpec {
                    request: ByteString(request.into_bytes()),
                    signer_name: SERVING.into(),
                    usages: Some(vec!["digital signature".into(), "server auth".into()]),
                    ..CertificateSigningRequestSpec::default()
                },
                status: None,
            },
        )
        .await
        .expect("the pod may create a CSR");

    // The pod's IPs are published 2 s after its CSR: approved after a requeue, not denied.
    let late = rig.pod("web-l", CERTBOOT_SA, &[("app", "web")], &[]).await;
    let late_run = rig
        .certboot(&late, &rig.bound_kubeconfig(&late).await, SERVING)
        .env("POD_IPS", "10.0.1.9")
        .spawn();
    let late_csr = support::csr_name(
        APP_NS,
        "web-l",
        late.metadata.uid.as_deref().unwrap_or_default(),
    );
    rig.cp
        .wait_for_csr(CsrSelector::Name(&late_csr), DECIDE)
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await; // the kubelet's delay being simulated
    rig.set_pod_ips("web-l", &["10.0.1.9"]).await;

    let expect = [
        (recreated_csr.as_str(), "PodUIDMismatch"),
        (
            &*format!("{APP_NS}:web-a:{}", uid6(&victim)),
            "NameMismatch",
        ),
        (
            &*format!("{APP_NS}:web-i:{}", uid6(&ip)),
            "IPAddressNotAllowed",
        ),
        (
            &*format!("{APP_NS}:web-d:{}", uid6(&dns)),
            "DNSNameNotAllowed",
        ),
        (
            &*format!("{APP_NS}:web-u:{}", uid6(&unbound)),
            "PodBindingMissing",
        ),
        (
            &*format!("{APP_NS}:web-s:{}", uid6(&other_sa)),
            "ServiceAccountMismatch",
        ),
        (ca_name.as_str(), "CARequested"),
    ];
    for (name, reason) in expect {
        let csr = rig.wait_for_condition(name, "Denied", DECIDE).await;
        let (got, message) = condition(&csr, "Denied");
        assert_eq!(got, reason, "{name}: {message}");
        assert!(message.starts_with("certboot approver: check"), "{message}");
        assert!(
            !harness::has_condition(&csr, "Approved"),
            "{name} must not be approved"
        );
        assert!(
            harness::issued_certificate(&csr).is_none(),
            "{name} must not be issued"
        );
    }
    for (run, reason) in [
        (impostor_run, "NameMismatch"),
        (ip_run, "10.9.9.9"),
        (dns_run, "db.shop.svc"),
        (unbound_run, "PodBindingMissing"),
        (other_sa_run, "ServiceAccountMismatch"),
    ] {
        run.finish(DECIDE)
            .await
            .assert_code(3)
            .assert_stderr_contains(reason);
    }
    drop(recreated_run);

    late_run.finish(DECIDE).await.assert_code(0);
    let csr = rig.wait_for_condition(&late_csr, "Approved", DECIDE).await;
    assert_eq!(condition(&csr, "Approved").0, "CertbootApproved");
}

#[tokio::test]
async fn a_standby_takes_over_pending_csrs_and_a_restart_decides_nothing_twice() {
    let Some(rig) = Rig::start(&[SERVING]).await else {
        return;
    };
    let _signer = rig.cp.custom_signer_with(
        SERVING,
        Duration::from_secs(3600),
        SignerBehaviour::IssueWhenApproved,
    );
    let mut a = rig.controller("approver-a");
    a.wait_for_log("acquired the lease", DECIDE).await;
    let mut b = rig.controller("approver-b");
    b.wait_for_log("standing by", DECIDE).await;

    // The leader dies (SIGKILL: no release); a CSR filed now waits for the standby.
    let killed = Instant::now();
    a.stop(libc::SIGKILL).await;
    let pod = rig.pod("web-0", CERTBOOT_SA, &[], &["10.0.2.1"]).await;
    let certboot = rig.certboot(&pod, &rig.bound_kubeconfig(&pod).await, SERVING);
    let run = certboot.spawn();
    b.wait_for_log("acquired the lease", Duration::from_secs(30))
        .await;
    let takeover = killed.elapsed();
    eprintln!(
        "standby took over {:.1}s after the leader was killed",
        takeover.as_secs_f64()
    );
    assert!(
        takeover < Duration::from_secs(15),
        "takeover took {takeover:?}"
    );
    run.finish(DECIDE).await.assert_code(0);

    // A clean stop releases the lease; a CSR filed while no approver runs is not lost.
    assert_eq!(b.stop(libc::SIGTERM).await, Some(0));
    let second = rig.pod("web-1", CERTBOOT_SA, &[], &["10.0.2.2"]).await;
    let second_certboot = rig.certboot(&second, &rig.bound_kubeconfig(&second).await, SERVING);
    let second_run = second_certboot.spawn();
    rig.cp
        .wait_for_csr(CsrSelector::Name(&second_certboot.csr_name()), DECIDE)
        .await;
    let mut c = rig.controller("approver-c");
    c.wait_for_log("acquired the lease", Duration::from_secs(5))
        .await;
    second_run.finish(DECIDE).await.assert_code(0);

    // Each CSR was approved exactly once, across three replicas (audit log: /approval updates;
    // the log records a request after its response, so wait until both are there).
    let approvals = |name: &str| {
        rig.cp
            .audit_events()
            .into_iter()
            .filter(|e| {
                e["verb"] == "update"
                    && e["objectRef"]["subresource"] == "approval"
                    && e["objectRef"]["name"] == name
                    && e["stage"] == "ResponseComplete"
                    && e["responseStatus"]["code"] == 200
            })
            .count()
    };
    let names = [certboot.csr_name(), second_certboot.csr_name()];
    harness::poll_until(DECIDE, "both approvals in the audit log", || {
        let all = names.iter().all(|n| approvals(n) >= 1);
        async move { all.then_some(()) }
    })
    .await;
    for name in &names {
        assert_eq!(approvals(name), 1, "approvals of {name}");
    }
}

/// The API server stops answering the leader's Lease calls (a fault proxy in front of it holds
/// every GET and PUT of the Lease); the standby reaches the API server directly. The leader steps
/// down (exit 1, saying why) within the renew deadline + one retry period (6 s + 2 s), before the
/// standby may take over (the Lease expires 8 s after its last renewal), and the standby then
/// takes over and approves. Without a bound on each round, the leader would wait on its hung
/// call forever and keep approving next to the new leader.
#[tokio::test]
async fn a_leader_the_api_server_stops_answering_steps_down_before_the_standby_takes_over() {
    let Some(rig) = Rig::start(&[SERVING]).await else {
        return;
    };
    let _signer = rig.cp.custom_signer_with(
        SERVING,
        Duration::from_secs(3600),
        SignerBehaviour::IssueWhenApproved,
    );
    let proxy = FaultProxy::start(rig.cp.endpoint());
    let kubeconfig = proxy.kubeconfig(&rig.tmp.path().join("proxy"), &rig.controller_token().await);
    let mut a = rig.controller_via(&kubeconfig, "approver-a");
    a.wait_for_log("acquired the lease", DECIDE).await;
    let mut b = rig.controller("approver-b");
    b.wait_for_log("standing by", DECIDE).await;

    let gate = Gate::new();
    let lease = "/leases/certboot-controller";
    proxy.inject("GET", lease, Fault::Hold(gate.clone()), usize::MAX);
    proxy.inject("PUT", lease, Fault::Hold(gate.clone()), usize::MAX);
    let held = Instant::now();
    let (code, log) = a.finish(Duration::from_secs(30)).await;
    let stepped_down = held.elapsed();
    assert!(
        !b.log().contains("acquired the lease"),
        "the standby took over before the old leader stepped down:\n{}",
        b.log()
    );
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("could not renew the lease certboot-system/certboot-controller")
            && log.contains("no answer from the API server within")
            && log.contains("stepping down"),
        "{log}"
    );
    assert!(
        stepped_down <= Duration::from_secs(8),
        "stepped down {stepped_down:?} after the API server stopped answering"
    );
    assert!(proxy.count("PUT", lease) + proxy.count("GET", lease) > 0);
    b.wait_for_log("acquired the lease", Duration::from_secs(20))
        .await;
    let took_over = held.elapsed();
    gate.open();
    eprintln!(
        "leader stepped down {:.1}s after its Lease calls hung; the standby took over after {:.1}s",
        stepped_down.as_secs_f64(),
        took_over.as_secs_f64()
    );

    // The new leader approves.
    let pod = rig.pod("web-0", CERTBOOT_SA, &[], &["10.0.3.1"]).await;
    let certboot = rig.certboot(&pod, &rig.bound_kubeconfig(&pod).await, SERVING);
    certboot.run().await.assert_code(0);
    let csr = rig
        .wait_for_condition(&certboot.csr_name(), "Approved", DECIDE)
        .await;
    assert_eq!(condition(&csr, "Approved").0, "CertbootApproved");
}

#[tokio::test]
async fn a_bad_policy_stops_the_controller_at_start_naming_the_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("policy.json");
    std::fs::write(&policy, r#"{"signers": [{"signerName": "certboot.io/serving", "usages": ["server auth", "cert sign"]}]}"#).expect("write");
    let output = std::process::Command::new(harness::controller_bin::controller_binary())
        .env_clear()
        .env("CERTBOOT_POLICY", &policy)
        .env("POD_NAME", "c-0")
        .env("POD_NAMESPACE", "certboot-system")
        .output()
        .expect("run certboot-controller");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("signers[0].usages[1]") && stderr.contains("cert sign"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_shipped_approver_manifests_are_accepted_and_its_policy_loads() {
    let text = approver_rig::shipped_policy_with_signers(&[SERVING]);
    let policy = certboot_controller::approver::policy::Policy::parse(&text)
        .expect("the shipped policy loads");
    assert_eq!(policy.signer_names(), vec![SERVING.to_string()]);

    let Some(cp) = harness::ControlPlane::start().await else {
        return;
    };
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/approver");
    let listed =
        std::fs::read_to_string(format!("{dir}/kustomization.yaml")).expect("kustomization");
    let mut kinds = Vec::new();
    for file in [
        "namespace.yaml",
        "rbac.yaml",
        "policy.yaml",
        "deployment.yaml",
        "networkpolicy.yaml",
    ] {
        assert!(listed.contains(file), "kustomization.yaml lists {file}");
        for object in cp
            .apply_manifest_file(format!("{dir}/{file}"), approver_rig::SYSTEM_NS)
            .await
        {
            kinds.push(object.kind);
        }
    }
    for kind in [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "Deployment",
        "NetworkPolicy",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
}
