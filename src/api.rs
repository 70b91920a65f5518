//! Talking to the Kubernetes API: the client, retries of transient failures, and errors that say
//! what to fix.
//!
//! Every call names its [`Operation`] (verb, resource, object), so a failure reads like
//! "create certificatesigningrequests "shop:web-0:6f1d3c" forbidden: ... grant verb create ...".
//! Transient failures (connection refused or reset, timeouts, 429, 5xx) are retried with capped
//! exponential backoff and jitter (`backon`), honouring the server's `retryAfterSeconds`; each retry
//! is logged with its next delay. 400/401/403/404/409/422 are never retried.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use tracing::warn;

use crate::timefmt::{human, relative, unix_now};

tokio::task_local! {
    /// Set by the sidecar's renewal: when the certificate on disk expires (Unix seconds), so that
    /// every retry line also says how much time is left.
    pub static CURRENT_EXPIRY: i64;
}

/// "; the current certificate ... expires in X" inside a renewal, empty otherwise.
pub fn expiry_note() -> String {
    CURRENT_EXPIRY
        .try_with(|at| {
            format!(
                "; the current certificate stays in place and expires {}",
                relative(*at - unix_now())
            )
        })
        .unwrap_or_default()
}

/// The first delay between retries.
pub const RETRY_MIN_DELAY: Duration = Duration::from_millis(200);
/// The cap on the delay between retries.
pub const RETRY_MAX_DELAY: Duration = Duration::from_secs(30);

/// What certboot was doing when a call failed: the RBAC verb and resource, and the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    pub verb: &'static str,
    pub group: &'static str,
    pub resource: &'static str,
    pub name: String,
}

impl Operation {
    /// An operation on a CertificateSigningRequest.
    pub fn csr(verb: &'static str, name: &str) -> Operation {
        Operation {
            verb,
            group: "certificates.k8s.io",
            resource: "certificatesigningrequests",
            name: name.to_string(),
        }
    }

    /// An operation on a core/v1 Event.
    pub fn event(verb: &'static str, name: &str) -> Operation {
        Operation {
            verb,
            group: "",
            resource: "events",
            name: name.to_string(),
        }
    }
}

/// A failed API call, with what certboot was doing and what the user can do about it.
#[derive(Debug, thiserror::Error)]
#[error("{} {} {:?} failed: {detail}. {hint}", .op.verb, .op.resource, .op.name)]
pub struct ApiError {
    pub op: Operation,
    pub code: Option<u16>,
    detail: String,
    hint: String,
    #[source]
    source: Box<kube::Error>,
}

impl ApiError {
    /// Wraps a kube error with the operation that failed.
    pub fn new(op: Operation, err: kube::Error) -> ApiError {
        let code = status_code(&err);
        let detail = match &err {
            kube::Error::Api(status) => {
                format!("{} ({} {})", status.message, status.code, status.reason)
            }
            other => other.to_string(),
        };
        let hint = hint(&op, code, &err);
        ApiError {
            op,
            code,
            detail,
            hint,
            source: Box::new(err),
        }
    }

    /// True when the API server said 403 Forbidden.
    pub fn is_forbidden(&self) -> bool {
        self.code == Some(403)
    }

    /// True when the object does not exist (404).
    pub fn is_not_found(&self) -> bool {
        self.code == Some(404)
    }
}

fn hint(op: &Operation, code: Option<u16>, err: &kube::Error) -> String {
    let group = if op.group.is_empty() {
        "\"\""
    } else {
        op.group
    };
    match code {
        Some(403) if denied_by_admission(err) => "An admission policy or webhook refused the request (its message is above): \
             with manifests/policy/, the CSR must be named for the pod the token is bound to and the signer must be listed \
             in the ConfigMap kube-system/certboot-signers"
            .to_string(),
        Some(403) => format!(
            "RBAC: the pod's service account lacks verb \"{}\" on resource \"{}\" (apiGroup {group}); \
             grant it with a rule {{apiGroups: [{group}], resources: [{}], verbs: [{}]}} bound to the service account \
             (manifests/rbac.yaml has the complete set)",
            op.verb, op.resource, op.resource, op.verb
        ),
        Some(401) => "The API server rejected the credentials: check that the service account token is mounted \
                      (automountServiceAccountToken) or that KUBECONFIG points to a valid config"
            .to_string(),
        Some(422) | Some(400) => "The API server rejected the object: check CERTBOOT_SIGNER_NAME, CERTBOOT_USAGES and the names in the request".to_string(),
        Some(404) if op.verb == "create" => {
            "The certificates.k8s.io/v1 API is not served here: certboot needs Kubernetes 1.19 or newer".to_string()
        }
        Some(404) => "The object does not exist (deleted by someone, or by the controller-manager's CSR cleaner)".to_string(),
        Some(409) => "The object already exists".to_string(),
        Some(429) | Some(500..=599) => "The API server is overloaded or failing; certboot retries with backoff".to_string(),
        _ if is_transient(err) => "Cannot reach the API server: check network policies, KUBERNETES_SERVICE_HOST/PORT or the kubeconfig server address; certboot retries with backoff".to_string(),
        _ => "Check the API server address and credentials (in-cluster service account, or KUBECONFIG)".to_string(),
    }
}

/// True for a 403 from admission (a ValidatingAdmissionPolicy says "denied request", a webhook
/// "denied the request") rather than from RBAC ("cannot <verb> resource").
fn denied_by_admission(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(status) => {
            status.message.contains("denied request")
                || status.message.contains("denied the request")
        }
        _ => false,
    }
}

/// The HTTP status of an API error response, if the server answered.
pub fn status_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// True for failures worth retrying: the server did not answer, or answered 429 / 5xx.
pub fn is_transient(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(status) => matches!(status.code, 429 | 500 | 502 | 503 | 504),
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => true,
        kube::Error::Auth(_) => false,
        _ => false,
    }
}

/// The server's `retryAfterSeconds` hint (sent with 429 and some 5xx responses).
pub fn retry_after(err: &kube::Error) -> Option<Duration> {
    match err {
        kube::Error::Api(status) => status
            .details
            .as_ref()
            .map(|d| d.retry_after_seconds)
            .filter(|s| *s > 0)
            .map(|s| Duration::from_secs(u64::from(s))),
        _ => None,
    }
}

/// Why no Kubernetes client could be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot configure the Kubernetes client: {0}. In a pod, keep automountServiceAccountToken on; elsewhere, set KUBECONFIG")]
    Config(#[source] kube::Error),
    /// The API server's host name does not resolve (see [`crate::resolve`]); a complete message.
    #[error("{0}")]
    Unresolvable(String),
}

/// The Kubernetes client (in-cluster config, or `KUBECONFIG`). The server's host name is checked
/// first, so a name that cannot resolve fails at once with advice instead of being retried
/// forever.
///
/// The stack is kube's own (TLS from the config, connect/read/write timeouts, base URI, auth,
/// extra headers) with two differences:
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
    crate::resolve::check_config(&config)
        .await
        .map_err(ConnectError::Unresolvable)?;
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let https = config
        .rustls_https_connector_with_connector(http)
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

/// How long one API call may go unanswered (e.g. a paused or overloaded API server) before it
/// counts as a transient failure and is retried, with a log line. Watches are not affected: this
/// bounds only the wait for the response headers.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

fn no_answer() -> kube::Error {
    let err = std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!(
            "no answer from the API server within {}",
            human(CALL_TIMEOUT)
        ),
    );
    kube::Error::Service(Box::new(err))
}

/// The backoff policy for transient failures: 200 ms doubling to 30 s, with jitter, unbounded
/// in count (the overall `CERTBOOT_TIMEOUT` bounds it when set).
pub fn backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(RETRY_MIN_DELAY)
        .with_max_delay(RETRY_MAX_DELAY)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
}

/// Runs `call` until it succeeds or fails permanently, retrying transient failures with [`backoff`].
pub async fn with_retry<T, F, Fut>(op: &Operation, call: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut call = call;
    let bounded = || {
        let attempt = call();
        async move {
            tokio::time::timeout(CALL_TIMEOUT, attempt)
                .await
                .unwrap_or_else(|_| Err(no_answer()))
        }
    };
    bounded
        .retry(backoff())
        .sleep(tokio::time::sleep)
        .when(is_transient)
        .adjust(|err, delay| retry_after(err).or(delay))
        .notify(|err, delay| {
            warn!(
                verb = op.verb,
                resource = op.resource,
                name = %op.name,
                retry_in = %human(delay),
                "{} {} {:?} failed ({}); retrying in {}{}",
                op.verb,
                op.resource,
                op.name,
                short(err),
                human(delay),
                expiry_note()
            );
        })
        .await
        .map_err(|err| ApiError::new(op.clone(), err))
}

/// A one-line description of a kube error for retry logs.
pub fn short(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => {
            format!("{} {}: {}", status.code, status.reason, status.message)
        }
        other => {
            // Error chains often repeat their source's text; keep each piece once.
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(inner) = source {
                let piece = inner.to_string();
                if !text.contains(&piece) {
                    text.push_str(": ");
                    text.push_str(&piece);
                }
                source = inner.source();
            }
            text
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::response::StatusDetails;
    use kube::core::Status;

    fn api_error(code: u16, retry_after_seconds: Option<u32>) -> kube::Error {
        let mut status = Status::failure("boom", "Reason");
        status.code = code;
        status.details = retry_after_seconds.map(|s| StatusDetails {
            name: String::new(),
            group: String::new(),
            kind: String::new(),
            uid: String::new(),
            causes: Vec::new(),
            retry_after_seconds: s,
        });
        kube::Error::Api(Box::new(status))
    }

    #[test]
    fn only_429_and_5xx_are_transient_among_api_answers() {
        for code in [429, 500, 502, 503, 504] {
            assert!(is_transient(&api_error(code, None)), "{code}");
        }
        for code in [400, 401, 403, 404, 409, 422] {
            assert!(!is_transient(&api_error(code, None)), "{code}");
        }
    }

    #[test]
    fn retry_after_is_honoured() {
        assert_eq!(
            retry_after(&api_error(429, Some(7))),
            Some(Duration::from_secs(7))
        );
        assert_eq!(retry_after(&api_error(429, None)), None);
    }

    #[test]
    fn forbidden_names_verb_resource_and_the_rule_to_add() {
        let err = ApiError::new(
            Operation::csr("create", "shop:web-0:6f1d3c"),
            api_error(403, None),
        );
        let text = err.to_string();
        assert!(err.is_forbidden());
        assert!(text.contains("verb \"create\""), "{text}");
        assert!(text.contains("certificatesigningrequests"), "{text}");
        assert!(text.contains("certificates.k8s.io"), "{text}");
        assert!(text.contains("manifests/rbac.yaml"), "{text}");
    }

    #[test]
    fn forbidden_by_an_admission_policy_does_not_blame_rbac() {
        let mut status = Status::failure(
            "ValidatingAdmissionPolicy 'certboot-csr-guard-rails' with binding 'certboot-csr-guard-rails' denied request: no",
            "Forbidden",
        );
        status.code = 403;
        let err = ApiError::new(
            Operation::csr("create", "shop:web-0:6f1d3c"),
            kube::Error::Api(Box::new(status)),
        );
        let text = err.to_string();
        assert!(text.contains("denied request: no"), "{text}");
        assert!(text.contains("admission policy or webhook"), "{text}");
        assert!(!text.contains("RBAC"), "{text}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_unanswered_call_times_out_and_is_retried() {
        let mut calls = 0;
        let result = with_retry(&Operation::csr("create", "x"), || {
            calls += 1;
            let attempt = calls;
            async move {
                if attempt == 1 {
                    std::future::pending::<()>().await;
                }
                Ok(attempt)
            }
        })
        .await;
        assert_eq!(result.unwrap(), 2);
        assert!(is_transient(&no_answer()));
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_are_not_retried_and_transient_ones_are() {
        let mut calls = 0;
        let result: Result<(), ApiError> = with_retry(&Operation::csr("get", "x"), || {
            calls += 1;
            async { Err(api_error(403, None)) }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls, 1);

        let mut calls = 0;
        let result = with_retry(&Operation::csr("get", "x"), || {
            calls += 1;
            let attempt = calls;
            async move {
                if attempt < 4 {
                    Err(api_error(503, None))
                } else {
                    Ok(attempt)
                }
            }
        })
        .await;
        assert_eq!(result.unwrap(), 4);
    }
}

#[cfg(test)]
mod expiry_note_tests {
    use super::*;

    #[tokio::test]
    async fn retry_lines_inside_a_renewal_say_when_the_current_certificate_expires() {
        assert_eq!(expiry_note(), "");
        let note = CURRENT_EXPIRY
            .scope(unix_now() + 120, async { expiry_note() })
            .await;
        assert!(
            note.contains("the current certificate stays in place and expires in"),
            "{note}"
        );
    }
}

#[cfg(test)]
mod retry_log_tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retry_lines_carry_the_expiry_note_inside_a_renewal() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let mut calls = 0;
        let call = || {
            calls += 1;
            let attempt = calls;
            async move {
                if attempt < 2 {
                    let mut status = kube::core::Status::failure("down", "ServiceUnavailable");
                    status.code = 503;
                    Err(kube::Error::Api(Box::new(status)))
                } else {
                    Ok(())
                }
            }
        };
        CURRENT_EXPIRY
            .scope(
                unix_now() + 120,
                with_retry(&Operation::csr("create", "x"), call),
            )
            .await
            .unwrap();
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert!(
            text.contains("retrying in") && text.contains("expires in"),
            "{text}"
        );
    }
}
