//! Decisions on CSRs as the API server's audit log records them: each successful write of a
//! CSR's `approval` (approve or deny) and `status` (the certificate) subresource.

use std::collections::BTreeMap;

use crate::harness::control_plane::ControlPlane;

/// Successful writes of one subresource per CSR name, counted over the whole audit log.
#[derive(Debug, Default)]
pub struct Writes {
    /// CSR name → successful `update .../approval` requests.
    pub approvals: BTreeMap<String, usize>,
    /// CSR name → successful `update .../status` requests.
    pub statuses: BTreeMap<String, usize>,
}

/// Counts the successful approval and status writes of every CSR whose name starts with
/// `prefix` (e.g. "web:", the CSRs of namespace web's pods).
pub fn writes(cp: &ControlPlane, prefix: &str) -> Writes {
    let mut writes = Writes::default();
    for event in cp.audit_events() {
        let object = &event["objectRef"];
        let name = object["name"].as_str().unwrap_or_default();
        let ok = event["stage"] == "ResponseComplete"
            && event["verb"] == "update"
            && object["resource"] == "certificatesigningrequests"
            && event["responseStatus"]["code"]
                .as_i64()
                .is_some_and(|c| (200..300).contains(&c));
        if !ok || !name.starts_with(prefix) {
            continue;
        }
        let counts = match object["subresource"].as_str() {
            Some("approval") => &mut writes.approvals,
            Some("status") => &mut writes.statuses,
            _ => continue,
        };
        *counts.entry(name.to_owned()).or_default() += 1;
    }
    writes
}
