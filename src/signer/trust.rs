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

use std::collections::BTreeMap;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::api::{with_retry, ApiError, Operation};

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
) {
    let tasks = namespaces
        .into_iter()
        .map(|namespace| sync_namespace(client.clone(), namespace, bundle.clone()));
    futures::future::join_all(tasks).await;
}

/// The watch, cache and writes for one namespace.
async fn sync_namespace(client: Client, namespace: String, bundle: watch::Receiver<String>) {
    let api: Api<ConfigMap> = Api::namespaced(client, &namespace);
    let (cache, writer) = reflector::store();
    let config = watcher::Config::default().fields(&format!("metadata.name={CONFIG_MAP}"));
    let events = reflector::reflector(writer, watcher(api.clone(), config).default_backoff());
    let key = ObjectRef::new(CONFIG_MAP).within(&namespace);
    let (api, cache, key, namespace) = (&api, &cache, &key, &namespace);
    on_changes(
        events,
        bundle,
        |e| warn!("watching ConfigMap {namespace}/{CONFIG_MAP} failed: {e}; retrying with backoff (check the signer's RBAC: get, list, watch on configmaps named {CONFIG_MAP})"),
        |desired| async move {
            match reconcile(api, cache, key, namespace, &desired).await {
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

/// Writes the ConfigMap when the cached one differs from `bundle`; says what it did.
async fn reconcile(
    api: &Api<ConfigMap>,
    cache: &Store<ConfigMap>,
    key: &ObjectRef<ConfigMap>,
    namespace: &str,
    bundle: &str,
) -> Result<Option<&'static str>, ApiError> {
    let op = |verb| Operation {
        verb,
        group: "",
        resource: "configmaps",
        name: format!("{namespace}/{CONFIG_MAP}"),
    };
    let data = BTreeMap::from([(KEY.to_string(), bundle.to_string())]);
    let params = PostParams::default();
    match cache.get(key) {
        Some(existing) if existing.data.as_ref() == Some(&data) => Ok(None),
        Some(existing) => {
            let mut updated = (*existing).clone();
            updated.data = Some(data);
            with_retry(&op("update"), || api.replace(CONFIG_MAP, &params, &updated)).await?;
            Ok(Some("updated"))
        }
        None => {
            let map = new_config_map(data);
            with_retry(&op("create"), || api.create(&params, &map)).await?;
            Ok(Some("created"))
        }
    }
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
