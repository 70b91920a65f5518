//! Pods as the API server sees them (no kubelet runs them) and service-account tokens bound to
//! them: what a kubelet mounts into every pod from 1.22 on (a projected, pod-bound token). The API
//! server adds the pod's name and UID to such a token's user (`authentication.kubernetes.io/
//! pod-name`, `.../pod-uid` in `userInfo.extra`), and from there into each CSR's `spec.extra`.

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, ServiceAccount};
use kube::api::{Api, ObjectMeta, PostParams};

use super::control_plane::ControlPlane;

/// Lifetime of the pod-bound tokens the harness requests.
const TOKEN_SECONDS: i64 = 3600;

/// A pod known to the API server, and a token bound to it.
pub struct BoundPod {
    pub name: String,
    pub uid: String,
    pub token: String,
}

impl ControlPlane {
    /// Creates pod `name` (run by service account `service_account`, which must exist; no token
    /// volume, nothing schedules it) and returns its UID.
    pub async fn create_pod(&self, namespace: &str, name: &str, service_account: &str) -> String {
        self.create_namespace(namespace).await;
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                service_account_name: Some(service_account.to_owned()),
                automount_service_account_token: Some(false),
                containers: vec![Container {
                    name: "app".to_owned(),
                    image: Some("registry.example.com/app:1.0".to_owned()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let created = Api::<Pod>::namespaced(self.admin_client(), namespace)
            .create(&PostParams::default(), &pod)
            .await
            .unwrap_or_else(|e| panic!("create Pod {namespace}/{name}: {e}"));
        created.metadata.uid.expect("a created pod has a UID")
    }

    /// Creates pod `name` and a TokenRequest token of `service_account` bound to it.
    pub async fn bound_pod(&self, namespace: &str, name: &str, service_account: &str) -> BoundPod {
        let uid = self.create_pod(namespace, name, service_account).await;
        let token = self
            .pod_bound_token(namespace, service_account, name, &uid)
            .await;
        BoundPod {
            name: name.to_owned(),
            uid,
            token,
        }
    }

    /// A TokenRequest token of `service_account` bound to pod `name` with `uid`, as the kubelet
    /// mounts it.
    pub async fn pod_bound_token(
        &self,
        namespace: &str,
        service_account: &str,
        name: &str,
        uid: &str,
    ) -> String {
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                expiration_seconds: Some(TOKEN_SECONDS),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".to_owned()),
                    kind: Some("Pod".to_owned()),
                    name: Some(name.to_owned()),
                    uid: Some(uid.to_owned()),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let response: TokenRequest =
            Api::<ServiceAccount>::namespaced(self.admin_client(), namespace)
                .create_subresource("token", service_account, &PostParams::default(), &request)
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "TokenRequest for {namespace}/{service_account} bound to pod {name}: {e}"
                    )
                });
        response
            .status
            .and_then(|s| s.token)
            .expect("TokenRequest status.token")
    }
}
