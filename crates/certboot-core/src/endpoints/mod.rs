//! One small HTTP/1.1 server for the probe and scrape endpoints of both programs (the sidecar's
//! `/metrics` and `/healthz`, the controller's `/healthz`, `/readyz` and `/metrics`): one request
//! per connection, answered and closed. It depends on nothing else of certboot; each program
//! gives it its [`Routes`].
//!
//! The kubelet's probes must get through even while someone holds connections open without
//! sending anything (a slow or hostile client, a port scan), and such clients must not exhaust
//! certboot's file descriptors and starve its API client:
//! - the accept loop never waits for a free slot, so nothing queues in the kernel's backlog
//!   behind idle connections;
//! - at most [`Limits::connections`] connections are held at once (waiting for their request or
//!   being answered); when one more arrives, the one that has waited longest for its request is
//!   closed to make room ("newest wins": a probe sends its request as soon as it is connected);
//!   when all are being answered, the new one is closed at once;
//! - a connection must send its first byte within [`Limits::first_byte`] and its whole request
//!   head (at most [`MAX_HEAD`] bytes) within [`Limits::request`], else it is closed;
//! - answering is bounded too ([`Limits::write`]), and a failing `accept` backs off instead of
//!   spinning.
//!
//! `/metrics` is served as OpenMetrics text ([`OPENMETRICS`]), the format `prometheus-client`'s
//! encoder writes (it ends with `# EOF`); everything else as plain text.

mod held;

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};

use held::{Admission, Held};

/// The content type of `/metrics`: what `prometheus_client::encoding::text::encode` writes.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of every other answer.
pub const PLAIN_TEXT: &str = "text/plain; charset=utf-8";
/// The largest request head read; the path is taken from what fits.
pub const MAX_HEAD: usize = 1024;
/// The first pause after a failed `accept`; it doubles up to [`ACCEPT_BACKOFF_MAX`].
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The server's caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections held at once (waiting for their request or being answered).
    pub connections: usize,
    /// How long a new connection may stay silent before it is closed.
    pub first_byte: Duration,
    /// How long a client may take to send its whole request head.
    pub request: Duration,
    /// How long writing the answer may take.
    pub write: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections: 32,
            first_byte: Duration::from_secs(2),
            request: Duration::from_secs(5),
            write: Duration::from_secs(5),
        }
    }
}

/// The status of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    NotFound,
    ServiceUnavailable,
}

impl Status {
    fn line(self) -> &'static str {
        match self {
            Status::Ok => "200 OK",
            Status::NotFound => "404 Not Found",
            Status::ServiceUnavailable => "503 Service Unavailable",
        }
    }
}

/// One answer: status, content type and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: Status,
    pub content_type: &'static str,
    pub body: String,
}

impl Response {
    /// A plain-text answer.
    pub fn text(status: Status, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: PLAIN_TEXT,
            body: body.into(),
        }
    }

    /// `200 ok`, what a passing probe gets.
    pub fn ok() -> Response {
        Response::text(Status::Ok, "ok\n")
    }

    /// `404 not found`.
    pub fn not_found() -> Response {
        Response::text(Status::NotFound, "not found\n")
    }

    /// `200` with metrics in OpenMetrics text.
    pub fn metrics(body: String) -> Response {
        Response {
            status: Status::Ok,
            content_type: OPENMETRICS,
            body,
        }
    }

    /// The whole HTTP/1.1 response.
    pub fn to_http(&self) -> String {
        format!(
            "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
            self.status.line(),
            self.content_type,
            self.body.len(),
            self.body
        )
    }
}

/// What a program serves: the answer for a request's path.
pub trait Routes: Send + Sync + 'static {
    fn answer(&self, path: &str) -> Response;
}

/// How a server names itself in its logs: the paths it serves (e.g. "/healthz and /metrics")
/// and the variable that sets its address.
#[derive(Debug, Clone, Copy)]
pub struct About {
    pub paths: &'static str,
    pub address_variable: &'static str,
}

/// Serves `routes` on `addr` within [`Limits::default`] until the task is dropped; logs and
/// returns when it cannot bind.
pub async fn serve(addr: SocketAddr, routes: Arc<dyn Routes>, about: About) {
    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) => {
            warn!(
                "cannot serve {} on {addr}: {e}; check {}",
                about.paths, about.address_variable
            );
            return;
        }
    };
    let bound = listener.local_addr().unwrap_or(addr);
    info!("serving {} on http://{bound}", about.paths);
    serve_on(listener, routes, Limits::default(), Arc::default()).await;
}

/// Accepts connections on `listener` within `limits`; `open` counts the connections held.
pub async fn serve_on(
    listener: TcpListener,
    routes: Arc<dyn Routes>,
    limits: Limits,
    open: Arc<AtomicUsize>,
) {
    let held = Held::new(limits.connections, open);
    let mut pause = ACCEPT_BACKOFF_MIN;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                pause = ACCEPT_BACKOFF_MIN;
                let (id, evicted) = match held.admit() {
                    Admission::Admitted { id, evicted } => (id, evicted),
                    Admission::Full => {
                        debug!("closing a connection from {peer}: all slots are answering");
                        continue;
                    }
                };
                let (routes, held) = (routes.clone(), held.clone());
                tokio::spawn(async move {
                    let request = tokio::select! {
                        path = read_path(&stream, limits) => path,
                        _ = evicted => None,
                    };
                    if let Some(path) = request {
                        held.answering(id);
                        respond(stream, &routes.answer(&path), limits.write).await;
                    }
                    held.leave(id);
                });
            }
            Err(e) => {
                warn!(
                    "accepting a connection failed: {e}; pausing {}ms",
                    pause.as_millis()
                );
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(ACCEPT_BACKOFF_MAX);
            }
        }
    }
}

async fn respond(mut stream: TcpStream, response: &Response, write: Duration) {
    let _ = tokio::time::timeout(write, stream.write_all(response.to_http().as_bytes())).await;
}

/// The path of the request on `stream`, or `None` when the client sent nothing within
/// [`Limits::first_byte`], or no whole request head within [`Limits::request`]. A client may
/// send its request line in several TCP segments.
async fn read_path(stream: &TcpStream, limits: Limits) -> Option<String> {
    let started = tokio::time::Instant::now();
    let mut buf = [0u8; MAX_HEAD];
    let mut n = 0;
    while n < buf.len() {
        let limit = if n == 0 {
            limits.first_byte
        } else {
            limits.request
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
    let request = String::from_utf8_lossy(buf.get(..n)?);
    Some(request.split_whitespace().nth(1).unwrap_or("/").to_string())
}

#[cfg(test)]
mod tests;
