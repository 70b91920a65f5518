//! `/healthz`, `/readyz` and `/metrics` over plain HTTP/1.1, one request per connection.
//!
//! The kubelet's liveness probe must get through even while someone holds connections open
//! without sending anything (a slow or hostile client, a port scan):
//! - the accept loop never waits for a free slot, so nothing queues in the kernel's backlog
//!   behind idle connections;
//! - a connection must send its first byte within [`FIRST_BYTE_TIMEOUT`] and its whole request
//!   within [`READ_TIMEOUT`], else it is closed;
//! - at most [`MAX_WAITING`] connections may wait for their request at once: when one more
//!   arrives, the one that has waited longest is closed to make room ("newest wins"). A probe
//!   sends its request as soon as it is connected, so idle connections cannot keep it out;
//! - answering is bounded too ([`WRITE_TIMEOUT`]), and a failing `accept` backs off instead of
//!   spinning.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tracing::{info, warn};

/// Connections that may wait for their request at once.
pub const MAX_WAITING: usize = 32;
/// How long a new connection may stay silent before it is closed.
pub const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a client may take to send its whole request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long writing the answer may take.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// The connections still waiting for their request, oldest first; dropping a connection's
/// sender closes it.
#[derive(Default)]
struct Waiting {
    next_id: u64,
    queue: VecDeque<(u64, oneshot::Sender<()>)>,
}

impl Waiting {
    /// Makes room for a new connection (closing the longest-waiting one when all
    /// [`MAX_WAITING`] slots are taken) and returns its id and its eviction signal.
    fn admit(&mut self) -> (u64, oneshot::Receiver<()>) {
        if self.queue.len() >= MAX_WAITING {
            self.queue.pop_front();
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let (evict, evicted) = oneshot::channel();
        self.queue.push_back((id, evict));
        (id, evicted)
    }

    /// The connection has its request (or gave up): it no longer takes a slot.
    fn leave(&mut self, id: u64) {
        self.queue.retain(|(queued, _)| *queued != id);
    }
}

fn lock(waiting: &Mutex<Waiting>) -> std::sync::MutexGuard<'_, Waiting> {
    waiting
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

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
        let waiting = Arc::new(Mutex::new(Waiting::default()));
        let mut accept_delay = Duration::from_millis(10);
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    accept_delay = Duration::from_millis(10);
                    let (id, evicted) = lock(&waiting).admit();
                    let (health, waiting) = (self.clone(), waiting.clone());
                    tokio::spawn(async move {
                        let request = tokio::select! {
                            head = read_request(&stream) => head,
                            _ = evicted => None,
                        };
                        lock(&waiting).leave(id);
                        if let Some(path) = request {
                            health.respond(stream, &path).await;
                        }
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

    async fn respond(&self, mut stream: TcpStream, path: &str) {
        let (status, body) = self.answer(path);
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(response.as_bytes())).await;
    }
}

/// The path of the request on `stream`, or `None` when the client sent nothing within
/// [`FIRST_BYTE_TIMEOUT`], or no whole request head within [`READ_TIMEOUT`].
async fn read_request(stream: &TcpStream) -> Option<String> {
    let started = tokio::time::Instant::now();
    let mut buf = [0u8; 1024];
    let mut n = 0;
    while n < buf.len() {
        let limit = if n == 0 {
            FIRST_BYTE_TIMEOUT
        } else {
            READ_TIMEOUT
        };
        tokio::time::timeout_at(started + limit, stream.readable())
            .await
            .ok()?
            .ok()?;
        let slot = buf.get_mut(n..)?;
        match stream.try_read(slot) {
            Ok(0) => break,
            Ok(read) => n = n.checked_add(read)?,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => return None,
        }
        if buf.get(..n)?.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let head = buf.get(..n)?;
    let request = String::from_utf8_lossy(head);
    Some(request.split_whitespace().nth(1).unwrap_or("/").to_string())
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

    /// A server on a free port; its task, to abort at the end.
    async fn serve() -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let health = Health::new(String::new);
        health.set_ready(true);
        let server = tokio::spawn(health.serve(addr));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(addr).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "server listening");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (addr, server)
    }

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut client = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\n\r\n");
        client.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        answer
    }

    /// Reads until the server closes the connection; how long that took.
    async fn closed_after(mut stream: TcpStream) -> Duration {
        let started = tokio::time::Instant::now();
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("closed within 10 s");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        started.elapsed()
    }

    /// Three times as many idle connections as there are slots: a probe is still answered at
    /// once (before, it waited in the backlog until idle ones timed out, 5 s).
    #[tokio::test]
    async fn a_probe_is_answered_at_once_while_many_idle_connections_are_open() {
        let (addr, server) = serve().await;
        let mut idle = Vec::new();
        for _ in 0..3 * MAX_WAITING {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        let started = tokio::time::Instant::now();
        let answer = tokio::time::timeout(Duration::from_secs(1), get(addr, "/healthz"))
            .await
            .expect("/healthz answered within 1 s");
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        eprintln!(
            "/healthz answered in {:?} with {} idle connections open",
            started.elapsed(),
            idle.len()
        );
        server.abort();
    }

    /// A connection that sends nothing is closed after the first-byte timeout; when all slots
    /// are taken, the longest-waiting one is closed at once to admit a new one.
    #[tokio::test]
    async fn silent_connections_are_shed_after_the_first_byte_timeout_or_by_newer_ones() {
        let (addr, server) = serve().await;
        let silent = TcpStream::connect(addr).await.unwrap();
        let took = closed_after(silent).await;
        assert!(
            took >= FIRST_BYTE_TIMEOUT - Duration::from_millis(200)
                && took < FIRST_BYTE_TIMEOUT + Duration::from_secs(1),
            "closed after {took:?}"
        );

        let oldest = TcpStream::connect(addr).await.unwrap();
        // Give the server time to admit it before the others.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut others = Vec::new();
        for _ in 0..MAX_WAITING {
            others.push(TcpStream::connect(addr).await.unwrap());
        }
        let took = closed_after(oldest).await;
        assert!(took < Duration::from_secs(1), "closed after {took:?}");
        server.abort();
    }
}
