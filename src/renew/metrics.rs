//! Sidecar metrics (off by default): OpenMetrics text on `/metrics`, and `/healthz`, which answers
//! 503 once the certificate on disk has expired without a successor, or when the pair on disk is
//! no longer the one certboot trusts (the app replaced it: see [`DiskCheck`]).
//!
//! - `certboot_certificate_not_after_seconds`: expiry of the current certificate (Unix time)
//! - `certboot_renewals_total{result="success"|"failure"}`: renewal attempts
//! - `certboot_last_renewal_timestamp_seconds`: when the last renewal succeeded (Unix time)
//!
//! Served by the endpoints server shared with the controller ([`certboot_core::endpoints`]), with its
//! caps on connections, request size and timeouts.

use std::net::SocketAddr;
use std::sync::atomic::AtomicI64;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use certboot_core::endpoints::{self, About, Response, Routes, Status};
use certboot_core::timefmt::unix_now;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// Checks the pair on disk for `/healthz` on every request; `Err` says why it is not trusted.
pub type DiskCheck = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// The sidecar's counters and gauges.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    not_after: Gauge<i64, AtomicI64>,
    renewals: Family<ResultLabel, Counter>,
    last_renewal: Gauge<i64, AtomicI64>,
    disk: Option<DiskCheck>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let not_after = Gauge::<i64, AtomicI64>::default();
        let renewals = Family::<ResultLabel, Counter>::default();
        let last_renewal = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "certboot_certificate_not_after_seconds",
            "Expiry of the current certificate, Unix time",
            not_after.clone(),
        );
        registry.register(
            "certboot_renewals",
            "Renewal attempts by result",
            renewals.clone(),
        );
        registry.register(
            "certboot_last_renewal_timestamp_seconds",
            "When the last renewal succeeded, Unix time",
            last_renewal.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            not_after,
            renewals,
            last_renewal,
            disk: None,
        }
    }

    /// `/healthz` also runs `check` on the pair on disk.
    pub fn with_disk_check(mut self, check: DiskCheck) -> Metrics {
        self.disk = Some(check);
        self
    }

    /// Records the certificate now on disk.
    pub fn certificate(&self, not_after: i64) {
        self.not_after.set(not_after);
    }

    /// Records a successful renewal.
    pub fn renewed(&self, not_after: i64) {
        self.certificate(not_after);
        self.renewals
            .get_or_create(&ResultLabel { result: "success" })
            .inc();
        self.last_renewal.set(unix_now());
    }

    /// Records a failed renewal attempt.
    pub fn failed(&self) {
        self.renewals
            .get_or_create(&ResultLabel { result: "failure" })
            .inc();
    }

    /// True while the certificate on disk is valid.
    pub fn healthy(&self) -> bool {
        self.not_after.get() > unix_now()
    }

    /// What `/healthz` answers: `Ok` while the certificate is valid and the pair on disk passes
    /// the disk check; otherwise why not.
    pub fn health(&self) -> Result<(), String> {
        if !self.healthy() {
            return Err("certificate expired".to_string());
        }
        match &self.disk {
            Some(check) => check(),
            None => Ok(()),
        }
    }

    /// The metrics in OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Serves `/metrics` and `/healthz` on `addr` until the task is dropped.
    pub async fn serve(self, addr: SocketAddr) {
        let about = About {
            paths: "/healthz and /metrics",
            address_variable: "CERTBOOT_METRICS_ADDR",
        };
        endpoints::serve(addr, Arc::new(self), about).await;
    }
}

impl Routes for Metrics {
    fn answer(&self, path: &str) -> Response {
        match path {
            "/metrics" => Response::metrics(self.render()),
            "/healthz" => match self.health() {
                Ok(()) => Response::ok(),
                Err(why) => Response::text(Status::ServiceUnavailable, format!("{why}\n")),
            },
            _ => Response::not_found(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_documented_series() {
        let m = Metrics::new();
        m.renewed(unix_now() + 100);
        m.failed();
        let text = m.render();
        assert!(
            text.contains("certboot_certificate_not_after_seconds "),
            "{text}"
        );
        assert!(
            text.contains("certboot_renewals_total{result=\"success\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("certboot_renewals_total{result=\"failure\"} 1"),
            "{text}"
        );
        assert!(m.healthy());
        m.certificate(unix_now() - 1);
        assert!(!m.healthy());
    }

    #[test]
    fn a_pair_on_disk_that_fails_the_disk_check_is_unhealthy() {
        let m = Metrics::new().with_disk_check(Arc::new(|| Err("planted".to_string())));
        m.certificate(unix_now() + 3600);
        assert_eq!(m.health(), Err("planted".to_string()));
        let m = Metrics::new().with_disk_check(Arc::new(|| Ok(())));
        m.certificate(unix_now() + 3600);
        assert_eq!(m.health(), Ok(()));
        m.certificate(unix_now() - 1);
        assert_eq!(m.health(), Err("certificate expired".to_string()));
    }

    #[test]
    fn routes_answer_metrics_as_openmetrics_and_health_by_the_certificate() {
        let m = Metrics::new();
        m.certificate(unix_now() + 3600);
        let metrics = m.answer("/metrics");
        assert_eq!(metrics.content_type, endpoints::OPENMETRICS);
        assert!(metrics.body.ends_with("# EOF\n"), "{}", metrics.body);
        assert_eq!(m.answer("/healthz"), Response::ok());
        m.certificate(unix_now() - 1);
        let expired = m.answer("/healthz");
        assert_eq!(expired.status, Status::ServiceUnavailable);
        assert_eq!(expired.body, "certificate expired\n");
        assert_eq!(m.answer("/readyz").status, Status::NotFound);
    }
}
