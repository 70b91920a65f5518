//! Filing the CSR, and recovering when a CSR of the same name already exists.
//!
//! A CSR of our name can exist for two reasons:
//! - our own create reached the server but its answer was lost (then the CSR carries our key: we
//!   adopt it and keep waiting on it);
//! - an earlier attempt of this pod (an init container restarted after a kill) filed it with a key
//!   that died with that process. Its certificate would be useless. By default certboot leaves it
//!   alone (to kube-controller-manager's CSR cleaner) and files under a new name, the taken name
//!   plus the new key's fingerprint (`<ns>:<pod>:<uid6>:<8 hex>`, the form renewals use), so the
//!   default RBAC needs no `delete`. With `CERTBOOT_DELETE_CSR=true`, when the CSR provably comes
//!   from this pod (its `spec.extra` names this pod's UID), it deletes exactly that object (UID
//!   precondition) and files again under the same name; without the `delete` verb it warns and
//!   files under the new name.
//!
//! A CSR of our name filed by someone else ([`owner`]: another user, another pod) is never
//! deleted: certboot reports it (a warning and an Event on the pod) and files under the new name.

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::Api;
use tracing::{info, warn};

use crate::csr::owner;
use crate::events::{reason, Events, Kind};
use certboot_core::api::{with_retry, ApiError, Operation};
use certboot_core::pki::key::PrivateKey;
use certboot_core::pki::pkcs10::decode_pkcs10;

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
    /// Delete exactly that object and file again under the same name (`CERTBOOT_DELETE_CSR=true`),
    /// when its `spec.extra` names this pod's UID; otherwise as [`StaleCsr::FileAnew`].
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

#[cfg(test)]
#[path = "submit_tests.rs"]
mod tests;
