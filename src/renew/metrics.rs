//! Sidecar metrics (off by default): Prometheus text on `/metrics`, and `/healthz`, which answers
//! 503 once the certificate on disk has expired without a successor, or when the pair on disk is
//! no longer the one certboot trusts (the app replaced it: see [`DiskCheck`]).
//!
//! - `certboot_certificate_not_after_seconds`: expiry of the current certificate (Unix time)
//! - `certboot_renewals_total{result="success"|"failure"}`: renewal attempts
//! - `certboot_last_renewal_timestamp_seconds`: when the last renewal succeeded (Unix time)
//!
//! Like the controller's endpoints (`src/controller/endpoints.rs`), the server takes at most
//! [`MAX_CONNECTIONS`] connections at once (more wait in the kernel's backlog), each must send its
//! request within [`READ_TIMEOUT`], and a failing `accept` (e.g. out of file descriptors) backs
//! off instead of spinning: idle or hostile clients in the pod's network cannot exhaust
//! certboot's file descriptors and starve its API client.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::timefmt::unix_now;

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 32;
/// How long a client may take to send its request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// The first pause after a failed `accept`; it doubles up to [`ACCEPT_BACKOFF_MAX`].
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The server's limits (tests use smaller ones).
#[derive(Debug, Clone, Copy)]
struct Limits {
    connections: usize,
    read_timeout: Duration,
}

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
        let limits = Limits {
            connections: MAX_CONNECTIONS,
            read_timeout: READ_TIMEOUT,
        };
        self.serve_on(listener, limits, Arc::default()).await;
    }

    /// Accepts connections on `listener` within `limits`; `open` counts the connections being
    /// served.
    async fn serve_on(self, listener: TcpListener, limits: Limits, open: Arc<AtomicUsize>) {
        let slots = Arc::new(Semaphore::new(limits.connections));
        let mut pause = ACCEPT_BACKOFF_MIN;
        loop {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            match listener.accept().await {
                Ok((stream, _)) => {
                    pause = ACCEPT_BACKOFF_MIN;
                    let metrics = self.clone();
                    let open = open.clone();
                    open.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(async move {
                        metrics.answer(stream, limits.read_timeout).await;
                        open.fetch_sub(1, Ordering::SeqCst);
                        drop(permit);
                    });
                }
                Err(e) => {
                    warn!(
                        "accepting a metrics connection failed: {e}; pausing {}ms",
                        pause.as_millis()
                    );
                    drop(permit);
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(ACCEPT_BACKOFF_MAX);
                }
            }
        }
    }

    async fn answer(&self, mut stream: TcpStream, read_timeout: Duration) {
        let mut buf = [0u8; 1024];
        let n = match tokio::time::timeout(read_timeout, read_head(&mut stream, &mut buf)).await {
            Ok(Ok(n)) => n,
            _ => return,
        };
        let request = String::from_utf8_lossy(&buf[..n]);
        let path = request.split_whitespace().nth(1).unwrap_or("/");
        let (status, body) = match path {
            "/metrics" => ("200 OK", self.render()),
            "/healthz" => match self.health() {
                Ok(()) => ("200 OK", "ok\n".to_string()),
                Err(why) => ("503 Service Unavailable", format!("{why}\n")),
            },
            _ => ("404 Not Found", "not found\n".to_string()),
        };
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = tokio::time::timeout(read_timeout, stream.write_all(response.as_bytes())).await;
    }
}

/// Reads the request head into `buf` until its blank line, the end of the stream, or a full
/// buffer: a client may send its request line in several TCP segments.
pub(crate) async fn read_head(stream: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let read = stream.read(&mut buf[n..]).await?;
        if read == 0 {
            break;
        }
        n += read;
        if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    Ok(n)
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

    #[tokio::test]
    async fn a_request_sent_in_pieces_is_read_whole() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let m = Metrics::new();
        m.certificate(unix_now() + 3600);
        let limits = Limits {
            connections: 4,
            read_timeout: Duration::from_secs(30),
        };
        let server = tokio::spawn(m.serve_on(listener, limits, Arc::default()));
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(b"GET ").await.unwrap();
        client.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        client
            .write_all(b"/healthz HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        assert!(answer.ends_with("ok\n"), "{answer}");
        server.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_idle_connections_are_capped_and_a_real_request_is_still_answered() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = Limits {
            connections: 4,
            read_timeout: Duration::from_millis(200),
        };
        let open = Arc::new(AtomicUsize::new(0));
        let m = Metrics::new();
        m.certificate(unix_now() + 3600);
        let server = tokio::spawn(m.serve_on(listener, limits, open.clone()));
        // 40 clients that connect and never send a request.
        let mut idle = Vec::new();
        for _ in 0..40 {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while open.load(Ordering::SeqCst) < limits.connections {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the server accepted nothing"
            );
            tokio::task::yield_now().await;
        }
        // A real client behind them is answered once the idle ones have timed out, and the
        // server never holds more than its cap meanwhile.
        let mut client = TcpStream::connect(addr).await.unwrap();
        client
            .write_all(b"GET /healthz HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        let mut read = std::pin::pin!(client.read_to_string(&mut answer));
        let mut most = 0;
        loop {
            tokio::select! {
                done = &mut read => { done.unwrap(); break; }
                _ = tokio::time::sleep(Duration::from_millis(5)) => {
                    most = most.max(open.load(Ordering::SeqCst));
                    assert!(tokio::time::Instant::now() < deadline, "no answer");
                }
            }
        }
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        assert!(
            most <= limits.connections,
            "{most} connections served at once"
        );
        server.abort();
    }
}
