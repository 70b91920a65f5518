//! The chart and the kustomize bases cannot drift: the chart rendered with its default values
//! (which are the bases' settings) yields every object of `manifests/rbac.yaml` and
//! `manifests/approver/` with the same kind, name, namespace and content, compared as whole
//! objects. Only these differ, on purpose: the chart's extra labels (Helm's, a superset), the pod
//! template's `checksum/policy` annotation, the container's `imagePullPolicy`, the policy JSON's
//! layout (compared as JSON), the Namespace (Helm's `--create-namespace`), and the objects only
//! the chart has ([`CHART_ONLY`]).

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::helm::{file_documents, key, repo, Helm, Render};

/// Objects the chart renders by default that the kustomize bases do not have.
pub const CHART_ONLY: [&str; 2] = [
    "PodDisruptionBudget certboot-system/certboot-controller",
    "Service certboot-system/certboot-controller-metrics",
];

/// Objects of the kustomize bases the chart leaves to Helm.
pub const KUSTOMIZE_ONLY: [&str; 1] = ["Namespace /certboot-system"];

/// The objects `kubectl apply -k manifests/` and `kubectl apply -k manifests/approver/` create.
pub fn kustomize_objects() -> Vec<Value> {
    let mut objects = Vec::new();
    for base in ["manifests", "manifests/approver"] {
        let dir = repo().join(base);
        let kustomization = &file_documents(&dir.join("kustomization.yaml"))[0];
        let namespace = kustomization["namespace"].as_str();
        for resource in kustomization["resources"].as_array().expect("resources") {
            let file = resource.as_str().expect("a resource path");
            for object in file_documents(&dir.join(file)) {
                if let (Some(ns), Some(own)) = (namespace, object["metadata"]["namespace"].as_str())
                {
                    assert_eq!(
                        own,
                        ns,
                        "{base}/{file}: {} is written with the namespace its kustomization sets",
                        key(&object)
                    );
                }
                objects.push(object);
            }
        }
    }
    objects
}

/// What `kubectl kustomize` renders for both bases, where there is a kubectl (the newest test
/// bed's, or on PATH; `None` otherwise): [`kustomize_objects`] reads the files as kustomize
/// would, and this proves it where it can.
pub fn kubectl_kustomize_objects() -> Option<Vec<Value>> {
    let kubectl = crate::harness::kubectl::path()?;
    let mut objects = Vec::new();
    for base in ["manifests", "manifests/approver"] {
        let out = std::process::Command::new(&kubectl)
            .arg("kustomize")
            .arg(repo().join(base))
            .output()
            .expect("run kubectl kustomize");
        assert!(
            out.status.success(),
            "kubectl kustomize {base}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        objects.extend(super::helm::documents(
            &text,
            &format!("kubectl kustomize {base}"),
        ));
    }
    Some(objects)
}

/// The same objects, whatever their order.
pub fn assert_same_objects(a: &[Value], b: &[Value], what: &str) {
    let sorted = |list: &[Value]| {
        let mut v: Vec<String> = list.iter().map(|o| o.to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(sorted(a), sorted(b), "{what}");
}

/// The chart with its default values.
pub fn chart_defaults(helm: &Helm) -> Vec<Value> {
    helm.render(&Render::default())
}

/// Compares every kustomize object with the chart's; panics naming the first difference.
pub fn assert_no_drift(chart: &[Value], kustomize: &[Value]) {
    let chart_keys: BTreeSet<String> = chart.iter().map(key).collect();
    let kustomize_keys: BTreeSet<String> = kustomize.iter().map(key).collect();
    let only_chart: Vec<&String> = chart_keys.difference(&kustomize_keys).collect();
    let only_kustomize: Vec<&String> = kustomize_keys.difference(&chart_keys).collect();
    assert_eq!(
        only_chart,
        CHART_ONLY.iter().collect::<Vec<_>>(),
        "objects only the chart renders (update the chart or manifests/, or CHART_ONLY)"
    );
    assert_eq!(
        only_kustomize,
        KUSTOMIZE_ONLY.iter().collect::<Vec<_>>(),
        "objects only manifests/ has (update the chart or manifests/, or KUSTOMIZE_ONLY)"
    );
    for wanted in kustomize {
        let k = key(wanted);
        if KUSTOMIZE_ONLY.contains(&k.as_str()) {
            continue;
        }
        let got = chart.iter().find(|o| key(o) == k).expect("listed above");
        assert_labels_superset(
            &got["metadata"]["labels"],
            &wanted["metadata"]["labels"],
            &k,
        );
        let template = &wanted["spec"]["template"]["metadata"]["labels"];
        if !template.is_null() {
            let chart_template = &got["spec"]["template"]["metadata"]["labels"];
            assert_labels_superset(chart_template, template, &format!("{k} pod template"));
        }
        let (got, wanted) = (normalize(got), normalize(wanted));
        assert!(
            got == wanted,
            "{k}: the chart and manifests/ differ (edit both, or make one match the other)\n\
             chart:\n{}\nmanifests/:\n{}",
            pretty(&got),
            pretty(&wanted)
        );
    }
}

fn assert_labels_superset(got: &Value, wanted: &Value, what: &str) {
    for (name, value) in wanted.as_object().into_iter().flatten() {
        assert_eq!(&got[name], value, "{what}: label {name}");
    }
}

/// The object without what may differ on purpose (see the module doc).
fn normalize(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(meta) = object["metadata"].as_object_mut() {
        meta.remove("labels");
        meta.remove("annotations");
    }
    if object["kind"] == "Deployment" {
        let template = &mut object["spec"]["template"];
        if let Some(meta) = template["metadata"].as_object_mut() {
            meta.remove("labels");
            meta.remove("annotations");
            if meta.is_empty() {
                template.as_object_mut().map(|t| t.remove("metadata"));
            }
        }
        for container in template["spec"]["containers"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            container
                .as_object_mut()
                .map(|c| c.remove("imagePullPolicy"));
        }
    }
    if object["kind"] == "ConfigMap" {
        let parsed: Option<Map<String, Value>> = object["data"].as_object().map(|data| {
            data.iter()
                .map(|(k, v)| {
                    let text = v.as_str().unwrap_or_default();
                    let value = if k.ends_with(".json") {
                        serde_json::from_str(text)
                            .unwrap_or_else(|e| panic!("{}: {k} is not JSON: {e}", key(&object)))
                    } else {
                        v.clone()
                    };
                    (k.clone(), value)
                })
                .collect()
        });
        if let Some(data) = parsed {
            object["data"] = Value::Object(data);
        }
    }
    object
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// The manifests/ Deployment's image tag is the chart's appVersion.
pub fn assert_app_version_matches(kustomize: &[Value]) {
    let chart = file_documents(&repo().join("charts/certboot/Chart.yaml"))[0].clone();
    let app_version = chart["appVersion"].as_str().expect("appVersion");
    let deployment = kustomize
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("a Deployment in manifests/approver");
    let image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .expect("image");
    assert!(
        image.ends_with(&format!(":{app_version}")),
        "manifests/approver/deployment.yaml runs {image}, the chart's appVersion is {app_version}"
    );
}
