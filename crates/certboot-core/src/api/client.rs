//! The Kubernetes client: kube's HTTP stack with TCP_NODELAY on and kube's own retry layer off,
//! built only after the API server's host name is known to resolve.
//!
//! Why the host name is checked first: certboot ships as a statically linked binary in a
//! `FROM scratch` image. Its HTTP client
//! (kube → hyper-util's `GaiResolver`) resolves names with glibc's `getaddrinfo`, which in a static
//! binary uses only its built-in `files` and `dns` sources: `/etc/hosts`, then the servers in
//! `/etc/resolv.conf`. In a pod the kubelet mounts both, and in-cluster certboot connects to
//! `KUBERNETES_SERVICE_HOST`, an IP address, so nothing is resolved at all. A kubeconfig naming the
//! server by host name, run where neither file exists, would otherwise fail inside the client with
//! "Temporary failure in name resolution", which certboot treats as transient and retries forever.
//! [`check_config`], called by [`crate::api::client`] before the first API call, turns that into
//! one clear error (exit 1).

use std::io;
use std::path::Path;

use hyper_util::client::legacy::connect::HttpConnector;

use crate::api::connection::{self, Connector};
use crate::api::error::{ConnectError, Unresolvable};
use crate::api::proxy::{self, Route};

/// The files through which a static certboot can resolve a host name.
pub const HOSTS_FILE: &str = "/etc/hosts";
/// See [`HOSTS_FILE`].
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// The Kubernetes client (in-cluster config, or `KUBECONFIG`). The server's host name is checked
/// first, so a name that cannot resolve fails at once with advice instead of being retried
/// forever.
///
/// The stack is kube's own (TLS from the config, the proxy from the kubeconfig's `proxy-url`
/// ([`crate::api::proxy`]), connect/read/write timeouts, base URI, auth, extra headers) with two
/// differences:
/// - TCP_NODELAY on: otherwise a small request on a second connection (an Event posted while the
///   watch is open) waits ~40 ms for a delayed ACK, which doubled certboot's own time;
/// - kube's retry layer off: [`with_retry`] is the one place that retries, so every retry is
///   logged with its delay and capped at [`RETRY_MAX_DELAY`] (kube's layer retries 429/503/504
///   silently, up to 15 times with delays of up to 1000 s).
pub async fn client() -> Result<kube::Client, ConnectError> {
    use kube::client::ConfigExt;
    let config = kube::Config::infer()
        .await
        .map_err(|e| ConnectError::Config(kube::Error::InferConfig(e)))?;
    check_config(&config).await.map_err(ConnectError::from)?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let connector = match proxy::route(&config)? {
        (Route::Direct, _) => connection::boxed(http),
        (Route::Http(url), auth) => connection::boxed(proxy::tunnel(url, auth, http)),
        (Route::Https(url), auth) => {
            // TLS to the proxy itself, with the cluster's TLS settings (as kube does).
            let to_proxy = config
                .rustls_https_connector_with_connector(http)
                .map_err(ConnectError::Config)?;
            connection::boxed(proxy::tunnel(url, auth, to_proxy))
        }
    };
    build(config, connector)
}

/// The client over `connector` (which reaches the API server's address, directly or through a
/// proxy's tunnel): TLS, timeouts, base URI, auth and extra headers.
fn build(config: kube::Config, connector: Connector) -> Result<kube::Client, ConnectError> {
    use kube::client::ConfigExt;
    let https = config
        .rustls_https_connector_with_connector(connector)
        .map_err(ConnectError::Config)?;
    let mut connector = hyper_timeout::TimeoutConnector::new(https);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    let http_client =
        hyper_util::client::legacy::Builder::new(hyper_util::rt::TokioExecutor::new())
            .build::<_, kube::client::Body>(connector);
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer().map_err(ConnectError::Config)?)
        .layer(config.extra_headers_layer().map_err(ConnectError::Config)?)
        .map_err(tower::BoxError::from)
        .service(http_client);
    Ok(kube::Client::new(service, config.default_namespace))
}

/// `Ok` when the configuration's server host is an IP address or resolves, and also when a proxy
/// is set (the proxy resolves the name).
pub async fn check_config(config: &kube::Config) -> Result<(), Unresolvable> {
    if config.proxy_url.is_some() {
        return Ok(());
    }
    let Some(host) = config.cluster_url.host() else {
        return Ok(());
    };
    let port = config.cluster_url.port_u16().unwrap_or(443);
    check_host(
        host,
        port,
        &config.cluster_url.to_string(),
        Path::new(HOSTS_FILE),
        Path::new(RESOLV_CONF),
    )
    .await
}

/// `Ok` when `host` is an IP literal (bracketed or not) or resolves to at least one address.
/// `hosts` and `resolv_conf` are only named in the error message (whether they exist).
pub async fn check_host(
    host: &str,
    port: u16,
    url: &str,
    hosts: &Path,
    resolv_conf: &Path,
) -> Result<(), Unresolvable> {
    if is_ip_literal(host) {
        return Ok(());
    }
    let source = match tokio::net::lookup_host((host, port)).await {
        Ok(mut addresses) => match addresses.next() {
            Some(_) => return Ok(()),
            None => io::Error::new(io::ErrorKind::NotFound, "no addresses"),
        },
        Err(e) => e,
    };
    Err(Unresolvable {
        host: host.to_string(),
        url: url.to_string(),
        hosts: hosts.to_path_buf(),
        resolv_conf: resolv_conf.to_path_buf(),
        source,
    })
}

/// True for `10.0.0.1`, `::1` and `[::1]`.
pub fn is_ip_literal(host: &str) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse::<std::net::IpAddr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_literals_are_recognised() {
        for host in ["10.96.0.1", "127.0.0.1", "::1", "[::1]", "[fd00::1]"] {
            assert!(is_ip_literal(host), "{host}");
        }
        for host in ["kubernetes.default.svc", "localhost", "[localhost]", ""] {
            assert!(!is_ip_literal(host), "{host}");
        }
    }

    #[tokio::test]
    async fn an_ip_address_is_never_looked_up() {
        let missing = Path::new("/nonexistent/certboot/hosts");
        check_host("10.96.0.1", 443, "https://10.96.0.1", missing, missing)
            .await
            .expect("IP addresses need no resolver");
        check_host("[::1]", 6443, "https://[::1]:6443", missing, missing)
            .await
            .expect("bracketed IPv6 needs no resolver");
    }

    #[tokio::test]
    async fn an_unresolvable_name_fails_with_advice() {
        // `.invalid` never resolves (RFC 2606), with or without network access.
        let tmp = tempfile::tempdir().expect("tempdir");
        let hosts = tmp.path().join("hosts");
        std::fs::write(&hosts, "127.0.0.1 localhost\n").expect("write hosts");
        let resolv = tmp.path().join("resolv.conf");
        let url = "https://api.certboot.invalid:6443/";
        let message = check_host("api.certboot.invalid", 6443, url, &hosts, &resolv)
            .await
            .expect_err("must not resolve")
            .to_string();
        assert!(
            message.contains("cannot resolve the API server host \"api.certboot.invalid\""),
            "{message}"
        );
        assert!(message.contains(url), "{message}");
        assert!(message.contains("use an IP address"), "{message}");
        assert!(
            message.contains(&format!("{} (present)", hosts.display())),
            "{message}"
        );
        assert!(
            message.contains(&format!("{} (absent)", resolv.display())),
            "{message}"
        );
    }

    #[tokio::test]
    async fn localhost_resolves_here() {
        let missing = Path::new("/nonexistent");
        check_host("localhost", 443, "https://localhost", missing, missing)
            .await
            .expect("localhost resolves on a build machine");
    }
}
