//! The controller's `/healthz` (and `/livez`), `/readyz` and `/metrics`, served by the endpoints
//! server shared with the sidecar ([`certboot_core::endpoints`]: its caps on connections, request size
//! and timeouts keep the kubelet's probes answered while idle or hostile clients hold
//! connections open).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use certboot_core::endpoints::{self, About, Response, Routes, Status};

/// What the endpoints report.
#[derive(Clone, Default)]
pub struct Health {
    ready: Arc<AtomicBool>,
    render_metrics: Option<Arc<dyn Fn() -> String + Send + Sync>>,
}

impl Health {
    pub fn new(render_metrics: impl Fn() -> String + Send + Sync + 'static) -> Self {
        Health {
            ready: Arc::new(AtomicBool::new(false)),
            render_metrics: Some(Arc::new(render_metrics)),
        }
    }

    /// Marks the process ready (`/readyz` answers 200).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Serves on `addr` until the task is dropped; logs and returns when it cannot bind.
    pub async fn serve(self, addr: SocketAddr) {
        let about = About {
            paths: "/healthz, /readyz and /metrics",
            address_variable: "CERTBOOT_HEALTH_ADDR",
        };
        endpoints::serve(addr, Arc::new(self), about).await;
    }
}

impl Routes for Health {
    fn answer(&self, path: &str) -> Response {
        match path {
            "/healthz" | "/livez" => Response::ok(),
            "/readyz" if self.ready.load(Ordering::Relaxed) => Response::ok(),
            "/readyz" => Response::text(Status::ServiceUnavailable, "not ready\n"),
            "/metrics" => match &self.render_metrics {
                Some(render) => Response::metrics(render()),
                None => Response::not_found(),
            },
            _ => Response::not_found(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_follows_the_flag_and_metrics_render() {
        let health = Health::new(|| "m 1\n".to_string());
        assert_eq!(health.answer("/healthz").status, Status::Ok);
        assert_eq!(health.answer("/livez").status, Status::Ok);
        assert_eq!(health.answer("/readyz").status, Status::ServiceUnavailable);
        health.set_ready(true);
        assert_eq!(health.answer("/readyz").status, Status::Ok);
        let metrics = health.answer("/metrics");
        assert_eq!(metrics.body, "m 1\n");
        assert_eq!(metrics.content_type, endpoints::OPENMETRICS);
        assert_eq!(health.answer("/other").status, Status::NotFound);
        assert_eq!(
            Health::default().answer("/metrics").status,
            Status::NotFound
        );
    }
}
