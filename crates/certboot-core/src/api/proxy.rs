//! The kubeconfig's `proxy-url` (or `HTTPS_PROXY`/`https_proxy` when it has none, minus the
//! hosts in `NO_PROXY`: kube reads all three into `Config::proxy_url`), honoured by certboot's
//! own HTTP stack ([`crate::api::client`]) the way kube's stack honours it: an `http://` or
//! `https://` proxy is asked to open a tunnel (HTTP `CONNECT`) to the API server, with
//! `Proxy-Authorization: Basic` when the URL carries a user and password (percent-decoded); TLS to the API server
//! then runs inside the tunnel. The tunnel is hyper-util's, which kube itself uses.
//!
//! Any other scheme (`socks5://`, `socks4://`, none) is a configuration error that names the URL,
//! never silently ignored. In a pod, in-cluster configuration has no proxy.

use hyper_util::client::legacy::connect::proxy::Tunnel;

/// How certboot reaches the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Straight to the server.
    Direct,
    /// Through an HTTP proxy at this URL (without its user and password).
    Http(http::Uri),
    /// Through an HTTP proxy reached over TLS at this URL.
    Https(http::Uri),
}

/// The proxy URL's scheme is not one certboot can use.
#[derive(Debug, thiserror::Error)]
#[error("the kubeconfig's proxy-url (or HTTPS_PROXY) {url} uses the scheme {scheme:?}, which certboot does not support: use an http:// or https:// proxy that accepts CONNECT, list the API server's host in NO_PROXY, or remove the proxy")]
pub struct UnsupportedProxy {
    /// The URL without its user and password.
    pub url: String,
    pub scheme: String,
}

/// The route for `config`, and the `Proxy-Authorization` value for a proxy URL with a user.
pub fn route(
    config: &kube::Config,
) -> Result<(Route, Option<http::HeaderValue>), UnsupportedProxy> {
    let Some(proxy) = &config.proxy_url else {
        return Ok((Route::Direct, None));
    };
    let (url, auth) = split_userinfo(proxy);
    let unsupported = || UnsupportedProxy {
        url: url.to_string(),
        scheme: proxy.scheme_str().unwrap_or("").to_string(),
    };
    match proxy.scheme_str() {
        Some("http") => Ok((Route::Http(url), auth)),
        Some("https") => Ok((Route::Https(url), auth)),
        _ => Err(unsupported()),
    }
}

/// `url` without its user and password, and those as a Basic credential (percent-decoded, as
/// kube does: `http::Uri` keeps the escapes).
fn split_userinfo(url: &http::Uri) -> (http::Uri, Option<http::HeaderValue>) {
    use base64::Engine;
    let Some((userinfo, host)) = url.authority().and_then(|a| a.as_str().split_once('@')) else {
        return (url.clone(), None);
    };
    let mut parts = http::uri::Builder::new()
        .authority(host)
        .path_and_query("/");
    if let Some(scheme) = url.scheme() {
        parts = parts.scheme(scheme.clone());
    }
    let decoded: Vec<u8> = percent_encoding::percent_decode_str(userinfo).collect();
    let basic = base64::engine::general_purpose::STANDARD.encode(decoded);
    let auth = http::HeaderValue::from_str(&format!("Basic {basic}")).ok();
    (parts.build().unwrap_or_else(|_| url.clone()), auth)
}

/// A tunnel through `proxy` over `connector` (which reaches the proxy).
pub fn tunnel<C>(proxy: http::Uri, auth: Option<http::HeaderValue>, connector: C) -> Tunnel<C> {
    let tunnel = Tunnel::new(proxy, connector);
    match auth {
        Some(auth) => tunnel.with_auth(auth),
        None => tunnel,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(proxy: Option<&str>) -> kube::Config {
        let mut config = kube::Config::new("https://10.0.0.1:6443".parse().unwrap());
        config.proxy_url = proxy.map(|p| p.parse().unwrap());
        config
    }

    #[test]
    fn no_proxy_is_direct() {
        assert_eq!(route(&config(None)).unwrap(), (Route::Direct, None));
    }

    #[test]
    fn http_and_https_proxies_tunnel_with_basic_auth_from_the_url() {
        let (route_, auth) = route(&config(Some("http://127.0.0.1:3128"))).unwrap();
        assert_eq!(
            route_,
            Route::Http("http://127.0.0.1:3128".parse().unwrap())
        );
        assert_eq!(auth, None);
        let (route_, auth) =
            route(&config(Some("https://user:pa%40ss@proxy.example:8443"))).unwrap();
        assert_eq!(
            route_,
            Route::Https("https://proxy.example:8443".parse().unwrap())
        );
        // "user:pa@ss", percent-decoded, in Basic.
        assert_eq!(auth.unwrap(), "Basic dXNlcjpwYUBzcw==");
    }

    #[test]
    fn a_socks_or_schemeless_proxy_is_a_clear_error_without_the_password() {
        let err = route(&config(Some("socks5://user:secret@127.0.0.1:1080"))).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("socks5://127.0.0.1:1080/"), "{message}");
        assert!(message.contains("\"socks5\""), "{message}");
        assert!(
            message.contains("use an http:// or https:// proxy"),
            "{message}"
        );
        assert!(!message.contains("secret"), "{message}");
        let err = route(&config(Some("127.0.0.1:3128"))).unwrap_err();
        assert!(err.to_string().contains("scheme \"\""), "{err}");
    }
}
