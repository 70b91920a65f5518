//! End-to-end: certboot as an init container against a real kube-apiserver and
//! kube-controller-manager (`KUBEBUILDER_ASSETS`), authenticated as a service account
//! bound to `manifests/rbac.yaml`. Skipped, with a message, when the control plane is absent
//! (and a failure under CI=true).

mod harness;
mod support;

use std::time::Duration;

use harness::{ControlPlane, CsrSelector, SignerBehaviour};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::ListParams;
use kube::Api;
use support::connect_proxy::ConnectProxy;
use support::{entries, mode, read_pair, Certboot};

const NS: &str = "default";
const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";
const CUSTOM_SIGNER: &str = "example.com/web";

async fn csrs(cp: &ControlPlane) -> Vec<CertificateSigningRequest> {
    Api::<CertificateSigningRequest>::all(cp.admin_client())
        .list(&ListParams::default())
        .await
        .expect("list CSRs")
        .items
}

#[tokio::test]
async fn kube_apiserver_client_signer_issues_a_certificate_that_authenticates() {
    let Some((cp, kubeconfig, tmp)) = harness::with_certboot_rbac(NS).await else {
        return;
    };
    let _approver = cp.auto_approver(CLIENT_SIGNER);
    let dir = tmp.path().join("certs");
    let certboot = Certboot::new(&kubeconfig, &dir, NS, "web-0")
        .env("CERTBOOT_SIGNER_NAME", CLIENT_SIGNER)
        .env("CERTBOOT_COMMON_NAME", "certboot-e2e-user")
        .env("CERTBOOT_ORGANIZATIONS", "certboot-e2e");
    let run = certboot.run().await;
    run.assert_code(0);

    let (cert, key) = read_pair(&dir);
    assert_eq!(mode(&dir.join("key.pem")), 0o600);
    assert_eq!(mode(&dir.join("cert.pem")), 0o644);
    let name = certboot.csr_name();
    let csr = cp
        .wait_for_csr(CsrSelector::Name(&name), Duration::from_secs(5))
        .await;
    let labels = csr.metadata.labels.unwrap_or_default();
    assert_eq!(labels.get("certboot.io/pod-uid"), Some(&certboot.pod_uid()));
    assert_eq!(
        csr.spec.username.as_deref(),
        Some("system:serviceaccount:default:certboot")
    );
    run.assert_stderr_contains(&format!("created CSR {name}"));

    // A real use of the credential: the API server authenticates the certificate's CN as the user.
    let as_user = cp.client_cert_client(&cert, &key);
    let err = Api::<CertificateSigningRequest>::all(as_user)
        .list(&ListParams::default())
        .await
        .expect_err("the new user has no RBAC");
    let message = err.to_string();
    assert!(
        message.contains("User \"certboot-e2e-user\""),
        "authenticated as the CSR's CN: {message}"
    );
}

/// kube-controller-manager signs the key types certboot added for parity with Calico (P-521 with
/// SHA-512, RSA-8192), the certificate authenticates, its key file is PKCS#8 openssl reads, and
/// `certboot check` accepts the pair.
#[tokio::test]
async fn kube_controller_manager_signs_p521_and_rsa_8192_client_certificates() {
    let Some((cp, kubeconfig, tmp)) = harness::with_certboot_rbac(NS).await else {
        return;
    };
    let _approver = cp.auto_approver(CLIENT_SIGNER);
    for algorithm in ["ecdsa-p521", "rsa-8192"] {
        let dir = tmp.path().join(algorithm);
        let user = format!("certboot-e2e-{algorithm}");
        let certboot = || {
            Certboot::new(&kubeconfig, &dir, NS, &format!("client-{algorithm}"))
                .env("CERTBOOT_SIGNER_NAME", CLIENT_SIGNER)
                .env("CERTBOOT_KEY_ALGORITHM", algorithm)
                .env("CERTBOOT_COMMON_NAME", &user)
        };
        certboot().run().await.assert_code(0);
        let (cert, key) = read_pair(&dir);
        let parsed = certboot_core::pki::key::PrivateKey::from_pem(&key).expect("key.pem readable");
        assert_eq!(parsed.algorithm().name(), algorithm);
        let err = Api::<CertificateSigningRequest>::all(cp.client_cert_client(&cert, &key))
            .list(&ListParams::default())
            .await
            .expect_err("the new user has no RBAC");
        assert!(
            err.to_string().contains(&format!("User \"{user}\"")),
            "{algorithm}: authenticated as the CSR's CN: {err}"
        );
        support::openssl_reads_key(&dir.join("key.pem"));
        // The pair check, as a probe would run it in the pod.
        certboot().args(&["check"]).run().await.assert_code(0);
    }
}

/// The kubeconfig's `proxy-url` is honoured: the server's name resolves nowhere
/// (`.invalid`), so certboot reaches the API server only through the test's CONNECT proxy, which
/// tunnels only with the credentials from the URL (percent-decoded) and counts the tunnels.
#[tokio::test]
async fn reaches_the_api_server_only_through_the_kubeconfigs_proxy_url() {
    let Some((cp, kubeconfig, tmp)) = harness::with_certboot_rbac(NS).await else {
        return;
    };
    let _approver = cp.auto_approver(CLIENT_SIGNER);
    let apiserver: std::net::SocketAddr = cp
        .url()
        .trim_start_matches("https://")
        .parse()
        .expect("the API server's loopback address");
    const NAME: &str = "apiserver.certboot.invalid";
    // Basic base64("certboot:s@cret"): the URL's user and password, percent-decoded.
    let proxy = ConnectProxy::start(NAME, apiserver, "Basic Y2VydGJvb3Q6c0BjcmV0").await;
    let mut config: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&kubeconfig).expect("kubeconfig"))
            .expect("kubeconfig YAML");
    let cluster = &mut config["clusters"][0]["cluster"];
    cluster["server"] = format!("https://{NAME}:{}", apiserver.port()).into();
    // The API server's certificate names localhost and 127.0.0.1, not the .invalid name.
    cluster["tls-server-name"] = "localhost".into();
    cluster["proxy-url"] = format!("http://certboot:s%40cret@{}", proxy.addr).into();
    let proxied = tmp.path().join("kubeconfig-proxied.yaml");
    std::fs::write(&proxied, serde_yaml::to_string(&config).expect("YAML")).expect("write");

    let dir = tmp.path().join("certs");
    let run = Certboot::new(&proxied, &dir, NS, "web-proxied")
        .env("CERTBOOT_SIGNER_NAME", CLIENT_SIGNER)
        .env("CERTBOOT_COMMON_NAME", "certboot-e2e-proxied")
        .run()
        .await;
    run.assert_code(0);
    read_pair(&dir);
    assert!(proxy.tunnels() >= 1, "no CONNECT reached the proxy");
    assert_eq!(proxy.refused(), 0, "a CONNECT the proxy refused");
    eprintln!("{} tunnel(s) through the proxy", proxy.tunnels());
}

/// A proxy-url certboot cannot use (SOCKS) is a configuration error naming the URL (exit 2,
/// nothing sent), not ignored; its password is not printed. No control plane needed.
#[tokio::test]
async fn a_socks_proxy_url_is_a_configuration_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let kubeconfig = tmp.path().join("kubeconfig.yaml");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n    proxy-url: socks5://user:secret@127.0.0.1:1080\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\n",
    )
    .expect("write kubeconfig");
    let run = Certboot::new(&kubeconfig, &tmp.path().join("certs"), NS, "web-socks")
        .env("CERTBOOT_SIGNER_NAME", CLIENT_SIGNER)
        .run()
        .await;
    run.assert_code(2)
        .assert_stderr_contains("socks5://127.0.0.1:1080/ uses the scheme \"socks5\"")
        .assert_stderr_contains("use an http:// or https:// proxy");
    assert!(!run.stderr.contains("secret"), "{}", run.stderr);
}

#[tokio::test]
async fn custom_signer_certificate_serves_tls_for_the_requested_dns_name() {
    let Some((cp, kubeconfig, tmp)) = harness::with_certboot_rbac(NS).await else {
        return;
    };
    let signer = cp.custom_signer(CUSTOM_SIGNER, Duration::from_secs(3600));
    let dir = tmp.path().join("certs");
    Certboot::new(&kubeconfig, &dir, NS, "web-1")
        .env("CERTBOOT_SIGNER_NAME", CUSTOM_SIGNER)
        .env(
            "CERTBOOT_DNS_NAMES",
            "web.default.svc,web.default.svc.cluster.local",
        )
        .run()
        .await
        .assert_code(0);
    let (cert, key) = read_pair(&dir);
    support::tls::handshake(&cert, &key, signer.ca_pem(), "web.default.svc");
}

#[tokio::test]
async fn every_key_algorithm_end_to_end() {
    let Some((cp, kubeconfig, tmp)) = harness::with_certboot_rbac(NS).await else {
        return;
    };
    let signer = cp.custom_signer(CUSTOM_SIGNER, Duration::from_secs(3600));
    for algorithm in ["ecdsa-p256", "ecdsa-p384", "ed25519", "rsa-2048"] {
        let dir = tmp.path().join(algorithm);
        Certboot::new(&kubeconfig, &dir, NS, &format!("algo-{algorithm}"))
            .env("CERTBOOT_SIGNER_NAME", CUSTOM_SIGNER)
            .env("CERTBOOT_KEY_ALGORITHM", algorithm)
            .env("CERTBOOT_DNS_NAMES", "algo.default.svc")
            .run()
            .await
            .assert_code(0);
        let (cert, key) = read_pair(&dir);
        let parsed = certboot_core::pki::key::PrivateKey::from_pem(&key).expect("key.pem readable");
        assert_eq!(parsed.algorithm().name(), algorithm);
        support::tls::handshake(&cert, &key, signer.ca_pem(), "algo.default.svc");
    }
}

#[tokio::test]
async fn denied_csr_exits_3_with_the_reason_and_writes_nothing() {
    let Some((cp, kubeconfig, tmp)) = harness::with_certboot_rbac(NS).await else {
        return;
    };
    let _signer = cp.custom_signer_with(
        CUSTOM_SIGNER,
        Duration::from_secs(3600),
        SignerBehaviour::Deny,
    );
    let dir = tmp.path().join("certs");
    let run = Certboot::new(&kubeconfig, &dir, NS, "web-2")
        .env("CERTBOOT_SIGNER_NAME", CUSTOM_SIGNER)
        .run()
        .await;
    run.assert_code(3);
    run.assert_stderr_contains("was denied: HarnessDenied");
    assert!(!dir.join("cert.pem").exists() && !dir.join("key.pem").exists());
}

#[tokio::test]
async fn missing_rbac_fails_naming_the_verb_and_resource() {
    let Some((cp, _kubeconfig, tmp)) = harness::with_certboot_rbac(NS).await else {
        return;
    };
    let unbound = cp.service_account_kubeconfig(NS, "no-rbac").await;
    let dir = tmp.path().join("certs");
    let run = Certboot::new(&unbound, &dir, NS, "web-3")
        .env("CERTBOOT_SIGNER_NAME", CUSTOM_SIGNER)
        .run()
        .await;
    run.assert_code(1);
    assert!(run.stderr.contains("verb \"create\""), "{}", run.stderr);
    run.assert_stderr_contains("resource \"certificatesigningrequests\"");
    run.assert_stderr_contains("system:serviceaccount:default:no-rbac");
    assert!(entries(&dir).iter().all(|e| !e.ends_with(".pem")));
}

#[tokio::test]
async fn bad_config_exits_2_before_any_csr_or_file() {
    let Some((cp, kubeconfig, tmp)) = harness::with_certboot_rbac(NS).await else {
        return;
    };
    let dir = tmp.path().join("certs");
    let base =
        || Certboot::new(&kubeconfig, &dir, NS, "web-4").env("CERTBOOT_SIGNER_NAME", CUSTOM_SIGNER);
    let cases = [
        base().without("CERTBOOT_SIGNER_NAME"),
        base().env("CERTBOOT_KEY_ALGORITHM", "rsa-1024"),
        base().env("CERTBOOT_IP_ADDRESSES", "10.0.0.256"),
        base().env("CERTBOOT_EXPIRATION_SECONDS", "300"),
        base().env("POD_IP", "nope").env("POD_IPS", "nope,nope"),
    ];
    for case in cases {
        let run = case.run().await;
        run.assert_code(2);
        assert!(run.stderr.contains("configuration error"), "{}", run.stderr);
    }
    assert!(
        csrs(&cp).await.is_empty(),
        "no CSR may be created on bad config"
    );
    assert!(
        entries(&dir).is_empty(),
        "nothing may be written on bad config: {:?}",
        entries(&dir)
    );
}

#[tokio::test]
async fn killed_while_waiting_then_restarted_files_under_a_new_name_without_deleting() {
    let Some((cp, kubeconfig, tmp)) = harness::with_certboot_rbac(NS).await else {
        return;
    };
    let dir = tmp.path().join("certs");
    let certboot = Certboot::new(&kubeconfig, &dir, NS, "web-5")
        .env("CERTBOOT_SIGNER_NAME", CLIENT_SIGNER)
        .env("CERTBOOT_PROGRESS_INTERVAL", "1s");
    let mut first = certboot.spawn();
    // No approver yet: certboot must say what it waits for, and keep saying it.
    let log = first
        .wait_for_log(
            "waiting for signer kubernetes.io/kube-apiserver-client to approve CSR",
            Duration::from_secs(30),
        )
        .await;
    assert!(log.contains("kubectl certificate approve"), "{log}");
    first.kill9();
    assert!(
        !dir.join("key.pem").exists(),
        "a killed run leaves no key behind"
    );
    let stale_name = certboot.csr_name();
    let stale = Api::<CertificateSigningRequest>::all(cp.admin_client())
        .get(&stale_name)
        .await
        .expect("the first run's CSR");

    // The shipped RBAC has no delete: the restarted certboot leaves the stale CSR (its key died
    // with the first process) and files under the name plus its new key's fingerprint.
    let _approver = cp.auto_approver(CLIENT_SIGNER);
    let second = certboot.run().await;
    second.assert_code(0);
    let new_prefix = format!("filing under {stale_name}:");
    assert!(
        second.stderr.contains(&new_prefix),
        "the stale CSR was left and a new name used: {}",
        second.stderr
    );
    assert!(!second.stderr.contains("forbidden"), "{}", second.stderr);
    read_pair(&dir);
    let mut names: Vec<String> = csrs(&cp)
        .await
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "the stale CSR and the new one: {names:?}");
    assert_eq!(names[0], stale_name);
    assert!(
        names[1].len() == stale_name.len() + 9
            && names[1][stale_name.len() + 1..]
                .chars()
                .all(|c| c.is_ascii_hexdigit()),
        "the new CSR is <stale name>:<8 hex>: {names:?}"
    );
    let left = Api::<CertificateSigningRequest>::all(cp.admin_client())
        .get(&stale_name)
        .await
        .expect("the stale CSR is still there");
    assert_eq!(left.metadata.uid, stale.metadata.uid, "not replaced");

    // Restarted once more with a valid pair on disk: exits 0 at once and files no CSR.
    for name in &names {
        Api::<CertificateSigningRequest>::all(cp.admin_client())
            .delete(name, &Default::default())
            .await
            .expect("delete CSR");
    }
    let third = certboot.run().await;
    third.assert_code(0);
    third.assert_stderr_contains("already holds a valid pair");
    assert!(
        csrs(&cp).await.is_empty(),
        "no new CSR for a pair that is still good"
    );

    // The app drops a self-signed 100-year pair into the shared directory: not reused, a new CSR.
    let planted = plant_self_signed_pair(&dir);
    let mut fourth = certboot.spawn();
    let log = fourth
        .wait_for_log("created CSR", Duration::from_secs(30))
        .await;
    assert!(
        log.contains("the pair on disk is not reused") && log.contains("CERTBOOT_MAX_LIFETIME"),
        "{log}"
    );
    // The auto-approver approves each CSR name once: approve this second one by hand.
    cp.approve_csr(&names[0], "Test", "second CSR of the same name")
        .await;
    fourth.finish(Duration::from_secs(60)).await.assert_code(0);
    assert_eq!(csrs(&cp).await.len(), 1, "a new CSR was filed");
    let (cert, _) = read_pair(&dir);
    assert_ne!(cert, planted, "the planted pair was replaced");
}

/// Writes a self-signed certificate valid for 100 years, and its key, the way certboot lays a pair
/// out (but without certboot's record); returns the certificate.
fn plant_self_signed_pair(dir: &std::path::Path) -> String {
    use certboot_core::pki::key::{KeyAlgorithm, PrivateKey};
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    let now = std::time::SystemTime::now();
    params.not_before = now.into();
    params.not_after = (now + Duration::from_secs(100 * 365 * 86_400)).into();
    let cert = params
        .self_signed(&*key.signing_key().expect("signing key"))
        .expect("self-signed")
        .pem();
    let store = certboot::store::Store::new(&certboot::config::OutputConfig {
        dir: dir.to_path_buf(),
        cert_file: "cert.pem".into(),
        key_file: "key.pem".into(),
        ca_file: "ca.pem".into(),
        ca_bundle: None,
        key_mode: 0o600,
    });
    store
        .write(&certboot::store::Bundle {
            cert_pem: &cert,
            key_pem: &key.to_pem(),
            ca_pem: None,
            origin: None,
        })
        .expect("plant the pair");
    cert
}
