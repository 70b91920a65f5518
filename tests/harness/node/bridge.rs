//! A TCP relay from listening sockets inside the node's network namespace to the API server on
//! the host's loopback: the kubelet dials `https://127.0.0.1:<port>` (the control plane's own
//! URL, now inside the namespace) and pods dial the `kubernetes` Service, `10.0.0.1:443`, which
//! is a local address of the node. TLS passes through untouched (the API server's certificate
//! names both addresses). Threads, not tasks: the relay outlives any one tokio runtime.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::io::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// The running relay; dropping it closes every listener and connection.
pub struct Bridge {
    listeners: Vec<TcpListener>,
    connections: Arc<Mutex<Vec<TcpStream>>>,
    stopping: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Bridge {
    /// Listens on `binds` inside namespace `netns`, relaying each connection to `target`.
    pub fn start(netns: &str, binds: Vec<SocketAddr>, target: SocketAddr) -> io::Result<Bridge> {
        let listeners = super::netns::run_in(netns, move || {
            binds
                .iter()
                .map(TcpListener::bind)
                .collect::<io::Result<Vec<_>>>()
        })?;
        let connections = Arc::new(Mutex::new(Vec::new()));
        let stopping = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for listener in &listeners {
            let listener = listener.try_clone()?;
            let connections = Arc::clone(&connections);
            let stopping = Arc::clone(&stopping);
            threads.push(std::thread::spawn(move || {
                accept_loop(listener, target, &connections, &stopping)
            }));
        }
        Ok(Bridge {
            listeners,
            connections,
            stopping,
            threads,
        })
    }
}

fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    connections: &Mutex<Vec<TcpStream>>,
    stopping: &AtomicBool,
) {
    for inner in listener.incoming() {
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(inner) = inner else { continue };
        let Ok(outer) = TcpStream::connect(target) else {
            let _ = inner.shutdown(Shutdown::Both);
            continue;
        };
        if let (Ok(a), Ok(b)) = (inner.try_clone(), outer.try_clone()) {
            let mut list = connections.lock().unwrap_or_else(|e| e.into_inner());
            list.retain(|s| s.peer_addr().is_ok());
            list.push(a);
            list.push(b);
        }
        relay(inner, outer);
    }
}

/// Copies both ways on two threads; each direction's end shuts the other side's writing half.
fn relay(inner: TcpStream, outer: TcpStream) {
    let pairs = [
        (inner.try_clone(), outer.try_clone()),
        (outer.try_clone(), inner.try_clone()),
    ];
    for pair in pairs {
        if let (Ok(mut from), Ok(mut to)) = pair {
            std::thread::spawn(move || {
                let _ = io::copy(&mut from, &mut to);
                let _ = to.shutdown(Shutdown::Write);
            });
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        for listener in &self.listeners {
            // SAFETY: shutdown(2) on a listening socket we own wakes its blocked accept(2).
            unsafe { libc::shutdown(listener.as_raw_fd(), libc::SHUT_RDWR) };
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        let list = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        for stream in list.iter() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}
