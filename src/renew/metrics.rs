//! Sidecar metrics (off by default): Prometheus text on `/metrics`, and `/healthz`, which answers
//! 503 once the certificate on disk has expired without a successor.
//!
//! - `certboot_certificate_not_after_seconds`: expiry of the current certificate (Unix time)
//! - `certboot_renewals_total{result="success"|"failure"}`: renewal attempts
//! - `certboot_last_renewal_timestamp_seconds`: when the last renewal succeeded (Unix time)

use std::net::SocketAddr;
use std::sync::atomic::AtomicI64;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{info, warn};

use crate::timefmt::unix_now;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// The sidecar's counters and gauges.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    not_after: Gauge<i64, AtomicI64>,
    renewals: Family<ResultLabel, Counter>,
    last_renewal: Gauge<i64, AtomicI64>,
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
        }
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

    /// The metrics in Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Serves `/metrics` and `/healthz` on `addr` until the task is dropped.
    pub async fn serve(self, addr: SocketAddr) {
        let listener = match TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                warn!("cannot serve metrics on {addr}: {e}; check CERTBOOT_METRICS_ADDR");
                return;
            }
        };
        info!("serving metrics on http://{addr}/metrics");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let metrics = self.clone();
            tokio::spawn(async move { metrics.answer(stream).await });
        }
    }

    async fn answer(&self, mut stream: TcpStream) {
        let mut buf = [0u8; 1024];
        let n = match tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf))
            .await
        {
            Ok(Ok(n)) => n,
            _ => return,
        };
        let request = String::from_utf8_lossy(&buf[..n]);
        let path = request.split_whitespace().nth(1).unwrap_or("/");
        let (status, body) = match path {
            "/metrics" => ("200 OK", self.render()),
            "/healthz" if self.healthy() => ("200 OK", "ok\n".to_string()),
            "/healthz" => (
                "503 Service Unavailable",
                "certificate expired\n".to_string(),
            ),
            _ => ("404 Not Found", "not found\n".to_string()),
        };
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(response.as_bytes()).await;
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
}
