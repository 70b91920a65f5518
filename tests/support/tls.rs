//! A TLS server loading a certificate and key, and a client trusting only a given CA bundle.
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

pub fn handshake(cert_pem: &str, key_pem: &str, ca_pem: &str, server_name: &str) {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .expect("cert.pem parses");
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key.pem parses");
    let server_config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server accepts certboot's pair");
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(ca.expect("CA parses")).expect("add CA");
    }
    let client_config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_root_certificates(roots)
        .with_no_client_auth();

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().expect("accept");
        let conn = rustls::ServerConnection::new(Arc::new(server_config)).expect("server conn");
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let mut buf = [0u8; 5];
        tls.read_exact(&mut buf).expect("server read");
        tls.write_all(&buf).expect("server write");
        tls.conn.send_close_notify();
        let _ = tls.flush();
    });
    let name = ServerName::try_from(server_name.to_string()).expect("server name");
    let conn = rustls::ClientConnection::new(Arc::new(client_config), name).expect("client conn");
    let tcp = TcpStream::connect(addr).expect("connect");
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(b"hello")
        .expect("TLS handshake with the requested DNS name");
    let mut echo = [0u8; 5];
    tls.read_exact(&mut echo).expect("client read");
    assert_eq!(&echo, b"hello");
    server.join().expect("server thread");
}
