//! certboot installed on the test node as a user installs it, then operated: one node, one story,
//! the certboot image built from the Dockerfile's final stage, on a control plane that runs
//! Deployments ([`harness::node::workload_cluster`]).
//!
//! 1. `helm install` of `charts/certboot` (the CA Secret created first, as the README says): both
//!    controller pods Running on the node, one holds the Lease; `manifests/examples/
//!    init-container.yaml` (3 replicas) becomes available, every pod with a certificate from the
//!    CA, nobody approving by hand, the approver's `CSRApproved` Event on a pod.
//! 2. Failover in place: the leader pod is deleted while the example scales to 20 replicas; the
//!    standby takes over within the README's bound (12 s), every pod gets its certificate, and
//!    the audit log shows each CSR approved once and signed once.
//! 3. `helm upgrade` with a rotated CA (a new Secret) and a changed policy (`keyAlgorithms`
//!    without `ecdsa-p256`): the controller pods roll (the policy is read at start; the
//!    `checksum/policy` annotation changes), the trust ConfigMap holds the new CA, a new
//!    `ecdsa-p384` pod is issued by it, and a new `ecdsa-p256` pod is denied `KeyNotAllowed`.
//! 4. `helm uninstall`: no certboot object is left but those the chart never made (README,
//!    "Uninstall"): the user's CA Secrets, the Lease and the trust ConfigMap the controller wrote,
//!    and the pods' CSRs (kube-controller-manager deletes those an hour after they are issued).
//! 5. The kustomize path, exactly as the README's commands: `kubectl apply -k manifests/approver/`
//!    and `kubectl apply -k manifests/`, then the example in `default` gets its certificates.
//!
//! Kubernetes 1.22+ only: the policies require pod-bound tokens, which the kubelet mounts by
//! default from 1.22 on (v1.20 mounts a Secret-based token; tests/e2e_node_controller.rs skips
//! for the same reason). On the oldest test bed this prints SKIPPED.

mod harness;
#[allow(dead_code)]
#[path = "chart/helm.rs"]
mod helm;
mod install;
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

use harness::node::images::PLACEHOLDER_APP_IMAGE;
use harness::node::pods::{manifest_documents, pod_from_template};
use harness::node::Node;
use install::{audit, ca, events, kubectl, lease, leftovers, DEADLINE, POLL};

const RELEASE_NS: &str = "certboot-system";
const APP_NS: &str = "web";
const SIGNER: &str = "certboot.io/serving";
const CONTROLLER: &str = "certboot-controller";
/// The README's bound on a takeover after the leader dies (8 s measured in tests/e2e_approver.rs);
/// a pod deleted is stopped cleanly, so it is usually much less.
const TAKEOVER_BOUND: Duration = Duration::from_secs(12);

#[tokio::test]
async fn helm_install_failover_upgrade_uninstall_then_kustomize_on_the_node() {
    if harness::version::skip_unless(
        22,
        "pod-bound service-account tokens mounted by the kubelet (the chart's policy requires them)",
    ) {
        return;
    }
    let Some(helm) = helm::helm() else { return };
    let Some(kubectl) = kubectl::find() else {
        return;
    };
    let Some((cp, node)) = harness::node::workload_cluster().await else {
        return;
    };
    let admin = cp.admin_client();
    let kubeconfig = cp.write_kubeconfig(&cp.dir().join("kubeconfigs"), cp.admin_token());
    cp.create_namespace(RELEASE_NS).await;
    cp.create_namespace(APP_NS).await;
    let first_ca = harness::Ca::new("certboot install e2e CA");
    ca::create_secret(&admin, RELEASE_NS, "certboot-ca", &first_ca).await;

    let controllers = helm_install(&helm, &kubeconfig, &node).await;
    example_gets_certificates(&node, APP_NS, 3, &first_ca).await;
    failover_during_a_rollout(&cp, &node, &controllers, &first_ca).await;

    let second_ca = harness::Ca::new("certboot install e2e CA, rotated");
    ca::create_secret(&admin, RELEASE_NS, "certboot-ca-2", &second_ca).await;
    helm_upgrade(&helm, &kubeconfig, &node, &second_ca).await;

    helm_uninstall(&helm, &kubeconfig, &admin).await;
    kustomize_install(&kubectl, &kubeconfig, &node, &first_ca).await;
}

/// Step 1: `helm install` as the README says; returns the controller pods once one leads.
async fn helm_install(helm: &helm::Helm, kubeconfig: &Path, node: &Node) -> Vec<String> {
    let started = Instant::now();
    run_helm(
        helm,
        kubeconfig,
        &[
            "install",
            "certboot",
            &helm::chart_dir().display().to_string(),
            "--set",
            &format!("workloads.namespaces={{{APP_NS}}}"),
        ],
    );
    let names = controller_pods(node, &[]).await;
    let holder = lease::wait_for_holder(&node.client(), RELEASE_NS, &names).await;
    eprintln!(
        "helm install: {CONTROLLER} pods {names:?} Running, {holder} leads, {:.1?} after it began",
        started.elapsed()
    );
    names
}

/// The example (its Service, its Deployment with the chart's signer) in `namespace` with
/// `replicas`: every pod Running with a certificate from `ca`, and a `CSRApproved` Event.
async fn example_gets_certificates(node: &Node, namespace: &str, replicas: i64, ca: &harness::Ca) {
    let documents = manifest_documents("examples/init-container.yaml");
    let service = documents
        .iter()
        .find(|d| d["kind"] == "Service")
        .expect("a Service");
    let service: Service = serde_json::from_value(service.clone()).expect("a Service");
    Api::<Service>::namespaced(node.client(), namespace)
        .create(&PostParams::default(), &service)
        .await
        .expect("create the example's Service");
    node.create_deployment(namespace, example_deployment(replicas))
        .await;
    let pods = node
        .wait_for_deployment(namespace, "web", replicas as i32, DEADLINE)
        .await;
    assert_issued_by(node, &pods, ca);
    let names: Vec<String> = pods
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    let event = events::wait_for(&node.client(), namespace, "CSRApproved", &names, DEADLINE).await;
    eprintln!("{replicas} pods of the example Running with certificates; {event}");
}

/// Step 2: the leader pod deleted while the example scales from 3 to 20 replicas.
async fn failover_during_a_rollout(
    cp: &harness::control_plane::ControlPlane,
    node: &Node,
    controllers: &[String],
    ca: &harness::Ca,
) {
    let client = node.client();
    let leader = lease::current_holder(&client, RELEASE_NS)
        .await
        .expect("a leader before the failover");
    let deployments = Api::<Deployment>::namespaced(client.clone(), APP_NS);
    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 20}})),
        )
        .await
        .expect("scale the example to 20");
    // Mid-rollout: some of the 17 new pods exist, and their CSRs are being filed.
    wait_for_pod_count(node, APP_NS, "web", 8).await;
    let deleted = Instant::now();
    Api::<Pod>::namespaced(client.clone(), RELEASE_NS)
        .delete(&leader, &DeleteParams::default())
        .await
        .expect("delete the leader pod");
    let standby: Vec<String> = controllers
        .iter()
        .filter(|p| **p != leader)
        .cloned()
        .collect();
    let successor = lease::wait_for_holder(&client, RELEASE_NS, &standby).await;
    let takeover = deleted.elapsed();
    eprintln!(
        "failover: leader {leader} deleted mid-rollout; {successor} led {takeover:.1?} later"
    );
    assert!(
        takeover <= TAKEOVER_BOUND,
        "the standby took over {takeover:.1?} after the leader pod was deleted; the README \
         promises at most {TAKEOVER_BOUND:?}"
    );

    let pods = node
        .wait_for_deployment(APP_NS, "web", 20, DEADLINE * 2)
        .await;
    assert_issued_by(node, &pods, ca);
    every_csr_decided_once(cp, &client).await;
}

/// The audit log: every CSR of the example's namespace approved exactly once and signed exactly
/// once, whichever controller pod did it.
async fn every_csr_decided_once(cp: &harness::control_plane::ControlPlane, client: &kube::Client) {
    let prefix = format!("{APP_NS}:");
    let names: Vec<String> = Api::<CertificateSigningRequest>::all(client.clone())
        .list(&ListParams::default())
        .await
        .expect("list CSRs")
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .filter(|n| n.starts_with(&prefix))
        .collect();
    assert!(
        names.len() >= 20,
        "20 pods filed {} CSRs: {names:?}",
        names.len()
    );
    // The audit log records a request after its response: wait (bounded) until each write is in.
    let start = Instant::now();
    let writes = loop {
        let writes = audit::writes(cp, &prefix);
        let complete = names.iter().all(|n| {
            writes.approvals.get(n).is_some_and(|c| *c >= 1)
                && writes.statuses.get(n).is_some_and(|c| *c >= 1)
        });
        if complete {
            break writes;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "not every CSR of {names:?} has its approval and its certificate in the audit log \
             after {DEADLINE:?}: {writes:?}"
        );
        tokio::time::sleep(POLL).await;
    };
    for name in &names {
        assert_eq!(
            writes.approvals[name], 1,
            "approvals of CSR {name}: {writes:?}"
        );
        assert_eq!(
            writes.statuses[name], 1,
            "certificates written to CSR {name}: {writes:?}"
        );
    }
    eprintln!(
        "audit log: {} CSRs, each approved once and signed once",
        names.len()
    );
}

/// Step 3: `helm upgrade` with the rotated CA's Secret and a policy without `ecdsa-p256`.
async fn helm_upgrade(helm: &helm::Helm, kubeconfig: &Path, node: &Node, ca: &harness::Ca) {
    let client = node.client();
    let before = controller_pods(node, &[]).await;
    let values = upgraded_values(node);
    run_helm(
        helm,
        kubeconfig,
        &[
            "upgrade",
            "certboot",
            &helm::chart_dir().display().to_string(),
            "--values",
            &values.display().to_string(),
        ],
    );
    let after = controller_pods(node, &before).await;
    let holder = lease::wait_for_holder(&client, RELEASE_NS, &after).await;
    eprintln!("helm upgrade: the controller rolled from {before:?} to {after:?}; {holder} leads");
    wait_for_trust_bundle(&client, ca).await;

    // A new pod asking for a key the new policy allows is issued by the rotated CA ...
    let allowed = upgrade_probe_pod(node, "probe-p384", Some("ecdsa-p384")).await;
    let allowed = node
        .wait_for_pod(
            APP_NS,
            &allowed,
            "Running with a certificate",
            DEADLINE,
            |p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"),
        )
        .await;
    assert_issued_by(node, std::slice::from_ref(&allowed), ca);
    // ... and one asking for a key it no longer allows is denied, with the reason.
    let denied = upgrade_probe_pod(node, "probe-p256", None).await;
    let event = events::wait_for(
        &client,
        APP_NS,
        "CSRDenied",
        std::slice::from_ref(&denied),
        DEADLINE,
    )
    .await;
    assert!(
        event.contains("KeyNotAllowed"),
        "the denial names the policy check: {event}"
    );
    eprintln!(
        "after the upgrade: {allowed:?} issued by the rotated CA; {event}",
        allowed = allowed.metadata.name
    );
}

/// The chart's values.yaml with the rotated CA's Secret, the example's namespace, and the
/// policy's `keyAlgorithms` narrowed to `ecdsa-p384`; written as a values file (JSON is YAML).
fn upgraded_values(node: &Node) -> std::path::PathBuf {
    let text = std::fs::read_to_string(helm::chart_dir().join("values.yaml")).expect("values.yaml");
    let mut values: Value = serde_yaml::from_str(&text).expect("values.yaml is YAML");
    values["signer"]["ca"]["secretName"] = json!("certboot-ca-2");
    values["workloads"]["namespaces"] = json!([APP_NS]);
    values["policy"]["signers"][0]["keyAlgorithms"] = json!(["ecdsa-p384"]);
    let path = node.dir().join("upgrade-values.json");
    std::fs::write(&path, values.to_string()).expect("write the upgrade's values");
    path
}

/// A pod from the example's template with `CERTBOOT_KEY_ALGORITHM` set to `algorithm` (default
/// ecdsa-p256 when `None`). Its own label, so the example's ReplicaSet does not adopt it; hence
/// no Service selects it, and it asks for no Service DNS names (the approver would rightly deny
/// them: `DNSNameNotAllowed`).
async fn upgrade_probe_pod(node: &Node, name: &str, algorithm: Option<&str>) -> String {
    let mut pod = pod_from_template(&example_deployment(1), name);
    pod["metadata"]["labels"] = json!({"app": "upgrade-probe"});
    for container in pod["spec"]["initContainers"]
        .as_array_mut()
        .expect("initContainers")
    {
        let env = container["env"].as_array_mut().expect("env");
        env.retain(|e| e["name"] != "CERTBOOT_DNS_NAMES");
        if let Some(algorithm) = algorithm {
            env.push(json!({"name": "CERTBOOT_KEY_ALGORITHM", "value": algorithm}));
        }
    }
    node.create_pod(APP_NS, node.bind(pod)).await;
    name.to_owned()
}

/// Waits until ConfigMap default/certboot-ca (the chart's `signer.trustNamespaces`) holds `ca`.
async fn wait_for_trust_bundle(client: &kube::Client, ca: &harness::Ca) {
    let config_maps = Api::<ConfigMap>::namespaced(client.clone(), "default");
    let start = Instant::now();
    loop {
        let bundle = config_maps
            .get_opt("certboot-ca")
            .await
            .ok()
            .flatten()
            .and_then(|c| c.data)
            .and_then(|d| d.get("ca.crt").cloned())
            .unwrap_or_default();
        if bundle.contains(ca.cert_pem().trim()) {
            return;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "ConfigMap default/certboot-ca does not hold the rotated CA after {DEADLINE:?}:\n{bundle}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Step 4: `helm uninstall`; what stays is what the chart never made.
async fn helm_uninstall(helm: &helm::Helm, kubeconfig: &Path, client: &kube::Client) {
    // The signer publishes a ClusterTrustBundle where the API server serves them (1.33+).
    const BUNDLE: &str = "ClusterTrustBundle certboot.io:serving:bundle";
    let bundle_published = leftovers::certboot_objects(client).await.contains(BUNDLE);
    run_helm(helm, kubeconfig, &["uninstall", "certboot", "--wait"]);
    let mut stays = vec![
        // The user's CA Secrets: the chart references them (signer.ca.create=false).
        "Secret certboot-system/certboot-ca",
        "Secret certboot-system/certboot-ca-2",
        // The namespace the user created before installing (README, "Install").
        "Namespace certboot-system",
        // Written by the controller at run time, not by Helm: the leader's Lease, and the
        // trust bundle (pods that run keep trusting their peers' certificates).
        "Lease certboot-system/certboot-controller",
        "ConfigMap default/certboot-ca",
    ];
    if bundle_published {
        stays.push(BUNDLE);
    }
    // The pods' own requests (labelled managed-by certboot, made by the pods' certboot).
    let left =
        leftovers::wait_until_only(client, &stays, &["CertificateSigningRequest"], DEADLINE).await;
    eprintln!("helm uninstall: left on purpose {left:?} and the pods' CSRs");
}

/// Step 5: the README's kustomize commands, then the example in `default`.
async fn kustomize_install(
    kubectl: &kubectl::Kubectl,
    kubeconfig: &Path,
    node: &Node,
    ca: &harness::Ca,
) {
    let started = Instant::now();
    kubectl.run(kubeconfig, &["apply", "-k", "manifests/approver/"]);
    kubectl.run(kubeconfig, &["apply", "-k", "manifests/"]);
    kubectl.run(
        kubeconfig,
        &[
            "-n",
            RELEASE_NS,
            "rollout",
            "status",
            &format!("deployment/{CONTROLLER}"),
            "--timeout=180s",
        ],
    );
    eprintln!(
        "kubectl apply -k: {CONTROLLER} rolled out {:.1?} after it began",
        started.elapsed()
    );
    example_gets_certificates(node, "default", 3, ca).await;
}

/// Runs helm in the release namespace as the cluster admin; panics with its output on failure.
fn run_helm(helm: &helm::Helm, kubeconfig: &Path, args: &[&str]) {
    let kubeconfig = kubeconfig.display().to_string();
    let mut all = args.to_vec();
    all.extend(["--kubeconfig", &kubeconfig, "--namespace", RELEASE_NS]);
    helm.run_ok(&all);
}

/// The two controller pods, Running on the node, none of them in `not`: waits for a rollout that
/// replaced every pod of `not`.
async fn controller_pods(node: &Node, not: &[String]) -> Vec<String> {
    let start = Instant::now();
    loop {
        let pods = node
            .wait_for_deployment(RELEASE_NS, CONTROLLER, 2, DEADLINE)
            .await;
        let names: Vec<String> = pods
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        if names.iter().all(|n| !not.contains(n)) {
            return names;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{CONTROLLER} pods {names:?} still include one of {not:?} after {DEADLINE:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until Deployment `namespace/name` has at least `count` pods.
async fn wait_for_pod_count(node: &Node, namespace: &str, name: &str, count: usize) {
    let deployments = Api::<Deployment>::namespaced(node.client(), namespace);
    let start = Instant::now();
    loop {
        let deployment = deployments.get(name).await.expect("the Deployment");
        let pods = node.pods_of(namespace, &deployment).await.len();
        if pods >= count {
            return;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "Deployment {namespace}/{name} has {pods} pods, not {count}, after {DEADLINE:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The example's Deployment with `replicas`, the chart's signer, and the placeholder app image
/// replaced by one the node has.
fn example_deployment(replicas: i64) -> Value {
    let documents = manifest_documents("examples/init-container.yaml");
    let mut deployment = documents
        .into_iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("the example has a Deployment");
    deployment["spec"]["replicas"] = Value::from(replicas);
    let spec = &mut deployment["spec"]["template"]["spec"];
    for container in spec["initContainers"]
        .as_array_mut()
        .expect("initContainers")
    {
        for env in container["env"].as_array_mut().expect("env") {
            if env["name"] == "CERTBOOT_SIGNER_NAME" {
                env["value"] = Value::from(SIGNER);
            }
        }
    }
    for container in spec["containers"].as_array_mut().expect("containers") {
        if container["image"]
            .as_str()
            .is_some_and(|i| i.starts_with("registry.example.com/"))
        {
            container["image"] = Value::from(PLACEHOLDER_APP_IMAGE);
        }
    }
    deployment
}

/// Every pod's certificate (in its memory-backed emptyDir `certs`) is `ca`'s.
fn assert_issued_by(node: &Node, pods: &[Pod], ca: &harness::Ca) {
    for pod in pods {
        let uid = pod.metadata.uid.as_deref().expect("uid");
        let (cert, _) = support::read_pair(&node.empty_dir(uid, "certs"));
        assert!(
            ca::issued_by(&cert, ca),
            "pod {:?}'s certificate is not signed by the CA the controller was given",
            pod.metadata.name
        );
    }
}
