//! What is left of certboot in the cluster: every object of every listable resource (namespaced
//! and cluster-scoped, found through discovery, Events aside) whose name says `certboot` or whose
//! labels say it belongs to certboot. An uninstall is judged against this, not against a list of
//! the kinds the chart happens to render today.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::{verbs, Discovery, Scope};

use super::POLL;

/// Every certboot object as "<Kind> <namespace>/<name>" (cluster-scoped: "<Kind> <name>").
pub async fn certboot_objects(client: &kube::Client) -> BTreeSet<String> {
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .expect("API discovery");
    let mut found = BTreeSet::new();
    for group in discovery.groups() {
        for (resource, caps) in group.recommended_resources() {
            if !caps.supports_operation(verbs::LIST) || resource.kind == "Event" {
                continue;
            }
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
            let Ok(list) = api.list(&ListParams::default()).await else {
                continue;
            };
            for object in list.items.iter().filter(|o| is_certboot(o)) {
                let name = object.metadata.name.as_deref().unwrap_or("?");
                found.insert(match (&caps.scope, object.metadata.namespace.as_deref()) {
                    (Scope::Namespaced, Some(ns)) => format!("{} {ns}/{name}", resource.kind),
                    _ => format!("{} {name}", resource.kind),
                });
            }
        }
    }
    found
}

/// The test node's objects (Node, CSINode, its Lease) are the harness's, not certboot's.
const HARNESS_NODE_PREFIX: &str = "certboot-node-";

fn is_certboot(object: &DynamicObject) -> bool {
    let name = object.metadata.name.as_deref().unwrap_or_default();
    if name.starts_with(HARNESS_NODE_PREFIX) {
        return false;
    }
    let labels = object.metadata.labels.clone().unwrap_or_default();
    name.contains("certboot")
        || labels
            .iter()
            .any(|(k, v)| k.starts_with("app.kubernetes.io/") && v.starts_with("certboot"))
}

/// Waits (up to `deadline`: deletions finish in the background) until the certboot objects,
/// those of `kept_kinds` aside, are exactly `expected`; returns them. Panics naming what is left
/// over and what is missing.
pub async fn wait_until_only(
    client: &kube::Client,
    expected: &[&str],
    kept_kinds: &[&str],
    deadline: Duration,
) -> BTreeSet<String> {
    let expected: BTreeSet<String> = expected.iter().map(|s| (*s).to_owned()).collect();
    let start = Instant::now();
    loop {
        let mut found = certboot_objects(client).await;
        found.retain(|o| !kept_kinds.iter().any(|k| o.starts_with(&format!("{k} "))));
        if found == expected {
            return found;
        }
        if start.elapsed() > deadline {
            let extra: Vec<&String> = found.difference(&expected).collect();
            let missing: Vec<&String> = expected.difference(&found).collect();
            panic!(
                "after {deadline:?}, certboot objects left that should be gone: {extra:#?}\n\
                 expected to stay but missing: {missing:#?}"
            );
        }
        tokio::time::sleep(POLL).await;
    }
}
