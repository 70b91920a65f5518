//! `values.schema.json` checks the policy with the controller's own rules: what the schema
//! rejects, `certboot_controller::approver::policy::Policy::parse` rejects too (and the reverse for the
//! enumerations), so `helm install` fails before a controller would exit 2 on the same policy.

use std::path::Path;

use certboot_controller::approver::policy::Policy;
use certboot_core::pki::key::KeyAlgorithm;
use certboot_core::request::KNOWN_USAGES;
use serde_json::{json, Value};

use super::helm::{chart_dir, Helm, Render};

/// A policy with one signer entry: the shipped one, with `change` merged into it.
pub fn policy_with(change: Value) -> Value {
    let mut entry = json!({
        "signerName": "certboot.io/serving",
        "usages": ["digital signature", "server auth"],
        "maxExpirationSeconds": 86400
    });
    for (k, v) in change.as_object().expect("an object") {
        entry[k] = v.clone();
    }
    json!({"clusterDomain": "cluster.local", "signers": [entry]})
}

/// Bad policies, each with the JSON pointer helm's schema error names.
pub fn bad_policies() -> Vec<(&'static str, Value, &'static str)> {
    vec![
        (
            "a CA usage",
            policy_with(json!({"usages": ["digital signature", "cert sign"]})),
            "/policy/signers/0/usages/1",
        ),
        (
            "an unknown usage",
            policy_with(json!({"usages": ["server-auth"]})),
            "/policy/signers/0/usages/0",
        ),
        (
            "an unknown key algorithm",
            policy_with(json!({"keyAlgorithms": ["ecdsa-p256", "dsa-1024"]})),
            "/policy/signers/0/keyAlgorithms/1",
        ),
        (
            "an unknown field",
            policy_with(json!({"dnsNames": ["web.shop.svc"]})),
            "/policy/signers/0",
        ),
        (
            "an unknown top-level field",
            json!({"signers": [{"signerName": "certboot.io/serving"}], "domain": "x"}),
            "/policy",
        ),
        (
            "an unknown placeholder",
            policy_with(json!({"dnsNameTemplates": ["{pod}.{node}.example"]})),
            "/policy/signers/0/dnsNameTemplates/0",
        ),
        (
            "{service} outside dnsNameTemplates",
            policy_with(json!({"commonNames": ["{service}.{namespace}"]})),
            "/policy/signers/0/commonNames/0",
        ),
        (
            "an unclosed placeholder",
            policy_with(json!({"uriTemplates": ["spiffe://{clusterDomain/ns"]})),
            "/policy/signers/0/uriTemplates/0",
        ),
        (
            "a bad signer name",
            policy_with(json!({"signerName": "serving"})),
            "/policy/signers/0/signerName",
        ),
        (
            "a lifetime under the API's minimum",
            policy_with(json!({"maxExpirationSeconds": 60})),
            "/policy/signers/0/maxExpirationSeconds",
        ),
        (
            "short Service names without Service names",
            policy_with(json!({"serviceShortNames": true, "serviceDNSNames": false})),
            "/policy/signers/0",
        ),
        (
            "a system: group for the API-client signer",
            policy_with(json!({
                "signerName": "kubernetes.io/kube-apiserver-client",
                "organizations": ["system:masters"]
            })),
            "/policy/signers/0",
        ),
        (
            "PodCertificateRequests for a signer Kubernetes owns",
            policy_with(json!({
                "signerName": "kubernetes.io/kube-apiserver-client",
                "podCertificates": true
            })),
            "/policy/signers/0",
        ),
        ("no signer", json!({"signers": []}), "/policy/signers"),
    ]
}

/// `helm template` with `policy` as the values' policy: helm's error, or `None` if it rendered.
pub fn helm_refusal(helm: &Helm, dir: &Path, name: &str, policy: &Value) -> Option<String> {
    let file = dir.join(format!(
        "{}.yaml",
        name.replace([' ', ':', '{', '}', '\''], "-")
    ));
    let values = json!({ "policy": policy });
    std::fs::write(&file, values.to_string()).expect("write values");
    helm.template(&Render::default().values(file)).err()
}

/// The schema's enumeration at `pointer` (e.g. the usages).
pub fn schema_enum(pointer: &str) -> Vec<String> {
    let text = std::fs::read_to_string(chart_dir().join("values.schema.json")).expect("schema");
    let schema: Value = serde_json::from_str(&text).expect("values.schema.json is JSON");
    schema
        .pointer(pointer)
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("values.schema.json has an enum at {pointer}"))
        .iter()
        .map(|v| v.as_str().expect("a string").to_owned())
        .collect()
}

const ENTRY: &str = "/properties/policy/properties/signers/items/properties";

#[test]
fn schema_enumerations_are_what_the_controller_accepts() {
    let usages = schema_enum(&format!("{ENTRY}/usages/items/enum"));
    for usage in KNOWN_USAGES {
        let parsed = Policy::parse(&policy_with(json!({ "usages": [usage] })).to_string());
        assert_eq!(
            parsed.is_ok(),
            usages.iter().any(|u| u == usage),
            "usage {usage:?}: the controller says {parsed:?}, the schema lists {usages:?}"
        );
    }
    assert!(usages.iter().all(|u| KNOWN_USAGES.contains(&u.as_str())));
    let algorithms = schema_enum(&format!("{ENTRY}/keyAlgorithms/items/enum"));
    assert_eq!(algorithms, KeyAlgorithm::NAMES, "keyAlgorithms");
}

#[test]
fn every_bad_policy_is_refused_by_the_controller_too() {
    for (what, policy, _) in bad_policies() {
        let parsed = Policy::parse(&policy.to_string());
        assert!(parsed.is_err(), "{what}: the controller accepts {policy}");
    }
}
