//! Applying the project's YAML manifests (e.g. `manifests/rbac.yaml`) with the dynamic API,
//! rewritten for a target namespace the way kustomize's `namespace:` does: namespaced objects
//! and the ServiceAccount subjects of (Cluster)RoleBindings move to that namespace.
//!
//! Cluster-scoped objects keep their names unless [`ApplyOptions::cluster_name_suffix`] is set;
//! the suffix is then appended to them and to `roleRef`s naming a ClusterRole from the same file,
//! so one manifest can be applied into several namespaces of one control plane. Objects that
//! already exist are replaced (last write wins, like `kubectl apply`).

use std::collections::HashSet;
use std::path::Path;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ObjectMeta, PostParams};
use kube::Client;
use serde::Deserialize;
use serde_json::Value;

/// How to rewrite a manifest before creating its objects.
#[derive(Clone, Debug)]
pub struct ApplyOptions {
    /// The namespace for namespaced objects and ServiceAccount subjects.
    pub namespace: String,
    /// Appended to the names of cluster-scoped objects (e.g. `-team-a`); empty keeps them.
    pub cluster_name_suffix: String,
}

impl ApplyOptions {
    /// Into `namespace`, cluster-scoped names unchanged.
    pub fn new(namespace: &str) -> Self {
        ApplyOptions {
            namespace: namespace.to_owned(),
            cluster_name_suffix: String::new(),
        }
    }

    /// Into `namespace`, cluster-scoped names suffixed with `-<namespace>`.
    pub fn with_namespaced_cluster_names(namespace: &str) -> Self {
        ApplyOptions {
            namespace: namespace.to_owned(),
            cluster_name_suffix: format!("-{namespace}"),
        }
    }
}

/// One object as it was created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedObject {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

/// Creates (or replaces) every object of a multi-document YAML file, rewritten per `options`.
pub async fn apply_manifest_file(
    client: &Client,
    path: &Path,
    options: &ApplyOptions,
) -> Vec<AppliedObject> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut documents = parse_documents(&text, path);
    let cluster_roles: HashSet<String> = documents
        .iter()
        .filter(|doc| doc["kind"] == "ClusterRole")
        .filter_map(|doc| doc["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    let mut applied = Vec::new();
    for doc in &mut documents {
        rewrite(doc, options, &cluster_roles);
        applied.push(create_or_replace(client, doc).await);
    }
    applied
}

/// Creates a namespace (no error if it exists).
pub async fn create_namespace(client: &Client, name: &str) {
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        ..Default::default()
    };
    match Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(e) => panic!("create namespace {name}: {e}"),
    }
}

/// The non-empty documents of a YAML stream, as JSON values.
fn parse_documents(text: &str, path: &Path) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| {
            let yaml = serde_yaml::Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("parse YAML in {}: {e}", path.display()));
            serde_json::to_value(yaml)
                .unwrap_or_else(|e| panic!("YAML to JSON in {}: {e}", path.display()))
        })
        .filter(|doc| !doc.is_null())
        .collect()
}

/// The REST plural and scope of the kinds a manifest of this project may hold.
fn resource_of(kind: &str) -> (&'static str, bool) {
    match kind {
        "Namespace" => ("namespaces", false),
        "ServiceAccount" => ("serviceaccounts", true),
        "ConfigMap" => ("configmaps", true),
        "Secret" => ("secrets", true),
        "Service" => ("services", true),
        "Pod" => ("pods", true),
        "Role" => ("roles", true),
        "RoleBinding" => ("rolebindings", true),
        "ClusterRole" => ("clusterroles", false),
        "ClusterRoleBinding" => ("clusterrolebindings", false),
        "Deployment" => ("deployments", true),
        "DaemonSet" => ("daemonsets", true),
        "StatefulSet" => ("statefulsets", true),
        "Job" => ("jobs", true),
        "NetworkPolicy" => ("networkpolicies", true),
        "CertificateSigningRequest" => ("certificatesigningrequests", false),
        "ValidatingAdmissionPolicy" => ("validatingadmissionpolicies", false),
        "ValidatingAdmissionPolicyBinding" => ("validatingadmissionpolicybindings", false),
        other => panic!("harness manifests: unknown kind {other:?}; add it to resource_of()"),
    }
}

/// Applies the namespace and suffix rules to one object.
fn rewrite(doc: &mut Value, options: &ApplyOptions, cluster_roles: &HashSet<String>) {
    let kind = doc["kind"].as_str().expect("object has a kind").to_owned();
    let (_, namespaced) = resource_of(&kind);
    let metadata = doc["metadata"]
        .as_object_mut()
        .expect("object has metadata");
    if namespaced {
        metadata.insert("namespace".into(), Value::from(options.namespace.clone()));
    } else {
        metadata.remove("namespace");
        let name = metadata["name"].as_str().expect("object has a name");
        metadata.insert(
            "name".into(),
            Value::from(format!("{name}{}", options.cluster_name_suffix)),
        );
    }
    if kind == "RoleBinding" || kind == "ClusterRoleBinding" {
        rewrite_binding(doc, options, cluster_roles);
    }
}

/// ServiceAccount subjects → the target namespace; `roleRef` to a suffixed ClusterRole → suffixed.
fn rewrite_binding(doc: &mut Value, options: &ApplyOptions, cluster_roles: &HashSet<String>) {
    if let Some(subjects) = doc["subjects"].as_array_mut() {
        for subject in subjects
            .iter_mut()
            .filter(|s| s["kind"] == "ServiceAccount")
        {
            subject["namespace"] = Value::from(options.namespace.clone());
        }
    }
    let role_ref = &mut doc["roleRef"];
    if role_ref["kind"] == "ClusterRole" {
        let name = role_ref["name"]
            .as_str()
            .expect("roleRef has a name")
            .to_owned();
        if cluster_roles.contains(&name) {
            role_ref["name"] = Value::from(format!("{name}{}", options.cluster_name_suffix));
        }
    }
}

/// Creates the object; on 409 replaces it with the current resourceVersion.
async fn create_or_replace(client: &Client, doc: &Value) -> AppliedObject {
    let object: DynamicObject = serde_json::from_value(doc.clone()).expect("manifest object");
    let types = object
        .types
        .clone()
        .expect("object has apiVersion and kind");
    let (plural, namespaced) = resource_of(&types.kind);
    let gvk = GroupVersionKind::try_from(&types).expect("valid apiVersion");
    let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
    let namespace = object.metadata.namespace.clone().filter(|_| namespaced);
    let api: Api<DynamicObject> = match &namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let name = object.metadata.name.clone().expect("object has a name");
    let what = format!(
        "{} {}{name}",
        types.kind,
        namespace
            .as_ref()
            .map(|n| format!("{n}/"))
            .unwrap_or_default()
    );
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => replace(&api, object, &what).await,
        Err(e) => panic!("create {what}: {e}"),
    }
    AppliedObject {
        kind: types.kind,
        namespace,
        name,
    }
}

async fn replace(api: &Api<DynamicObject>, mut object: DynamicObject, what: &str) {
    let name = object.metadata.name.clone().expect("object has a name");
    let current = api
        .get(&name)
        .await
        .unwrap_or_else(|e| panic!("get existing {what}: {e}"));
    object.metadata.resource_version = current.metadata.resource_version;
    api.replace(&name, &PostParams::default(), &object)
        .await
        .unwrap_or_else(|e| panic!("replace {what}: {e}"));
}
