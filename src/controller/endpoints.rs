//! `/healthz`, `/readyz` and `/metrics` over plain HTTP/1.1, one request per connection.
//!
//! At most [`MAX_CONNECTIONS`] connections are served at once (more wait in the kernel's backlog),
//! each must send its request within [`READ_TIMEOUT`], and a failing `accept` backs off instead of
//! spinning, so idle or hostile clients cannot starve the controller of file descriptors.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{info, warn};

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 32;
/// How long a client may take to send its request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

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

    fn answer(&self, path: &str) -> (&'static str, String) {
        match path {
            "/healthz" | "/livez" => ("200 OK", "ok\n".into()),
            "/readyz" if self.ready.load(Ordering::Relaxed) => ("200 OK", "ok\n".into()),
            "/readyz" => ("503 Service Unavailable", "not ready\n".into()),
            "/metrics" => match &self.render_metrics {
                Some(render) => ("200 OK", render()),
                None => ("404 Not Found", "not found\n".into()),
            },
            _ => ("404 Not Found", "not found\n".into()),
        }
    }

    /// Serves on `addr` until the task is dropped; logs and returns when it cannot bind.
    pub async fn serve(self, addr: SocketAddr) {
        let listener = match TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                warn!("cannot serve /healthz, /readyz and /metrics on {addr}: {e}; check CERTBOOT_HEALTH_ADDR");
                return;
            }
        };
        let bound = listener.local_addr().unwrap_or(addr);
        info!("serving /healthz, /readyz and /metrics on http://{bound}");
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut accept_delay = Duration::from_millis(10);
        loop {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            match listener.accept().await {
                Ok((stream, _)) => {
                    accept_delay = Duration::from_millis(10);
                    let health = self.clone();
                    tokio::spawn(async move {
                        health.respond(stream).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    warn!(
                        "accepting a connection on {addr} failed: {e}; pausing {}ms",
                        accept_delay.as_millis()
                    );
                    tokio::time::sleep(accept_delay).await;
                    accept_delay = (accept_delay * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    async fn respond(&self, mut stream: TcpStream) {
        let mut buf = [0u8; 1024];
        let read = crate::renew::metrics::read_head(&mut stream, &mut buf);
        let n = match tokio::time::timeout(READ_TIMEOUT, read).await {
            Ok(Ok(n)) => n,
            _ => return,
        };
        let request = String::from_utf8_lossy(&buf[..n]);
        let path = request.split_whitespace().nth(1).unwrap_or("/");
        let (status, body) = self.answer(path);
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
    use tokio::io::AsyncReadExt;

    #[test]
    fn readiness_follows_the_flag_and_metrics_render() {
        let health = Health::new(|| "m 1\n".to_string());
        assert_eq!(health.answer("/healthz").0, "200 OK");
        assert_eq!(health.answer("/readyz").0, "503 Service Unavailable");
        health.set_ready(true);
        assert_eq!(health.answer("/readyz").0, "200 OK");
        assert_eq!(health.answer("/metrics").1, "m 1\n");
        assert_eq!(health.answer("/other").0, "404 Not Found");
    }

    #[tokio::test]
    async fn idle_connections_do_not_block_others_beyond_the_cap() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let health = Health::new(String::new);
        health.set_ready(true);
        let server = tokio::spawn(health.serve(addr));
        let mut idle = Vec::new();
        for _ in 0..5 {
            loop {
                if let Ok(s) = TcpStream::connect(addr).await {
                    idle.push(s);
                    break;
                }
                tokio::task::yield_now().await;
            }
        }
        let mut client = TcpStream::connect(addr).await.unwrap();
        client
            .write_all(b"GET /readyz HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        server.abort();
    }
}
