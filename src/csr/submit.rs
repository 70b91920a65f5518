//! Filing the CSR, and recovering when a CSR of the same name already exists.
//!
//! A CSR of our name can exist for two reasons:
//! - our own create reached the server but its answer was lost (then the CSR carries our key: we
//!   adopt it and keep waiting on it);
//! - an earlier attempt of this pod (an init container restarted after a kill) filed it with a key
//!   that died with that process. Its certificate would be useless. By default certboot leaves it
//!   alone (to kube-controller-manager's CSR cleaner) and files under a new name, the taken name
//!   plus the new key's fingerprint (`<ns>:<pod>:<uid6>:<8 hex>`, the form renewals use), so the
//!   default RBAC needs no `delete`. With `CERTBOOT_DELETE_CSR=true` it deletes exactly that object
//!   (UID precondition) and files again under the same name; without the `delete` verb it warns
//!   and files under the new name.
//!
//! A CSR of our name filed by someone else ([`owner`]: another user, another pod) is never
//! deleted: certboot reports it (a warning and an Event on the pod) and files under the new name.

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::Api;
use tracing::{info, warn};

use crate::api::events::{reason, Events, Kind};
use crate::api::{with_retry, ApiError, Operation};
use crate::csr::owner;
use crate::pki::key::PrivateKey;
use crate::pki::pkcs10::decode_pkcs10;

/// Failures while filing the CSR.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("CSR {name:?} was created by someone else, with another key, while certboot filed it; is another certboot running for this pod? Delete the pod to start afresh")]
    Raced { name: String },
}

/// What to do with a CSR of our name that carries another key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleCsr {
    /// Leave it and file under a new name (no `delete` verb needed): the default.
    FileAnew,
    /// Delete exactly that object and file again under the same name (`CERTBOOT_DELETE_CSR=true`).
    Delete,
}

/// How to file: what to do with a stale CSR, whose it can be, and where to report.
pub struct Filing<'a> {
    pub stale: StaleCsr,
    /// The pod's UID (`POD_UID`): a CSR whose `spec.extra` names it comes from this pod.
    pub pod_uid: &'a str,
    pub events: &'a Events,
}

/// Creates `csr`, adopting our own existing CSR of the same name, and otherwise filing under a new
/// name or replacing it (see [`StaleCsr`]). Returns the object as stored by the API server (with
/// its name and resourceVersion, to watch from).
pub async fn submit(
    api: &Api<CertificateSigningRequest>,
    csr: &CertificateSigningRequest,
    key: &PrivateKey,
    filing: &Filing<'_>,
) -> Result<CertificateSigningRequest, SubmitError> {
    let name = csr.metadata.name.clone().unwrap_or_default();
    let existing = match create_or_adopt(api, csr, key, &name).await? {
        Filed::Ours(created) => return Ok(created),
        Filed::Taken(existing) => existing,
    };
    // Deleted only when provably this pod's: someone else's CSR is never removed.
    if filing.stale == StaleCsr::Delete
        && owner::filed_by_pod(&existing, filing.pod_uid)
        && replace(api, &existing, &name).await?
    {
        // The create after a replacement can lose its answer too: it is recognised the same way.
        return match create_or_adopt(api, csr, key, &name).await? {
            Filed::Ours(created) => Ok(created),
            Filed::Taken(_) => Err(SubmitError::Raced { name }),
        };
    }
    let Some(new_name) = alternative_name(&name, key) else {
        return Err(SubmitError::Raced { name });
    };
    let created = file_under(api, csr, key, &new_name).await?;
    report_taken(&existing, &created, &name, &new_name, filing.events);
    Ok(created)
}

/// Says whose CSR held our name: an earlier attempt of this pod (info), or someone else (a
/// warning and an Event on the pod, since someone may be squatting this pod's CSR names).
fn report_taken(
    existing: &CertificateSigningRequest,
    created: &CertificateSigningRequest,
    name: &str,
    new_name: &str,
    events: &Events,
) {
    if owner::same_requester(existing, created) {
        info!(csr = %name, "CSR {name} exists from an earlier attempt whose key is gone; filing under {new_name} instead (the old one is left to the CSR cleaner)");
        return;
    }
    let message = format!(
        "CSR {name} was filed by {}, not by this pod; filing under {new_name}. It is left alone; if nobody should file CSRs under this pod's name, find out who did (spec.username of kubectl get csr {name} -o yaml) and restrict CSR creation (manifests/policy/)",
        owner::requester(existing)
    );
    warn!(csr = %name, "{message}");
    events.post(Kind::Warning, reason::NAME_TAKEN, message);
}

/// The name to file under when `name` is taken: `name` plus our key's fingerprint (8 hex digits
/// of its SHA-256), the form a renewal's name has. `None` when `name` already ends with it (a
/// renewal's name, taken by another key: not something certboot can resolve).
pub fn alternative_name(name: &str, key: &PrivateKey) -> Option<String> {
    let suffix = format!(":{}", key.fingerprint());
    (!name.ends_with(&suffix)).then(|| format!("{name}{suffix}"))
}

/// Files `csr` under `name`; that name is ours (it carries our key's fingerprint), so a conflict
/// there is our own lost answer or a race.
async fn file_under(
    api: &Api<CertificateSigningRequest>,
    csr: &CertificateSigningRequest,
    key: &PrivateKey,
    name: &str,
) -> Result<CertificateSigningRequest, SubmitError> {
    let mut renamed = csr.clone();
    renamed.metadata.name = Some(name.to_string());
    match create_or_adopt(api, &renamed, key, name).await? {
        Filed::Ours(created) => Ok(created),
        Filed::Taken(_) => Err(SubmitError::Raced {
            name: name.to_string(),
        }),
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
/// `Ok(true)` when it is gone; `Ok(false)` when certboot may not delete it (it then files under
/// a new name instead, after a warning naming the missing rule).
async fn replace(
    api: &Api<CertificateSigningRequest>,
    existing: &CertificateSigningRequest,
    name: &str,
) -> Result<bool, SubmitError> {
    warn!(csr = %name, "CSR {name} exists from an earlier attempt whose key is gone; deleting it to file again under the same name (CERTBOOT_DELETE_CSR=true)");
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
        Ok(_) => Ok(true),
        Err(e) if e.is_not_found() => Ok(true),
        Err(e) if e.is_forbidden() => {
            warn!(csr = %name, "could not delete CSR {name}: {e}; CERTBOOT_DELETE_CSR=true needs the verb \"delete\" on certificatesigningrequests (see the README, RBAC); filing under a new name instead");
            Ok(false)
        }
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
    const POD_UID: &str = "6f1d3c52-2b0e-4b7a-9d4e-0c8f1a2b3c4d";

    /// `csr` as the API server stores it when filed with a token bound to this pod.
    fn from_this_pod(mut csr: CertificateSigningRequest) -> CertificateSigningRequest {
        csr.spec.username = Some("system:serviceaccount:shop:certboot".into());
        csr.spec.extra = Some(std::collections::BTreeMap::from([(
            owner::EXTRA_POD_UID.to_string(),
            vec![POD_UID.to_string()],
        )]));
        csr
    }

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
            uid: POD_UID.into(),
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
        stale: StaleCsr,
        script: S,
    ) -> Result<CertificateSigningRequest, SubmitError>
    where
        S: FnOnce(MockApi) -> F,
        F: Future<Output = ()>,
    {
        let (client, server) = mock::pair();
        let api = Api::all(client);
        let events = Events::disabled();
        let filing = Filing {
            stale,
            pod_uid: POD_UID,
            events: &events,
        };
        let both = async { tokio::join!(submit(&api, object, key, &filing), script(server)) };
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
        let result = submit_with(&ours, &key, StaleCsr::FileAnew, |mut server| {
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

    fn name_of(seen: &mock::Seen) -> String {
        let posted: CertificateSigningRequest =
            serde_json::from_slice(&seen.body).expect("a CSR was posted");
        posted.metadata.name.unwrap_or_default()
    }

    #[tokio::test(start_paused = true)]
    async fn a_conflict_with_a_stale_key_files_under_a_new_name_and_deletes_nothing() {
        let key = key();
        let ours = object_for(&key);
        let new_name = format!("{NAME}:{}", key.fingerprint());
        let mut renamed = ours.clone();
        renamed.metadata.name = Some(new_name.clone());
        let stale = object_for(&self::key());
        let result = submit_with(&ours, &key, StaleCsr::FileAnew, |mut server| {
            let stale = stored(&stale, "3", &[], None).to_string();
            let created = stored(&renamed, "4", &[], None).to_string();
            let new_name = new_name.clone();
            async move {
                server.fail(409, "AlreadyExists").await;
                server.reply(200, stale).await;
                let create = server.reply(201, created).await;
                assert_eq!(create.method, "POST", "no DELETE: {create:?}");
                assert_eq!(name_of(&create), new_name);
            }
        })
        .await;
        let created = result.unwrap();
        assert_eq!(created.metadata.name.as_deref(), Some(new_name.as_str()));
        assert_eq!(version(&created), "4");
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_answer_to_the_create_under_the_new_name_adopts_our_own_csr() {
        let key = key();
        let ours = object_for(&key);
        let mut renamed = ours.clone();
        renamed.metadata.name = Some(format!("{NAME}:{}", key.fingerprint()));
        let stale = object_for(&self::key());
        let result = submit_with(&ours, &key, StaleCsr::FileAnew, |mut server| {
            let stale = stored(&stale, "3", &[], None).to_string();
            let created = stored(&renamed, "5", &[], None).to_string();
            async move {
                server.fail(409, "AlreadyExists").await;
                server.reply(200, stale).await;
                server.fail(409, "AlreadyExists").await;
                let get = server.reply(200, created).await;
                assert_eq!(get.method, "GET");
            }
        })
        .await;
        assert_eq!(version(&result.unwrap()), "5");
    }

    #[tokio::test(start_paused = true)]
    async fn someone_elses_csr_under_our_name_is_never_deleted_even_with_delete_stale() {
        let key = key();
        let ours = object_for(&key);
        let mut renamed = ours.clone();
        renamed.metadata.name = Some(format!("{NAME}:{}", key.fingerprint()));
        let renamed = from_this_pod(renamed);
        let mut squatter = object_for(&self::key());
        squatter.spec.username = Some("system:serviceaccount:shop:app".into());
        let result = submit_with(&ours, &key, StaleCsr::Delete, |mut server| {
            let squatter = stored(&squatter, "3", &[], None).to_string();
            let created = stored(&renamed, "4", &[], None).to_string();
            async move {
                server.fail(409, "AlreadyExists").await;
                server.reply(200, squatter).await;
                let create = server.reply(201, created).await;
                assert_eq!(create.method, "POST", "no DELETE: {create:?}");
            }
        })
        .await;
        let created = result.unwrap();
        assert_ne!(created.metadata.name.as_deref(), Some(NAME));
    }

    #[test]
    fn a_renewal_name_taken_by_another_key_has_no_alternative() {
        let key = key();
        let renewal = format!("{NAME}:{}", key.fingerprint());
        assert_eq!(alternative_name(NAME, &key), Some(renewal.clone()));
        assert_eq!(alternative_name(&renewal, &key), None);
    }

    #[tokio::test(start_paused = true)]
    async fn with_delete_stale_a_conflict_with_a_stale_key_deletes_exactly_that_csr_and_files_anew()
    {
        let key = key();
        let ours = object_for(&key);
        let mut stale = from_this_pod(object_for(&self::key()));
        stale.metadata.uid = Some("stale-uid".into());
        let result = submit_with(&ours, &key, StaleCsr::Delete, |mut server| {
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
                assert_eq!(name_of(&create), NAME);
            }
        })
        .await;
        assert_eq!(version(&result.unwrap()), "4");
    }

    #[tokio::test(start_paused = true)]
    async fn with_delete_stale_but_no_delete_verb_certboot_files_under_a_new_name() {
        let key = key();
        let ours = object_for(&key);
        let mut renamed = ours.clone();
        renamed.metadata.name = Some(format!("{NAME}:{}", key.fingerprint()));
        let stale = from_this_pod(object_for(&self::key()));
        let result = submit_with(&ours, &key, StaleCsr::Delete, |mut server| {
            let stale = stored(&stale, "3", &[], None).to_string();
            let created = stored(&renamed, "4", &[], None).to_string();
            async move {
                server.fail(409, "AlreadyExists").await;
                server.reply(200, stale).await;
                let delete = server.fail(403, "Forbidden").await;
                assert_eq!(delete.method, "DELETE");
                let create = server.reply(201, created).await;
                assert_eq!(create.method, "POST");
            }
        })
        .await;
        let created = result.unwrap();
        assert!(
            created
                .metadata
                .name
                .unwrap()
                .starts_with(&format!("{NAME}:")),
            "filed under the new name"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_answer_to_the_create_after_a_replacement_adopts_our_own_csr() {
        let key = key();
        let ours = object_for(&key);
        let stale = from_this_pod(object_for(&self::key()));
        let result = submit_with(&ours, &key, StaleCsr::Delete, |mut server| {
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
        let stale = from_this_pod(object_for(&self::key()));
        let someone_elses = stored(&object_for(&self::key()), "6", &[], None).to_string();
        let result = submit_with(&ours, &key, StaleCsr::Delete, |mut server| {
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
