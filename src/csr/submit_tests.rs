//! Scenarios of [`super::submit`] against a scripted API server ([`certboot_core::api::mock`]): a CSR
//! of our name exists (our own lost answer, a stale one of this pod, someone else's).

use super::*;
use crate::config::{PodIdentity, RequestConfig};
use certboot_core::api::mock::{self, stored, MockApi};
use certboot_core::pki::key::KeyAlgorithm;
use certboot_core::pki::pkcs10::build_pkcs10;
use std::future::Future;

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
    let request = RequestConfig::example("example.com/web", "web-0.shop");
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
    let events = Events::disabled();
    let filing = Filing {
        stale,
        pod_uid: POD_UID,
        events: &events,
    };
    mock::scenario(
        |client| async move { submit(&Api::all(client), object, key, &filing).await },
        script,
    )
    .await
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
async fn with_delete_stale_a_conflict_with_a_stale_key_deletes_exactly_that_csr_and_files_anew() {
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
