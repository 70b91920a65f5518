//! The core's paths both programs import (certboot-controller's approver and signer among them),
//! and the pod program's re-exports of them: if one moves, this file stops compiling. Each item is
//! also used, so the test is not empty.

use certboot::config::{Config, Mode, OutputConfig};
use certboot_core::api::{
    backoff, client, is_transient, short, with_retry, ApiError, ConnectError, Operation,
    RETRY_MAX_DELAY, RETRY_MIN_DELAY,
};
use certboot_core::config_error::ConfigError;
use certboot_core::csr::{
    build, initial_name, renewal_name, state_of, CsrState, LABEL_MANAGED_BY, LABEL_POD_NAME,
    LABEL_POD_NAMESPACE, LABEL_POD_UID,
};
use certboot_core::identity::PodIdentity;
use certboot_core::logging::LogFormat;
use certboot_core::request::{RequestConfig, KNOWN_USAGES, MIN_EXPIRATION_SECONDS};

#[test]
fn the_documented_paths_resolve() {
    assert!(RETRY_MIN_DELAY < RETRY_MAX_DELAY);
    assert!(KNOWN_USAGES.contains(&"server auth") && MIN_EXPIRATION_SECONDS == 600);
    assert_eq!(LABEL_MANAGED_BY, "app.kubernetes.io/managed-by");
    assert!([LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID]
        .iter()
        .all(|l| l.starts_with("certboot.io/")));
    let pod = PodIdentity {
        name: "web-0".into(),
        namespace: "shop".into(),
        uid: "6f1d3c52".into(),
        ips: vec![],
    };
    assert_eq!(initial_name(&pod), "shop:web-0:6f1d3c");
    assert_eq!(renewal_name(&pod, "0a1b2c3d"), "shop:web-0:6f1d3c:0a1b2c3d");
    let object = k8s_openapi::api::certificates::v1::CertificateSigningRequest::default();
    assert_eq!(state_of(&object), CsrState::Pending);
    let op = Operation::csr("get", "x");
    assert_eq!(op.resource, "certificatesigningrequests");
    let _ = (backoff(), client, is_transient, short);
    let _ = with_retry::<(), fn() -> std::future::Ready<Result<(), kube::Error>>, _>;
    let _ = build;
    let _: Option<(ApiError, ConnectError, ConfigError)> = None;
    let _: Option<(Config, OutputConfig, RequestConfig, Mode, LogFormat)> = None;
    // The pod program's config re-exports the core's types: one type, not two.
    let same: fn(certboot::config::PodIdentity) -> PodIdentity = |p| p;
    let _ = same;
}
