//! kube clients and kubeconfig files for the harness's apiserver: bearer-token clients (admin,
//! service accounts), client-certificate clients, an unauthenticated probe client, and
//! kubeconfig files for the certboot binary (`KUBECONFIG`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use kube::config::AuthInfo;
use kube::{Client, Config};
use secrecy::SecretString;

use super::pki::certificate_ders;

/// Where the apiserver is and which CA signs its serving certificate.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// `https://127.0.0.1:PORT`
    pub url: String,
    /// The CA certificate (PEM) to trust.
    pub ca_pem: String,
    /// The same CA certificate as a file.
    pub ca_path: PathBuf,
}

impl Endpoint {
    /// A client authenticating with a bearer token.
    pub fn token_client(&self, token: &str) -> Client {
        let auth = AuthInfo {
            token: Some(SecretString::from(token.to_owned())),
            ..Default::default()
        };
        self.client(auth)
    }

    /// A client authenticating with a client certificate; the PEMs are read from files.
    pub fn cert_client(&self, cert_path: &Path, key_path: &Path) -> Client {
        let auth = AuthInfo {
            client_certificate: Some(cert_path.display().to_string()),
            client_key: Some(key_path.display().to_string()),
            ..Default::default()
        };
        self.client(auth)
    }

    /// The kube config (trusting the harness CA) for a given identity.
    pub fn config(&self, auth: AuthInfo) -> Config {
        let mut config = Config::new(self.url.parse().expect("apiserver URL"));
        config.root_cert = Some(certificate_ders(&self.ca_pem));
        config.auth_info = auth;
        config
    }

    fn client(&self, auth: AuthInfo) -> Client {
        Client::try_from(self.config(auth)).expect("build a kube client")
    }

    /// Writes a kubeconfig authenticating with `token` to a new file in `dir` and returns its
    /// path (`dir/kubeconfig-N.yaml`; the CA is referenced by absolute path).
    pub fn write_token_kubeconfig(&self, dir: &Path, token: &str) -> PathBuf {
        self.write_kubeconfig(dir, serde_json::json!({ "token": token }))
    }

    /// Writes a kubeconfig authenticating with a client certificate (files) to a new file in `dir`.
    pub fn write_cert_kubeconfig(&self, dir: &Path, cert_path: &Path, key_path: &Path) -> PathBuf {
        self.write_kubeconfig(
            dir,
            serde_json::json!({
                "client-certificate": cert_path,
                "client-key": key_path,
            }),
        )
    }

    fn write_kubeconfig(&self, dir: &Path, user: serde_json::Value) -> PathBuf {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let kubeconfig = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{
                "name": "harness",
                "cluster": { "server": self.url, "certificate-authority": self.ca_path },
            }],
            "users": [{ "name": "harness-user", "user": user }],
            "contexts": [{
                "name": "harness",
                "context": { "cluster": "harness", "user": "harness-user", "namespace": "default" },
            }],
            "current-context": "harness",
        });
        let path = dir.join(format!(
            "kubeconfig-{}.yaml",
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let yaml = serde_yaml::to_string(&kubeconfig).expect("serialize kubeconfig");
        std::fs::write(&path, yaml).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }
}

/// An anonymous client that trusts any certificate: probes `/healthz` of components whose
/// serving certificate is self-generated (kube-controller-manager).
pub fn insecure_probe_client(url: &str) -> Client {
    let mut config = Config::new(url.parse().expect("probe URL"));
    config.accept_invalid_certs = true;
    config.default_retry = false;
    Client::try_from(config).expect("build a probe client")
}

/// `GET path` → the body, if the server answered 2xx.
pub async fn get_text(client: &Client, path: &str) -> Result<String, kube::Error> {
    let request = http::Request::get(path)
        .body(Vec::new())
        .expect("build a GET request");
    client.request_text(request).await
}
