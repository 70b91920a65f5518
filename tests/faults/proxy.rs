//! [`FaultProxy`]: an HTTPS proxy on 127.0.0.1 with its own CA (a harness [`Ca`]), forwarding
//! to the real kube-apiserver over TLS (trusting the apiserver's CA). certboot reaches it
//! through a kubeconfig whose server is the proxy and whose CA is the proxy's.
//!
//! Only HTTP/1.1 is offered (ALPN), one request per connection (`Connection: close`), which is
//! all kube-rs needs. Rules pick requests by method and a path substring and apply a
//! [`Fault`] a given number of times; every request is recorded. Every blocking operation is
//! bounded: sockets time out after [`IO_TIMEOUT`], held requests after [`IO_TIMEOUT`].

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::harness::{Ca, Endpoint};

/// The longest any socket read/write or held request may block.
pub const IO_TIMEOUT: Duration = Duration::from_secs(120);

/// What the proxy does with a matching request.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this HTTP status and a `Status` body; with `retry_after`, also the
    /// `Retry-After` header and `details.retryAfterSeconds`.
    Status { code: u16, retry_after: Option<u32> },
    /// Read the request, then reset the TCP connection (RST) without answering.
    Reset,
    /// Forward, read the whole answer, then reset the connection instead of relaying it (the
    /// request took effect, the client never learns).
    ForwardThenReset,
    /// Forward after this delay.
    Delay(Duration),
    /// Forward once the gate opens.
    Hold(Gate),
    /// Once the gate opens, answer the (watch) request with a watch `ERROR` event 410 Gone.
    HoldThenGone(Gate),
}

impl Fault {
    fn label(&self) -> String {
        match self {
            Fault::Status { code, .. } => code.to_string(),
            Fault::Reset => "reset".into(),
            Fault::ForwardThenReset => "forwarded, then reset".into(),
            Fault::Delay(d) => format!("delay {d:?}"),
            Fault::Hold(_) => "hold".into(),
            Fault::HoldThenGone(_) => "410".into(),
        }
    }
}

/// A one-way latch the test opens to release held requests.
#[derive(Clone, Debug, Default)]
pub struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    pub fn new() -> Gate {
        Gate::default()
    }

    /// Releases every request waiting on this gate, now and later.
    pub fn open(&self) {
        *self.0 .0.lock().unwrap() = true;
        self.0 .1.notify_all();
    }

    fn wait(&self) {
        let until = Instant::now() + IO_TIMEOUT;
        let mut open = self.0 .0.lock().unwrap();
        while !*open && Instant::now() < until {
            open = self
                .0
                 .1
                .wait_timeout(open, Duration::from_millis(100))
                .unwrap()
                .0;
        }
    }
}

/// One request the proxy received, and the fault applied to it (`None`: forwarded as is).
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub fault: Option<String>,
}

struct Rule {
    method: String,
    path: String,
    fault: Fault,
    times: usize,
}

struct State {
    stalled_handshakes: Mutex<usize>,
    rules: Mutex<Vec<Rule>>,
    seen: Mutex<Vec<Seen>>,
    upstream: SocketAddr,
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
}

/// The proxy; stops accepting when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    ca: Ca,
    state: Arc<State>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// A proxy forwarding to `upstream` (the apiserver endpoint).
    pub fn start(upstream: &Endpoint) -> FaultProxy {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let ca = Ca::new("certboot fault proxy");
        let (cert_pem, key_pem) = ca.issue_loopback_serving_cert();
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .expect("proxy certificate");
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("proxy key");
        let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("protocols")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("proxy serving config");
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(upstream.ca_pem.as_bytes()) {
            roots.add(cert.expect("apiserver CA")).expect("add CA");
        }
        let mut client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocols")
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.alpn_protocols = vec![b"http/1.1".to_vec()];
        let upstream_addr: SocketAddr = upstream
            .url
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .parse()
            .expect("apiserver URL is https://IP:PORT");
        let state = Arc::new(State {
            stalled_handshakes: Mutex::new(0),
            rules: Mutex::new(Vec::new()),
            seen: Mutex::new(Vec::new()),
            upstream: upstream_addr,
            server: Arc::new(server),
            client: Arc::new(client),
        });
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("proxy address");
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((tcp, _)) => {
                            let state = state.clone();
                            std::thread::spawn(move || {
                                let _ = serve(&state, tcp);
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        FaultProxy {
            addr,
            ca,
            state,
            stop,
            accept: Some(accept),
        }
    }

    /// `https://127.0.0.1:PORT` of the proxy.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Applies `fault` to the next `times` requests with `method` whose path contains `path`.
    /// Rules are tried in the order they were added.
    pub fn inject(&self, method: &str, path: &str, fault: Fault, times: usize) {
        self.state.rules.lock().unwrap().push(Rule {
            method: method.into(),
            path: path.into(),
            fault,
            times,
        });
    }

    /// The next `count` connections get no TLS handshake at all: the proxy accepts the TCP
    /// connection and stays silent until the client gives up (or [`IO_TIMEOUT`]).
    pub fn stall_handshakes(&self, count: usize) {
        *self.state.stalled_handshakes.lock().unwrap() += count;
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// Requests received so far with `method` whose path contains `path`.
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.method == method && s.path.contains(path))
            .count()
    }

    /// Writes a kubeconfig in `dir` that reaches the apiserver through this proxy with `token`.
    pub fn kubeconfig(&self, dir: &Path, token: &str) -> PathBuf {
        std::fs::create_dir_all(dir).expect("kubeconfig dir");
        let ca_path = dir.join("fault-proxy-ca.pem");
        std::fs::write(&ca_path, self.ca.cert_pem()).expect("write the proxy CA");
        Endpoint {
            url: self.url(),
            ca_pem: self.ca.cert_pem().to_string(),
            ca_path,
        }
        .write_token_kubeconfig(dir, token)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn serve(state: &State, tcp: TcpStream) -> std::io::Result<()> {
    tcp.set_nonblocking(false)?;
    tcp.set_read_timeout(Some(IO_TIMEOUT))?;
    tcp.set_write_timeout(Some(IO_TIMEOUT))?;
    let stall = {
        let mut left = state.stalled_handshakes.lock().unwrap();
        let stall = *left > 0;
        *left = left.saturating_sub(1);
        stall
    };
    if stall {
        state.seen.lock().unwrap().push(Seen {
            method: "TLS".into(),
            path: String::new(),
            fault: Some("stalled handshake".into()),
        });
        // Returns when the client closes the connection, or after IO_TIMEOUT.
        let _ = (&tcp).read(&mut [0u8; 1024]);
        return Ok(());
    }
    let conn = rustls::ServerConnection::new(state.server.clone()).map_err(other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let request = read_request(&mut tls)?;
    let fault = {
        let mut rules = state.rules.lock().unwrap();
        rules
            .iter_mut()
            .find(|r| r.times > 0 && r.method == request.method && request.path.contains(&r.path))
            .map(|r| {
                r.times -= 1;
                r.fault.clone()
            })
    };
    state.seen.lock().unwrap().push(Seen {
        method: request.method.clone(),
        path: request.path.clone(),
        fault: fault.as_ref().map(Fault::label),
    });
    match fault {
        None => forward(state, &request, &mut tls),
        Some(Fault::ForwardThenReset) => {
            let mut sink = std::io::sink();
            relay(state, &request, &mut sink)?;
            reset(&tls.sock);
            Ok(())
        }
        Some(Fault::Status { code, retry_after }) => respond_status(&mut tls, code, retry_after),
        Some(Fault::Reset) => {
            reset(&tls.sock);
            Ok(())
        }
        Some(Fault::Delay(delay)) => {
            std::thread::sleep(delay.min(IO_TIMEOUT));
            forward(state, &request, &mut tls)
        }
        Some(Fault::Hold(gate)) => {
            gate.wait();
            forward(state, &request, &mut tls)
        }
        Some(Fault::HoldThenGone(gate)) => {
            gate.wait();
            let event = r#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version (injected by the fault proxy)","reason":"Expired","code":410}}"#;
            let head =
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n";
            tls.write_all(head.as_bytes())?;
            tls.write_all(event.as_bytes())?;
            tls.write_all(b"\n")?;
            close(&mut tls)
        }
    }
}

fn other(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

fn read_request(stream: &mut impl Read) -> std::io::Result<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts
        .next()
        .ok_or_else(|| other("no request line"))?
        .to_string();
    let path = parts
        .next()
        .ok_or_else(|| other("no request path"))?
        .to_string();
    let mut headers = Vec::new();
    for _ in 0..200 {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(other("request head cut short"));
        }
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':') {
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        for _ in 0..10_000 {
            line.clear();
            reader.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)
                .map_err(other)?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = header("content-length") {
        let length: usize = length.parse().map_err(other)?;
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
    }
    Ok(Request {
        method,
        path,
        headers,
        body,
    })
}

fn forward(
    state: &State,
    request: &Request,
    client: &mut rustls::StreamOwned<rustls::ServerConnection, TcpStream>,
) -> std::io::Result<()> {
    relay(state, request, client)?;
    close(client)
}

/// Sends `request` to the apiserver and copies its answer into `client` as it comes.
fn relay(state: &State, request: &Request, client: &mut impl Write) -> std::io::Result<()> {
    let tcp = TcpStream::connect_timeout(&state.upstream, Duration::from_secs(10))?;
    tcp.set_read_timeout(Some(IO_TIMEOUT))?;
    tcp.set_write_timeout(Some(IO_TIMEOUT))?;
    let name = ServerName::IpAddress(state.upstream.ip().into());
    let conn = rustls::ClientConnection::new(state.client.clone(), name).map_err(other)?;
    let mut upstream = rustls::StreamOwned::new(conn, tcp);
    let mut head = format!("{} {} HTTP/1.1\r\n", request.method, request.path);
    for (name, value) in &request.headers {
        let skip = [
            "connection",
            "transfer-encoding",
            "content-length",
            "keep-alive",
        ];
        if !skip.iter().any(|s| name.eq_ignore_ascii_case(s)) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    if !request.body.is_empty() || matches!(request.method.as_str(), "POST" | "PUT" | "PATCH") {
        head.push_str(&format!("Content-Length: {}\r\n", request.body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    upstream.write_all(head.as_bytes())?;
    upstream.write_all(&request.body)?;
    upstream.flush()?;
    // The answer is delimited by the upstream closing the connection (we asked it to); relay it
    // as it comes (watches stream).
    let mut buf = [0u8; 16 * 1024];
    loop {
        match upstream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                client.write_all(&buf[..n])?;
                client.flush()?;
            }
        }
    }
    Ok(())
}

fn respond_status(
    tls: &mut rustls::StreamOwned<rustls::ServerConnection, TcpStream>,
    code: u16,
    retry_after: Option<u32>,
) -> std::io::Result<()> {
    let reason = match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        _ => "Injected",
    };
    let details = match retry_after {
        Some(s) => format!(r#","details":{{"retryAfterSeconds":{s}}}"#),
        None => String::new(),
    };
    // A 403 reads like RBAC's own refusal ("User ... cannot ..."), which certboot tells apart from
    // an admission plugin's 403.
    let message = match code {
        403 => r#"forbidden: User \"fault-proxy\" cannot perform this request (injected 403 by the fault proxy)"#.to_string(),
        _ => format!("injected {code} by the fault proxy"),
    };
    let body = format!(
        r#"{{"kind":"Status","apiVersion":"v1","metadata":{{}},"status":"Failure","message":"{message}","reason":"{reason}","code":{code}{details}}}"#
    );
    let mut head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(s) = retry_after {
        head.push_str(&format!("Retry-After: {s}\r\n"));
    }
    head.push_str("\r\n");
    tls.write_all(head.as_bytes())?;
    tls.write_all(body.as_bytes())?;
    close(tls)
}

fn close(
    tls: &mut rustls::StreamOwned<rustls::ServerConnection, TcpStream>,
) -> std::io::Result<()> {
    tls.conn.send_close_notify();
    tls.flush()?;
    let _ = tls.sock.shutdown(std::net::Shutdown::Write);
    Ok(())
}

/// Closes with RST (SO_LINGER 0): the client sees "connection reset by peer".
fn reset(tcp: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket we own, with a correctly sized linger struct.
    unsafe {
        libc::setsockopt(
            tcp.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    // The socket closes (RST) when the caller drops the stream.
}
