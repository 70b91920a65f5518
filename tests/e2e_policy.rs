//! End-to-end: the guard rails in `manifests/policy/` (a ValidatingAdmissionPolicy, GA in
//! Kubernetes 1.30; skipped on older versions, where it does not apply) against a real
//! kube-apiserver. A `certboot` service account authenticated with a token bound to its pod may
//! create only CSRs named for that pod (`<ns>:<pod>:<uid6>`, renewals `<ns>:<pod>:<uid6>:<8 hex>`),
//! only for the signers in the ConfigMap `kube-system/certboot-signers`, with a request of at most
//! 16 KiB, only the usages listed there (at least one extended key usage), `expirationSeconds` set
//! and at most its maximum; and delete only CSRs it created itself from the same pod. Each
//! allowed case passes; each forbidden one is refused with the policy's message; other users are not affected; certboot itself works under the policy and, when
//! refused, exits with the policy's message.

mod harness;
mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use harness::{csr_object, new_key_and_csr, ApplyOptions, ControlPlane};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use support::Certboot;

const NS: &str = "shop";
/// The signer the shipped `signers.yaml` allows (the shipped approver's signer).
const ALLOWED: &str = "certboot.io/serving";
/// The shipped `maxExpirationSeconds`.
const MAX_SECONDS: i32 = 2_592_000;
const OTHER_SIGNER: &str = "kubernetes.io/kube-apiserver-client";
const USAGES: [&str; 2] = ["digital signature", "server auth"];
const FEATURE: &str = "ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1)";

fn policy_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("manifests/policy")
        .join(name)
}

/// Creates a CSR named `name` for `signer` as `client`; the server's message when refused.
async fn create(client: &Client, name: &str, signer: &str) -> Result<(), String> {
    let (_, request) = new_key_and_csr(name, &[]);
    create_csr(client, name, signer, &request, &USAGES, Some(3600)).await
}

/// [`create`] with every field of the spec the policy looks at chosen by the test.
async fn create_csr(
    client: &Client,
    name: &str,
    signer: &str,
    request: &str,
    usages: &[&str],
    expiration_seconds: Option<i32>,
) -> Result<(), String> {
    let mut csr = csr_object(name, request, signer, usages);
    csr.spec.expiration_seconds = expiration_seconds;
    match Api::<CertificateSigningRequest>::all(client.clone())
        .create(&PostParams::default(), &csr)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) => Err(format!("{} {}", status.code, status.message)),
        Err(e) => panic!("create CSR {name}: {e}"),
    }
}

/// One CSR spec the policy judges, and its message when it refuses it (`None`: allowed).
struct SpecCase<'a> {
    case: &'a str,
    request: &'a str,
    usages: &'a [&'a str],
    seconds: Option<i32>,
    refusal: Option<&'a str>,
}

/// A valid PKCS#10 request of over 16 KiB (PEM): 400 DNS names.
fn large_request() -> String {
    let names: Vec<String> = (0..400)
        .map(|i| format!("name-{i:04}.a-long-enough-domain.example"))
        .collect();
    let params = rcgen::CertificateParams::new(names).expect("CSR parameters");
    params
        .serialize_request(&harness::pki::new_p256_key())
        .expect("serialize the request")
        .pem()
        .expect("PEM")
}

async fn delete(client: &Client, name: &str) -> Result<(), String> {
    match Api::<CertificateSigningRequest>::all(client.clone())
        .delete(name, &DeleteParams::default())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) => Err(format!("{} {}", status.code, status.message)),
        Err(e) => panic!("delete CSR {name}: {e}"),
    }
}

/// Asserts a refusal by the policy (403) carrying `message`.
fn assert_refused(result: Result<(), String>, case: &str, message: &str) {
    let Err(said) = result else {
        panic!("{case}: allowed, but the policy must refuse it");
    };
    assert!(
        said.starts_with("403 ")
            && said.contains("ValidatingAdmissionPolicy 'certboot-csr-guard-rails'")
            && said.contains(message),
        "{case}: refused, but not with the policy's message {message:?}: {said}"
    );
}

/// The policy, its binding and the shipped signers ConfigMap, applied; returns once the API
/// server enforces it (policies take effect asynchronously).
async fn apply_policy(cp: &ControlPlane, probe: &Client, forbidden_name: &str) {
    cp.apply_manifest_file_with(
        policy_file("signers.yaml"),
        &ApplyOptions::new("kube-system"),
    )
    .await;
    for file in ["validating-admission-policy.yaml", "binding.yaml"] {
        cp.apply_manifest_file(policy_file(file), NS).await;
    }
    harness::poll_until(
        Duration::from_secs(30),
        "the policy to be enforced",
        || async {
            match create(probe, forbidden_name, ALLOWED).await {
                Err(said) if said.contains("certboot-csr-guard-rails") => Some(()),
                Err(_) => None,
                Ok(()) => {
                    let _ = delete(probe, forbidden_name).await;
                    None
                }
            }
        },
    )
    .await;
}

#[tokio::test]
async fn certboot_may_create_only_its_own_pods_csrs_for_allowed_signers_and_delete_only_its_own() {
    let Some((cp, _, tmp)) = harness::with_certboot_rbac_since_deleting(NS, 30, FEATURE).await
    else {
        return;
    };
    let web = cp.bound_pod(NS, "web-0", "certboot").await;
    let as_web = cp.endpoint().token_client(&web.token);
    let own = format!("{NS}:web-0:{}", &web.uid[..6]);
    apply_policy(&cp, &as_web, &format!("{NS}:db-0:{}", &web.uid[..6])).await;

    // Allowed: the pod's own name, its renewal form, deleting its own CSR.
    create(&as_web, &own, ALLOWED)
        .await
        .expect("create <ns>:<pod>:<uid6>");
    let renewal = format!("{own}:0a1b2c3d");
    create(&as_web, &renewal, ALLOWED)
        .await
        .expect("create the renewal form <ns>:<pod>:<uid6>:<8 hex>");
    delete(&as_web, &renewal)
        .await
        .expect("delete a CSR it created");

    // Forbidden names.
    let name_message =
        format!("may only create CSRs named for its own pod: {own} or {own}:<8 hex digits>");
    for (case, name) in [
        ("another pod's name", format!("{NS}:db-0:{}", &web.uid[..6])),
        ("another pod UID", format!("{NS}:web-0:ffffff")),
        (
            "another namespace",
            format!("default:web-0:{}", &web.uid[..6]),
        ),
        (
            "a renewal suffix that is not 8 hex digits",
            format!("{own}:0A1B2C3D"),
        ),
        (
            "a renewal suffix of 9 hex digits",
            format!("{own}:0a1b2c3d4"),
        ),
        ("a free-form name", "web-0-certificate".to_owned()),
    ] {
        assert_refused(create(&as_web, &name, ALLOWED).await, case, &name_message);
    }

    // Forbidden signer.
    assert_refused(
        create(&as_web, &format!("{own}:00000001"), OTHER_SIGNER).await,
        "a signer not in certboot-signers",
        &format!(
            "certboot in namespace {NS} may not request signer {OTHER_SIGNER}; allowed: [{ALLOWED}]"
        ),
    );

    // A token bound to no pod (a plain TokenRequest or a legacy Secret token).
    let unbound = cp.service_account_client(NS, "certboot").await;
    assert_refused(
        create(&unbound, &own, ALLOWED).await,
        "a token bound to no pod",
        "certboot may create CSRs only with a service-account token bound to its pod",
    );

    // Deleting a CSR someone else created (the admin here).
    let admin = cp.admin_client();
    create(&admin, "someone-else", OTHER_SIGNER)
        .await
        .expect("the policy does not apply to other users");
    assert_refused(
        delete(&as_web, "someone-else").await,
        "deleting another user's CSR",
        "certboot may only delete CSRs it created itself; someone-else was created by harness-admin",
    );

    // The request's size, usages and lifetime: each bound refused, and just inside it allowed.
    let (_, small) = new_key_and_csr(&own, &[]);
    let large = large_request();
    assert!(large.len() > 16384, "{} bytes", large.len());
    let max_message = "must set spec.expirationSeconds to at most 2592000 (ConfigMap \
                       certboot-signers, key maxExpirationSeconds), not";
    let usages_message = "certboot may only request the usages [digital signature, key \
                          encipherment, server auth, client auth], not [digital signature, \
                          server auth, cert sign]";
    let all_usages = [
        "digital signature",
        "key encipherment",
        "server auth",
        "client auth",
    ];
    let cases = [
        SpecCase {
            case: "a request over 16 KiB",
            request: &large,
            usages: &USAGES,
            seconds: Some(3600),
            refusal: Some(
                "certboot CSRs are at most 16384 bytes (spec.request, PEM); this one has",
            ),
        },
        SpecCase {
            case: "a usage not in the list",
            request: &small,
            usages: &["digital signature", "server auth", "cert sign"],
            seconds: Some(3600),
            refusal: Some(usages_message),
        },
        SpecCase {
            case: "no extended key usage",
            request: &small,
            usages: &["digital signature"],
            seconds: Some(3600),
            refusal: Some("must list at least one extended key usage"),
        },
        SpecCase {
            case: "no expirationSeconds",
            request: &small,
            usages: &USAGES,
            seconds: None,
            refusal: Some(&format!("{max_message} leave it unset")),
        },
        SpecCase {
            case: "expirationSeconds over the maximum",
            request: &small,
            usages: &USAGES,
            seconds: Some(MAX_SECONDS + 1),
            refusal: Some(&format!("{max_message} 2592001")),
        },
        SpecCase {
            case: "expirationSeconds at the maximum, client auth only",
            request: &small,
            usages: &["digital signature", "client auth"],
            seconds: Some(MAX_SECONDS),
            refusal: None,
        },
        SpecCase {
            case: "every allowed usage, the shortest lifetime",
            request: &small,
            usages: &all_usages,
            seconds: Some(600),
            refusal: None,
        },
    ];
    for (i, c) in cases.iter().enumerate() {
        let name = format!("{own}:1000000{i}");
        let result = create_csr(&as_web, &name, ALLOWED, c.request, c.usages, c.seconds).await;
        match c.refusal {
            Some(message) => assert_refused(result, c.case, message),
            None => result.unwrap_or_else(|e| panic!("{}: refused: {e}", c.case)),
        }
    }

    // A sibling pod (same service account and namespace) may not delete web-0's CSR; web-0 may.
    let sibling = cp.bound_pod(NS, "web-9", "certboot").await;
    let as_sibling = cp.endpoint().token_client(&sibling.token);
    assert_refused(
        delete(&as_sibling, &own).await,
        "deleting a sibling pod's CSR",
        &format!(
            "certboot may only delete CSRs filed by its own pod (pod UID {}); {own} was filed by pod UID {}",
            sibling.uid, web.uid
        ),
    );
    delete(&as_web, &own)
        .await
        .expect("delete its own pod's CSR");

    // A per-namespace list replaces the global one for that namespace only.
    let patch = serde_json::json!({"data": {"signerNames.shop": OTHER_SIGNER}});
    Api::<ConfigMap>::namespaced(admin.clone(), "kube-system")
        .patch(
            "certboot-signers",
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .expect("patch certboot-signers");
    harness::poll_until(
        Duration::from_secs(30),
        "the per-namespace signer list to apply",
        || async {
            match create(&as_web, &format!("{own}:00000002"), OTHER_SIGNER).await {
                Ok(()) => Some(()),
                Err(said) if said.contains("may not request signer") => None,
                Err(said) => panic!("unexpected refusal: {said}"),
            }
        },
    )
    .await;
    assert_refused(
        create(&as_web, &format!("{own}:00000003"), ALLOWED).await,
        "the global signer in a namespace with its own list",
        &format!("may not request signer {ALLOWED}; allowed: [{OTHER_SIGNER}]"),
    );
    drop(tmp);
}

#[tokio::test]
async fn certboot_works_under_the_policy_and_reports_its_refusal() {
    let Some((cp, _, tmp)) = harness::with_certboot_rbac_since_deleting(NS, 30, FEATURE).await
    else {
        return;
    };
    let _signer = cp.custom_signer(ALLOWED, Duration::from_secs(60));
    let web = cp.bound_pod(NS, "web-1", "certboot").await;
    let as_web = cp.endpoint().token_client(&web.token);
    apply_policy(&cp, &as_web, "not-for-this-pod").await;
    let kubeconfig = cp.write_kubeconfig(tmp.path(), &web.token);

    // Allowed: the first certificate, then a renewal (its own name form) with CSR clean-up.
    let dir = tmp.path().join("certs");
    let sidecar = Certboot::new(&kubeconfig, &dir, NS, &web.name)
        .env("POD_UID", &web.uid)
        .env("CERTBOOT_SIGNER_NAME", ALLOWED)
        .env("CERTBOOT_MODE", "sidecar")
        .env("CERTBOOT_RENEW_BEFORE", "55s")
        .env("CERTBOOT_DELETE_CSR", "true")
        .env("CERTBOOT_EXPIRATION_SECONDS", "600")
        .spawn();
    let renewal_prefix = format!("created CSR {NS}:{}:{}:", web.name, &web.uid[..6]);
    let log = harness::poll_until(
        Duration::from_secs(60),
        "a renewal written and its CSR deleted",
        || {
            let log = sidecar.stderr_so_far();
            let done = log.matches("wrote ").count() >= 2
                && log.matches("deleted CSR").count() >= 2
                && log.contains(&renewal_prefix);
            async move { done.then_some(log) }
        },
    )
    .await;
    assert!(!log.contains("could not delete CSR"), "{log}");
    sidecar.signal(libc::SIGTERM);
    sidecar.finish(Duration::from_secs(5)).await.assert_code(0);

    // Refused: a signer the namespace may not use. certboot exits 1 with the policy's message.
    let refused = Certboot::new(&kubeconfig, &tmp.path().join("other"), NS, &web.name)
        .env("POD_UID", &web.uid)
        .env("CERTBOOT_SIGNER_NAME", OTHER_SIGNER)
        .env("CERTBOOT_EXPIRATION_SECONDS", "600")
        .run()
        .await;
    eprintln!(
        "certboot refused by the policy: {}",
        refused.stderr.lines().last().unwrap_or_default()
    );
    refused
        .assert_code(1)
        .assert_stderr_contains("certboot-csr-guard-rails")
        .assert_stderr_contains(&format!("may not request signer {OTHER_SIGNER}"))
        .assert_stderr_contains("An admission policy or webhook refused the request");
    assert!(
        !refused.stderr.contains("RBAC:"),
        "a refusal by the policy is not blamed on RBAC:\n{}",
        refused.stderr
    );
}
