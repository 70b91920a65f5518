use std::sync::atomic::Ordering;

use tokio::io::AsyncReadExt;

use super::*;

/// `/healthz` ok, `/metrics` one OpenMetrics series, anything else 404.
struct Fixed;

impl Routes for Fixed {
    fn answer(&self, path: &str) -> Response {
        match path {
            "/healthz" => Response::ok(),
            "/metrics" => Response::metrics("m 1\n# EOF\n".to_string()),
            _ => Response::not_found(),
        }
    }
}

/// A server with `limits` on a free port: its address, its count of held connections, and its
/// task (to abort at the end).
async fn serve(limits: Limits) -> (SocketAddr, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let open = Arc::new(AtomicUsize::new(0));
    let server = tokio::spawn(serve_on(listener, Arc::new(Fixed), limits, open.clone()));
    (addr, open, server)
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

#[tokio::test]
async fn metrics_are_openmetrics_text_and_probes_plain_text() {
    let (addr, _, server) = serve(Limits::default()).await;
    let metrics = get(addr, "/metrics").await;
    assert!(metrics.starts_with("HTTP/1.1 200 OK\r\n"), "{metrics}");
    assert!(
        metrics.contains(
            "\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\n"
        ),
        "{metrics}"
    );
    assert!(metrics.ends_with("\r\n\r\nm 1\n# EOF\n"), "{metrics}");
    let health = get(addr, "/healthz").await;
    assert!(
        health.starts_with("HTTP/1.1 200 OK\r\n")
            && health.contains("\r\nContent-Type: text/plain; charset=utf-8\r\n")
            && health.ends_with("\r\n\r\nok\n"),
        "{health}"
    );
    let other = get(addr, "/other").await;
    assert!(other.starts_with("HTTP/1.1 404 Not Found\r\n"), "{other}");
    server.abort();
}

#[tokio::test]
async fn a_request_sent_in_pieces_is_read_whole() {
    let (addr, _, server) = serve(Limits::default()).await;
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

/// A request head larger than [`MAX_HEAD`] is not read without end: the path from what fits is
/// answered.
#[tokio::test]
async fn an_oversized_request_head_is_cut_at_the_cap() {
    let (addr, _, server) = serve(Limits::default()).await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    let huge = format!(
        "GET /healthz HTTP/1.1\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    // The server answers after MAX_HEAD bytes and closes; the rest of the write may fail.
    let _ = client.write_all(huge.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut answer))
        .await
        .expect("answered within 5 s");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 200 OK"),
        "{answer}"
    );
    server.abort();
}

/// Three times as many idle connections as there are slots: a probe is still answered at once
/// (nothing waits in the kernel's backlog), and the server never holds more than its cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_is_answered_at_once_while_many_idle_connections_are_open() {
    let limits = Limits::default();
    let (addr, open, server) = serve(limits).await;
    let mut idle = Vec::new();
    for _ in 0..3 * limits.connections {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    let started = tokio::time::Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(1), get(addr, "/healthz"))
        .await
        .expect("/healthz answered within 1 s");
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(open.load(Ordering::SeqCst) <= limits.connections);
    eprintln!(
        "/healthz answered in {:?} with {} idle connections open",
        started.elapsed(),
        idle.len()
    );
    server.abort();
}

/// A connection that sends nothing is closed after the first-byte timeout; when all slots are
/// taken, the longest-waiting one is closed at once to admit a new one.
#[tokio::test]
async fn silent_connections_are_shed_after_the_first_byte_timeout_or_by_newer_ones() {
    let limits = Limits {
        connections: 4,
        first_byte: Duration::from_millis(500),
        ..Limits::default()
    };
    let (addr, open, server) = serve(limits).await;
    let silent = TcpStream::connect(addr).await.unwrap();
    let took = closed_after(silent).await;
    assert!(
        took >= limits.first_byte - Duration::from_millis(200)
            && took < limits.first_byte + Duration::from_secs(1),
        "closed after {took:?}"
    );

    let oldest = TcpStream::connect(addr).await.unwrap();
    // Let the server admit it before the others.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while open.load(Ordering::SeqCst) < 1 {
        assert!(tokio::time::Instant::now() < deadline, "admitted");
        tokio::task::yield_now().await;
    }
    let mut others = Vec::new();
    for _ in 0..limits.connections {
        others.push(TcpStream::connect(addr).await.unwrap());
    }
    let took = closed_after(oldest).await;
    assert!(took < limits.first_byte, "closed after {took:?}");
    server.abort();
}

/// A client that sent only part of its request is closed once the request timeout passes.
#[tokio::test]
async fn a_request_never_finished_is_closed_after_the_request_timeout() {
    let limits = Limits {
        request: Duration::from_millis(600),
        ..Limits::default()
    };
    let (addr, _, server) = serve(limits).await;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /heal").await.unwrap();
    let took = closed_after(slow).await;
    assert!(
        took < limits.request + Duration::from_secs(1),
        "closed after {took:?}"
    );
    server.abort();
}
