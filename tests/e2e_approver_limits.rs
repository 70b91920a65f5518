//! End-to-end: a policy's `maxExpirationSeconds` is a maximum on every Kubernetes version. From
//! 1.22 the approver denies a CSR that asks for no lifetime; before 1.22 the API server drops
//! `spec.expirationSeconds`, so an approver that leaves signing to another signer refuses to start
//! (exit 2) rather than approve certificates of any lifetime; certboot's own signer caps every
//! certificate at the maximum itself, on every version. And names that are not the pod's: a
//! Service's bare name and a `hostNetwork` pod's (node's) IPs only where the policy opts in.

mod approver_rig;
mod harness;
mod support;

use std::path::Path;
use std::time::Duration;

use approver_rig::{condition, Rig, CERTBOOT_SA};
use harness::SignerBehaviour;
use support::read_pair;
use x509_parser::prelude::{FromDer, X509Certificate};

const SERVING: &str = "certboot.io/serving";
const DECIDE: Duration = Duration::from_secs(60);
const DAY: u32 = 86_400;

/// The shipped policy for SERVING, with a one-day maximum.
fn policy_with_max_day() -> String {
    let text = approver_rig::shipped_policy_with_signers(&[SERVING]);
    let mut policy: serde_json::Value = serde_json::from_str(&text).expect("policy");
    policy["signers"][0]["maxExpirationSeconds"] = serde_json::Value::from(DAY);
    policy.to_string()
}

fn before_1_22() -> bool {
    harness::version::under_test().is_some_and(|v| !v.has(22))
}

#[tokio::test]
async fn a_maximum_left_to_the_approver_denies_csrs_without_a_lifetime_or_stops_before_1_22() {
    let Some(rig) = Rig::start_with_policy(&[SERVING], &policy_with_max_day()).await else {
        return;
    };
    let mut controller = rig.controller("approver-a");
    if before_1_22() {
        let (code, log) = controller.finish(DECIDE).await;
        assert_eq!(code, Some(2), "{log}");
        for needle in [
            "signers[0].maxExpirationSeconds cannot be enforced",
            "drop spec.expirationSeconds",
            "CERTBOOT_SIGNER_NAMES",
        ] {
            assert!(log.contains(needle), "{needle}: {log}");
        }
        return;
    }
    controller.wait_for_log("acquired the lease", DECIDE).await;
    let _signer = rig.cp.custom_signer_with(
        SERVING,
        Duration::from_secs(3600),
        SignerBehaviour::IssueWhenApproved,
    );
    rig.service("web", &[("app", "web")]).await;

    // No lifetime asked: denied, saying what to set.
    let pod = rig
        .pod("web-0", CERTBOOT_SA, &[("app", "web")], &["10.0.0.7"])
        .await;
    let run = rig
        .certboot(&pod, &rig.bound_kubeconfig(&pod).await, SERVING)
        .env("CERTBOOT_DNS_NAMES", "web.shop.svc")
        .run()
        .await;
    run.assert_code(3)
        .assert_stderr_contains("ExpirationRequired")
        .assert_stderr_contains("CERTBOOT_EXPIRATION_SECONDS");

    // Within the maximum: approved and issued.
    let pod = rig
        .pod("web-1", CERTBOOT_SA, &[("app", "web")], &["10.0.0.8"])
        .await;
    let certboot = rig
        .certboot(&pod, &rig.bound_kubeconfig(&pod).await, SERVING)
        .env("CERTBOOT_DNS_NAMES", "web.shop.svc")
        .env("CERTBOOT_EXPIRATION_SECONDS", "3600");
    certboot.run().await.assert_code(0);
    let csr = rig
        .wait_for_condition(&certboot.csr_name(), "Approved", DECIDE)
        .await;
    assert_eq!(condition(&csr, "Approved").0, "CertbootApproved");
}

/// A self-signed CA, as a kubernetes.io/tls Secret mounts it.
fn write_ca(dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let key = KeyPair::generate().expect("CA key");
    let mut params = CertificateParams::new(vec![]).expect("params");
    params.distinguished_name.push(DnType::CommonName, "e2e CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = params.self_signed(&key).expect("CA");
    std::fs::create_dir_all(dir).expect("ca dir");
    std::fs::write(dir.join("tls.crt"), cert.pem()).expect("tls.crt");
    std::fs::write(dir.join("tls.key"), key.serialize_pem()).expect("tls.key");
}

#[tokio::test]
async fn certboots_own_signer_keeps_the_maximum_on_every_version() {
    let Some(rig) = Rig::start_with_policy(&[SERVING], &policy_with_max_day()).await else {
        return;
    };
    let ca_dir = rig.tmp.path().join("ca");
    write_ca(&ca_dir);
    let ca = ca_dir.display().to_string();
    // The signer's own default and maximum are 30 days; the policy's day wins.
    let _controller = rig.controller_with(
        "controller-a",
        &[
            ("CERTBOOT_SIGNER_NAMES", SERVING),
            ("CERTBOOT_SIGNER_CA_DIR", &ca),
        ],
    );
    rig.service("web", &[("app", "web")]).await;
    let pod = rig
        .pod("web-0", CERTBOOT_SA, &[("app", "web")], &["10.0.0.7"])
        .await;
    // No lifetime asked (and before 1.22 none could be): approved, issued for one day.
    let certboot = rig
        .certboot(&pod, &rig.bound_kubeconfig(&pod).await, SERVING)
        .env("CERTBOOT_DNS_NAMES", "web.shop.svc");
    certboot.run().await.assert_code(0);
    let (cert, _) = read_pair(&rig.tmp.path().join("certs-web-0"));
    let block = pem::parse(cert.as_bytes()).expect("leaf PEM");
    let (_, leaf) = X509Certificate::from_der(block.contents()).expect("leaf");
    let validity = leaf.validity();
    let lifetime = validity.not_after.timestamp() - validity.not_before.timestamp();
    // notBefore is backdated 5 minutes.
    assert_eq!(lifetime, i64::from(DAY) + 300);
    let csr = rig
        .wait_for_condition(&certboot.csr_name(), "Approved", DECIDE)
        .await;
    assert_eq!(condition(&csr, "Approved").0, "CertbootApproved");
}

const WIDE: &str = "certboot.io/wide";

/// A Pod object with `hostNetwork: true` whose IPs (its node's) are published, as a kubelet does.
async fn host_network_pod(rig: &Rig, name: &str, ip: &str) -> k8s_openapi::api::core::v1::Pod {
    use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
    use kube::api::{Api, ObjectMeta, PostParams};
    let pods: Api<Pod> = Api::namespaced(rig.cp.admin_client(), approver_rig::APP_NS);
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            service_account_name: Some(CERTBOOT_SA.into()),
            automount_service_account_token: Some(false),
            host_network: Some(true),
            containers: vec![Container {
                name: "app".into(),
                image: Some("busybox:1.36".into()),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        status: None,
    };
    pods.create(&PostParams::default(), &pod)
        .await
        .unwrap_or_else(|e| panic!("create pod {name}: {e}"));
    rig.set_pod_ips(name, &[ip]).await
}

#[tokio::test]
async fn short_service_names_and_a_host_network_pods_ips_only_by_opt_in() {
    // SERVING: the defaults; WIDE: both opt-ins.
    let text = approver_rig::shipped_policy_with_signers(&[SERVING, WIDE]);
    let mut policy: serde_json::Value = serde_json::from_str(&text).expect("policy");
    policy["signers"][1]["serviceShortNames"] = serde_json::Value::Bool(true);
    policy["signers"][1]["hostNetworkIPs"] = serde_json::Value::Bool(true);
    let Some(rig) = Rig::start_with_policy(&[SERVING, WIDE], &policy.to_string()).await else {
        return;
    };
    let _signers = [SERVING, WIDE].map(|signer| {
        rig.cp.custom_signer_with(
            signer,
            Duration::from_secs(3600),
            SignerBehaviour::IssueWhenApproved,
        )
    });
    let _controller = rig.controller("approver-a");
    rig.service("web", &[("app", "web")]).await;

    let web = rig
        .pod("web-0", CERTBOOT_SA, &[("app", "web")], &["10.0.0.7"])
        .await;
    let kubeconfig = rig.bound_kubeconfig(&web).await;
    let host = host_network_pod(&rig, "node-agent", "10.0.0.50").await;
    let host_kubeconfig = rig.bound_kubeconfig(&host).await;

    // The defaults: the bare Service name, and the node's IP, are denied, saying how to opt in.
    rig.certboot(&web, &kubeconfig, SERVING)
        .env("CERTBOOT_DNS_NAMES", "web,web.shop.svc")
        .run()
        .await
        .assert_code(3)
        .assert_stderr_contains("DNSNameNotAllowed")
        .assert_stderr_contains("serviceShortNames: true");
    rig.certboot(&host, &host_kubeconfig, SERVING)
        .run()
        .await
        .assert_code(3)
        .assert_stderr_contains("IPAddressNotAllowed")
        .assert_stderr_contains("hostNetwork");
    // Without the node's IP, the hostNetwork pod gets its certificate.
    rig.certboot(&host, &host_kubeconfig, SERVING)
        .env("CERTBOOT_INCLUDE_POD_IPS", "false")
        .run()
        .await
        .assert_code(0);

    // The opt-ins (another certificate directory per run: a pair on disk would be reused).
    rig.certboot(&web, &kubeconfig, WIDE)
        .env("CERTBOOT_DNS_NAMES", "web,web.shop,web.shop.svc")
        .env(
            "CERTBOOT_CERT_DIR",
            &rig.tmp.path().join("wide-web").display().to_string(),
        )
        .run()
        .await
        .assert_code(0);
    rig.certboot(&host, &host_kubeconfig, WIDE)
        .env(
            "CERTBOOT_CERT_DIR",
            &rig.tmp.path().join("wide-host").display().to_string(),
        )
        .run()
        .await
        .assert_code(0);
}
