//! What the controller's caches keep: only what the approver and the signer judge. Anyone who may
//! create CSRs (or Services) chooses how large they are; the caches hold every one of them for as
//! long as it exists, so each object is cut down on its way from the watch into the cache.
//!
//! - A Service keeps its name, namespace, UID, resourceVersion and `spec.selector` (the approver
//!   matches Service DNS names against the pods it selects; nothing else of it is read).
//! - A CSR loses `managedFields`, every label and annotation but certboot's pod ones (the `name`
//!   check compares those), and its `spec.request` once no one here will read it again: the
//!   approver reads it while the CSR is undecided, the signer while it is Approved without a
//!   certificate. A request over [`REQUEST_CACHE_LIMIT`] is never cached: it is replaced by a
//!   marker of its size ([`cut_request_bytes`]), on which the approver denies and the signer fails
//!   the CSR without parsing anything.

use std::collections::BTreeMap;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;

use certboot_core::csr::{LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID};

/// The largest `spec.request` (PEM bytes) a cached CSR holds. A certboot request is under 1 KiB;
/// the approver denies anything over 16 KiB of DER (about 22 KiB of PEM) anyway.
pub const REQUEST_CACHE_LIMIT: usize = 64 * 1024;

/// Set (on the cached copy only) when `spec.request` was over [`REQUEST_CACHE_LIMIT`]: its size.
/// Any value a CSR's author wrote under this key is dropped before.
const CUT_REQUEST: &str = "certboot.io/cached-request-cut-from-bytes";

/// The Service as the approver's cache keeps it.
pub fn trim_service(service: &mut Service) {
    let meta = std::mem::take(&mut service.metadata);
    service.metadata = ObjectMeta {
        name: meta.name,
        namespace: meta.namespace,
        uid: meta.uid,
        resource_version: meta.resource_version,
        ..ObjectMeta::default()
    };
    let selector = service.spec.take().and_then(|spec| spec.selector);
    service.spec = Some(ServiceSpec {
        selector,
        ..ServiceSpec::default()
    });
    service.status = None;
}

/// The CSR as the shared CSR cache keeps it. `needs_request`: whether the approver or the signer
/// will still read `spec.request` (undecided, or Approved without a certificate).
pub fn trim_csr(csr: &mut CertificateSigningRequest, needs_request: bool) {
    let meta = &mut csr.metadata;
    meta.managed_fields = None;
    meta.labels = keep_pod_keys(meta.labels.take());
    meta.annotations = keep_pod_keys(meta.annotations.take());
    let request = &mut csr.spec.request;
    if !needs_request {
        request.0 = Vec::new();
    } else if request.0.len() > REQUEST_CACHE_LIMIT {
        let size = request.0.len();
        *request = ByteString(Vec::new());
        csr.metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(CUT_REQUEST.to_string(), size.to_string());
    }
}

/// The size of the request [`trim_csr`] did not cache because it was over the limit, if so.
pub fn cut_request_bytes(csr: &CertificateSigningRequest) -> Option<usize> {
    csr.metadata
        .annotations
        .as_ref()?
        .get(CUT_REQUEST)?
        .parse()
        .ok()
}

fn keep_pod_keys(map: Option<BTreeMap<String, String>>) -> Option<BTreeMap<String, String>> {
    let kept: BTreeMap<String, String> = map?
        .into_iter()
        .filter(|(key, _)| {
            [LABEL_POD_NAMESPACE, LABEL_POD_NAME, LABEL_POD_UID].contains(&key.as_str())
        })
        .collect();
    (!kept.is_empty()).then_some(kept)
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
