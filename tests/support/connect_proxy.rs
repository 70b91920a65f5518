//! An HTTP CONNECT proxy on loopback, run by a test: it opens tunnels only to the one target it
//! maps (a name that resolves nowhere else, e.g. `apiserver.certboot.invalid`), only with the
//! expected `Proxy-Authorization`, and counts the tunnels it opened and the requests it refused.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The running proxy (stops when dropped).
pub struct ConnectProxy {
    pub addr: SocketAddr,
    tunnels: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ConnectProxy {
    /// Tunnels `CONNECT {name}:{port}` to `target` (same port) when the request carries
    /// `Proxy-Authorization: {auth}`.
    pub async fn start(name: &str, target: SocketAddr, auth: &str) -> ConnectProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let tunnels = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let expected = format!("CONNECT {name}:{} HTTP/1.1", target.port());
        let auth = format!("proxy-authorization: {}", auth.to_ascii_lowercase());
        let counters = (Arc::clone(&tunnels), Arc::clone(&refused));
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (expected, auth) = (expected.clone(), auth.clone());
                let (tunnels, refused) = (counters.0.clone(), counters.1.clone());
                tokio::spawn(async move {
                    let counter = match tunnel(client, &expected, &auth, target).await {
                        Ok(()) => tunnels,
                        Err(()) => refused,
                    };
                    counter.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        ConnectProxy {
            addr,
            tunnels,
            refused,
            task,
        }
    }

    /// Tunnels opened so far.
    pub fn tunnels(&self) -> usize {
        self.tunnels.load(Ordering::SeqCst)
    }

    /// Requests refused so far (another target, another method, no or wrong credentials).
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

/// Answers one CONNECT; `Ok` once the tunnel is open (it is then relayed until either side
/// closes).
async fn tunnel(
    mut client: TcpStream,
    expected: &str,
    auth: &str,
    target: SocketAddr,
) -> Result<(), ()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        let read = tokio::time::timeout(Duration::from_secs(10), client.read(&mut buf)).await;
        match read {
            Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
            _ => return Err(()),
        }
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let authorized = lines.any(|line| line.to_ascii_lowercase() == auth);
    if request_line != expected || !authorized {
        let _ = client
            .write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            .await;
        return Err(());
    }
    let Ok(mut upstream) = TcpStream::connect(target).await else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
        return Err(());
    };
    client
        .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        .await
        .map_err(drop)?;
    tokio::spawn(async move {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    });
    Ok(())
}
