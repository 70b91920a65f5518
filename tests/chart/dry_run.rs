//! The rendered chart against a real API server (the oldest or the newest, `KUBEBUILDER_ASSETS`):
//! every object created with `dryRun=All` (admission and validation run, nothing is stored), in
//! namespaces that exist, as `helm install` would send them. The chart is rendered with the
//! server's version (`--kube-version`), so a v1.20 server gets the policy/v1beta1
//! PodDisruptionBudget. The ServiceMonitor is left out here (the chart renders it only where
//! monitoring.coreos.com/v1 is served); tests/e2e_chart.rs installs that CRD to check it.

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::Client;
use serde_json::Value;

use super::helm::key;

/// The REST plural and scope of the kinds the chart renders.
fn resource_of(kind: &str) -> (&'static str, bool) {
    match kind {
        "ServiceAccount" => ("serviceaccounts", true),
        "ConfigMap" => ("configmaps", true),
        "Secret" => ("secrets", true),
        "Service" => ("services", true),
        "Role" => ("roles", true),
        "RoleBinding" => ("rolebindings", true),
        "ClusterRole" => ("clusterroles", false),
        "ClusterRoleBinding" => ("clusterrolebindings", false),
        "Deployment" => ("deployments", true),
        "NetworkPolicy" => ("networkpolicies", true),
        "PodDisruptionBudget" => ("poddisruptionbudgets", true),
        "ServiceMonitor" => ("servicemonitors", true),
        other => panic!("chart dry run: unknown kind {other:?}; add it to resource_of()"),
    }
}

/// Creates `object` with `dryRun=All`; the object as the server would store it, or its refusal.
pub async fn create_dry_run(client: &Client, object: &Value) -> Result<Value, String> {
    let what = key(object);
    let dynamic: DynamicObject =
        serde_json::from_value(object.clone()).map_err(|e| format!("{what}: {e}"))?;
    let types = dynamic
        .types
        .clone()
        .ok_or_else(|| format!("{what}: no apiVersion/kind"))?;
    let (plural, namespaced) = resource_of(&types.kind);
    let gvk = GroupVersionKind::try_from(&types).map_err(|e| format!("{what}: {e}"))?;
    let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
    let api: Api<DynamicObject> = match dynamic.metadata.namespace.as_deref() {
        Some(ns) if namespaced => Api::namespaced_with(client.clone(), ns, &resource),
        _ => Api::all_with(client.clone(), &resource),
    };
    let params = PostParams {
        dry_run: true,
        ..Default::default()
    };
    match api.create(&params, &dynamic).await {
        Ok(stored) => serde_json::to_value(stored).map_err(|e| format!("{what}: {e}")),
        Err(e) => Err(format!("{what}: {e}")),
    }
}

/// Every object of `objects` accepted by the server; the stored Deployment keeps the security
/// settings, probes and env the chart wrote (a server drops fields it does not know).
pub async fn assert_accepted(client: &Client, objects: &[Value], what: &str) {
    let mut refused = Vec::new();
    for object in objects {
        match create_dry_run(client, object).await {
            Ok(stored) if object["kind"] == "Deployment" => {
                let (sent, kept) = (
                    &object["spec"]["template"]["spec"],
                    &stored["spec"]["template"]["spec"],
                );
                assert_eq!(kept["securityContext"], sent["securityContext"], "{what}");
                let (a, b) = (&sent["containers"][0], &kept["containers"][0]);
                for field in ["securityContext", "command", "resources"] {
                    assert_eq!(b[field], a[field], "{what}: {field} as stored");
                }
                assert_eq!(env_view(b), env_view(a), "{what}: env as stored");
                for probe in ["livenessProbe", "readinessProbe"] {
                    for part in ["path", "port"] {
                        assert_eq!(
                            b[probe]["httpGet"][part], a[probe]["httpGet"][part],
                            "{what}: {probe}"
                        );
                    }
                }
            }
            Ok(_) => {}
            Err(e) => refused.push(e),
        }
    }
    assert!(
        refused.is_empty(),
        "{what}: the API server refused:\n{}",
        refused.join("\n")
    );
}

/// Each env entry as (name, value, fieldPath): the server adds defaults (fieldRef.apiVersion).
fn env_view(container: &Value) -> Vec<(String, String, String)> {
    container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            (
                text(&e["name"]),
                text(&e["value"]),
                text(&e["valueFrom"]["fieldRef"]["fieldPath"]),
            )
        })
        .collect()
}
