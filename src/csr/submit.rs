//! Filing the CSR, and recovering when a CSR of the same name already exists.
//!
//! A CSR of our name can exist for two reasons:
//! - our own create reached the server but its answer was lost (then the CSR carries our key: we
//!   adopt it and keep waiting on it);
//! - an earlier attempt of this pod (an init container restarted after a kill) filed it with a key
//!   that died with that process. Its certificate would be useless, so certboot deletes it (guarded
//!   by a UID precondition, so only that exact object goes) and files a fresh one. This needs the
//!   `delete` verb, which `manifests/rbac.yaml` grants.

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::Api;
use tracing::{info, warn};

use crate::api::{with_retry, ApiError, Operation};
use crate::pki::key::PrivateKey;
use crate::pki::pkcs10::decode_pkcs10;

/// Failures while filing the CSR.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("CSR {name:?} already exists from an earlier attempt whose key is gone, and certboot may not delete it: {source}. Either grant the \"delete\" verb (manifests/rbac.yaml does) or remove it once: kubectl delete csr {name}")]
    Stale {
        name: String,
        #[source]
        source: ApiError,
    },
    #[error("CSR {name:?} was re-created by someone else while certboot replaced it; is another certboot running for this pod?")]
    Raced { name: String },
}

/// Creates `csr`, adopting or replacing an existing CSR of the same name. Returns the object as
/// stored by the API server (with its resourceVersion, to watch from).
pub async fn submit(
    api: &Api<CertificateSigningRequest>,
    csr: &CertificateSigningRequest,
    key: &PrivateKey,
) -> Result<CertificateSigningRequest, SubmitError> {
    let name = csr.metadata.name.clone().unwrap_or_default();
    let existing = match create_or_adopt(api, csr, key, &name).await? {
        Filed::Ours(created) => return Ok(created),
        Filed::Taken(existing) => existing,
    };
    warn!(csr = %name, "CSR {name} exists from an earlier attempt whose key is gone; replacing it");
    delete_exactly(api, &existing, &name).await?;
    // The create after a replacement can lose its answer too: it is recognised the same way.
    match create_or_adopt(api, csr, key, &name).await? {
        Filed::Ours(created) => Ok(created),
        Filed::Taken(_) => Err(SubmitError::Raced { name }),
    }
}

/// What one create left under our name.
enum Filed {
    /// Our CSR: just created, or created by an earlier try whose answer was lost.
    Ours(CertificateSigningRequest),
    /// A CSR of our name with another key.
    Taken(CertificateSigningRequest),
}

/// Creates `csr`; on 409 reads the existing object and adopts it when it carries our key.
async fn create_or_adopt(
    api: &Api<CertificateSigningRequest>,
    csr: &CertificateSigningRequest,
    key: &PrivateKey,
    name: &str,
) -> Result<Filed, SubmitError> {
    match create(api, csr, name).await {
        Err(e) if e.code == Some(409) => {}
        other => return Ok(Filed::Ours(other?)),
    }
    let existing = with_retry(&Operation::csr("get", name), || api.get(name)).await?;
    if carries_key(&existing, key) {
        info!(csr = %name, "CSR {name} already exists with this process's key (an earlier create's answer was lost); waiting on it");
        return Ok(Filed::Ours(existing));
    }
    Ok(Filed::Taken(existing))
}

async fn create(
    api: &Api<CertificateSigningRequest>,
    csr: &CertificateSigningRequest,
    name: &str,
) -> Result<CertificateSigningRequest, ApiError> {
    let params = PostParams::default();
    with_retry(&Operation::csr("create", name), || api.create(&params, csr)).await
}

/// Deletes this exact object (UID precondition), so a CSR re-created meanwhile is never removed.
async fn delete_exactly(
    api: &Api<CertificateSigningRequest>,
    existing: &CertificateSigningRequest,
    name: &str,
) -> Result<(), SubmitError> {
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: existing.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match with_retry(&Operation::csr("delete", name), || {
        api.delete(name, &params)
    })
    .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) if e.is_forbidden() => Err(SubmitError::Stale {
            name: name.to_string(),
            source: e,
        }),
        Err(e) if e.code == Some(409) => Err(SubmitError::Raced {
            name: name.to_string(),
        }),
        Err(e) => Err(e.into()),
    }
}

/// True when the CSR's request carries our public key.
pub fn carries_key(csr: &CertificateSigningRequest, key: &PrivateKey) -> bool {
    decode_pkcs10(&csr.spec.request.0).is_some_and(|r| r.public_key == key.public_key_raw())
}

/// Scenarios against a scripted API server ([`crate::api::mock`]): a CSR of our name exists.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::mock::{self, stored, MockApi};
    use crate::config::{PodIdentity, RequestConfig};
    use crate::pki::key::KeyAlgorithm;
    use crate::pki::pkcs10::build_pkcs10;
    use std::future::Future;
    use std::time::Duration;

    const NAME: &str = "shop:web-0:6f1d3c";

    fn object_for(key: &PrivateKey) -> CertificateSigningRequest {
        let request = RequestConfig {
            signer_name: "example.com/web".into(),
            common_name: "web-0.shop".into(),
            organizations: vec![],
            dns_names: vec![],
            ip_addresses: vec![],
            uris: vec![],
            usages: vec!["server auth".into()],
            key_algorithm: KeyAlgorithm::EcdsaP256,
            expiration_seconds: None,
        };
        let pod = PodIdentity {
            name: "web-0".into(),
            namespace: "shop".into(),
            uid: "6f1d3c52-2b0e-4b7a-9d4e-0c8f1a2b3c4d".into(),
            ips: vec![],
        };
        let pkcs10 = build_pkcs10(&request, key).expect("a request");
        crate::csr::build(NAME, &pkcs10, &pod, &request)
    }

    fn key() -> PrivateKey {
        PrivateKey::generate(KeyAlgorithm::EcdsaP256).expect("a key")
    }

    async fn submit_with<S, F>(
        object: &CertificateSigningRequest,
        key: &PrivateKey,
        script: S,
    ) -> Result<CertificateSigningRequest, SubmitError>
    where
        S: FnOnce(MockApi) -> F,
        F: Future<Output = ()>,
    {
        let (client, server) = mock::pair();
        let api = Api::all(client);
        let both = async { tokio::join!(submit(&api, object, key), script(server)) };
        let (result, ()) = tokio::time::timeout(Duration::from_secs(3600), both)
            .await
            .expect("submit and the script both finish");
        result
    }

    fn version(csr: &CertificateSigningRequest) -> &str {
        csr.metadata.resource_version.as_deref().unwrap_or_default()
    }

    #[tokio::test(start_paused = true)]
    async fn a_conflict_with_our_own_key_adopts_the_existing_csr() {
        let key = key();
        let ours = object_for(&key);
        let result = submit_with(&ours, &key, |mut server| {
            let existing = stored(&ours, "3", &[], None).to_string();
            async move {
                let create = server.fail(409, "AlreadyExists").await;
                assert_eq!(create.method, "POST");
                let get = server.reply(200, existing).await;
                assert_eq!(get.method, "GET");
            }
        })
        .await;
        assert_eq!(version(&result.unwrap()), "3");
    }

    #[tokio::test(start_paused = true)]
    async fn a_conflict_with_a_stale_key_deletes_exactly_that_csr_and_files_anew() {
        let key = key();
        let ours = object_for(&key);
        let mut stale = object_for(&self::key());
        stale.metadata.uid = Some("stale-uid".into());
        let result = submit_with(&ours, &key, |mut server| {
            let (stale, created) = (
                stored(&stale, "3", &[], None).to_string(),
                stored(&ours, "4", &[], None).to_string(),
            );
            async move {
                server.fail(409, "AlreadyExists").await;
                server.reply(200, stale.clone()).await;
                let delete = server.reply(200, stale).await;
                assert_eq!(delete.method, "DELETE");
                assert_eq!(delete.json()["preconditions"]["uid"], "stale-uid");
                let create = server.reply(201, created).await;
                assert_eq!(create.method, "POST");
            }
        })
        .await;
        assert_eq!(version(&result.unwrap()), "4");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stale_csr_certboot_may_not_delete_says_how_to_fix_it() {
        let key = key();
        let ours = object_for(&key);
        let stale = object_for(&self::key());
        let result = submit_with(&ours, &key, |mut server| {
            let stale = stored(&stale, "3", &[], None).to_string();
            async move {
                server.fail(409, "AlreadyExists").await;
                server.reply(200, stale).await;
                server.fail(403, "Forbidden").await;
            }
        })
        .await;
        let err = result.unwrap_err();
        assert!(matches!(err, SubmitError::Stale { .. }), "{err:?}");
        assert!(err.to_string().contains("kubectl delete csr"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_answer_to_the_create_after_a_replacement_adopts_our_own_csr() {
        let key = key();
        let ours = object_for(&key);
        let stale = object_for(&self::key());
        let result = submit_with(&ours, &key, |mut server| {
            let stale = stored(&stale, "3", &[], None).to_string();
            let created = stored(&ours, "5", &[], None).to_string();
            async move {
                server.fail(409, "AlreadyExists").await;
                server.reply(200, stale.clone()).await;
                let delete = server.reply(200, stale).await;
                assert_eq!(delete.method, "DELETE");
                // The create reached the server, its answer did not reach certboot: the retry
                // meets our own CSR.
                let retry = server.fail(409, "AlreadyExists").await;
                assert_eq!(retry.method, "POST");
                let get = server.reply(200, created).await;
                assert_eq!(get.method, "GET");
            }
        })
        .await;
        assert_eq!(version(&result.unwrap()), "5");
    }

    #[tokio::test(start_paused = true)]
    async fn a_csr_recreated_while_replacing_it_is_a_race_not_a_loop() {
        let key = key();
        let ours = object_for(&key);
        let stale = object_for(&self::key());
        let someone_elses = stored(&object_for(&self::key()), "6", &[], None).to_string();
        let result = submit_with(&ours, &key, |mut server| {
            let stale = stored(&stale, "3", &[], None).to_string();
            async move {
                server.fail(409, "AlreadyExists").await;
                server.reply(200, stale.clone()).await;
                server.reply(200, stale).await;
                server.fail(409, "AlreadyExists").await;
                server.reply(200, someone_elses).await;
            }
        })
        .await;
        assert!(
            matches!(result, Err(SubmitError::Raced { .. })),
            "{result:?}"
        );
    }
}
