//! Pods on the node: the pod specs of README.md and manifests/examples/ as shipped, bound to the
//! node (`spec.nodeName`, there is no scheduler) with the examples' placeholder app image
//! replaced; waiting on their status; what the node shows of them (volumes, container logs,
//! container processes).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde::Deserialize;
use serde_json::Value;

use super::images::PLACEHOLDER_APP_IMAGE;
use super::Node;

/// The pod spec of README.md's "Pod spec" section (the first YAML block after the heading).
pub fn readme_pod() -> Value {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("read README.md");
    let section = readme
        .split("\n## Pod spec")
        .nth(1)
        .expect("README.md has a '## Pod spec' section");
    let block = section
        .split("```yaml\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("a yaml block in README.md's Pod spec section");
    serde_yaml::from_str(block).expect("README.md's pod spec is YAML")
}

/// The documents of a manifest file under manifests/.
pub fn manifest_documents(relative: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("manifests")
        .join(relative);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).expect("manifest document is YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

/// A Pod named `name` from a workload's pod template (what its controller would create).
pub fn pod_from_template(workload: &Value, name: &str) -> Value {
    let template = &workload["spec"]["template"];
    let mut metadata = template["metadata"].clone();
    metadata["name"] = Value::from(name);
    serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"]})
}

/// A pod (service account `certboot`, label `app=web`) whose only certificate source is a
/// `podCertificate` volume of `signer` with `key_type`, at /tls, beside the signer's
/// ClusterTrustBundle at /trust (Kubernetes 1.37+). The app prints the chain, the bundle and the
/// key's size at start, then sleeps.
pub fn pod_certificate_pod(name: &str, signer: &str, key_type: &str) -> Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {
            "serviceAccountName": "certboot",
            "containers": [{
                "name": "app",
                "image": PLACEHOLDER_APP_IMAGE,
                "command": ["sh", "-c", "cat /tls/tls.crt /trust/ca.crt; echo KEY $(wc -c < /tls/tls.key); sleep 3600"],
                "volumeMounts": [
                    {"name": "tls", "mountPath": "/tls", "readOnly": true},
                    {"name": "trust", "mountPath": "/trust", "readOnly": true}
                ]
            }],
            "volumes": [
                {"name": "tls", "projected": {"sources": [{"podCertificate": {
                    "signerName": signer,
                    "keyType": key_type,
                    "keyPath": "tls.key",
                    "certificateChainPath": "tls.crt"
                }}]}},
                {"name": "trust", "projected": {"sources": [{"clusterTrustBundle": {
                    "signerName": signer, "labelSelector": {}, "path": "ca.crt"
                }}]}}
            ]
        }
    })
}

/// Every container image of a pod spec.
fn containers_mut(pod: &mut Value) -> Vec<&mut Value> {
    let spec = &mut pod["spec"];
    let mut all = Vec::new();
    if let Value::Object(map) = spec {
        for (key, list) in map.iter_mut() {
            if key == "containers" || key == "initContainers" {
                if let Value::Array(items) = list {
                    all.extend(items.iter_mut());
                }
            }
        }
    }
    all
}

impl Node {
    /// `pod` bound to this node; the examples' placeholder app image (registry.example.com/...)
    /// becomes busybox running `sleep`. Everything else stays as written.
    pub fn bind(&self, mut pod: Value) -> Value {
        pod["spec"]["nodeName"] = Value::from(self.name());
        for container in containers_mut(&mut pod) {
            let image = container["image"].as_str().unwrap_or_default();
            if image.starts_with("registry.example.com/") {
                container["image"] = Value::from(PLACEHOLDER_APP_IMAGE);
            }
        }
        pod
    }

    /// Creates `pod` (already bound) in `namespace`. Before 1.22 the API server refuses a pod
    /// until kube-controller-manager has made its service account's token Secret ("No API token
    /// found for service account ..., retry after the token is automatically created"): retried,
    /// as the message says, for up to 30 s.
    pub async fn create_pod(&self, namespace: &str, pod: Value) -> Pod {
        let pod: Pod = serde_json::from_value(pod).expect("a Pod");
        let api = Api::<Pod>::namespaced(self.client.clone(), namespace);
        let start = std::time::Instant::now();
        loop {
            match api.create(&PostParams::default(), &pod).await {
                Ok(created) => return created,
                Err(kube::Error::Api(status))
                    if status.message.contains("No API token found")
                        && start.elapsed() < Duration::from_secs(30) =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("create Pod in {namespace}: {e}"),
            }
        }
    }

    /// Polls the pod until `done` holds; panics after `deadline` with the pod's status and the
    /// node's log tails.
    pub async fn wait_for_pod(
        &self,
        namespace: &str,
        name: &str,
        what: &str,
        deadline: Duration,
        done: impl Fn(&Pod) -> bool,
    ) -> Pod {
        let pods = Api::<Pod>::namespaced(self.client.clone(), namespace);
        let start = std::time::Instant::now();
        loop {
            let pod = pods.get_opt(name).await.ok().flatten();
            if let Some(pod) = &pod {
                if done(pod) {
                    return pod.clone();
                }
            }
            if start.elapsed() > deadline {
                panic!(
                    "timed out after {deadline:?} waiting for pod {namespace}/{name}: {what}; status: {}\n{}",
                    serde_json::to_string_pretty(&pod.and_then(|p| p.status)).unwrap_or_default(),
                    self.log_tails()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The directory of a pod's `emptyDir` volume on the node.
    pub fn empty_dir(&self, pod_uid: &str, volume: &str) -> PathBuf {
        self.dir
            .join("kubelet/pods")
            .join(pod_uid)
            .join("volumes/kubernetes.io~empty-dir")
            .join(volume)
    }

    /// Everything a container of a pod wrote to stdout and stderr so far (CRI log format:
    /// `<time> <stream> <F|P> <text>` per line), all restarts.
    pub fn container_log(&self, pod: &Pod, container: &str) -> String {
        self.container_log_files(pod, container)
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .collect()
    }

    /// The CRI log files of a container, one per run (`0.log`, `1.log`, ...), oldest first.
    pub fn container_log_files(&self, pod: &Pod, container: &str) -> Vec<PathBuf> {
        let meta = &pod.metadata;
        let root = if self.version.has(31) {
            self.dir.join("pod-logs")
        } else {
            PathBuf::from("/var/log/pods")
        };
        let dir = root
            .join(format!(
                "{}_{}_{}",
                meta.namespace.as_deref().unwrap_or_default(),
                meta.name.as_deref().unwrap_or_default(),
                meta.uid.as_deref().unwrap_or_default()
            ))
            .join(container);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|e| e.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort_by_key(|f| {
            f.file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u32>().ok())
        });
        files
    }

    /// The host pid of a running container (`containerd://<id>` from the pod's status).
    pub fn container_pid(&self, container_id: &str) -> Option<i32> {
        let id = container_id.trim_start_matches("containerd://");
        self.tasks()
            .into_iter()
            .find(|(task, _)| task == id)
            .map(|(_, pid)| pid)
    }

    /// The host pid of the pod's sandbox (pause) process.
    pub fn sandbox_pid(&self, pod_uid: &str) -> Option<i32> {
        self.tasks().into_iter().find_map(|(id, pid)| {
            let info = self.ctr(&["containers", "info", &id])?;
            let info: Value = serde_json::from_str(&info).ok()?;
            let labels = &info["Labels"];
            (labels["io.cri-containerd.kind"] == "sandbox"
                && labels["io.kubernetes.pod.uid"] == pod_uid)
                .then_some(pid)
        })
    }

    /// (container id, pid) of every task containerd runs.
    fn tasks(&self) -> Vec<(String, i32)> {
        self.ctr(&["tasks", "list"])
            .unwrap_or_default()
            .lines()
            .skip(1)
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                Some((fields.next()?.to_owned(), fields.next()?.parse().ok()?))
            })
            .collect()
    }

    fn ctr(&self, args: &[&str]) -> Option<String> {
        let output = Command::new("ctr")
            .arg("--address")
            .arg(self.socket())
            .args(["--namespace", "k8s.io"])
            .args(args)
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

/// The UID of a pod the API server has created.
pub fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().expect("a created pod has a UID")
}

/// Whether the pod's Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    condition(pod, "Ready")
}

/// Whether the pod has condition `type_` with status True.
pub fn condition(pod: &Pod, type_: &str) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == type_ && c.status == "True"))
}
