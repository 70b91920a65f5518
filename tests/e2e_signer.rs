//! End-to-end: `certboot-controller` as the signer, against a real control plane: the whole loop
//! with no harness signer (certboot init → approver → signer → files), trust through the published
//! ConfigMap, an independent verifier, what is never signed, Failed conditions, a signer killed
//! mid-stream, the ConfigMap kept in sync, CA rotation with an overlap bundle (the Secret volume
//! written as the kubelet writes it), and the ClusterTrustBundle (or its logged skip on v1.20).

mod approver_rig;
mod harness;
mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use approver_rig::ca::{new_ca, write_ca};
use approver_rig::{condition, Rig, APP_NS, CERTBOOT_SA};
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::ByteString;
use kube::api::{Api, ObjectMeta, PostParams};
use support::read_pair;
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};

const SERVING: &str = "certboot.io/serving";
/// A signer the approver does not serve: the test approves by hand.
const MANUAL: &str = "certboot.io/manual";
const DEADLINE: Duration = Duration::from_secs(60);

/// Writes version `version` of a Secret volume as the kubelet does: the files in a new hidden
/// directory, then one rename of the `..data` symlink onto it (each key is a symlink through
/// `..data`), so a reader sees the old files or the new ones, never a mix.
fn mount_secret(dir: &Path, version: u32, files: &[(&str, &str)]) {
    let data = format!("..v{version}");
    std::fs::create_dir_all(dir.join(&data)).expect("secret version dir");
    for (name, content) in files {
        std::fs::write(dir.join(&data).join(name), content).expect("secret file");
    }
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(&data, &tmp).expect("..data_tmp");
    std::fs::rename(&tmp, dir.join("..data")).expect("swap ..data");
    for (name, _) in files {
        if std::fs::symlink_metadata(dir.join(name)).is_err() {
            std::os::unix::fs::symlink(format!("..data/{name}"), dir.join(name))
                .expect("key symlink");
        }
    }
}

/// The issuer of the first certificate of `chain`.
fn leaf_issuer(chain: &str) -> String {
    let blocks = pem::parse_many(chain).expect("chain PEM");
    let (_, leaf) = X509Certificate::from_der(blocks[0].contents()).expect("leaf");
    leaf.issuer().to_string()
}

/// The approver serves SERVING only (its policy); RBAC lets the controller approve and sign both.
async fn start() -> Option<Rig> {
    Rig::start_with_policy(
        &[SERVING, MANUAL],
        &approver_rig::shipped_policy_with_signers(&[SERVING]),
    )
    .await
}

fn signer_env(ca_dir: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("CERTBOOT_SIGNER_NAMES", format!("{SERVING},{MANUAL}")),
        ("CERTBOOT_SIGNER_CA_DIR", ca_dir.display().to_string()),
        ("CERTBOOT_TRUST_NAMESPACES", APP_NS.to_string()),
    ]
}

fn start_signer(rig: &Rig, identity: &str, ca_dir: &Path) -> approver_rig::Controller {
    let env = signer_env(ca_dir);
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    rig.controller_with(identity, &pairs)
}

/// A CSR filed by the admin for `signer`, approved by hand (the approver does not serve MANUAL).
async fn approved_csr(rig: &Rig, name: &str, signer: &str, request: String, usages: &[&str]) {
    let api: Api<CertificateSigningRequest> = Api::all(rig.cp.admin_client());
    api.create(
        &PostParams::default(),
        &CertificateSigningRequest {
            metadata: others_metadata(name),
            spec: CertificateSigningRequestSpec {
                request: ByteString(request.into_bytes()),
                signer_name: signer.into(),
                usages: Some(usages.iter().map(|u| u.to_string()).collect()),
                ..CertificateSigningRequestSpec::default()
            },
            status: None,
        },
    )
    .await
    .expect("create CSR");
    rig.cp
        .approve_csr(name, "ApprovedByTest", "approved by the e2e test")
        .await;
}

/// A CSR's metadata with another tool's label and annotation, which certboot's writes must keep
/// (its caches drop them, so a write must never be built from a cached copy).
fn others_metadata(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        labels: Some([("team.example/owner".to_string(), "payments".to_string())].into()),
        annotations: Some([("ticket.example/id".to_string(), "T-1".to_string())].into()),
        ..ObjectMeta::default()
    }
}

/// The label and annotation of [`others_metadata`] are still on the CSR.
async fn assert_others_metadata_kept(api: &Api<CertificateSigningRequest>, name: &str) {
    let csr = api.get(name).await.expect("get CSR");
    let label = csr
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("team.example/owner"));
    let annotation = csr
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("ticket.example/id"));
    assert_eq!(
        label.map(String::as_str),
        Some("payments"),
        "{name}: label lost by a write"
    );
    assert_eq!(
        annotation.map(String::as_str),
        Some("T-1"),
        "{name}: annotation lost by a write"
    );
}

fn request(cn: &str, ca: bool) -> String {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec![format!("{cn}.example")]).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    if ca {
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    }
    params
        .serialize_request(&key)
        .expect("request")
        .pem()
        .expect("pem")
}

async fn wait_issued(rig: &Rig, name: &str) -> String {
    let api: Api<CertificateSigningRequest> = Api::all(rig.cp.admin_client());
    harness::poll_until(DEADLINE, &format!("certificate of {name}"), || {
        let api = api.clone();
        async move { harness::issued_certificate(&api.get_opt(name).await.ok()??) }
    })
    .await
}

/// `openssl verify -x509_strict -purpose sslserver`, when openssl is installed.
fn openssl_verify(chain_pem: &str, trust_pem: &str, dir: &Path) {
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("openssl not installed: the independent verifier is rustls/webpki only");
        return;
    }
    let blocks = pem::parse_many(chain_pem).expect("chain PEM");
    let leaf = dir.join("leaf.pem");
    let untrusted = dir.join("untrusted.pem");
    let trust = dir.join("trust.pem");
    std::fs::write(&leaf, pem::encode(&blocks[0])).expect("leaf");
    std::fs::write(
        &untrusted,
        blocks[1..].iter().map(pem::encode).collect::<String>(),
    )
    .expect("untrusted");
    std::fs::write(&trust, trust_pem).expect("trust");
    let mut command = Command::new("openssl");
    command
        .args(["verify", "-x509_strict", "-purpose", "sslserver", "-CAfile"])
        .arg(&trust);
    if blocks.len() > 1 {
        command.arg("-untrusted").arg(&untrusted);
    }
    let out = command.arg(&leaf).output().expect("run openssl");
    assert!(
        out.status.success(),
        "openssl verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn the_whole_loop_needs_nothing_but_certboot_and_clients_trust_the_published_bundle() {
    let Some(rig) = start().await else {
        return;
    };
    let ca_dir = rig.tmp.path().join("ca");
    let root = write_ca(&ca_dir);
    rig.service("web", &[("app", "web")]).await;
    let pod = rig
        .pod("web-0", CERTBOOT_SA, &[("app", "web")], &["10.0.0.7"])
        .await;
    let kubeconfig = rig.bound_kubeconfig(&pod).await;
    let _controller = start_signer(&rig, "controller-a", &ca_dir);

    let certboot = rig
        .certboot(&pod, &kubeconfig, SERVING)
        .env("CERTBOOT_DNS_NAMES", "web.shop.svc")
        .env("CERTBOOT_EXPIRATION_SECONDS", "3600");
    certboot.run().await.assert_code(0);
    let (cert, key) = read_pair(&rig.tmp.path().join("certs-web-0"));

    // Trust comes from the published ConfigMap only.
    let maps: Api<ConfigMap> = Api::namespaced(rig.cp.admin_client(), APP_NS);
    let bundle = harness::poll_until(DEADLINE, "ConfigMap certboot-ca", || {
        let maps = maps.clone();
        async move {
            maps.get_opt("certboot-ca")
                .await
                .ok()??
                .data?
                .get("ca.crt")
                .cloned()
        }
    })
    .await;
    assert_eq!(bundle, root);
    support::tls::handshake(&cert, &key, &bundle, "web.shop.svc");
    openssl_verify(&cert, &bundle, rig.tmp.path());

    // Exactly what was asked: subject and SANs, serving usage, not a CA, 128-bit serial, key ids.
    let blocks = pem::parse_many(&cert).expect("chain");
    assert_eq!(blocks.len(), 2, "leaf, then the intermediate");
    let (_, leaf) = X509Certificate::from_der(blocks[0].contents()).expect("leaf");
    assert_eq!(leaf.subject().to_string(), "CN=web-0.shop");
    let mut sans = Vec::new();
    for ext in leaf.extensions() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() {
            for name in &san.general_names {
                sans.push(match name {
                    GeneralName::DNSName(d) => format!("DNS:{d}"),
                    GeneralName::IPAddress(ip) => format!("IP:{ip:?}"),
                    other => format!("{other:?}"),
                });
            }
        }
    }
    assert_eq!(
        sans,
        vec![
            "DNS:web.shop.svc".to_string(),
            "IP:[10, 0, 0, 7]".to_string()
        ]
    );
    assert!(!leaf.is_ca());
    assert!(
        leaf.extended_key_usage()
            .expect("eku")
            .expect("eku present")
            .value
            .server_auth
    );
    assert_eq!(leaf.raw_serial().len(), 16);
    for (oid, what) in [
        ("2.5.29.14", "subject key identifier"),
        ("2.5.29.35", "authority key identifier"),
    ] {
        assert!(
            leaf.extensions()
                .iter()
                .any(|e| e.oid.to_id_string() == oid),
            "{what}"
        );
    }
    let lifetime = leaf.validity().not_after.timestamp() - leaf.validity().not_before.timestamp();
    let csr = rig
        .wait_for_condition(&certboot.csr_name(), "Approved", DEADLINE)
        .await;
    match csr.spec.expiration_seconds {
        // The API serves expirationSeconds (1.22+): honoured, plus the 5-minute backdate.
        Some(asked) => assert_eq!(lifetime, i64::from(asked) + 300),
        // It does not (1.20 drops the field): the signer's default, 30 days.
        None => assert_eq!(lifetime, 30 * 86400 + 300),
    }
}

#[tokio::test]
async fn only_approved_csrs_of_its_signers_are_signed_and_what_it_cannot_honour_fails() {
    let Some(rig) = start().await else {
        return;
    };
    let ca_dir = rig.tmp.path().join("ca");
    let root = write_ca(&ca_dir);
    // Before the signer runs: another signer's approved CSR, a CSR the approver denies (filed by
    // the admin, not a pod), a CA request and a CA usage approved by hand.
    approved_csr(
        &rig,
        "other-signer",
        "example.com/other",
        request("other", false),
        &["digital signature", "server auth"],
    )
    .await;
    let api: Api<CertificateSigningRequest> = Api::all(rig.cp.admin_client());
    api.create(
        &PostParams::default(),
        &CertificateSigningRequest {
            metadata: others_metadata("denied"),
            spec: CertificateSigningRequestSpec {
                request: ByteString(request("denied", false).into_bytes()),
                signer_name: SERVING.into(),
                usages: Some(vec!["digital signature".into(), "server auth".into()]),
                ..CertificateSigningRequestSpec::default()
            },
            status: None,
        },
    )
    .await
    .expect("create CSR");
    approved_csr(
        &rig,
        "ca-request",
        MANUAL,
        request("ca", true),
        &["digital signature", "server auth"],
    )
    .await;
    approved_csr(
        &rig,
        "cert-sign",
        MANUAL,
        request("cs", false),
        &["digital signature", "cert sign"],
    )
    .await;
    approved_csr(
        &rig,
        "good",
        MANUAL,
        request("good", false),
        &["digital signature", "server auth"],
    )
    .await;

    let _controller = start_signer(&rig, "controller-a", &ca_dir);
    let good = wait_issued(&rig, "good").await;
    openssl_verify(&good, &root, rig.tmp.path());
    let failed = rig
        .wait_for_condition("ca-request", "Failed", DEADLINE)
        .await;
    assert_eq!(condition(&failed, "Failed").0, "CARequested");
    let failed = rig
        .wait_for_condition("cert-sign", "Failed", DEADLINE)
        .await;
    let (reason, message) = condition(&failed, "Failed");
    assert_eq!(reason, "UnsupportedUsage");
    assert!(message.contains("cert sign"), "{message}");
    let denied = rig.wait_for_condition("denied", "Denied", DEADLINE).await;

    // Signed after all of these were decided: none of them got a certificate.
    let late = request("late", false);
    approved_csr(
        &rig,
        "late",
        MANUAL,
        late,
        &["digital signature", "server auth"],
    )
    .await;
    wait_issued(&rig, "late").await;
    for name in ["other-signer", "denied", "ca-request", "cert-sign"] {
        let csr = api.get(name).await.expect("get CSR");
        assert!(
            harness::issued_certificate(&csr).is_none(),
            "{name} must not be signed"
        );
    }
    assert!(harness::issued_certificate(&denied).is_none());
    // Approved/Denied through /approval, a certificate or Failed through /status: other tools'
    // labels and annotations survive every write.
    for name in ["good", "denied", "ca-request", "late"] {
        assert_others_metadata_kept(&api, name).await;
    }
}

#[tokio::test]
async fn a_signer_killed_mid_stream_signs_the_rest_after_a_restart_and_nothing_twice() {
    let Some(rig) = start().await else {
        return;
    };
    let ca_dir = rig.tmp.path().join("ca");
    write_ca(&ca_dir);
    let names: Vec<String> = (0..30).map(|i| format!("batch-{i}")).collect();
    for name in &names {
        approved_csr(
            &rig,
            name,
            MANUAL,
            request(name, false),
            &["digital signature", "server auth"],
        )
        .await;
    }
    let first = start_signer(&rig, "controller-a", &ca_dir);
    wait_issued(&rig, "batch-0").await;
    first.stop(libc::SIGKILL).await;
    let _second = start_signer(&rig, "controller-b", &ca_dir);
    for name in &names {
        wait_issued(&rig, name).await;
    }
    // The audit log records a request after its response: wait until each write is there.
    // Per name, the certificate writes the audit log shows: (200s, 5xx). Under load the server
    // may answer 5xx for a write etcd committed (its storage call timed out), or for one cut short
    // by the SIGKILL that did not; the audit log cannot tell which. So: every CSR has a write that
    // may have stored its certificate, and none has two that did (two 200s).
    let writes = || {
        let mut counts = std::collections::BTreeMap::<String, (usize, usize)>::new();
        for e in rig.cp.audit_events() {
            let code = e["responseStatus"]["code"].as_i64().unwrap_or(0);
            if e["verb"] == "update"
                && e["objectRef"]["subresource"] == "status"
                && e["stage"] == "ResponseComplete"
                && (code == 200 || code >= 500)
            {
                let name = e["objectRef"]["name"].as_str().unwrap_or_default();
                let entry = counts.entry(name.to_string()).or_default();
                if code == 200 {
                    entry.0 += 1;
                } else {
                    entry.1 += 1;
                }
            }
        }
        counts
    };
    let until = std::time::Instant::now() + DEADLINE;
    let counts = loop {
        let counts = writes();
        let missing: Vec<&String> = names.iter().filter(|n| !counts.contains_key(*n)).collect();
        if missing.is_empty() {
            break counts;
        }
        if std::time::Instant::now() > until {
            let seen: Vec<String> = rig
                .cp
                .audit_events()
                .into_iter()
                .filter(|e| missing.iter().any(|n| e["objectRef"]["name"] == n.as_str()))
                .map(|e| {
                    format!(
                        "{} {} {:?} {} {} {}",
                        e["objectRef"]["name"],
                        e["verb"],
                        e["objectRef"]["subresource"],
                        e["stage"],
                        e["responseStatus"]["code"],
                        e["user"]["username"]
                    )
                })
                .collect();
            panic!(
                "no certificate write of {missing:?} in the audit log; their events:\n{}",
                seen.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for name in &names {
        let (ok, unknown) = counts.get(name).copied().unwrap_or_default();
        assert!(
            ok == 1 || (ok == 0 && unknown >= 1),
            "{name}: one successful certificate write, or none beside writes answered 5xx that may have been stored (never two successful writes): {ok} successful, {unknown} answered 5xx"
        );
    }
}

/// The ConfigMap's `ca.crt`, once it equals `expected`.
async fn wait_bundle(rig: &Rig, expected: &str, what: &str) {
    let maps: Api<ConfigMap> = Api::namespaced(rig.cp.admin_client(), APP_NS);
    harness::poll_until(DEADLINE, what, || {
        let maps = maps.clone();
        async move {
            let data = maps.get_opt("certboot-ca").await.ok()??.data?;
            (data.get("ca.crt")? == expected).then_some(())
        }
    })
    .await;
}

/// The controller's writes (create or update) of ConfigMap shop/certboot-ca in the audit log.
fn config_map_writes(rig: &Rig) -> usize {
    let user = format!(
        "system:serviceaccount:{}:certboot-controller",
        approver_rig::SYSTEM_NS
    );
    rig.cp
        .requests_by(&user)
        .into_iter()
        .filter(|e| {
            (e["verb"] == "create" || e["verb"] == "update")
                && e["objectRef"]["resource"] == "configmaps"
                && e["objectRef"]["namespace"] == APP_NS
                && e["responseStatus"]["code"]
                    .as_i64()
                    .is_some_and(|c| c < 300)
        })
        .count()
}

/// A trust namespace that does not exist yet when the signer starts: the create fails, and is
/// tried again with backoff (no change of the ConfigMap or the CA would ever come to trigger it),
/// so the ConfigMap appears once the namespace is created.
#[tokio::test]
async fn a_trust_namespace_created_after_the_signer_started_gets_the_config_map() {
    let Some(rig) = start().await else {
        return;
    };
    let ca_dir = rig.tmp.path().join("ca");
    let root = write_ca(&ca_dir);
    let late = "created-later";
    let mut env = signer_env(&ca_dir);
    env.retain(|(k, _)| *k != "CERTBOOT_TRUST_NAMESPACES");
    env.push(("CERTBOOT_TRUST_NAMESPACES", format!("{APP_NS},{late}")));
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut controller = rig.controller_with("controller-a", &pairs);
    wait_bundle(&rig, &root, "ConfigMap certboot-ca published").await;
    controller
        .wait_for_log("trying again with backoff", DEADLINE)
        .await;
    rig.cp.create_namespace(late).await;
    let maps: Api<ConfigMap> = Api::namespaced(rig.cp.admin_client(), late);
    harness::poll_until(
        DEADLINE,
        "ConfigMap certboot-ca in the namespace created later",
        || {
            let maps = maps.clone();
            let root = root.clone();
            async move {
                let data = maps.get_opt("certboot-ca").await.ok()??.data?;
                (data.get("ca.crt")? == &root).then_some(())
            }
        },
    )
    .await;
}

#[tokio::test]
async fn the_published_config_map_is_restored_after_an_edit_or_a_delete_and_never_rewritten_unchanged(
) {
    let Some(rig) = start().await else {
        return;
    };
    let ca_dir = rig.tmp.path().join("ca");
    let root = write_ca(&ca_dir);
    let _controller = start_signer(&rig, "controller-a", &ca_dir);
    wait_bundle(&rig, &root, "ConfigMap certboot-ca published").await;
    let maps: Api<ConfigMap> = Api::namespaced(rig.cp.admin_client(), APP_NS);

    // A user replaces the bundle: restored.
    let mut map = maps.get("certboot-ca").await.expect("get ConfigMap");
    map.data = Some([("ca.crt".to_string(), "tampered".to_string())].into());
    maps.replace("certboot-ca", &PostParams::default(), &map)
        .await
        .expect("edit ConfigMap");
    wait_bundle(&rig, &root, "ConfigMap certboot-ca restored after an edit").await;

    // A user deletes it: created again.
    maps.delete("certboot-ca", &Default::default())
        .await
        .expect("delete ConfigMap");
    wait_bundle(
        &rig,
        &root,
        "ConfigMap certboot-ca recreated after a delete",
    )
    .await;

    // A change that leaves the bundle alone (a label) is seen but not written over; the next
    // tampering, seen after it, is.
    let mut map = maps.get("certboot-ca").await.expect("get ConfigMap");
    map.metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert("team".into(), "shop".into());
    let map = maps
        .replace("certboot-ca", &PostParams::default(), &map)
        .await
        .expect("label ConfigMap");
    let mut tampered = map.clone();
    tampered.data = Some([("ca.crt".to_string(), "tampered again".to_string())].into());
    maps.replace("certboot-ca", &PostParams::default(), &tampered)
        .await
        .expect("edit ConfigMap");
    wait_bundle(
        &rig,
        &root,
        "ConfigMap certboot-ca restored after a second edit",
    )
    .await;
    // create, restore, create, restore: nothing for the label, nothing for its own writes.
    harness::poll_until(DEADLINE, "four ConfigMap writes in the audit log", || {
        let writes = config_map_writes(&rig);
        async move { (writes >= 4).then_some(()) }
    })
    .await;
    assert_eq!(config_map_writes(&rig), 4);
}

/// A user recreates certboot-ca with `immutable: true` and another bundle: no update can ever
/// change it. The signer replaces it (delete with a UID precondition, then create, mutable), and
/// says so in its log and in `certboot_trust_configmap_replaced_total`. Where the server does not
/// serve the field (it drops it), there is nothing to test: skipped with a message.
#[tokio::test]
async fn an_immutable_config_map_with_another_bundle_is_replaced_and_the_replacement_counted() {
    let Some(rig) = start().await else {
        return;
    };
    let maps: Api<ConfigMap> = Api::namespaced(rig.cp.admin_client(), APP_NS);
    let pinned = ConfigMap {
        metadata: ObjectMeta {
            name: Some("certboot-ca".into()),
            ..ObjectMeta::default()
        },
        data: Some([("ca.crt".to_string(), "pinned, wrong".to_string())].into()),
        immutable: Some(true),
        ..ConfigMap::default()
    };
    let pinned = maps
        .create(&PostParams::default(), &pinned)
        .await
        .expect("create the immutable ConfigMap");
    if pinned.immutable != Some(true) {
        eprintln!(
            "SKIPPED immutable ConfigMap replacement: this API server does not serve \
             ConfigMap.immutable (GA in 1.21), so a ConfigMap cannot be pinned"
        );
        return;
    }
    let ca_dir = rig.tmp.path().join("ca");
    let root = write_ca(&ca_dir);
    let mut controller = start_signer(&rig, "controller-a", &ca_dir);
    wait_bundle(&rig, &root, "the immutable ConfigMap replaced").await;
    let now = maps.get("certboot-ca").await.expect("get ConfigMap");
    assert_ne!(now.metadata.uid, pinned.metadata.uid, "a new object");
    assert_ne!(now.immutable, Some(true), "the replacement is mutable");
    controller
        .wait_for_log(
            "replaced ConfigMap shop/certboot-ca: it was immutable (immutable: true) and held another bundle",
            DEADLINE,
        )
        .await;
    let addr = controller.health_addr().await;
    let metrics = support::http_get(&addr, "/metrics").expect("GET /metrics");
    assert!(
        metrics.contains("certboot_trust_configmap_replaced_total 1"),
        "{metrics}"
    );
    // The controller deleted exactly that one object (the audit log names it).
    let user = format!(
        "system:serviceaccount:{}:certboot-controller",
        approver_rig::SYSTEM_NS
    );
    let deletes = || {
        rig.cp
            .requests_by(&user)
            .into_iter()
            .filter(|e| {
                e["verb"] == "delete"
                    && e["objectRef"]["resource"] == "configmaps"
                    && e["objectRef"]["name"] == "certboot-ca"
                    && e["responseStatus"]["code"] == 200
            })
            .count()
    };
    harness::poll_until(DEADLINE, "the delete in the audit log", || {
        let n = deletes();
        async move { (n >= 1).then_some(()) }
    })
    .await;
    assert_eq!(deletes(), 1);
    // No write failed on the way (each failure is logged with "trying again with backoff").
    assert!(
        !controller.log().contains("trying again with backoff"),
        "{}",
        controller.log()
    );
}

#[tokio::test]
async fn a_ca_rotated_with_an_overlap_bundle_keeps_old_certificates_trusted_and_renewals_come_from_the_new_ca(
) {
    let Some(rig) = start().await else {
        return;
    };
    let (one, two) = (new_ca("one"), new_ca("two"));
    let ca_dir = rig.tmp.path().join("ca-secret");
    mount_secret(
        &ca_dir,
        1,
        &[
            ("tls.crt", &one.intermediate),
            ("tls.key", &one.key),
            ("ca.crt", &one.root),
        ],
    );
    rig.service("web", &[("app", "web")]).await;
    let pod = rig
        .pod("web-0", CERTBOOT_SA, &[("app", "web")], &["10.0.0.7"])
        .await;
    let kubeconfig = rig.bound_kubeconfig(&pod).await;
    // 10-minute certificates, so that the sidecar below renews every half minute or so.
    let mut env = signer_env(&ca_dir);
    env.push(("CERTBOOT_SIGNER_DURATION", "10m".to_string()));
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let _controller = rig.controller_with("controller-a", &pairs);
    // The pod trusts the published bundle as a mounted ConfigMap: a file the test rewrites as the
    // kubelet does (a new file, renamed over the old one), started with the first CA's root.
    let trust = rig.tmp.path().join("trust-ca.crt");
    replace_file(&trust, &one.root);
    let certboot = rig
        .certboot(&pod, &kubeconfig, SERVING)
        .env("CERTBOOT_DNS_NAMES", "web.shop.svc")
        .env("CERTBOOT_CA_BUNDLE", &trust.display().to_string());
    certboot.run().await.assert_code(0);
    let certs = rig.tmp.path().join("certs-web-0");
    let (old_cert, old_key) = read_pair(&certs);
    assert_eq!(leaf_issuer(&old_cert), "CN=one intermediate");
    wait_bundle(&rig, &one.root, "the first CA's bundle published").await;

    // The pod's sidecar runs through the whole rotation: it started with the first root alone
    // and must follow the mounted bundle. Renewal 30 s before the end of the certificate's
    // lifetime as received, less the jitter: every few seconds to half a minute.
    let blocks = pem::parse_many(&old_cert).expect("chain");
    let (_, leaf) = X509Certificate::from_der(blocks[0].contents()).expect("leaf");
    let left = leaf.validity().not_after.timestamp() - certboot_core::timefmt::unix_now();
    let mut sidecar = certboot
        .env("CERTBOOT_MODE", "sidecar")
        .env("CERTBOOT_RENEW_BEFORE", &format!("{}s", left - 30))
        .spawn();
    // Running, with the first root read, before the bundle changes.
    sidecar.wait_for_log("next renewal at", DEADLINE).await;

    // (a) Overlap: both roots in ca.crt, still signing with the first CA. Published with no
    // restart and no CSR (the Secret's ..data swap is enough).
    let overlap = format!("{}{}", one.root, two.root);
    mount_secret(
        &ca_dir,
        2,
        &[
            ("tls.crt", &one.intermediate),
            ("tls.key", &one.key),
            ("ca.crt", &overlap),
        ],
    );
    wait_bundle(&rig, &overlap, "the overlap bundle published").await;
    replace_file(&trust, &overlap);
    support::tls::handshake(&old_cert, &old_key, &overlap, "web.shop.svc");
    openssl_verify(&old_cert, &overlap, rig.tmp.path());

    // (b) Switch tls.crt/tls.key to the second CA: the pod's renewal is signed by it, and both
    // its new certificate and the old one verify against the same published bundle.
    mount_secret(
        &ca_dir,
        3,
        &[
            ("tls.crt", &two.intermediate),
            ("tls.key", &two.key),
            ("ca.crt", &overlap),
        ],
    );
    // The sidecar's next renewal is signed by the second CA and must pass its check against the
    // bundle it reads now (the overlap), not the one it started with.
    let (new_cert, new_key) =
        harness::poll_until(DEADLINE, "a pair from the second CA on disk", || {
            // The sidecar may be between its two renames: only a matching pair counts.
            let cert = std::fs::read_to_string(certs.join("cert.pem")).unwrap_or_default();
            let key = std::fs::read_to_string(certs.join("key.pem")).unwrap_or_default();
            let matching = certboot_core::pki::verify::verify_pair(
                cert.as_bytes(),
                &key,
                certboot_core::timefmt::unix_now(),
            )
            .is_ok();
            let renewed = matching && leaf_issuer(&cert) == "CN=two intermediate";
            async move { renewed.then_some((cert, key)) }
        })
        .await;
    drop(sidecar);
    let published = Api::<ConfigMap>::namespaced(rig.cp.admin_client(), APP_NS)
        .get("certboot-ca")
        .await
        .expect("get ConfigMap")
        .data
        .and_then(|d| d.get("ca.crt").cloned())
        .expect("ca.crt");
    assert_eq!(published, overlap);
    support::tls::handshake(&new_cert, &new_key, &published, "web.shop.svc");
    openssl_verify(&new_cert, &published, rig.tmp.path());
    support::tls::handshake(&old_cert, &old_key, &published, "web.shop.svc");

    // (c) Once every certificate of the first CA expired: drop its root.
    mount_secret(
        &ca_dir,
        4,
        &[
            ("tls.crt", &two.intermediate),
            ("tls.key", &two.key),
            ("ca.crt", &two.root),
        ],
    );
    wait_bundle(&rig, &two.root, "the second CA's bundle alone published").await;
    support::tls::handshake(&new_cert, &new_key, &two.root, "web.shop.svc");
}

#[tokio::test]
async fn the_bundle_is_a_cluster_trust_bundle_for_its_signer_where_served_and_a_logged_skip_where_not(
) {
    let Some(rig) = start().await else {
        return;
    };
    let ca_dir = rig.tmp.path().join("ca");
    let root = write_ca(&ca_dir);
    let mut controller = start_signer(&rig, "controller-a", &ca_dir);
    let client = rig.cp.admin_client();
    let Some(resource) = certboot_controller::signer::cluster_trust_bundle::discover(&client).await
    else {
        // v1.20 (and anything before 1.27) serves none: said so, ConfigMaps still published.
        controller
            .wait_for_log("the API server serves no ClusterTrustBundle", DEADLINE)
            .await;
        wait_bundle(&rig, &root, "ConfigMap certboot-ca published").await;
        assert!(
            !rig.cp.version().has(33),
            "a 1.33+ test bed must serve ClusterTrustBundle"
        );
        return;
    };
    eprintln!("ClusterTrustBundle served as {}", resource.api_version);
    let bundles: Api<kube::api::DynamicObject> = Api::all_with(client, &resource);
    let name = "certboot.io:serving:bundle";
    let spec = |bundles: Api<kube::api::DynamicObject>| async move {
        bundles.get_opt(name).await.ok()??.data.get("spec").cloned()
    };
    let expected = serde_json::json!({ "signerName": SERVING, "trustBundle": root });
    harness::poll_until(DEADLINE, "ClusterTrustBundle published", || {
        let (spec, expected) = (spec(bundles.clone()), expected.clone());
        async move { (spec.await? == expected).then_some(()) }
    })
    .await;
    // Kept in sync: a user's edit is undone.
    let mut object = bundles.get(name).await.expect("get ClusterTrustBundle");
    let other = new_ca("other").root;
    object.data["spec"]["trustBundle"] = serde_json::Value::from(other);
    bundles
        .replace(name, &PostParams::default(), &object)
        .await
        .expect("edit ClusterTrustBundle");
    harness::poll_until(DEADLINE, "ClusterTrustBundle restored", || {
        let (spec, expected) = (spec(bundles.clone()), expected.clone());
        async move { (spec.await? == expected).then_some(()) }
    })
    .await;
}

/// Replaces `path` with `contents` in one rename, as the kubelet updates a mounted ConfigMap.
fn replace_file(path: &Path, contents: &str) {
    let next = path.with_extension("next");
    std::fs::write(&next, contents).expect("write the new bundle");
    std::fs::rename(&next, path).expect("rename the new bundle into place");
}
