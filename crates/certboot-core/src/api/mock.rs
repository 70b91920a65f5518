//! Test-only: a scripted Kubernetes API server behind a real [`kube::Client`], on tower-test's
//! mock pair (as kube-rs tests itself). A test drives both sides in one task: the code under test
//! makes its calls through the client, and the script answers each request in turn and asserts
//! what it saw. No control plane, no network; with `start_paused` tokio time, backoff sleeps pass
//! at once.

use http::{Request, Response};
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition, CertificateSigningRequestStatus,
};
use k8s_openapi::ByteString;
use kube::client::Body;
use serde_json::{json, Value};
use tower_test::mock::{self, Handle};

/// The server side of a mocked API.
pub struct MockApi {
    handle: Handle<Request<Body>, Response<Body>>,
}

/// A request the script received.
#[derive(Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: Vec<u8>,
}

impl Seen {
    /// The value of query parameter `key` (percent-decoding only what CSR names need).
    pub fn param(&self, key: &str) -> Option<String> {
        self.query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.replace("%3D", "=").replace("%3A", ":"))
    }

    /// True for a watch request.
    pub fn is_watch(&self) -> bool {
        self.method == "GET" && self.param("watch").as_deref() == Some("true")
    }

    /// The request body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON request body")
    }
}

/// A client whose requests go to the returned script handle.
pub fn pair() -> (kube::Client, MockApi) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (kube::Client::new(service, "default"), MockApi { handle })
}

/// Runs the code under test (given the client) and the script (given its server) together, and
/// returns what the code returned. Both must finish within an hour of tokio time (paused in these
/// tests, so the hour passes only as their own sleeps do): a code path that never ends fails here
/// instead of hanging the test run.
pub async fn scenario<T, C, CF, S, SF>(code: C, script: S) -> T
where
    C: FnOnce(kube::Client) -> CF,
    CF: std::future::Future<Output = T>,
    S: FnOnce(MockApi) -> SF,
    SF: std::future::Future<Output = ()>,
{
    let (client, server) = pair();
    let both = async { tokio::join!(code(client), script(server)) };
    let (result, ()) = tokio::time::timeout(std::time::Duration::from_secs(3600), both)
        .await
        .expect("the code under test and the script both finish");
    result
}

/// The answer to one request, to be sent when the script decides.
pub struct Reply(mock::SendResponse<Response<Body>>);

impl Reply {
    /// Answers `status` with `body`.
    pub fn send(self, status: u16, body: impl Into<Vec<u8>>) {
        let response = Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(body.into()))
            .expect("a response");
        self.0.send_response(response);
    }
}

impl MockApi {
    /// Waits for the next request, answers `status` with `body`, and returns what was asked.
    pub async fn reply(&mut self, status: u16, body: impl Into<Vec<u8>>) -> Seen {
        let (seen, reply) = self.next().await;
        reply.send(status, body);
        seen
    }

    /// Waits for the next request; the script answers it through [`Reply`].
    pub async fn next(&mut self) -> (Seen, Reply) {
        let (request, send) = self
            .handle
            .next_request()
            .await
            .expect("the code under test made another request");
        let (parts, request_body) = request.into_parts();
        let seen = Seen {
            method: parts.method.to_string(),
            path: parts.uri.path().to_string(),
            query: parts.uri.query().unwrap_or_default().to_string(),
            body: request_body
                .collect_bytes()
                .await
                .expect("a readable body")
                .to_vec(),
        };
        (seen, Reply(send))
    }

    /// Answers the next request, which must be a watch, with `events` and then the end of the
    /// stream (what a server does when its watch timeout passes).
    pub async fn watch_events(&mut self, events: &[(&str, Value)]) -> Seen {
        let lines: String = events
            .iter()
            .map(|(kind, object)| format!("{}\n", json!({"type": kind, "object": object})))
            .collect();
        let seen = self.reply(200, lines).await;
        assert!(seen.is_watch(), "expected a watch, got {seen:?}");
        seen
    }

    /// Answers the next request with an API error (a `Status` object).
    pub async fn fail(&mut self, code: u16, reason: &str) -> Seen {
        self.reply(code, status(code, reason).to_string()).await
    }
}

/// A `Status` object, as the API server sends with an error.
pub fn status(code: u16, reason: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("mocked {reason}"), "reason": reason, "code": code,
    })
}

/// `csr` as stored at `resource_version`, with `conditions` (type, status) and a certificate.
pub fn stored(
    csr: &CertificateSigningRequest,
    resource_version: &str,
    conditions: &[(&str, &str)],
    certificate: Option<&[u8]>,
) -> Value {
    let mut csr = csr.clone();
    csr.metadata.resource_version = Some(resource_version.to_string());
    csr.metadata.uid.get_or_insert_with(|| "uid-1".to_string());
    if !conditions.is_empty() || certificate.is_some() {
        csr.status = Some(CertificateSigningRequestStatus {
            conditions: Some(
                conditions
                    .iter()
                    .map(|(kind, status)| CertificateSigningRequestCondition {
                        type_: kind.to_string(),
                        status: status.to_string(),
                        reason: Some(format!("Mocked{kind}")),
                        message: Some(format!("{kind} by the test")),
                        ..Default::default()
                    })
                    .collect(),
            ),
            certificate: certificate.map(|c| ByteString(c.to_vec())),
        });
    }
    serde_json::to_value(csr).expect("a CSR serializes")
}

/// A certificate for the PKCS#10 request in `csr`, signed by a fresh test CA (leaf, then CA).
pub fn issue(csr: &CertificateSigningRequest) -> Vec<u8> {
    let now = crate::timefmt::unix_now();
    issue_valid(csr, now - 300, now + 86_400)
}

/// Like [`issue`], valid from `not_before` to `not_after` (Unix seconds, not before 1970).
pub fn issue_valid(csr: &CertificateSigningRequest, not_before: i64, not_after: i64) -> Vec<u8> {
    let at = |unix: i64| {
        rcgen::date_time_ymd(1970, 1, 1) + std::time::Duration::from_secs(unix.max(0) as u64)
    };
    issue_with(csr, |params| {
        params.not_before = at(not_before);
        params.not_after = at(not_after);
    })
}

fn issue_with(
    csr: &CertificateSigningRequest,
    adjust: impl FnOnce(&mut rcgen::CertificateParams),
) -> Vec<u8> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let pem = String::from_utf8(csr.spec.request.0.clone()).expect("PEM request");
    let mut request = rcgen::CertificateSigningRequestParams::from_pem(&pem).expect("a PKCS#10");
    adjust(&mut request.params);
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_pem = ca.self_signed(&ca_key).expect("CA").pem();
    let issuer = Issuer::from_params(&ca, &ca_key);
    let leaf = request.signed_by(&issuer).expect("signed").pem();
    format!("{leaf}{ca_pem}").into_bytes()
}
