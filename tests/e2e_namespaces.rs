//! certboot's RBAC installed into several namespaces of one cluster, by the two recipes the
//! RBAC reference gives (docs/rbac.md): `sed 's/default$/<ns>/' manifests/rbac.yaml`, and a kustomization with
//! `namespace:` plus the replacement that names the ClusterRoleBinding `certboot-<namespace>`.
//! The ClusterRoleBinding is cluster-scoped: with one fixed name, the second install took it over
//! and the first namespace's certboot got 403 Forbidden.

mod harness;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::Api;
use serde_json::Value;
use support::{read_pair, Certboot};

const SIGNER: &str = "example.com/namespaces";

fn repo(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// docs/rbac.md's `sed 's/default$/<ns>/'` recipe, applied to manifests/rbac.yaml.
fn rbac_by_sed(namespace: &str) -> String {
    let text = std::fs::read_to_string(repo("manifests/rbac.yaml")).expect("read rbac.yaml");
    text.lines()
        .map(|line| match line.strip_suffix("default") {
            Some(head) => format!("{head}{namespace}\n"),
            None => format!("{line}\n"),
        })
        .collect()
}

/// docs/rbac.md's kustomization for `namespace`, rendered by `kubectl kustomize` against a copy of
/// manifests/ (the reference's remote `resources:` replaced by that copy). `None` without kubectl.
fn rbac_by_kustomize(namespace: &str, dir: &Path) -> Option<String> {
    let Some(kubectl) = harness::kubectl::path() else {
        eprintln!(
            "SKIPPED kustomize rendering: no kubectl in the test bed or on PATH (the sed recipe is tested)"
        );
        return None;
    };
    let base = dir.join("base");
    std::fs::create_dir_all(&base).expect("mkdir base");
    for file in ["kustomization.yaml", "rbac.yaml"] {
        std::fs::copy(repo("manifests").join(file), base.join(file)).expect("copy manifests");
    }
    let snippet = documented_kustomization()
        .replace(
            "resources: [github.com/certboot/certboot//manifests?ref=v0.1.0]",
            "resources: [../base]",
        )
        .replace("namespace: shop", &format!("namespace: {namespace}"));
    let overlay = dir.join(namespace);
    std::fs::create_dir_all(&overlay).expect("mkdir overlay");
    std::fs::write(overlay.join("kustomization.yaml"), snippet).expect("write kustomization");
    let out = Command::new(kubectl)
        .args(["kustomize"])
        .arg(&overlay)
        .output()
        .expect("run kubectl kustomize");
    assert!(
        out.status.success(),
        "kubectl kustomize: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).expect("UTF-8"))
}

/// docs/rbac.md's per-namespace kustomization (the yaml block holding `replacements:`).
fn documented_kustomization() -> String {
    let reference = std::fs::read_to_string(repo("docs/rbac.md")).expect("read docs/rbac.md");
    reference
        .split("```yaml\n")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .find(|block| block.contains("replacements:") && block.contains("namespace: shop"))
        .expect("docs/rbac.md shows a kustomization with namespace: shop and replacements:")
        .to_owned()
}

fn documents(text: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| {
            serde_json::to_value(serde_yaml::Value::deserialize(doc).expect("YAML")).expect("JSON")
        })
        .filter(|doc| !doc.is_null())
        .collect()
}

/// Every namespace in the rendered RBAC is `namespace`, and the ClusterRoleBinding is
/// `certboot-<namespace>`; nothing still says "default".
fn assert_rendered_for(text: &str, namespace: &str, recipe: &str) {
    let docs = documents(text);
    assert_eq!(docs.len(), 5, "{recipe}: {text}");
    for doc in &docs {
        let kind = doc["kind"].as_str().expect("kind");
        match kind {
            "ClusterRole" => assert_eq!(doc["metadata"]["name"], "certboot", "{recipe}"),
            "ClusterRoleBinding" => {
                assert_eq!(
                    doc["metadata"]["name"],
                    format!("certboot-{namespace}"),
                    "{recipe}"
                );
                assert_eq!(doc["roleRef"]["name"], "certboot", "{recipe}");
            }
            _ => assert_eq!(doc["metadata"]["namespace"], namespace, "{recipe}: {kind}"),
        }
        for subject in doc["subjects"].as_array().into_iter().flatten() {
            assert_eq!(subject["namespace"], namespace, "{recipe}: {kind}");
        }
        assert!(
            !doc.to_string().contains("default"),
            "{recipe}: {kind} still names the default namespace: {doc}"
        );
    }
}

#[test]
fn both_documented_recipes_make_the_rbac_per_namespace() {
    for ns in ["team-a", "shop-eu-1"] {
        assert_rendered_for(&rbac_by_sed(ns), ns, "sed");
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    for ns in ["team-a", "shop-eu-1"] {
        if let Some(text) = rbac_by_kustomize(ns, tmp.path()) {
            assert_rendered_for(&text, ns, "kustomize");
        }
    }
}

#[tokio::test]
async fn two_namespaces_installed_by_the_documented_recipes_both_get_certificates() {
    let Some(cp) = harness::ControlPlane::start().await else {
        return;
    };
    let _signer = cp.custom_signer(SIGNER, Duration::from_secs(3600));
    let tmp = tempfile::tempdir().expect("tempdir");
    // team-a by sed; team-b by the kustomization where kubectl is at hand, else by sed too.
    let installs = [
        ("team-a", rbac_by_sed("team-a")),
        (
            "team-b",
            rbac_by_kustomize("team-b", tmp.path()).unwrap_or_else(|| rbac_by_sed("team-b")),
        ),
    ];
    for (ns, text) in &installs {
        let path = tmp.path().join(format!("rbac-{ns}.yaml"));
        std::fs::write(&path, text).expect("write rendered RBAC");
        cp.apply_manifest_file(&path, ns).await;
    }
    let bindings = Api::<ClusterRoleBinding>::all(cp.admin_client());
    for (ns, _) in &installs {
        let binding = bindings
            .get(&format!("certboot-{ns}"))
            .await
            .expect("one ClusterRoleBinding per namespace");
        let subjects = binding.subjects.unwrap_or_default();
        assert_eq!(subjects.len(), 1);
        assert_eq!(subjects[0].namespace.as_deref(), Some(*ns));
    }
    // Both namespaces work, the first one too (it lost its binding when the name was fixed).
    for (ns, _) in &installs {
        let kubeconfig = cp.service_account_kubeconfig(ns, "certboot").await;
        let dir = tmp.path().join(ns).join("certs");
        let run = Certboot::new(&kubeconfig, &dir, ns, "web-0")
            .env("CERTBOOT_SIGNER_NAME", SIGNER)
            .run()
            .await;
        run.assert_code(0);
        assert!(!run.stderr.contains("forbidden"), "{ns}: {}", run.stderr);
        read_pair(&dir);
    }
}
