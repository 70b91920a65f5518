//! The controller's Prometheus metrics.
//!
//! - `certboot_approver_decisions_total{result="approved"|"denied", reason}`
//! - `certboot_approver_decision_seconds`: CSR created (`creationTimestamp`) → approved or denied (histogram)
//! - `certboot_approver_pending`: CSRs of the served signers seen pending and not yet decided
//! - `certboot_controller_leader`: 1 while this replica holds the Lease
//! - `certboot_signer_certificates_total{result="signed"|"failed"}`: what the signer did
//! - `certboot_podcert_decisions_total{result="issued"|"denied"|"failed", reason}`: what the
//!   PodCertificateRequest signer decided
//! - `certboot_podcert_decision_seconds`: PCR created → issued, denied or failed (histogram)
//! - `certboot_trust_configmap_replaced_total`: immutable `certboot-ca` ConfigMaps holding another
//!   bundle, deleted and created again by the signer

use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    result: &'static str,
    reason: &'static str,
}

/// The controller's metrics; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    decisions: Family<DecisionLabels, Counter>,
    decision_seconds: Histogram,
    pending: Gauge<i64, AtomicI64>,
    leader: Gauge<i64, AtomicI64>,
    signed: Family<ResultLabel, Counter>,
    trust_replaced: Counter,
    podcert_decisions: Family<DecisionLabels, Counter>,
    podcert_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let decisions = Family::<DecisionLabels, Counter>::default();
        let buckets = [
            0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
        ];
        let decision_seconds = Histogram::new(buckets);
        let pending = Gauge::<i64, AtomicI64>::default();
        let leader = Gauge::<i64, AtomicI64>::default();
        let signed = Family::<ResultLabel, Counter>::default();
        let trust_replaced = Counter::default();
        let podcert_decisions = Family::<DecisionLabels, Counter>::default();
        let podcert_seconds = Histogram::new(buckets);
        registry.register(
            "certboot_podcert_decisions",
            "PodCertificateRequest decisions by result (issued, denied, failed) and reason",
            podcert_decisions.clone(),
        );
        registry.register(
            "certboot_podcert_decision_seconds",
            "Time from a PodCertificateRequest's creation to its decision",
            podcert_seconds.clone(),
        );
        registry.register(
            "certboot_trust_configmap_replaced",
            "Immutable certboot-ca ConfigMaps holding another bundle, deleted and created again",
            trust_replaced.clone(),
        );
        registry.register(
            "certboot_signer_certificates",
            "Certificates the signer issued (signed) or refused (failed)",
            signed.clone(),
        );
        registry.register(
            "certboot_approver_decisions",
            "CSR decisions by result and reason",
            decisions.clone(),
        );
        registry.register(
            "certboot_approver_decision_seconds",
            "Time from a CSR's creation to approving or denying it",
            decision_seconds.clone(),
        );
        registry.register(
            "certboot_approver_pending",
            "CSRs of the served signers seen pending and not decided yet",
            pending.clone(),
        );
        registry.register(
            "certboot_controller_leader",
            "1 while this replica holds the Lease",
            leader.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            decisions,
            decision_seconds,
            pending,
            leader,
            signed,
            trust_replaced,
            podcert_decisions,
            podcert_seconds,
        }
    }

    /// Records one PodCertificateRequest decision (`result`: issued, denied or failed).
    pub fn podcert_decided(&self, result: &'static str, reason: &'static str, took: Duration) {
        self.podcert_decisions
            .get_or_create(&DecisionLabels { result, reason })
            .inc();
        self.podcert_seconds.observe(took.as_secs_f64());
    }

    /// Records one immutable trust ConfigMap replaced.
    pub fn trust_configmap_replaced(&self) {
        self.trust_replaced.inc();
    }

    /// Records one decision and how long it took.
    pub fn decided(&self, approved: bool, reason: &'static str, took: Duration) {
        let result = if approved { "approved" } else { "denied" };
        self.decisions
            .get_or_create(&DecisionLabels { result, reason })
            .inc();
        self.decision_seconds.observe(took.as_secs_f64());
    }

    /// Records one signed (or failed) CSR.
    pub fn signed(&self, ok: bool) {
        let result = if ok { "signed" } else { "failed" };
        self.signed.get_or_create(&ResultLabel { result }).inc();
    }

    pub fn set_pending(&self, count: usize) {
        self.pending.set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// OpenMetrics text format (served as `endpoints::OPENMETRICS`).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_documented_series() {
        let m = Metrics::new();
        m.decided(true, "CertbootApproved", Duration::from_millis(30));
        m.decided(false, "PodUIDMismatch", Duration::from_millis(30));
        m.set_pending(3);
        m.set_leader(true);
        m.trust_configmap_replaced();
        m.podcert_decided("issued", "CertbootIssued", Duration::from_millis(40));
        let text = m.render();
        for needle in [
            "certboot_approver_decisions_total{result=\"approved\",reason=\"CertbootApproved\"} 1",
            "certboot_approver_decisions_total{result=\"denied\",reason=\"PodUIDMismatch\"} 1",
            "certboot_approver_decision_seconds_count 2",
            "certboot_approver_pending 3",
            "certboot_controller_leader 1",
            "certboot_trust_configmap_replaced_total 1",
            "certboot_podcert_decisions_total{result=\"issued\",reason=\"CertbootIssued\"} 1",
            "certboot_podcert_decision_seconds_count 1",
        ] {
            assert!(text.contains(needle), "{needle} in {text}");
        }
    }
}
