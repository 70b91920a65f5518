//! Reading the rendered chart: the full values with a throw-away CA, RBAC names, env, the policy.

use std::path::{Path, PathBuf};

use certboot_controller::approver::policy::Policy;
use serde_json::{json, Value};

use super::helm::{chart_dir, find, Render};
use crate::harness::Ca;

/// charts/certboot/ci/full-values.yaml.
pub fn full_values() -> PathBuf {
    chart_dir().join("ci/full-values.yaml")
}

/// The full values with a throw-away CA created from values (files in `dir`).
pub fn full_render(dir: &Path) -> Render {
    let ca = Ca::new("certboot chart test CA");
    let (cert, key) = (dir.join("ca.crt"), dir.join("ca.key"));
    std::fs::write(&cert, ca.cert_pem()).expect("write CA");
    std::fs::write(&key, ca.key_pem()).expect("write key");
    Render::default()
        .values(full_values())
        .set("signer.ca.create=true")
        .set_file(&format!("signer.ca.certificate={}", cert.display()))
        .set_file(&format!("signer.ca.privateKey={}", key.display()))
}

/// The resourceNames of `role`'s rule for `verb` on `resource`.
pub fn rbac_names(objects: &[Value], role: &str, resource: &str, verb: &str) -> Value {
    let role = find(objects, "ClusterRole", role).unwrap_or_else(|| panic!("ClusterRole {role}"));
    role["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .find(|r| r["resources"] == json!([resource]) && r["verbs"] == json!([verb]))
        .map(|r| r["resourceNames"].clone())
        .unwrap_or_else(|| panic!("{role}: a rule for {verb} on {resource}"))
}

/// The policy a rendering ships, parsed by the controller's own parser.
pub fn assert_controller_accepts_policy(objects: &[Value]) -> Policy {
    let map = find(objects, "ConfigMap", "certboot-policy").expect("the policy ConfigMap");
    let text = map["data"]["policy.json"].as_str().expect("policy.json");
    Policy::parse(text).unwrap_or_else(|e| panic!("the controller refuses the chart's policy: {e}"))
}

/// The value of the controller container's env variable `name`.
pub fn env<'a>(deployment: &'a Value, name: &str) -> Option<&'a str> {
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)?["value"]
        .as_str()
}
