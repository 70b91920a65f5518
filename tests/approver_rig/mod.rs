//! The approver's end-to-end rig: a control plane with certboot's RBAC in the app namespace and
//! the approver's RBAC (`manifests/approver/rbac.yaml`) in `certboot-system`; Pod objects as a
//! kubelet would see them (created, then `status.podIPs` set through the status subresource);
//! TokenRequest tokens bound to a Pod, as the kubelet mounts them; and the approver itself,
//! `certboot-controller`, as a subprocess.

#![allow(dead_code)] // each test crate uses a different part

pub mod ca;
pub mod podcert;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::{
    Container, Pod, PodIP, PodSpec, PodStatus, Service, ServiceAccount, ServiceSpec,
};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};

use crate::harness::{self, ControlPlane};
use crate::support::Certboot;

/// The namespace of the approver.
pub const SYSTEM_NS: &str = "certboot-system";
/// The namespace of the pods.
pub const APP_NS: &str = "shop";
/// The approver's service account (manifests/approver/rbac.yaml).
pub const CONTROLLER_SA: &str = "certboot-controller";
/// certboot's service account (manifests/rbac.yaml).
pub const CERTBOOT_SA: &str = "certboot";

/// The policy of manifests/approver/policy.yaml, with `signers` replaced, for an approver that
/// leaves signing to the test's signers: without `maxExpirationSeconds`, which the shipped
/// Deployment's own signer enforces, and which an approver alone could enforce only by denying
/// every CSR that asks for no lifetime (and, before 1.22, not at all: it refuses to start).
/// Tests of the maximum set it themselves.
pub fn shipped_policy_with_signers(signers: &[&str]) -> String {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/manifests/approver/policy.yaml"
    ))
    .expect("read policy.yaml");
    let map: serde_yaml::Value = serde_yaml::from_str(&text).expect("policy.yaml is YAML");
    let json = map["data"]["policy.json"]
        .as_str()
        .expect("data.policy.json");
    let mut policy: serde_json::Value = serde_json::from_str(json).expect("policy.json is JSON");
    let mut template = policy["signers"][0].clone();
    if let Some(entry) = template.as_object_mut() {
        entry.remove("maxExpirationSeconds");
    }
    policy["signers"] = signers
        .iter()
        .map(|name| {
            let mut entry = template.clone();
            entry["signerName"] = serde_json::Value::from(*name);
            if *name == "kubernetes.io/kube-apiserver-client" {
                entry["usages"] =
                    serde_json::json!(["digital signature", "key encipherment", "client auth"]);
            }
            entry
        })
        .collect();
    policy.to_string()
}

/// A control plane ready for approver tests.
pub struct Rig {
    pub cp: ControlPlane,
    pub tmp: tempfile::TempDir,
    controller_kubeconfig: PathBuf,
    policy: PathBuf,
}

impl Rig {
    /// Starts a control plane and applies both RBAC manifests; the approver may approve for
    /// `signers` (its ClusterRole's `signers` resourceNames are set to them, as a user edits
    /// them with the policy). `None` when the control plane is absent (test skipped).
    pub async fn start(signers: &[&str]) -> Option<Rig> {
        Self::start_with_policy(signers, &shipped_policy_with_signers(signers)).await
    }

    /// [`Rig::start`] with a policy of the test's own.
    pub async fn start_with_policy(signers: &[&str], policy: &str) -> Option<Rig> {
        Self::start_with_options(signers, policy, harness::ControlPlaneOptions::default()).await
    }

    /// [`Rig::start_with_policy`] on a control plane started with `options`.
    pub async fn start_with_options(
        signers: &[&str],
        policy: &str,
        options: harness::ControlPlaneOptions,
    ) -> Option<Rig> {
        let cp = ControlPlane::start_with(options).await?;
        cp.apply_manifest_file(
            concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/rbac.yaml"),
            APP_NS,
        )
        .await;
        cp.apply_manifest_file(
            concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/approver/rbac.yaml"),
            SYSTEM_NS,
        )
        .await;
        let roles: Api<ClusterRole> = Api::all(cp.admin_client());
        for name in ["certboot-approver", "certboot-signer"] {
            let mut role = roles
                .get(name)
                .await
                .unwrap_or_else(|e| panic!("ClusterRole {name}: {e}"));
            for rule in role.rules.iter_mut().flatten() {
                if rule.resources.as_deref() == Some(&["signers".to_string()]) {
                    rule.resource_names = Some(signers.iter().map(|s| s.to_string()).collect());
                }
            }
            roles
                .replace(name, &PostParams::default(), &role)
                .await
                .unwrap_or_else(|e| panic!("update ClusterRole {name}: {e}"));
        }
        let controller_kubeconfig = cp
            .service_account_kubeconfig(SYSTEM_NS, CONTROLLER_SA)
            .await;
        let tmp = tempfile::tempdir().expect("tempdir");
        let policy_path = tmp.path().join("policy.json");
        std::fs::write(&policy_path, policy).expect("write policy");
        Some(Rig {
            cp,
            tmp,
            controller_kubeconfig,
            policy: policy_path,
        })
    }

    /// A Pod object running as `service_account`, labelled `labels`, with `ips` in its status
    /// (empty: not published yet). Returns it as stored (with its UID).
    pub async fn pod(
        &self,
        name: &str,
        service_account: &str,
        labels: &[(&str, &str)],
        ips: &[&str],
    ) -> Pod {
        self.ensure_service_account(service_account).await;
        let pods: Api<Pod> = Api::namespaced(self.cp.admin_client(), APP_NS);
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect::<BTreeMap<_, _>>(),
                ),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                service_account_name: Some(service_account.into()),
                // The token is the test's own TokenRequest, as a projected volume would hold it.
                automount_service_account_token: Some(false),
                containers: vec![Container {
                    name: "app".into(),
                    image: Some("busybox:1.36".into()),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
            status: None,
        };
        let created = pods
            .create(&PostParams::default(), &pod)
            .await
            .unwrap_or_else(|e| panic!("create pod {name}: {e}"));
        if ips.is_empty() {
            created
        } else {
            self.set_pod_ips(name, ips).await
        }
    }

    /// Publishes the pod's IPs through the status subresource, as the kubelet does.
    pub async fn set_pod_ips(&self, name: &str, ips: &[&str]) -> Pod {
        let pods: Api<Pod> = Api::namespaced(self.cp.admin_client(), APP_NS);
        let mut pod = pods.get(name).await.expect("get pod");
        pod.status = Some(PodStatus {
            phase: Some("Running".into()),
            pod_ip: ips.first().map(|s| s.to_string()),
            pod_ips: Some(ips.iter().map(|ip| PodIP { ip: ip.to_string() }).collect()),
            ..PodStatus::default()
        });
        pods.replace_status(name, &PostParams::default(), &pod)
            .await
            .expect("update pod status")
    }

    /// Deletes the pod at once (no kubelet to wait for).
    pub async fn delete_pod(&self, name: &str) {
        let pods: Api<Pod> = Api::namespaced(self.cp.admin_client(), APP_NS);
        pods.delete(
            name,
            &DeleteParams {
                grace_period_seconds: Some(0),
                ..DeleteParams::default()
            },
        )
        .await
        .expect("delete pod");
        harness::poll_until(Duration::from_secs(10), "pod deleted", || {
            let pods = pods.clone();
            async move {
                pods.get_opt(name)
                    .await
                    .ok()
                    .flatten()
                    .is_none()
                    .then_some(())
            }
        })
        .await;
    }

    /// A Service selecting `selector`.
    pub async fn service(&self, name: &str, selector: &[(&str, &str)]) {
        let services: Api<Service> = Api::namespaced(self.cp.admin_client(), APP_NS);
        let service = Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                selector: Some(
                    selector
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ports: Some(vec![k8s_openapi::api::core::v1::ServicePort {
                    port: 443,
                    ..Default::default()
                }]),
                ..ServiceSpec::default()
            }),
            status: None,
        };
        services
            .create(&PostParams::default(), &service)
            .await
            .expect("create service");
    }

    async fn ensure_service_account(&self, name: &str) {
        let accounts: Api<ServiceAccount> = Api::namespaced(self.cp.admin_client(), APP_NS);
        let account = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            ..ServiceAccount::default()
        };
        match accounts.create(&PostParams::default(), &account).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(e) => panic!("create ServiceAccount {name}: {e}"),
        }
    }

    /// A kubeconfig with a token of `pod`'s service account bound to `pod`, as the kubelet
    /// mounts it (the API server then records the pod's name and UID in every CSR's spec.extra).
    pub async fn bound_kubeconfig(&self, pod: &Pod) -> PathBuf {
        let token = self.bound_token(pod).await;
        self.cp
            .write_kubeconfig(&self.cp.dir().join("kubeconfigs"), &token)
    }

    /// A token of `pod`'s service account bound to `pod` (see [`Rig::bound_kubeconfig`]).
    pub async fn bound_token(&self, pod: &Pod) -> String {
        let sa = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .expect("pod has a service account");
        let name = pod.metadata.name.as_deref().expect("pod name");
        let uid = pod.metadata.uid.as_deref().expect("pod uid");
        self.cp.pod_bound_token(APP_NS, &sa, name, uid).await
    }

    /// certboot for `pod`, exactly as its Downward API env would be.
    pub fn certboot(&self, pod: &Pod, kubeconfig: &Path, signer: &str) -> Certboot {
        let name = pod.metadata.name.clone().expect("pod name");
        let ips: Vec<String> = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ips.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|p| p.ip)
            .collect();
        let dir = self.tmp.path().join(format!("certs-{name}"));
        let mut certboot = Certboot::new(kubeconfig, &dir, APP_NS, &name)
            .env("POD_UID", pod.metadata.uid.as_deref().expect("pod uid"))
            .env("CERTBOOT_SIGNER_NAME", signer)
            .env("CERTBOOT_TIMEOUT", "60s")
            .without("POD_IP");
        if !ips.is_empty() {
            certboot = certboot.env("POD_IPS", &ips.join(","));
        }
        certboot
    }

    /// Starts an approver replica named `identity`.
    pub fn controller(&self, identity: &str) -> Controller {
        Controller::spawn(
            &self.controller_kubeconfig,
            &self.policy,
            identity,
            self.tmp.path(),
            &[],
        )
    }

    /// Starts an approver replica named `identity` that reaches the API server through
    /// `kubeconfig` (e.g. a fault proxy's, with [`Rig::controller_token`]).
    pub fn controller_via(&self, kubeconfig: &Path, identity: &str) -> Controller {
        Controller::spawn(kubeconfig, &self.policy, identity, self.tmp.path(), &[])
    }

    /// A token of the controller's service account (what its kubeconfig holds).
    pub async fn controller_token(&self) -> String {
        self.cp
            .service_account_token(SYSTEM_NS, CONTROLLER_SA)
            .await
    }

    /// Starts an approver replica from another build (e.g. the static release binary).
    pub fn controller_binary(&self, binary: &str, identity: &str) -> Controller {
        Controller::spawn_binary(
            Path::new(binary),
            &self.controller_kubeconfig,
            &self.policy,
            identity,
            self.tmp.path(),
            &[],
        )
    }

    /// [`Rig::controller_binary`] with extra environment.
    pub fn controller_binary_with(
        &self,
        binary: &str,
        identity: &str,
        env: &[(&str, &str)],
    ) -> Controller {
        Controller::spawn_binary(
            Path::new(binary),
            &self.controller_kubeconfig,
            &self.policy,
            identity,
            self.tmp.path(),
            env,
        )
    }

    /// Starts an approver replica with extra environment.
    pub fn controller_with(&self, identity: &str, env: &[(&str, &str)]) -> Controller {
        Controller::spawn(
            &self.controller_kubeconfig,
            &self.policy,
            identity,
            self.tmp.path(),
            env,
        )
    }

    /// A renewal CSR of `name` (`<name>:<key fingerprint>`), once it has a certificate.
    pub async fn wait_for_issued_renewal(
        &self,
        name: &str,
        deadline: Duration,
    ) -> CertificateSigningRequest {
        let api: Api<CertificateSigningRequest> = Api::all(self.cp.admin_client());
        let prefix = format!("{name}:");
        harness::poll_until(deadline, &format!("a renewal of {name} issued"), || {
            let (api, prefix) = (api.clone(), prefix.clone());
            async move {
                let list = api.list(&Default::default()).await.ok()?;
                list.items.into_iter().find(|c| {
                    c.metadata
                        .name
                        .as_deref()
                        .is_some_and(|n| n.starts_with(&prefix))
                        && harness::issued_certificate(c).is_some()
                })
            }
        })
        .await
    }

    /// The CSR, once it has a condition of `type_`.
    pub async fn wait_for_condition(
        &self,
        name: &str,
        type_: &str,
        deadline: Duration,
    ) -> CertificateSigningRequest {
        let api: Api<CertificateSigningRequest> = Api::all(self.cp.admin_client());
        harness::poll_until(deadline, &format!("CSR {name} {type_}"), || {
            let api = api.clone();
            async move {
                let csr = api.get_opt(name).await.ok().flatten()?;
                harness::has_condition(&csr, type_).then_some(csr)
            }
        })
        .await
    }
}

/// The reason and message of the CSR's condition of `type_`.
pub fn condition(csr: &CertificateSigningRequest, type_: &str) -> (String, String) {
    let c = csr
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_))
        .unwrap_or_else(|| panic!("no {type_} condition on {:?}", csr.metadata.name));
    (
        c.reason.clone().unwrap_or_default(),
        c.message.clone().unwrap_or_default(),
    )
}

/// A running approver replica; killed when dropped.
pub struct Controller {
    child: Child,
    log: PathBuf,
}

impl Controller {
    fn spawn(
        kubeconfig: &Path,
        policy: &Path,
        identity: &str,
        dir: &Path,
        env: &[(&str, &str)],
    ) -> Controller {
        let binary = crate::harness::controller_bin::controller_binary();
        Self::spawn_binary(&binary, kubeconfig, policy, identity, dir, env)
    }

    fn spawn_binary(
        binary: &Path,
        kubeconfig: &Path,
        policy: &Path,
        identity: &str,
        dir: &Path,
        env: &[(&str, &str)],
    ) -> Controller {
        let log = dir.join(format!("controller-{identity}.log"));
        // Port 0: the controller logs the port it bound (see [`Controller::health_addr`]).
        let health_addr = "127.0.0.1:0";
        let mut command = Command::new(binary);
        command
            .env_clear()
            .env("KUBECONFIG", kubeconfig)
            .env("CERTBOOT_POLICY", policy)
            .env("POD_NAME", identity)
            .env("POD_NAMESPACE", SYSTEM_NS)
            .env("CERTBOOT_HEALTH_ADDR", health_addr)
            .env("CERTBOOT_LOG", "certboot=debug,warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command.spawn().expect("spawn certboot-controller");
        Controller { child, log }
    }

    /// The address of /healthz, /readyz and /metrics, once the controller logged it.
    pub async fn health_addr(&mut self) -> String {
        const PREFIX: &str = "/metrics on http://";
        self.wait_for_log(PREFIX, Duration::from_secs(30)).await;
        let log = self.log();
        let at = log.find(PREFIX).map(|i| i + PREFIX.len()).unwrap_or(0);
        log[at..]
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the log contains `needle`.
    pub async fn wait_for_log(&mut self, needle: &str, deadline: Duration) {
        let until = Instant::now() + deadline;
        loop {
            if self.log().contains(needle) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "certboot-controller exited ({status:?}) before logging {needle:?}:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < until,
                "certboot-controller did not log {needle:?} within {deadline:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends `signal` and waits (bounded) for the exit code.
    pub async fn stop(mut self, signal: i32) -> Option<i32> {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, signal);
        }
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            assert!(
                Instant::now() < until,
                "certboot-controller did not stop:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs to its exit (bounded) and returns (code, log).
    pub async fn finish(mut self, deadline: Duration) -> (Option<i32>, String) {
        let until = Instant::now() + deadline;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return (status.code(), self.log());
            }
            assert!(
                Instant::now() < until,
                "certboot-controller did not exit:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
