//! The shipped manifests (`manifests/`), proven against a real kube-apiserver (the oldest or
//! the newest, `KUBEBUILDER_ASSETS`; skipped without it, a failure under CI=true):
//!
//! - every manifest is accepted by the API server, and the example workloads keep the security
//!   settings they claim (the server drops fields it does not know, so they are read back);
//! - the native-sidecar example uses 1.28+ fields that a v1.20 server cannot validate: the test
//!   shows exactly what such a server says, and that everything else in it is accepted;
//! - each example's certboot container configuration is valid for certboot (`--dry-run`);
//! - `manifests/rbac.yaml` grants exactly what certboot uses (the audit log shows no other verb),
//!   and with each verb removed certboot fails clearly, or, where a verb is needed only on a
//!   recovery path, keeps working until that path is taken;
//! - the controller (`manifests/approver`) and the guard rails (`manifests/policy`, 1.30+) name one
//!   signer everywhere and, applied unedited, admit and approve a pod's CSR for it; the
//!   NetworkPolicy is stored as written.

mod harness;
mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use harness::{csr_object, new_key_and_csr, ApplyOptions, ControlPlane};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::Api;
use serde_json::Value;
use support::{csr_name, fake_uid, read_pair, Certboot};

const SIGNER: &str = "example.com/manifests";
const EXAMPLES: [&str; 3] = [
    "examples/init-container.yaml",
    "examples/classic-sidecar.yaml",
    "examples/native-sidecar.yaml",
];

fn manifest(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("manifests")
        .join(relative)
}

/// The non-empty documents of a YAML file, as JSON.
fn documents(path: &Path) -> Vec<Value> {
    use serde::Deserialize;
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| {
            let yaml = serde_yaml::Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("parse {}: {e}", path.display()));
            serde_json::to_value(yaml).expect("YAML to JSON")
        })
        .filter(|doc| !doc.is_null())
        .collect()
}

fn deployment_of(path: &Path) -> Value {
    documents(path)
        .into_iter()
        .find(|d| d["kind"] == "Deployment")
        .unwrap_or_else(|| panic!("{} holds a Deployment", path.display()))
}

/// The certboot containers (init and regular) of a pod spec.
fn certboot_containers(pod_spec: &Value) -> Vec<&Value> {
    ["initContainers", "containers"]
        .iter()
        .flat_map(|list| pod_spec[*list].as_array().into_iter().flatten())
        .filter(|c| c["image"].as_str().unwrap_or_default().contains("certboot"))
        .collect()
}

// ---- structure (no API server needed) ----------------------------------------------------------

#[test]
fn kustomization_lists_the_rbac_and_examples_are_hardened_as_documented() {
    let kustomization = &documents(&manifest("kustomization.yaml"))[0];
    assert_eq!(kustomization["kind"], "Kustomization");
    let resources: Vec<&str> = kustomization["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| r.as_str().expect("a path"))
        .collect();
    assert_eq!(resources, ["rbac.yaml"]);
    for resource in resources {
        assert!(manifest(resource).is_file(), "{resource} exists");
    }

    for example in EXAMPLES {
        let deployment = deployment_of(&manifest(example));
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(pod["serviceAccountName"], "certboot", "{example}");
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{example}");
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
            "{example}"
        );
        let certs = pod["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .find(|v| v["name"] == "certs")
            .expect("a certs volume");
        assert_eq!(
            certs["emptyDir"]["medium"], "Memory",
            "{example}: the key stays in memory"
        );
        let containers = certboot_containers(pod);
        assert!(!containers.is_empty(), "{example}");
        for c in containers {
            let what = format!("{example}: container {}", c["name"]);
            let sc = &c["securityContext"];
            assert_eq!(sc["runAsNonRoot"], true, "{what}");
            assert_eq!(sc["runAsUser"], 65532, "{what}");
            assert_eq!(sc["runAsGroup"], 65532, "{what}");
            assert_eq!(sc["readOnlyRootFilesystem"], true, "{what}");
            assert_eq!(sc["allowPrivilegeEscalation"], false, "{what}");
            assert_eq!(
                sc["capabilities"]["drop"],
                serde_json::json!(["ALL"]),
                "{what}"
            );
            assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault", "{what}");
            assert!(
                c["resources"]["limits"]["memory"].is_string(),
                "{what}: memory limit"
            );
            assert!(
                c["resources"]["requests"]["memory"].is_string(),
                "{what}: memory request"
            );
            let field_refs: Vec<(&str, &str)> = c["env"]
                .as_array()
                .expect("env")
                .iter()
                .filter_map(|e| {
                    Some((
                        e["name"].as_str()?,
                        e["valueFrom"]["fieldRef"]["fieldPath"].as_str()?,
                    ))
                })
                .collect();
            assert_eq!(
                field_refs,
                [
                    ("POD_NAME", "metadata.name"),
                    ("POD_NAMESPACE", "metadata.namespace"),
                    ("POD_UID", "metadata.uid"),
                    ("POD_IPS", "status.podIPs"),
                ],
                "{what}: Downward API"
            );
        }
    }

    // The native sidecar holds the app back until the pair exists, without a shell.
    let native = deployment_of(&manifest("examples/native-sidecar.yaml"));
    let init = &native["spec"]["template"]["spec"]["initContainers"][0];
    assert_eq!(init["restartPolicy"], "Always");
    assert_eq!(
        init["startupProbe"]["exec"]["command"],
        serde_json::json!(["/certboot", "check"])
    );
    assert_eq!(env_value(init, "CERTBOOT_MODE"), Some("sidecar"));
    // The classic sidecar: an init container for the first pair, a container for renewals.
    let classic = deployment_of(&manifest("examples/classic-sidecar.yaml"));
    let pod = &classic["spec"]["template"]["spec"];
    assert_eq!(
        env_value(&pod["initContainers"][0], "CERTBOOT_MODE"),
        None,
        "init mode"
    );
    let renew = certboot_containers(pod)
        .into_iter()
        .find(|c| env_value(c, "CERTBOOT_MODE") == Some("sidecar"))
        .expect("a renewing container");
    assert!(pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == renew));
}

/// Where the kubelet mounts a service-account token, and where certboot (kube's in-cluster
/// configuration) reads it.
const TOKEN_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The README's Pod spec example (the yaml block of `kind: Pod`).
fn readme_pod() -> Value {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("read README.md");
    let block = readme
        .split("```yaml\n")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .find(|block| block.contains("kind: Pod\n"))
        .expect("the README has a Pod example");
    serde_json::to_value(serde_yaml::from_str::<serde_yaml::Value>(block).expect("YAML"))
        .expect("JSON")
}

/// Every pod spec the project shows: the examples' Deployment templates and the README's Pod.
fn shown_pod_specs() -> Vec<(String, Value)> {
    let mut specs: Vec<(String, Value)> = EXAMPLES
        .iter()
        .map(|e| {
            let spec = deployment_of(&manifest(e))["spec"]["template"]["spec"].clone();
            (e.to_string(), spec)
        })
        .collect();
    specs.push(("README Pod spec".into(), readme_pod()["spec"].clone()));
    specs
}

/// The containers (init and regular) of a pod spec that mount something at [`TOKEN_PATH`].
fn token_mounts(pod_spec: &Value) -> Vec<(String, Value)> {
    ["initContainers", "containers"]
        .iter()
        .flat_map(|list| pod_spec[*list].as_array().into_iter().flatten())
        .flat_map(|c| {
            c["volumeMounts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|m| {
                    m["mountPath"]
                        .as_str()
                        .unwrap_or_default()
                        .starts_with(TOKEN_PATH)
                })
                .map(|m| (c["name"].as_str().unwrap_or_default().to_owned(), m.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The pod gets no token by default, and certboot's container(s) mount the projected volume
/// `certboot-token` (the kubelet's default: token, kube-root-ca.crt, namespace) at the standard
/// path. No other container has a token.
fn assert_token_only_for_certboot(what: &str, pod_spec: &Value) {
    assert_eq!(
        pod_spec["automountServiceAccountToken"], false,
        "{what}: no token by default"
    );
    let certboot: BTreeSet<String> = certboot_containers(pod_spec)
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    let mounts = token_mounts(pod_spec);
    let mounted: BTreeSet<String> = mounts.iter().map(|(c, _)| c.clone()).collect();
    assert_eq!(
        mounted, certboot,
        "{what}: the token goes to certboot's containers only"
    );
    for (container, mount) in &mounts {
        assert_eq!(mount["name"], "certboot-token", "{what}: {container}");
        assert_eq!(mount["mountPath"], TOKEN_PATH, "{what}: {container}");
        assert_eq!(mount["readOnly"], true, "{what}: {container}");
    }
    let volume = pod_spec["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == "certboot-token")
        .unwrap_or_else(|| panic!("{what}: a certboot-token volume"));
    let sources = &volume["projected"]["sources"];
    assert_eq!(sources[0]["serviceAccountToken"]["path"], "token", "{what}");
    assert_eq!(
        sources[1]["configMap"]["name"], "kube-root-ca.crt",
        "{what}"
    );
    assert_eq!(
        sources[1]["configMap"]["items"],
        serde_json::json!([{"key": "ca.crt", "path": "ca.crt"}]),
        "{what}"
    );
    assert_eq!(
        sources[2]["downwardAPI"]["items"][0]["path"], "namespace",
        "{what}"
    );
    assert_eq!(
        sources[2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"], "metadata.namespace",
        "{what}"
    );
}

#[test]
fn every_shown_pod_gives_the_token_to_certboot_only() {
    for (what, spec) in shown_pod_specs() {
        assert_token_only_for_certboot(&what, &spec);
    }
}

fn env_value<'a>(container: &'a Value, name: &str) -> Option<&'a str> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)?
        .get("value")?
        .as_str()
}

#[test]
fn every_example_configures_certboot_validly() {
    for example in EXAMPLES {
        let deployment = deployment_of(&manifest(example));
        for container in certboot_containers(&deployment["spec"]["template"]["spec"]) {
            let env = kubelet_env(container, "web-7d9f-abcde", "shop");
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_certboot"))
                .arg("--dry-run")
                .env_clear()
                .envs(env.iter().map(|(k, v)| (k, v)))
                .output()
                .expect("run certboot --dry-run");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{example}: container {}: {}\n{stdout}",
                container["name"],
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                stdout.contains("DNS:web.shop.svc")
                    || stdout.contains("DNS:api.shop.svc")
                    || stdout.contains("DNS:worker.shop.svc"),
                "{example}: $(POD_NAMESPACE) expands into the DNS names:\n{stdout}"
            );
        }
    }
}

/// The environment the kubelet would give the container: Downward API values for a pod, and
/// `$(VAR)` references to earlier variables expanded.
fn kubelet_env(container: &Value, pod: &str, namespace: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    for e in container["env"].as_array().expect("env") {
        let name = e["name"].as_str().expect("env name").to_owned();
        let value = match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            Some("metadata.name") => pod.to_owned(),
            Some("metadata.namespace") => namespace.to_owned(),
            Some("metadata.uid") => fake_uid(pod),
            Some("status.podIPs") => "10.244.1.7,fd00::7".to_owned(),
            Some(other) => panic!("unexpected fieldRef {other}"),
            None => {
                let mut value = e["value"].as_str().unwrap_or_default().to_owned();
                for (k, v) in &env {
                    value = value.replace(&format!("$({k})"), v);
                }
                value
            }
        };
        env.push((name, value));
    }
    env
}

// ---- the API server ----------------------------------------------------------------------------

#[tokio::test]
async fn every_manifest_is_accepted_by_the_api_server() {
    let Some(cp) = ControlPlane::start().await else {
        return;
    };
    let ns = "shop";
    let applied = cp.apply_manifest_file(manifest("rbac.yaml"), ns).await;
    let kinds: Vec<&str> = applied.iter().map(|o| o.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding"
        ]
    );

    let deployments = Api::<Deployment>::namespaced(cp.admin_client(), ns);
    for example in [
        "examples/init-container.yaml",
        "examples/classic-sidecar.yaml",
    ] {
        cp.apply_manifest_file(manifest(example), ns).await;
        // Read back: the server kept every security setting (it silently drops unknown fields).
        let name = deployment_of(&manifest(example))["metadata"]["name"]
            .as_str()
            .unwrap()
            .to_owned();
        let stored = serde_json::to_value(deployments.get(&name).await.expect("get")).unwrap();
        let pod = &stored["spec"]["template"]["spec"];
        assert_token_only_for_certboot(example, pod);
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        for c in certboot_containers(pod) {
            assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
            assert_eq!(
                c["securityContext"]["capabilities"]["drop"],
                serde_json::json!(["ALL"])
            );
        }
    }

    // As Pods, through the ServiceAccount admission plugin (which adds the default token
    // volume to every container unless automountServiceAccountToken is false): still no token
    // for the app.
    let mut pods = vec![("README Pod spec".to_owned(), readme_pod())];
    for example in [
        "examples/init-container.yaml",
        "examples/classic-sidecar.yaml",
    ] {
        let template = &deployment_of(&manifest(example))["spec"]["template"];
        let mut pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("pod-{}", pods.len())}});
        pod["spec"] = template["spec"].clone();
        pods.push((example.to_owned(), pod));
    }
    for (what, pod) in pods {
        let object: k8s_openapi::api::core::v1::Pod = serde_json::from_value(pod).expect("a Pod");
        let stored = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(cp.admin_client(), ns)
            .create(&PostParams::default(), &object)
            .await
            .unwrap_or_else(|e| panic!("create the {what} Pod: {e}"));
        let stored = serde_json::to_value(stored).expect("JSON");
        assert_token_only_for_certboot(&what, &stored["spec"]);
        let volumes: Vec<&str> = stored["spec"]["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .filter_map(|v| v["name"].as_str())
            .collect();
        assert!(
            !volumes.iter().any(|v| v.starts_with("kube-api-access")),
            "{what}: no default token volume added: {volumes:?}"
        );
    }

    // The native sidecar: `restartPolicy: Always` on an init container is a 1.28+ field and a
    // startupProbe on an init container is allowed only with it.
    let native = deployment_of(&manifest("examples/native-sidecar.yaml"));
    let version = cp
        .admin_client()
        .apiserver_version()
        .await
        .expect("server version");
    let minor: u32 = version
        .minor
        .trim_end_matches('+')
        .parse()
        .expect("minor version");
    match create_deployment(&cp, ns, native.clone()).await {
        Ok(stored) if minor >= 28 => {
            assert_token_only_for_certboot(
                "examples/native-sidecar.yaml",
                &stored["spec"]["template"]["spec"],
            );
            assert_eq!(
                stored["spec"]["template"]["spec"]["initContainers"][0]["restartPolicy"],
                "Always"
            );
        }
        Ok(_) => panic!("a 1.{minor} server accepted a startupProbe on an init container"),
        Err(message) => {
            assert!(
                minor < 28,
                "a 1.{minor} server rejected the native sidecar: {message}"
            );
            // What a pre-1.28 server says: it does not know restartPolicy (dropped), so the
            // startupProbe looks like one on a plain init container. That is the only complaint.
            assert!(
                message.contains("spec.template.spec.initContainers[0].startupProbe"),
                "{message}"
            );
            assert!(
                message.contains("must not be set for init containers"),
                "{message}"
            );
            // Without the two 1.28+ fields, everything else in the example is accepted.
            let mut older = native;
            let init = &mut older["spec"]["template"]["spec"]["initContainers"][0];
            let init = init.as_object_mut().expect("init container");
            init.remove("restartPolicy");
            init.remove("startupProbe");
            create_deployment(&cp, ns, older)
                .await
                .unwrap_or_else(|e| panic!("the rest of the native sidecar example: {e}"));
            eprintln!(
                "native-sidecar.yaml: server v1.{minor} cannot validate initContainers[].restartPolicy \
                 (1.28+); it rejects the startupProbe instead: {message}"
            );
        }
    }
}

/// Creates a Deployment (into `namespace`); the stored object, or the server's message.
async fn create_deployment(
    cp: &ControlPlane,
    namespace: &str,
    mut doc: Value,
) -> Result<Value, String> {
    doc["metadata"]["namespace"] = Value::from(namespace);
    let object: DynamicObject = serde_json::from_value(doc).expect("object");
    let gvk = GroupVersionKind::gvk("apps", "v1", "Deployment");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "deployments");
    let api = Api::<DynamicObject>::namespaced_with(cp.admin_client(), namespace, &resource);
    match api.create(&PostParams::default(), &object).await {
        Ok(stored) => Ok(serde_json::to_value(stored).expect("JSON")),
        Err(kube::Error::Api(status)) => Err(status.message),
        Err(e) => panic!("create Deployment: {e}"),
    }
}

// ---- RBAC --------------------------------------------------------------------------------------

/// manifests/rbac.yaml with `verb` removed from the ClusterRole, written to a temporary file.
fn rbac_without(verb: &str, dir: &Path) -> PathBuf {
    let mut docs = documents(&manifest("rbac.yaml"));
    let mut removed = false;
    for doc in docs.iter_mut().filter(|d| d["kind"] == "ClusterRole") {
        for rule in doc["rules"].as_array_mut().expect("rules") {
            let verbs = rule["verbs"].as_array_mut().expect("verbs");
            let before = verbs.len();
            verbs.retain(|v| v != verb);
            removed |= verbs.len() < before;
        }
    }
    assert!(removed, "rbac.yaml grants {verb}");
    let text: Vec<String> = docs
        .iter()
        .map(|d| serde_yaml::to_string(d).expect("YAML"))
        .collect();
    let path = dir.join(format!("rbac-without-{verb}.yaml"));
    std::fs::write(&path, text.join("---\n")).expect("write");
    path
}

/// A CSR of the name certboot will use for `pod`, filed earlier with another key (what an init
/// container killed before its CSR was issued leaves behind), here by the cluster admin.
async fn file_stale_csr(cp: &ControlPlane, namespace: &str, pod: &str) {
    let name = csr_name(namespace, pod, &fake_uid(pod));
    file_stale_csr_as(&cp.admin_client(), &name, namespace, pod).await;
}

/// A CSR named `name`, filed by `client` with a key nobody has any more.
async fn file_stale_csr_as(
    client: &kube::Client,
    name: &str,
    namespace: &str,
    pod: &str,
) -> CertificateSigningRequest {
    let (_key, csr_pem) = new_key_and_csr(&format!("{pod}.{namespace}"), &[]);
    let csr = csr_object(
        name,
        &csr_pem,
        SIGNER,
        &["digital signature", "server auth"],
    );
    Api::<CertificateSigningRequest>::all(client.clone())
        .create(&PostParams::default(), &csr)
        .await
        .expect("create the stale CSR")
}

fn certboot_for(kubeconfig: &Path, dir: &Path, namespace: &str, pod: &str) -> Certboot {
    Certboot::new(kubeconfig, &dir.join(pod), namespace, pod).env("CERTBOOT_SIGNER_NAME", SIGNER)
}

#[tokio::test]
async fn the_shipped_rbac_is_enough_and_exactly_what_certboot_uses() {
    let Some(cp) = ControlPlane::start().await else {
        return;
    };
    let _signer = cp.custom_signer(SIGNER, Duration::from_secs(3600));
    let ns = "shop";
    cp.apply_manifest_file(manifest("rbac.yaml"), ns).await;
    let kubeconfig = cp.service_account_kubeconfig(ns, "certboot").await;
    let tmp = tempfile::tempdir().expect("tempdir");

    // Every path that needs a verb: a CSR already under its name (create → 409, get, create
    // under a new name), the watch; and Events on the pod. No delete anywhere.
    file_stale_csr(&cp, ns, "web-0").await;
    let run = certboot_for(&kubeconfig, tmp.path(), ns, "web-0")
        .run()
        .await;
    run.assert_code(0);
    read_pair(&tmp.path().join("web-0"));
    let taken = csr_name(ns, "web-0", &fake_uid("web-0"));
    assert!(
        run.stderr.contains(&format!("filing under {taken}:")),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("forbidden"), "{}", run.stderr);

    // The audit log: these verbs on these resources, nothing else, nothing refused.
    let user = format!("system:serviceaccount:{ns}:certboot");
    let requests = cp.requests_by(&user);
    let used: BTreeSet<(String, String)> = requests
        .iter()
        .map(|e| {
            (
                e["objectRef"]["resource"].as_str().unwrap_or("").to_owned(),
                e["verb"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let csr_verbs: BTreeSet<&str> = used
        .iter()
        .filter(|(r, _)| r == "certificatesigningrequests")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(
        csr_verbs,
        BTreeSet::from(["create", "get", "watch"]),
        "{used:?}"
    );
    assert!(
        used.iter()
            .all(|(r, _)| r == "certificatesigningrequests" || r == "events"),
        "{used:?}"
    );
    let refused: Vec<&Value> = requests
        .iter()
        .filter(|e| e["responseStatus"]["code"] == 403)
        .collect();
    assert!(refused.is_empty(), "{refused:?}");
}

#[tokio::test]
async fn each_verb_removed_from_the_rbac() {
    let Some(cp) = ControlPlane::start().await else {
        return;
    };
    let _signer = cp.custom_signer(SIGNER, Duration::from_secs(3600));
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut kubeconfigs = Vec::new();
    for verb in ["create", "watch", "get"] {
        // One namespace per variant; its ClusterRole/Binding get a "-<namespace>" suffix.
        let ns = format!("no-{verb}");
        let rbac = rbac_without(verb, tmp.path());
        cp.apply_manifest_file_with(&rbac, &ApplyOptions::with_namespaced_cluster_names(&ns))
            .await;
        kubeconfigs.push((
            verb,
            ns.clone(),
            cp.service_account_kubeconfig(&ns, "certboot").await,
        ));
    }
    let out = tmp.path();
    for (verb, ns, kubeconfig) in &kubeconfigs {
        let ns = ns.as_str();
        match *verb {
            // Needed on every run: certboot stops with exit 1 naming the verb.
            "create" | "watch" => {
                let run = certboot_for(kubeconfig, out, ns, "web-0").run().await;
                run.assert_code(1);
                let needle =
                    format!("lacks verb \"{verb}\" on resource \"certificatesigningrequests\"");
                assert!(
                    run.stderr.contains(&needle),
                    "without {verb}:\n{}",
                    run.stderr
                );
                assert!(!out.join("web-0").join("cert.pem").exists());
            }
            // Needed only to recover an existing CSR (after a 409 on create, or a 410 on the
            // watch): a fresh pod works; replacing a stale CSR fails naming the verb.
            "get" => {
                certboot_for(kubeconfig, out, ns, "web-1")
                    .run()
                    .await
                    .assert_code(0);
                file_stale_csr(&cp, ns, "web-2").await;
                let run = certboot_for(kubeconfig, out, ns, "web-2").run().await;
                run.assert_code(1);
                run.assert_stderr_contains(
                    "lacks verb \"get\" on resource \"certificatesigningrequests\"",
                );
            }
            _ => unreachable!(),
        }
    }
}

/// `CERTBOOT_DELETE_CSR=true` with the one extra rule the README documents (`delete` added to
/// the ClusterRole): a stale CSR of this pod is replaced under the same name, and the CSR is
/// deleted once the pair is written. With the shipped rules (no `delete`): a warning naming the
/// rule, the CSR filed under a new name, the pair written all the same.
#[tokio::test]
async fn delete_csr_replaces_a_stale_csr_only_with_the_documented_delete_rule() {
    let Some(cp) = ControlPlane::start().await else {
        return;
    };
    let _signer = cp.custom_signer(SIGNER, Duration::from_secs(3600));
    let tmp = tempfile::tempdir().expect("tempdir");
    let with_rule = harness::rbac_with_delete(tmp.path());
    for (ns, rbac) in [
        ("with-delete", with_rule),
        ("shipped", manifest("rbac.yaml")),
    ] {
        cp.apply_manifest_file_with(&rbac, &ApplyOptions::with_namespaced_cluster_names(ns))
            .await;
        // The stale CSR comes from this pod: filed with the same pod-bound token.
        let pod = cp.bound_pod(ns, "web-0", "certboot").await;
        let out = tmp.path().join(ns);
        std::fs::create_dir_all(&out).expect("mkdir");
        let kubeconfig = cp.write_kubeconfig(&out, &pod.token);
        let name = csr_name(ns, &pod.name, &pod.uid);
        let as_pod = cp.endpoint().token_client(&pod.token);
        let stale = file_stale_csr_as(&as_pod, &name, ns, &pod.name).await;
        let run = certboot_for(&kubeconfig, &out, ns, &pod.name)
            .env("POD_UID", &pod.uid)
            .env("CERTBOOT_DELETE_CSR", "true")
            .run()
            .await;
        run.assert_code(0);
        read_pair(&out.join(&pod.name));
        let csrs = Api::<CertificateSigningRequest>::all(cp.admin_client());
        if ns == "with-delete" {
            run.assert_stderr_contains("deleting it to file again under the same name")
                .assert_stderr_contains(&format!("created CSR {name} for signer"))
                .assert_stderr_contains(&format!("deleted CSR {name} "));
            assert!(
                csrs.get_opt(&name).await.expect("get").is_none(),
                "replaced, then deleted after issuance"
            );
        } else {
            run.assert_stderr_contains("needs the verb \"delete\" on certificatesigningrequests")
                .assert_stderr_contains(&format!("filing under {name}:"))
                .assert_stderr_contains(&format!("could not delete CSR {name}:"));
            let left = csrs.get(&name).await.expect("the stale CSR is left");
            assert_eq!(left.metadata.uid, stale.metadata.uid);
        }
    }
}

// ---- the controller and the guard rails, shipped together ----------------------------------------

/// The signer the shipped controller approves and signs.
const SHIPPED_SIGNER: &str = "certboot.io/serving";

fn approver_file(name: &str) -> PathBuf {
    manifest(&format!("approver/{name}"))
}

/// Every signer name the shipped approver and guard rails name, by where it is named.
fn shipped_signer_names() -> Vec<(String, String)> {
    let mut names = Vec::new();
    let signers = &documents(&manifest("policy/signers.yaml"))[0];
    let value = signers["data"]["signerNames"]
        .as_str()
        .expect("signerNames");
    for name in value.split(',') {
        names.push(("policy/signers.yaml".to_owned(), name.trim().to_owned()));
    }
    let deployment = deployment_of(&approver_file("deployment.yaml"));
    let controller = &deployment["spec"]["template"]["spec"]["containers"][0];
    let signing = env_value(controller, "CERTBOOT_SIGNER_NAMES").expect("CERTBOOT_SIGNER_NAMES");
    for name in signing.split(',') {
        names.push(("CERTBOOT_SIGNER_NAMES".to_owned(), name.trim().to_owned()));
    }
    let policy = documents(&approver_file("policy.yaml"))[0]["data"]["policy.json"]
        .as_str()
        .map(|json| serde_json::from_str::<Value>(json).expect("policy.json"))
        .expect("policy.json");
    for entry in policy["signers"].as_array().expect("signers") {
        let name = entry["signerName"].as_str().expect("signerName");
        names.push(("approver/policy.yaml".to_owned(), name.to_owned()));
    }
    for role in documents(&approver_file("rbac.yaml"))
        .into_iter()
        .filter(|d| d["kind"] == "ClusterRole")
    {
        for rule in role["rules"].as_array().expect("rules") {
            let resources = rule["resources"].as_array().expect("resources");
            for name in rule["resourceNames"].as_array().into_iter().flatten() {
                let name = name.as_str().expect("a name");
                let what = format!(
                    "approver/rbac.yaml {} {resources:?}",
                    role["metadata"]["name"]
                );
                if resources.iter().any(|r| r == "signers") {
                    names.push((what, name.to_owned()));
                } else if resources.iter().any(|r| r == "clustertrustbundles") {
                    let signer = name.trim_end_matches(":bundle").replacen(':', "/", 1);
                    names.push((what, signer));
                }
            }
        }
    }
    names
}

#[test]
fn the_shipped_controller_and_guard_rails_name_one_signer_everywhere() {
    let names = shipped_signer_names();
    assert!(names.len() >= 7, "{names:?}");
    for (where_, name) in &names {
        assert_eq!(name, SHIPPED_SIGNER, "{where_}");
    }
    // The NetworkPolicy is listed, selects the controller's pods and opens only its metrics port.
    let listed = std::fs::read_to_string(approver_file("kustomization.yaml")).expect("read");
    assert!(listed.contains("networkpolicy.yaml"));
    let policy = &documents(&approver_file("networkpolicy.yaml"))[0];
    let deployment = deployment_of(&approver_file("deployment.yaml"));
    assert_eq!(
        policy["spec"]["podSelector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    let port = deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
        .clone();
    assert_eq!(policy["spec"]["ingress"][0]["ports"][0]["port"], port);
}

/// Applied unedited to a real API server: manifests/rbac.yaml, manifests/approver and (1.30+)
/// manifests/policy. A pod's certboot files a CSR for the shipped signer as certboot does
/// (its own name, its usages, a lifetime): the guard rails admit it, and the controller's
/// service account may approve it. The NetworkPolicy is stored as written.
#[tokio::test]
async fn the_shipped_controller_and_guard_rails_accept_the_shipped_signer() {
    let Some(cp) = ControlPlane::start().await else {
        return;
    };
    let (ns, system) = ("shop", "certboot-system");
    cp.apply_manifest_file(manifest("rbac.yaml"), ns).await;
    for file in [
        "namespace.yaml",
        "rbac.yaml",
        "policy.yaml",
        "deployment.yaml",
        "networkpolicy.yaml",
    ] {
        cp.apply_manifest_file(approver_file(file), system).await;
    }
    let stored = Api::<k8s_openapi::api::networking::v1::NetworkPolicy>::namespaced(
        cp.admin_client(),
        system,
    )
    .get("certboot-controller")
    .await
    .expect("the NetworkPolicy");
    let stored = serde_json::to_value(stored).expect("JSON");
    let written = &documents(&approver_file("networkpolicy.yaml"))[0];
    assert_eq!(
        stored["spec"]["podSelector"],
        written["spec"]["podSelector"]
    );
    assert_eq!(stored["spec"]["ingress"], written["spec"]["ingress"]);
    assert_eq!(
        stored["spec"]["policyTypes"],
        serde_json::json!(["Ingress"])
    );

    let pod = cp.bound_pod(ns, "web-0", "certboot").await;
    let as_pod = cp.endpoint().token_client(&pod.token);
    let name = csr_name(ns, &pod.name, &pod.uid);
    let guard_rails = cp.version().has(30);
    if guard_rails {
        cp.apply_manifest_file_with(
            manifest("policy/signers.yaml"),
            &ApplyOptions::new("kube-system"),
        )
        .await;
        for file in ["validating-admission-policy.yaml", "binding.yaml"] {
            cp.apply_manifest_file(manifest(&format!("policy/{file}")), ns)
                .await;
        }
    } else {
        eprintln!(
            "SKIPPED guard rails on Kubernetes {}: ValidatingAdmissionPolicy needs 1.30+; \
             the controller's manifests are checked alone",
            cp.version()
        );
    }
    let (_key, request) = new_key_and_csr(&format!("{}.{ns}", pod.name), &[]);
    let mut csr = csr_object(
        &name,
        &request,
        SHIPPED_SIGNER,
        &["digital signature", "server auth"],
    );
    csr.spec.expiration_seconds = Some(86400);
    let csrs = Api::<CertificateSigningRequest>::all(as_pod.clone());
    if guard_rails {
        // The policy takes effect asynchronously: wait until it refuses a CSR of another name.
        let probe = csr_object("not-this-pods", &request, SHIPPED_SIGNER, &["server auth"]);
        harness::poll_until(Duration::from_secs(30), "the guard rails enforced", || {
            let (csrs, probe) = (csrs.clone(), probe.clone());
            async move {
                match csrs.create(&PostParams::default(), &probe).await {
                    Err(kube::Error::Api(s)) if s.message.contains("certboot-csr-guard-rails") => {
                        Some(())
                    }
                    Ok(_) => {
                        let _ = csrs.delete("not-this-pods", &Default::default()).await;
                        None
                    }
                    Err(_) => None,
                }
            }
        })
        .await;
    }
    csrs.create(&PostParams::default(), &csr)
        .await
        .unwrap_or_else(|e| panic!("the shipped pieces refuse the shipped signer: {e}"));
    let controller = cp
        .service_account_client(system, "certboot-controller")
        .await;
    harness::csr::approve_csr(&controller, &name, "CertbootApproved", "e2e").await;
}
