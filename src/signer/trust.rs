//! Trust distribution: the CA bundle as the ConfigMap `certboot-ca` (key `ca.crt`) in each
//! namespace the user lists (`CERTBOOT_TRUST_NAMESPACES`), created or updated at start, so pods
//! mount it and pass it to certboot (`CERTBOOT_CA_BUNDLE`) and to their own clients.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::Client;
use tracing::{info, warn};

use crate::api::{with_retry, ApiError, Operation};

/// The ConfigMap's name.
pub const CONFIG_MAP: &str = "certboot-ca";
/// Its key.
pub const KEY: &str = "ca.crt";

/// Creates or updates the bundle in every namespace of `namespaces`.
pub async fn publish(client: &Client, namespaces: &[String], bundle: &str) {
    for namespace in namespaces {
        match publish_one(client, namespace, bundle).await {
            Ok(true) => {
                info!("published the CA bundle as ConfigMap {namespace}/{CONFIG_MAP} (key {KEY})")
            }
            Ok(false) => {}
            Err(e) => warn!("{e}"),
        }
    }
}

/// `Ok(true)` when the ConfigMap was created or changed.
async fn publish_one(client: &Client, namespace: &str, bundle: &str) -> Result<bool, ApiError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let op = |verb| Operation {
        verb,
        group: "",
        resource: "configmaps",
        name: format!("{namespace}/{CONFIG_MAP}"),
    };
    let data = BTreeMap::from([(KEY.to_string(), bundle.to_string())]);
    match with_retry(&op("get"), || api.get_opt(CONFIG_MAP)).await? {
        Some(existing) if existing.data.as_ref() == Some(&data) => Ok(false),
        Some(mut existing) => {
            existing.data = Some(data);
            let params = PostParams::default();
            with_retry(&op("update"), || {
                api.replace(CONFIG_MAP, &params, &existing)
            })
            .await?;
            Ok(true)
        }
        None => {
            let map = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(CONFIG_MAP.into()),
                    labels: Some(BTreeMap::from([(
                        "app.kubernetes.io/managed-by".to_string(),
                        "certboot".to_string(),
                    )])),
                    ..ObjectMeta::default()
                },
                data: Some(data),
                ..ConfigMap::default()
            };
            let params = PostParams::default();
            with_retry(&op("create"), || api.create(&params, &map)).await?;
            Ok(true)
        }
    }
}
