//! certboot installed on the test node as a user installs it: `helm install` of
//! `charts/certboot` (the certboot image built from the Dockerfile's final stage, a CA Secret
//! created first, `workloads.namespaces={web}`) onto a control plane that runs Deployments
//! ([`harness::node::workload_cluster`]). Then:
//!
//! - both controller pods run on the node, and one holds the Lease `certboot-controller`;
//! - `manifests/examples/init-container.yaml` (signer `certboot.io/serving`, 3 replicas) becomes
//!   available: every pod Running with a certificate from the CA, nobody approving by hand, and
//!   the approver's `CSRApproved` Event on a pod (what `kubectl describe pod` shows).
//!
//! Kubernetes 1.22+ only: the chart's policy requires pod-bound tokens, which the kubelet mounts
//! by default from 1.22 on (v1.20 mounts a Secret-based token; tests/e2e_node_controller.rs skips
//! for the same reason). On the oldest test bed this prints SKIPPED.

mod harness;
#[allow(dead_code)]
#[path = "chart/helm.rs"]
mod helm;
mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Pod, Secret, Service};
use k8s_openapi::ByteString;
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use serde_json::Value;

use harness::node::images::PLACEHOLDER_APP_IMAGE;
use harness::node::pods::manifest_documents;

const RELEASE_NS: &str = "certboot-system";
const APP_NS: &str = "web";
const SIGNER: &str = "certboot.io/serving";
const DEADLINE: Duration = Duration::from_secs(180);

#[tokio::test]
async fn helm_install_then_the_init_container_example_gets_certificates_nobody_approving_by_hand() {
    if harness::version::skip_unless(
        22,
        "pod-bound service-account tokens mounted by the kubelet (the chart's policy requires them)",
    ) {
        return;
    }
    let Some(helm) = helm::helm() else { return };
    let Some((cp, node)) = harness::node::workload_cluster().await else {
        return;
    };
    let started = Instant::now();
    cp.create_namespace(RELEASE_NS).await;
    cp.create_namespace(APP_NS).await;
    let ca = harness::Ca::new("certboot install e2e CA");
    create_ca_secret(&cp.admin_client(), &ca).await;

    // helm, as the cluster admin, through a kubeconfig file.
    let kubeconfig = cp.write_kubeconfig(&cp.dir().join("kubeconfigs"), cp.admin_token());
    let chart = helm::chart_dir().display().to_string();
    let kubeconfig_arg = kubeconfig.display().to_string();
    let out = helm.run(&[
        "install",
        "certboot",
        &chart,
        "--kubeconfig",
        &kubeconfig_arg,
        "--namespace",
        RELEASE_NS,
        "--set",
        &format!("workloads.namespaces={{{APP_NS}}}"),
    ]);
    assert!(
        out.status.success(),
        "helm install failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // The controller: two pods Running on the node, one of them the Lease's holder.
    let controllers = node
        .wait_for_deployment(RELEASE_NS, "certboot-controller", 2, DEADLINE)
        .await;
    let names: Vec<String> = controllers
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    let holder = wait_for_lease_holder(&cp.admin_client(), &names).await;
    eprintln!(
        "certboot-controller pods {names:?} Running, {holder} leads, {:.1?} after helm install began",
        started.elapsed()
    );

    // The example: its Service, and its Deployment with the chart's signer and 3 replicas.
    let documents = manifest_documents("examples/init-container.yaml");
    let service = documents
        .iter()
        .find(|d| d["kind"] == "Service")
        .expect("the example has a Service");
    let service: Service = serde_json::from_value(service.clone()).expect("a Service");
    Api::<Service>::namespaced(cp.admin_client(), APP_NS)
        .create(&PostParams::default(), &service)
        .await
        .expect("create the example's Service");
    let deployment = documents
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("the example has a Deployment");
    node.create_deployment(APP_NS, example_deployment(deployment.clone(), 3))
        .await;
    let pods = node.wait_for_deployment(APP_NS, "web", 3, DEADLINE).await;

    // Every pod's certificate (in its memory-backed emptyDir) is the chart's CA's.
    for pod in &pods {
        let uid = pod.metadata.uid.as_deref().expect("uid");
        let (cert, _) = support::read_pair(&node.empty_dir(uid, "certs"));
        assert_issued_by(&cert, &ca);
    }
    let event = wait_for_approval_event(&cp.admin_client(), &pods).await;
    eprintln!(
        "3 pods of the example Running with certificates; {event}; {:.1?} after helm install began",
        started.elapsed()
    );
}

/// The CA Secret the chart mounts (`signer.ca.secretName`, type kubernetes.io/tls), made first as
/// the chart's README says.
async fn create_ca_secret(client: &kube::Client, ca: &harness::Ca) {
    let data = [
        ("tls.crt", ca.cert_pem()),
        ("tls.key", ca.key_pem()),
        ("ca.crt", ca.cert_pem()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), ByteString(v.as_bytes().to_vec())))
    .collect();
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("certboot-ca".into()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(data),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client.clone(), RELEASE_NS)
        .create(&PostParams::default(), &secret)
        .await
        .expect("create the CA Secret");
}

/// The example's Deployment with `replicas`, the chart's signer, and the placeholder app image
/// replaced by one the node has.
fn example_deployment(mut deployment: Value, replicas: i64) -> Value {
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

/// Waits until Lease certboot-controller in the release namespace names one of `pods`.
async fn wait_for_lease_holder(client: &kube::Client, pods: &[String]) -> String {
    let leases = Api::<Lease>::namespaced(client.clone(), RELEASE_NS);
    let start = Instant::now();
    loop {
        let holder = leases
            .get_opt("certboot-controller")
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity);
        if let Some(holder) = holder.as_ref().filter(|h| pods.contains(h)) {
            return holder.clone();
        }
        assert!(
            start.elapsed() < DEADLINE,
            "Lease {RELEASE_NS}/certboot-controller: holder {holder:?} is not one of the \
             controller pods {pods:?} after {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits for the approver's `CSRApproved` Event on one of `pods` (core/v1, as `kubectl describe
/// pod` lists it); returns a description of it.
async fn wait_for_approval_event(client: &kube::Client, pods: &[Pod]) -> String {
    let names: Vec<&str> = pods
        .iter()
        .filter_map(|p| p.metadata.name.as_deref())
        .collect();
    let events = Api::<Event>::namespaced(client.clone(), APP_NS);
    let start = Instant::now();
    loop {
        let list = events
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        let found = list.iter().find(|e| {
            e.reason.as_deref() == Some("CSRApproved")
                && e.involved_object.kind.as_deref() == Some("Pod")
                && e.involved_object
                    .name
                    .as_deref()
                    .is_some_and(|n| names.contains(&n))
        });
        if let Some(event) = found {
            return format!(
                "Event CSRApproved on pod {} from {:?}: {}",
                event.involved_object.name.as_deref().unwrap_or("?"),
                event
                    .reporting_component
                    .as_deref()
                    .or(event.source.as_ref().and_then(|s| s.component.as_deref())),
                event.message.as_deref().unwrap_or("")
            );
        }
        let reasons: Vec<String> = list
            .iter()
            .map(|e| {
                format!(
                    "{} {:?}",
                    e.reason.as_deref().unwrap_or("?"),
                    e.involved_object.name
                )
            })
            .collect();
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no CSRApproved Event on any of {names:?} within 30 s; Events in {APP_NS}: {reasons:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn assert_issued_by(cert_pem: &str, ca: &harness::Ca) {
    let (_, leaf) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).expect("PEM");
    let leaf = leaf.parse_x509().expect("certificate");
    let (_, ca_pem) = x509_parser::pem::parse_x509_pem(ca.cert_pem().as_bytes()).expect("CA PEM");
    let ca_cert = ca_pem.parse_x509().expect("CA certificate");
    assert_eq!(
        leaf.issuer(),
        ca_cert.subject(),
        "the pod's certificate is signed by the chart's CA"
    );
}
