//! The Helm chart (`charts/certboot/`), with the `helm` of `CERTBOOT_HELM` (else built once by
//! `scripts/helm.sh`; without either, skipped loudly, a failure under CI=true):
//!
//! - `helm lint` with the default values and with `ci/full-values.yaml`;
//! - Helm 3 (v3.21.4) lints clean, renders exactly what Helm 4 renders, and refuses every bad
//!   policy Helm 4 refuses (its JSON Schema validator is another implementation);
//! - `helm template` with both: the default values render exactly the kustomize bases
//!   (`manifests/rbac.yaml`, `manifests/approver/`; chart/drift.rs says what may differ), the full
//!   values every feature (signers, RBAC per namespace, PodDisruptionBudget, Service,
//!   ServiceMonitor where served, NetworkPolicy, the CA Secret for a try-out), and every rendered
//!   policy is one the controller's parser accepts;
//! - `values.schema.json` refuses bad policies with helm's error naming the field, and the
//!   controller refuses the same policies (chart/schema.rs);
//! - the rendered objects are accepted by the API server (oldest and newest: server-side dry run,
//!   chart/dry_run.rs);
//! - `helm install --dry-run=server` renders the ServiceMonitor once the Prometheus Operator's CRD
//!   is installed (chart/service_monitor.rs), and the server accepts it against that CRD's schema
//!   (1.21+: v1.20 refuses the CRD).

mod chart;
mod harness;

use chart::helm::{chart_dir, find, helm, helm3, key, Helm, Render, RELEASE_NAMESPACE};
use chart::objects::{assert_controller_accepts_policy, env, full_render, full_values, rbac_names};
use harness::ControlPlane;
use serde_json::{json, Value};

#[test]
fn helm_lints_the_chart_with_default_and_full_values() {
    let Some(helm) = helm() else { return };
    let chart = chart_dir().display().to_string();
    let full = full_values().display().to_string();
    for args in [
        vec!["lint", "--strict", chart.as_str()],
        vec![
            "lint",
            "--strict",
            chart.as_str(),
            "--values",
            full.as_str(),
        ],
    ] {
        helm.run_ok(&args);
    }
}

/// NOTES.txt names what to check next, in the release namespace.
#[test]
fn notes_say_what_to_check_next() {
    let Some(helm) = helm() else { return };
    let chart = chart_dir().display().to_string();
    let text = helm.run_ok(&[
        "install",
        "certboot",
        &chart,
        "--namespace",
        RELEASE_NAMESPACE,
        "--dry-run=client",
    ]);
    let notes = text.split("NOTES:").nth(1).expect("NOTES");
    for needle in [
        "kubectl -n certboot-system rollout status deployment/certboot-controller",
        "get lease certboot-controller",
        "create secret tls certboot-ca",
        "ServiceAccount `certboot` in: default",
        "charts/certboot/README.md",
    ] {
        assert!(notes.contains(needle), "NOTES lack {needle:?}:\n{notes}");
    }
}

#[test]
fn default_values_render_the_kustomize_bases() {
    let Some(helm) = helm() else { return };
    let kustomize = chart::drift::kustomize_objects();
    match chart::drift::kubectl_kustomize_objects() {
        Some(rendered) => chart::drift::assert_same_objects(
            &rendered,
            &kustomize,
            "kubectl kustomize renders manifests/ as the test reads it",
        ),
        None => eprintln!(
            "SKIPPED kubectl kustomize cross-check: no kubectl in the test bed or on PATH (manifests/ read as files)"
        ),
    }
    chart::drift::assert_app_version_matches(&kustomize);
    let rendered = chart::drift::chart_defaults(&helm);
    chart::drift::assert_no_drift(&rendered, &kustomize);
    assert_controller_accepts_policy(&rendered);
}

#[test]
fn full_values_render_every_feature() {
    let Some(helm) = helm() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let render = full_render(tmp.path()).api_version("monitoring.coreos.com/v1");
    let objects = helm.render(&render);
    let policy = assert_controller_accepts_policy(&objects);
    assert_eq!(policy.signers.len(), 2);

    // RBAC: approve on the policy's signers, sign and attest on the signer's only.
    let both = json!(["certboot.io/serving", "kubernetes.io/kube-apiserver-client"]);
    assert_eq!(
        rbac_names(&objects, "certboot-approver", "signers", "approve"),
        both
    );
    let signed = json!(["certboot.io/serving"]);
    assert_eq!(
        rbac_names(&objects, "certboot-signer", "signers", "sign"),
        signed
    );
    assert_eq!(
        rbac_names(&objects, "certboot-signer", "signers", "attest"),
        signed
    );
    // Per workload namespace: its ServiceAccount, its own ClusterRoleBinding, the Events Role.
    for ns in ["shop", "payments"] {
        let binding = find(&objects, "ClusterRoleBinding", &format!("certboot-{ns}"))
            .unwrap_or_else(|| panic!("ClusterRoleBinding certboot-{ns}"));
        assert_eq!(binding["subjects"][0]["namespace"], ns);
        assert_eq!(binding["roleRef"]["name"], "certboot");
        for kind in ["ServiceAccount", "Role", "RoleBinding"] {
            assert!(
                objects
                    .iter()
                    .any(|o| o["kind"] == kind && o["metadata"]["namespace"] == ns),
                "{kind} in {ns}"
            );
        }
    }

    let deployment = find(&objects, "Deployment", "certboot-controller").expect("Deployment");
    assert_eq!(deployment["spec"]["replicas"], 3);
    assert_eq!(
        env(deployment, "CERTBOOT_LEASE_NAME"),
        Some("certboot-controller-shop")
    );
    assert_eq!(
        env(deployment, "CERTBOOT_HEALTH_ADDR"),
        Some("0.0.0.0:9500")
    );
    assert_eq!(
        env(deployment, "CERTBOOT_TRUST_NAMESPACES"),
        Some("shop,payments")
    );
    assert_eq!(env(deployment, "CERTBOOT_SIGNER_MAX_DURATION"), Some("7d"));
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(
        pod["volumes"][1]["secret"]["secretName"],
        "certboot-try-out-ca"
    );
    let secret = find(&objects, "Secret", "certboot-try-out-ca").expect("the try-out CA Secret");
    assert_eq!(secret["type"], "kubernetes.io/tls");
    let lease = find(&objects, "Role", "certboot-controller-lease").expect("lease Role");
    assert_eq!(
        lease["rules"][1]["resourceNames"],
        json!(["certboot-controller-shop"])
    );

    let pdb = find(&objects, "PodDisruptionBudget", "certboot-controller").expect("PDB");
    assert_eq!(pdb["spec"]["minAvailable"], 2);
    let service = find(&objects, "Service", "certboot-controller-metrics").expect("Service");
    assert_eq!(service["spec"]["ports"][0]["port"], 9500);
    let monitor = find(&objects, "ServiceMonitor", "certboot-controller").expect("ServiceMonitor");
    assert_eq!(
        monitor["spec"]["endpoints"][0]["port"],
        service["spec"]["ports"][0]["name"]
    );
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    let netpol = find(&objects, "NetworkPolicy", "certboot-controller").expect("NetworkPolicy");
    assert_eq!(netpol["spec"]["ingress"][0]["ports"][0]["port"], 9500);

    // Where monitoring.coreos.com/v1 is not served, no ServiceMonitor.
    let without = helm.render(&full_render(tmp.path()));
    assert!(find(&without, "ServiceMonitor", "certboot-controller").is_none());
}

#[test]
fn pdb_api_version_follows_the_kubernetes_version_and_approver_only_drops_the_signer() {
    let Some(helm) = helm() else { return };
    for (version, api) in [("1.20.2", "policy/v1beta1"), ("1.21.0", "policy/v1")] {
        let objects = helm.render(&Render::default().kube_version(version));
        let pdb = find(&objects, "PodDisruptionBudget", "certboot-controller").expect("PDB");
        assert_eq!(pdb["apiVersion"], api, "Kubernetes {version}");
    }
    let one = helm.render(&Render::default().set("replicaCount=1"));
    assert!(find(&one, "PodDisruptionBudget", "certboot-controller").is_none());

    let approver = helm.render(&Render::default().set("signer.signerNames=null"));
    assert!(find(&approver, "ClusterRole", "certboot-signer").is_none());
    let deployment = find(&approver, "Deployment", "certboot-controller").expect("Deployment");
    assert_eq!(env(deployment, "CERTBOOT_SIGNER_NAMES"), None);
    let volumes = &deployment["spec"]["template"]["spec"]["volumes"];
    assert_eq!(
        volumes.as_array().map(Vec::len),
        Some(1),
        "no CA volume: {volumes}"
    );
}

#[test]
fn the_schema_refuses_bad_policies_with_helms_error() {
    let Some(helm) = helm() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    for (what, policy, pointer) in chart::schema::bad_policies() {
        let error = chart::schema::helm_refusal(&helm, tmp.path(), what, &policy)
            .unwrap_or_else(|| panic!("{what}: helm rendered {policy}"));
        assert!(
            error.contains("schema") && error.contains(&format!("'{pointer}'")),
            "{what}: helm's error does not name the schema and {pointer}:\n{error}"
        );
    }
    let tmp_good = chart::schema::policy_with(
        json!({"uriTemplates": ["spiffe://{clusterDomain}/ns/{namespace}/sa/{serviceAccount}"]}),
    );
    assert_eq!(
        chart::schema::helm_refusal(&helm, tmp.path(), "good", &tmp_good),
        None
    );

    let no_pem = helm
        .template(&Render::default().set("signer.ca.create=true"))
        .expect_err("signer.ca.create without PEM");
    assert!(no_pem.contains("signer.ca.certificate"), "{no_pem}");

    // PodCertificateRequests of a signer certboot does not sign: nobody would answer them.
    let unsigned = chart::schema::policy_with(
        json!({"signerName": "example.com/web", "podCertificates": true}),
    );
    let error = chart::schema::helm_refusal(&helm, tmp.path(), "unsigned", &unsigned)
        .expect("podCertificates for a signer outside signer.signerNames");
    assert!(
        error.contains("policy.signers[0].podCertificates") && error.contains("signer.signerNames"),
        "{error}"
    );
    let signed = chart::schema::policy_with(json!({"podCertificates": true}));
    assert_eq!(
        chart::schema::helm_refusal(&helm, tmp.path(), "signed", &signed),
        None
    );
}

/// The default and the full values, rendered for the server's version, accepted by it.
#[tokio::test]
async fn the_rendered_chart_is_accepted_by_the_api_server() {
    let Some(helm) = helm() else { return };
    let Some(cp) = ControlPlane::start().await else {
        return;
    };
    let version = cp.version();
    let kube_version = format!("{}.{}.{}", version.major, version.minor, version.patch);
    for ns in [RELEASE_NAMESPACE, "shop", "payments"] {
        cp.create_namespace(ns).await;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let client = cp.admin_client();
    for (what, render) in [
        ("default values", Render::default()),
        ("full values", full_render(tmp.path())),
    ] {
        let objects = render_for(&helm, render.kube_version(&kube_version));
        let pdb = find(&objects, "PodDisruptionBudget", "certboot-controller").expect("PDB");
        let expected = if version.has(21) {
            "policy/v1"
        } else {
            "policy/v1beta1"
        };
        assert_eq!(pdb["apiVersion"], expected, "{what} on {version}");
        let what = format!("{what} on Kubernetes {version}");
        chart::dry_run::assert_accepted(&client, &objects, &what).await;
    }
}

fn render_for(helm: &Helm, render: Render) -> Vec<Value> {
    let objects = helm.render(&render);
    assert!(find(&objects, "ServiceMonitor", "certboot-controller").is_none());
    objects
}

/// `helm install --dry-run=server` asks the real server what it serves: no ServiceMonitor before
/// the Prometheus Operator's CRD is installed, one after; and the server accepts that
/// ServiceMonitor against the CRD's schema (server-side dry run).
#[tokio::test]
async fn the_service_monitor_is_rendered_once_monitoring_coreos_com_is_served_and_is_valid() {
    // v1.20.2 refuses the operator's CRD itself (its schema gives string fields a default its
    // structural-schema check rejects); the operator supports only recent Kubernetes anyway.
    if harness::version::skip_unless(21, "the Prometheus Operator v0.95 ServiceMonitor CRD") {
        return;
    }
    let Some(helm) = helm() else { return };
    let Some(cp) = ControlPlane::start().await else {
        return;
    };
    cp.create_namespace(RELEASE_NAMESPACE).await;
    let kubeconfig = cp.write_kubeconfig(&cp.dir().join("kubeconfigs"), cp.admin_token());
    let monitors = |objects: Vec<Value>| -> Vec<Value> {
        objects
            .into_iter()
            .filter(|o| o["kind"] == "ServiceMonitor")
            .collect()
    };
    let before = monitors(server_dry_run_install(&helm, &kubeconfig));
    assert!(before.is_empty(), "no CRD, yet rendered: {before:?}");

    chart::service_monitor::install_crd(&cp.admin_client()).await;
    let after = monitors(server_dry_run_install(&helm, &kubeconfig));
    assert_eq!(after.len(), 1, "one ServiceMonitor once the CRD is served");
    let stored = chart::dry_run::create_dry_run(&cp.admin_client(), &after[0])
        .await
        .unwrap_or_else(|e| panic!("the API server refuses the chart's ServiceMonitor: {e}"));
    assert_eq!(
        stored["spec"]["endpoints"], after[0]["spec"]["endpoints"],
        "the server keeps every endpoint field the chart wrote (an unknown field would be pruned)"
    );
}

/// The objects `helm install --dry-run=server --set metrics.serviceMonitor.enabled=true` would
/// create, as the server's capabilities decide.
fn server_dry_run_install(helm: &Helm, kubeconfig: &std::path::Path) -> Vec<Value> {
    let chart = chart_dir().display().to_string();
    let kubeconfig = kubeconfig.display().to_string();
    let stdout = helm.run_ok(&[
        "install",
        "certboot",
        &chart,
        "--dry-run=server",
        "--namespace",
        RELEASE_NAMESPACE,
        "--kubeconfig",
        &kubeconfig,
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--output",
        "json",
    ]);
    let release: Value = serde_json::from_str(&stdout).expect("helm's release as JSON");
    let manifest = release["manifest"]
        .as_str()
        .expect("the release's manifest");
    chart::helm::documents(manifest, "helm install --dry-run=server")
}

/// Users still on Helm 3: `helm lint --strict` passes, `helm template` renders exactly the objects
/// Helm 4 renders (default and full values), and the schema refuses every bad policy (Helm 3
/// validates with another JSON Schema implementation, so its refusal is checked, not its words).
#[test]
fn helm_3_lints_renders_and_refuses_as_helm_4_does() {
    let (Some(helm), Some(helm3)) = (helm(), helm3()) else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let chart = chart_dir().display().to_string();
    let full = chart::objects::full_values().display().to_string();
    for values in [vec![], vec!["--values", full.as_str()]] {
        let mut args = vec!["lint", "--strict", chart.as_str()];
        args.extend(values);
        helm3.run_ok(&args);
    }
    // The same --kube-version for both: offline, each helm assumes its own default version
    // (Helm 3.21 one old enough for the policy/v1beta1 PodDisruptionBudget).
    for (what, render) in [
        ("default values", Render::default()),
        (
            "full values",
            full_render(tmp.path()).api_version("monitoring.coreos.com/v1"),
        ),
    ] {
        let render = render.kube_version("1.37.2");
        let by_key = |objects: Vec<Value>| -> std::collections::BTreeMap<String, Value> {
            objects.into_iter().map(|o| (key(&o), o)).collect()
        };
        let four = by_key(helm.render(&render));
        let three = by_key(helm3.render(&render));
        assert_eq!(
            three.keys().collect::<Vec<_>>(),
            four.keys().collect::<Vec<_>>(),
            "{what}: the same objects"
        );
        for (name, object) in &four {
            assert_eq!(&three[name], object, "{what}: {name} as Helm 3 renders it");
        }
    }
    for (what, policy, _) in chart::schema::bad_policies() {
        assert!(
            chart::schema::helm_refusal(&helm3, tmp.path(), what, &policy).is_some(),
            "{what}: Helm 3 rendered {policy}"
        );
    }
}
