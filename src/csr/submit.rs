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
    match create(api, csr, &name).await {
        Err(e) if e.code == Some(409) => {}
        other => return Ok(other?),
    }
    let existing = with_retry(&Operation::csr("get", &name), || api.get(&name)).await?;
    if carries_key(&existing, key) {
        info!(csr = %name, "CSR {name} already exists with this process's key (an earlier create's answer was lost); waiting on it");
        return Ok(existing);
    }
    warn!(csr = %name, "CSR {name} exists from an earlier attempt whose key is gone; replacing it");
    delete_exactly(api, &existing, &name).await?;
    match create(api, csr, &name).await {
        Err(e) if e.code == Some(409) => Err(SubmitError::Raced { name }),
        other => Ok(other?),
    }
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
