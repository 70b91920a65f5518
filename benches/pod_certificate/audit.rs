//! The benchmark's view of the API server's audit log (read by `harness::audit`).

use serde_json::Value;

use crate::harness::{self, ControlPlane};

/// The API server's audit log, one event per request (deduplicated by auditID, last stage wins:
/// a watch logs ResponseStarted and ResponseComplete).
pub(crate) struct Audit {
    pub(crate) events: Vec<Value>,
}

impl Audit {
    pub(crate) fn load(cp: &ControlPlane) -> Audit {
        Audit {
            events: harness::audit::one_per_request(cp.audit_events()),
        }
    }

    pub(crate) fn find(&self, wanted: impl Fn(&Value) -> bool) -> Option<&Value> {
        self.events.iter().find(|e| wanted(e))
    }
}
