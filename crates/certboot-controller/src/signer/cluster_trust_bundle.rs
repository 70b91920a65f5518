//! Trust distribution, second form: a ClusterTrustBundle per signer, where the API server serves
//! the resource (certificates.k8s.io `v1`, `v1beta1` or `v1alpha1`, discovered at start; none on
//! servers before 1.27 or with the API off: logged, and the ConfigMaps carry the bundle alone).
//!
//! Named `<signer name with '/' as ':'>:bundle` (e.g. `certboot.io:serving:bundle`, the form the
//! API requires for a bundle with `spec.signerName`), and kept in sync like the ConfigMap: a watch
//! on that one name feeds a cache; a create or update only when `spec` differs. Pods mount it with
//! a projected volume's `clusterTrustBundle` source (by name, or by `signerName`).

use kube::api::{Api, ApiResource, DynamicObject, ObjectMeta, PostParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use serde_json::json;
use tokio::sync::watch;
use tracing::{info, warn};

use super::trust::Synced;
use certboot_core::api::{with_retry, ApiError, Operation};

const GROUP: &str = "certificates.k8s.io";
const PLURAL: &str = "clustertrustbundles";
/// The suffix of each bundle's name.
pub const SUFFIX: &str = "bundle";

/// The name of `signer`'s bundle: `certboot.io/serving` → `certboot.io:serving:bundle`.
pub fn name_for(signer: &str) -> String {
    format!("{}:{SUFFIX}", signer.replace('/', ":"))
}

/// The served version of ClusterTrustBundle, newest first; `None` when there is none.
pub async fn discover(client: &Client) -> Option<ApiResource> {
    certboot_core::api::discovery::served(
        client,
        GROUP,
        &["v1", "v1beta1", "v1alpha1"],
        "ClusterTrustBundle",
        PLURAL,
    )
    .await
}

/// Keeps one ClusterTrustBundle per signer equal to the current bundle, until the process stops;
/// returns at once (with a log line) when the API server serves no ClusterTrustBundle.
pub async fn keep_in_sync(client: Client, signers: Vec<String>, bundle: watch::Receiver<String>) {
    let Some(resource) = discover(&client).await else {
        info!("the API server serves no ClusterTrustBundle (certificates.k8s.io v1, v1beta1 or v1alpha1): the CA bundle is published as ConfigMaps only");
        return;
    };
    info!(
        "publishing the CA bundle as ClusterTrustBundles ({})",
        resource.api_version
    );
    let tasks = signers
        .into_iter()
        .map(|signer| sync_one(client.clone(), resource.clone(), signer, bundle.clone()));
    futures::future::join_all(tasks).await;
}

async fn sync_one(
    client: Client,
    resource: ApiResource,
    signer: String,
    bundle: watch::Receiver<String>,
) {
    let name = name_for(&signer);
    let api: Api<DynamicObject> = Api::all_with(client, &resource);
    let writer = reflector::store::Writer::new(resource.clone());
    let cache = writer.as_reader();
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let events = reflector::reflector(writer, watcher(api.clone(), config).default_backoff());
    let (api, cache, resource, name, signer) = (&api, &cache, &resource, &name, &signer);
    super::trust::on_changes(
        events,
        bundle,
        |e| warn!("watching ClusterTrustBundle {name} failed: {e}; retrying with backoff (check the signer's RBAC: get, list, watch on clustertrustbundles named {name})"),
        |desired| async move {
            match reconcile(api, cache, resource, name, signer, &desired).await {
                Ok(Some(what)) => {
                    info!("{what} ClusterTrustBundle {name} (signer {signer})");
                    Synced::Yes
                }
                Ok(None) | Err(ApiError { code: Some(409), .. }) => Synced::Yes,
                Err(e) if e.code == Some(403) => {
                    warn!("{e}; a ClusterTrustBundle with spec.signerName also needs attest on signers named {signer} (manifests/approver/rbac.yaml); trying again with backoff (up to every 5 minutes)");
                    Synced::No
                }
                Err(e) => {
                    warn!("{e}; trying again with backoff (up to every 5 minutes), and at the next change of the ClusterTrustBundle or the CA");
                    Synced::No
                }
            }
        },
    )
    .await;
}

async fn reconcile(
    api: &Api<DynamicObject>,
    cache: &Store<DynamicObject>,
    resource: &ApiResource,
    name: &str,
    signer: &str,
    bundle: &str,
) -> Result<Option<&'static str>, ApiError> {
    let op = |verb| Operation {
        verb,
        group: GROUP,
        resource: PLURAL,
        name: name.to_string(),
    };
    let spec = json!({ "signerName": signer, "trustBundle": bundle });
    let params = PostParams::default();
    match cache
        .state()
        .into_iter()
        .find(|o| o.metadata.name.as_deref() == Some(name))
    {
        Some(existing) if existing.data.get("spec") == Some(&spec) => Ok(None),
        Some(existing) => {
            let mut updated = (*existing).clone();
            updated.data["spec"] = spec;
            with_retry(&op("update"), || api.replace(name, &params, &updated)).await?;
            Ok(Some("updated"))
        }
        None => {
            let mut object = DynamicObject::new(name, resource);
            object.metadata = ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    [(
                        "app.kubernetes.io/managed-by".to_string(),
                        "certboot".to_string(),
                    )]
                    .into(),
                ),
                ..ObjectMeta::default()
            };
            object.data = json!({ "spec": spec });
            with_retry(&op("create"), || api.create(&params, &object)).await?;
            Ok(Some("created"))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_name_is_the_signer_with_colons_then_the_suffix() {
        assert_eq!(
            super::name_for("certboot.io/serving"),
            "certboot.io:serving:bundle"
        );
    }
}
