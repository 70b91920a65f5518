//! Trust distribution: the CA bundle as the ConfigMap `certboot-ca` (key `ca.crt`) in each
//! namespace the user lists (`CERTBOOT_TRUST_NAMESPACES`), so pods mount it and pass it to
//! certboot (`CERTBOOT_CA_BUNDLE`) and to their own clients.
//!
//! Kept in sync, not only written at start: one watch per namespace (field selector
//! `metadata.name=certboot-ca`, so RBAC can name the object) feeds a one-object cache; whenever
//! the cache or the bundle changes, the ConfigMap is created or updated if, and only if, its
//! content differs. A user's edit or delete is undone; a new bundle (CA rotation) is published;
//! nothing is written when the content already matches. No polling: the watch and the bundle's
//! channel are the only triggers.
//!
//! A ConfigMap recreated with `immutable: true` cannot be updated: every write would fail
//! forever and pods would trust whatever it holds. When such a ConfigMap holds another bundle, it
//! is replaced: deleted with a UID precondition (only the object that was judged, never a newer
//! one), then created again (mutable); logged as a warning and counted in
//! `certboot_trust_configmap_replaced_total`.

use std::collections::BTreeMap;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams, Preconditions};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::metrics::Metrics;
use certboot_core::api::{with_retry, ApiError, Operation};

/// The ConfigMap's name.
pub const CONFIG_MAP: &str = "certboot-ca";
/// Its key.
pub const KEY: &str = "ca.crt";

/// Keeps the ConfigMap equal to the current bundle in every namespace of `namespaces`, until the
/// process stops.
pub async fn keep_in_sync(
    client: Client,
    namespaces: Vec<String>,
    bundle: watch::Receiver<String>,
    metrics: Metrics,
) {
    let tasks = namespaces.into_iter().map(|namespace| {
        sync_namespace(client.clone(), namespace, bundle.clone(), metrics.clone())
    });
    futures::future::join_all(tasks).await;
}

/// The watch, cache and writes for one namespace.
async fn sync_namespace(
    client: Client,
    namespace: String,
    bundle: watch::Receiver<String>,
    metrics: Metrics,
) {
    let api: Api<ConfigMap> = Api::namespaced(client, &namespace);
    let (cache, writer) = reflector::store();
    let config = watcher::Config::default().fields(&format!("metadata.name={CONFIG_MAP}"));
    let events = reflector::reflector(writer, watcher(api.clone(), config).default_backoff());
    let key = ObjectRef::new(CONFIG_MAP).within(&namespace);
    let (api, cache, key, namespace, metrics) = (&api, &cache, &key, &namespace, &metrics);
    on_changes(
        events,
        bundle,
        |e| warn!("watching ConfigMap {namespace}/{CONFIG_MAP} failed: {e}; retrying with backoff (check the signer's RBAC: get, list, watch on configmaps named {CONFIG_MAP})"),
        |desired| async move {
            match reconcile(api, cache, key, namespace, &desired).await {
                Ok(Some(Written::Replaced)) => {
                    metrics.trust_configmap_replaced();
                    warn!("replaced ConfigMap {namespace}/{CONFIG_MAP}: it was immutable (immutable: true) and held another bundle, so it could not be updated; it was deleted (UID precondition) and created again, mutable, with the CA bundle. Do not recreate it as immutable: CA rotations could not reach the pods");
                    Synced::Yes
                }
                Ok(Some(what)) => {
                    info!("{what} ConfigMap {namespace}/{CONFIG_MAP} (key {KEY}) with the CA bundle");
                    Synced::Yes
                }
                Ok(None) => Synced::Yes,
                // 409: someone wrote meanwhile; the watch brings their version and we look again.
                Err(e) if e.code == Some(409) => Synced::Yes,
                Err(e) => {
                    warn!("{e}; trying again with backoff (up to every 5 minutes), and at the next change of the ConfigMap or the CA (is namespace {namespace} there, and may the signer write ConfigMaps in it?)");
                    Synced::No
                }
            }
        },
    )
    .await;
}

/// Whether a reconcile left the object as wanted (or someone else's write is on its way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Synced {
    Yes,
    /// The write failed: reconcile again after a delay, even if nothing changes meanwhile.
    No,
}

/// The first delay before a failed write is tried again; it doubles up to [`RETRY_MAX`].
const RETRY_MIN: std::time::Duration = std::time::Duration::from_secs(1);
const RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(300);

/// The loop that keeps one object in sync: once the watch `events` has listed, `reconcile` runs
/// with the current bundle on every change of the object (a watch event) or of the bundle, and
/// after a failed write again with backoff (a namespace created later, RBAC fixed later). A
/// watch error goes to `watch_failed` (the watcher retries with backoff); returns when the watch
/// or the bundle's channel ends.
pub(super) async fn on_changes<K, Fut>(
    events: impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
    mut bundle: watch::Receiver<String>,
    watch_failed: impl Fn(watcher::Error),
    mut reconcile: impl FnMut(String) -> Fut,
) where
    Fut: std::future::Future<Output = Synced>,
{
    let mut events = std::pin::pin!(events);
    let mut listed = false;
    let mut retry: Option<std::time::Duration> = None;
    loop {
        let delay = retry.unwrap_or(RETRY_MAX);
        tokio::select! {
            () = tokio::time::sleep(delay), if retry.is_some() => {}
            event = events.next() => match event {
                Some(Ok(watcher::Event::Init | watcher::Event::InitApply(_))) => continue,
                Some(Ok(_)) => listed = true,
                Some(Err(e)) => {
                    watch_failed(e);
                    continue;
                }
                None => return,
            },
            changed = bundle.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
        if !listed {
            continue;
        }
        let desired = bundle.borrow_and_update().clone();
        retry = match reconcile(desired).await {
            Synced::Yes => None,
            Synced::No => Some(retry.map_or(RETRY_MIN, |d| (d * 2).min(RETRY_MAX))),
        };
    }
}

/// What a reconcile wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Written {
    Created,
    Updated,
    /// An immutable ConfigMap with another bundle, deleted and created again.
    Replaced,
}

impl std::fmt::Display for Written {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Written::Created => "created",
            Written::Updated => "updated",
            Written::Replaced => "replaced",
        })
    }
}

/// What to do with the cached ConfigMap (`None`: there is none) to make it hold `data`.
fn plan(existing: Option<&ConfigMap>, data: &BTreeMap<String, String>) -> Option<Written> {
    match existing {
        None => Some(Written::Created),
        Some(map) if map.data.as_ref() == Some(data) => None,
        Some(map) if map.immutable == Some(true) => Some(Written::Replaced),
        Some(_) => Some(Written::Updated),
    }
}

/// Writes the ConfigMap when the cached one differs from `bundle`; says what it did.
async fn reconcile(
    api: &Api<ConfigMap>,
    cache: &Store<ConfigMap>,
    key: &ObjectRef<ConfigMap>,
    namespace: &str,
    bundle: &str,
) -> Result<Option<Written>, ApiError> {
    let op = |verb| Operation {
        verb,
        group: "",
        resource: "configmaps",
        name: format!("{namespace}/{CONFIG_MAP}"),
    };
    let data = BTreeMap::from([(KEY.to_string(), bundle.to_string())]);
    let params = PostParams::default();
    let existing = cache.get(key);
    let Some(what) = plan(existing.as_deref(), &data) else {
        return Ok(None);
    };
    match (what, existing) {
        (Written::Updated, Some(existing)) => {
            let mut updated = (*existing).clone();
            updated.data = Some(data);
            with_retry(&op("update"), || api.replace(CONFIG_MAP, &params, &updated)).await?;
        }
        (Written::Replaced, Some(existing)) => {
            // Only the object judged: a 409 (precondition failed) means someone replaced it
            // meanwhile, and the watch brings the new one.
            let delete = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: existing.metadata.uid.clone(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match with_retry(&op("delete"), || api.delete(CONFIG_MAP, &delete)).await {
                // Already gone: create it.
                Err(e) if e.code == Some(404) => {}
                other => drop(other?),
            }
            let map = new_config_map(data);
            with_retry(&op("create"), || api.create(&params, &map)).await?;
        }
        _ => {
            let map = new_config_map(data);
            with_retry(&op("create"), || api.create(&params, &map)).await?;
        }
    }
    Ok(Some(what))
}

fn new_config_map(data: BTreeMap<String, String>) -> ConfigMap {
    ConfigMap {
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(bundle: &str, immutable: Option<bool>) -> ConfigMap {
        let mut map = new_config_map(BTreeMap::from([(KEY.to_string(), bundle.to_string())]));
        map.immutable = immutable;
        map
    }

    #[test]
    fn an_immutable_config_map_with_another_bundle_is_replaced_and_only_then() {
        let data = BTreeMap::from([(KEY.to_string(), "right".to_string())]);
        assert_eq!(plan(None, &data), Some(Written::Created));
        assert_eq!(
            plan(Some(&map("wrong", None)), &data),
            Some(Written::Updated)
        );
        assert_eq!(
            plan(Some(&map("wrong", Some(false))), &data),
            Some(Written::Updated)
        );
        assert_eq!(
            plan(Some(&map("wrong", Some(true))), &data),
            Some(Written::Replaced)
        );
        // Immutable but right: left alone.
        assert_eq!(plan(Some(&map("right", Some(true))), &data), None);
        assert_eq!(plan(Some(&map("right", None)), &data), None);
    }
}
