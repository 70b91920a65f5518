//! The Events on pods, as `kubectl describe pod` lists them.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};

use super::POLL;

/// Waits (up to `deadline`) for an Event with `reason` on one of the pods `names` in `namespace`;
/// returns "<reason> on pod <name> from <component>: <message>".
pub async fn wait_for(
    client: &kube::Client,
    namespace: &str,
    reason: &str,
    names: &[String],
    deadline: Duration,
) -> String {
    let events = Api::<Event>::namespaced(client.clone(), namespace);
    let start = Instant::now();
    loop {
        let list = events
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        let found = list.iter().find(|e| {
            e.reason.as_deref() == Some(reason)
                && e.involved_object.kind.as_deref() == Some("Pod")
                && e.involved_object
                    .name
                    .as_ref()
                    .is_some_and(|n| names.contains(n))
        });
        if let Some(event) = found {
            return format!(
                "{reason} on pod {} from {:?}: {}",
                event.involved_object.name.as_deref().unwrap_or("?"),
                event
                    .reporting_component
                    .as_deref()
                    .or(event.source.as_ref().and_then(|s| s.component.as_deref())),
                event.message.as_deref().unwrap_or("")
            );
        }
        let seen: Vec<String> = list
            .iter()
            .map(|e| {
                let name = e.involved_object.name.as_deref().unwrap_or("?");
                format!("{} {name}", e.reason.as_deref().unwrap_or("?"))
            })
            .collect();
        assert!(
            start.elapsed() < deadline,
            "no {reason} Event on any of {names:?} within {deadline:?}; Events in {namespace}: {seen:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}
