//! One certificate, start to finish: key → PKCS#10 request → CSR object → submit → wait → verify,
//! then the atomic write. Used for the first certificate and for every renewal.

use std::sync::Mutex;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{DeleteParams, Preconditions};
use kube::{Api, Client};
use tracing::{info, warn};

use crate::config::Config;
use crate::csr;
use crate::csr::submit::{submit, Filing, StaleCsr};
use crate::csr::wait::{wait_for_certificate, WaitContext, WaitError};
use crate::error::Error;
use crate::events::{reason, Events, Kind};
use crate::store::origin::Origin;
use crate::store::{Bundle, Store};
use certboot_core::api::{with_retry, Operation};
use certboot_core::pki::expect::{check_expected, Expected};
use certboot_core::pki::key::PrivateKey;
use certboot_core::pki::pkcs10::build_pkcs10;
use certboot_core::pki::verify::{check_lifetime, verify_issued, Verified};
use certboot_core::timefmt::{human, rfc3339, unix_now};

/// Whether this is the pod's first certificate or a renewal (they differ only in the CSR name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    Initial,
    Renewal,
}

/// A verified certificate with its key, ready to write.
#[derive(Debug)]
pub struct Issued {
    pub key: PrivateKey,
    pub cert: Verified,
    pub csr_name: String,
    /// The UID of that CSR as created: a later delete is conditional on it, so a CSR of the same
    /// name created by someone else since is never removed.
    pub csr_uid: Option<String>,
}

/// Obtains certificates for one pod.
pub struct Certifier<'a> {
    api: Api<CertificateSigningRequest>,
    config: &'a Config,
    events: &'a Events,
}

impl<'a> Certifier<'a> {
    pub fn new(client: Client, config: &'a Config, events: &'a Events) -> Self {
        Certifier {
            api: Api::all(client),
            config,
            events,
        }
    }

    /// Generates a key, files a CSR and waits for a verified certificate, within
    /// `CERTBOOT_TIMEOUT` when set. With `ca_bundle` (the contents of `CERTBOOT_CA_BUNDLE`, read
    /// afresh for each attempt), the certificate must chain to it.
    pub async fn obtain(
        &self,
        attempt: Attempt,
        ca_bundle: Option<&[u8]>,
    ) -> Result<Issued, Error> {
        let stage = Mutex::new(
            "the CSR could not be filed: the API server did not answer (see the retry lines above)"
                .to_string(),
        );
        let work = self.obtain_tracking(attempt, ca_bundle, &stage);
        let Some(limit) = self.config.timeout else {
            return work.await;
        };
        match tokio::time::timeout(limit, work).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout {
                after: limit,
                waiting: stage.lock().map(|s| s.clone()).unwrap_or_default(),
            }),
        }
    }

    /// [`Certifier::obtain`] without the deadline; `stage` says what it is waiting for.
    async fn obtain_tracking(
        &self,
        attempt: Attempt,
        ca_bundle: Option<&[u8]>,
        stage: &Mutex<String>,
    ) -> Result<Issued, Error> {
        let request = &self.config.request;
        let signer = request.signer_name.as_str();
        let key = generate_key(request.key_algorithm).await?;
        let pkcs10 = build_pkcs10(request, &key)?;
        let name = match attempt {
            Attempt::Initial => csr::initial_name(&self.config.pod),
            Attempt::Renewal => csr::renewal_name(&self.config.pod, &key.fingerprint()),
        };
        let object = csr::build(&name, &pkcs10, &self.config.pod, request);
        let stale = if self.config.renew.delete_csr {
            StaleCsr::Delete
        } else {
            StaleCsr::FileAnew
        };
        let filing = Filing {
            stale,
            pod_uid: &self.config.pod.uid,
            events: self.events,
        };
        let created = submit(&self.api, &object, &key, &filing).await?;
        // A taken name makes certboot file under another one: from here on, the name filed.
        let name = created.metadata.name.clone().unwrap_or(name);
        if let Ok(mut stage) = stage.lock() {
            *stage = format!(
                "CSR {name} is still not issued by signer {signer} (to approve it by hand: kubectl certificate approve {name})"
            );
        }
        info!(csr = %name, signer, phase = "created", "created CSR {name} for signer {signer} ({} key, usages: {})", request.key_algorithm, request.usages.join(", "));
        self.events.post(
            Kind::Normal,
            reason::REQUESTED,
            format!("Created CSR {name} for signer {signer}; waiting for approval (kubectl certificate approve {name})"),
        );
        let ctx = WaitContext {
            signer,
            progress_interval: self.config.progress_interval,
            events: self.events,
        };
        let pem = wait_for_certificate(&self.api, &created, &ctx)
            .await
            .inspect_err(|e| self.report_wait_error(e))?;
        let now = unix_now();
        let expected = Expected {
            request,
            ca_bundle,
            max_lifetime: self.config.max_lifetime,
        };
        let verified = verify_issued(&pem, &key, now)
            .and_then(|cert| check_lifetime(&cert, self.config.min_lifetime, now).map(|()| cert))
            .and_then(|cert| check_expected(&cert, &expected, now).map(|()| cert));
        let cert = verified.map_err(|source| {
            self.events.post(
                Kind::Warning,
                reason::REJECTED,
                format!("Rejected the certificate of CSR {name}: {source}"),
            );
            Error::Rejected {
                csr: name.clone(),
                signer: signer.to_string(),
                source,
            }
        })?;
        self.note_expiration(&cert);
        Ok(Issued {
            key,
            cert,
            csr_name: name,
            csr_uid: created.metadata.uid.clone(),
        })
    }

    /// Writes the issued pair atomically, with the record of its CSR and signer, and announces it.
    pub fn store(
        &self,
        store: &Store,
        issued: &Issued,
        ca_bundle: Option<&[u8]>,
    ) -> Result<(), Error> {
        let key_pem = issued.key.to_pem();
        let origin = Origin::new(
            &issued.csr_name,
            &self.config.request.signer_name,
            &self.config.pod.uid,
            &issued.cert.leaf_sha256(),
        )
        .to_json();
        store.write(&Bundle {
            cert_pem: &issued.cert.chain_pem,
            key_pem: &key_pem,
            ca_pem: ca_bundle,
            origin: Some(&origin),
        })?;
        let (serial, not_after) = (&issued.cert.serial, rfc3339(issued.cert.not_after));
        info!(
            csr = %issued.csr_name,
            phase = "written",
            "wrote {} and {} (serial {serial}, valid until {not_after})",
            store.cert_path().display(),
            store.key_path().display()
        );
        self.events.post(
            Kind::Normal,
            reason::ISSUED,
            format!(
                "Certificate from CSR {} written: serial {serial}, valid until {not_after}",
                issued.csr_name
            ),
        );
        Ok(())
    }

    /// Deletes a CSR whose certificate is safely on disk (`CERTBOOT_DELETE_CSR=true`). Failure is
    /// only a warning: the controller-manager's CSR cleaner removes it within the hour anyway.
    pub async fn delete_csr(&self, issued: &Issued) {
        let name = issued.csr_name.as_str();
        let op = Operation::csr("delete", name);
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: issued.csr_uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match with_retry(&op, || self.api.delete(name, &params)).await {
            Ok(_) => info!(csr = %name, "deleted CSR {name} (CERTBOOT_DELETE_CSR=true)"),
            Err(e) if e.is_not_found() => {}
            Err(e) if e.is_conflict() => {
                info!(csr = %name, "CSR {name} was not deleted: it is no longer the one certboot created (another UID)")
            }
            Err(e) => warn!(csr = %name, "could not delete CSR {name}: {e}"),
        }
    }

    fn report_wait_error(&self, err: &WaitError) {
        let (reason, text) = match err {
            WaitError::Denied {
                name,
                reason,
                message,
            } => (
                reason::DENIED,
                format!("CSR {name} was denied: {reason}: {message}"),
            ),
            WaitError::Failed {
                name,
                reason,
                message,
            } => (
                reason::FAILED,
                format!("CSR {name} failed: {reason}: {message}"),
            ),
            _ => return,
        };
        self.events.post(Kind::Warning, reason, text);
    }

    /// API servers before 1.22 ignore `expirationSeconds`; say so instead of failing.
    fn note_expiration(&self, cert: &Verified) {
        let Some(wanted) = self.config.request.expiration_seconds else {
            return;
        };
        let got = cert.lifetime();
        let wanted = i64::from(wanted);
        // Signers may backdate notBefore by a few minutes; only a clear difference is reported.
        if (got - wanted).abs() > 600 {
            info!(
                "the signer issued a certificate valid for {} although CERTBOOT_EXPIRATION_SECONDS asked for {}: \
                 API servers before 1.22 and some signers ignore expirationSeconds; renewal follows the issued certificate",
                human(std::time::Duration::from_secs(got.max(0) as u64)),
                human(std::time::Duration::from_secs(wanted as u64))
            );
        }
    }
}

/// RSA key generation takes up to seconds; it runs off the async thread.
async fn generate_key(
    algorithm: certboot_core::pki::key::KeyAlgorithm,
) -> Result<PrivateKey, Error> {
    if !algorithm.is_rsa() {
        return Ok(PrivateKey::generate(algorithm)?);
    }
    tokio::task::spawn_blocking(move || PrivateKey::generate(algorithm))
        .await
        .map_err(|e| {
            Error::Key(certboot_core::pki::key::KeyError::Generate {
                algorithm,
                source: e.into(),
            })
        })?
        .map_err(Error::from)
}

/// One certificate against a scripted API server ([`certboot_core::api::mock`]): create, watch, verify,
/// write; and the ends that are not a certificate.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::code;
    use certboot_core::api::mock::{self, issue, stored, MockApi};
    use std::future::Future;
    use std::path::Path;
    use std::time::Duration;

    fn config(dir: &Path, extra: &[(&str, &str)]) -> Config {
        let mut vars = vec![
            ("POD_NAME", "web-0"),
            ("POD_NAMESPACE", "shop"),
            ("POD_UID", "6f1d3c52-2b0e-4b7a-9d4e-0c8f1a2b3c4d"),
            ("CERTBOOT_SIGNER_NAME", "example.com/web"),
            ("CERTBOOT_EVENTS", "false"),
        ];
        vars.extend_from_slice(extra);
        let dir = dir.display().to_string();
        let vars = vars
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain([("CERTBOOT_CERT_DIR".to_string(), dir)]);
        Config::from_env(vars, Path::new("/nonexistent")).expect("a valid configuration")
    }

    async fn obtain_with<S, F>(config: &Config, script: S) -> Result<Issued, Error>
    where
        S: FnOnce(MockApi) -> F,
        F: Future<Output = ()>,
    {
        let (client, server) = mock::pair();
        let events = Events::disabled();
        let certifier = Certifier::new(client, config, &events);
        let both = async { tokio::join!(certifier.obtain(Attempt::Initial, None), script(server)) };
        let (result, ()) = tokio::time::timeout(Duration::from_secs(7200), both)
            .await
            .expect("obtain and the script both finish");
        result
    }

    /// Answers the create with the object as stored, and returns it.
    async fn accept_create(server: &mut MockApi) -> CertificateSigningRequest {
        let (seen, reply) = server.next().await;
        assert_eq!(seen.method, "POST");
        let posted: CertificateSigningRequest =
            serde_json::from_slice(&seen.body).expect("a CSR was posted");
        reply.send(201, stored(&posted, "1", &[], None).to_string());
        posted
    }

    #[tokio::test(start_paused = true)]
    async fn an_issued_certificate_is_verified_and_written_as_a_matching_pair() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config(dir.path(), &[]);
        let issued = obtain_with(&config, |mut server| async move {
            let posted = accept_create(&mut server).await;
            assert_eq!(posted.metadata.name.as_deref(), Some("shop:web-0:6f1d3c"));
            let cert = issue(&posted);
            let done = stored(&posted, "2", &[("Approved", "True")], Some(&cert));
            server.watch_events(&[("MODIFIED", done)]).await;
        })
        .await
        .expect("a certificate");
        assert_eq!(issued.csr_name, "shop:web-0:6f1d3c");
        let store = Store::new(&config.output);
        let events = Events::disabled();
        let (client, _server) = mock::pair();
        Certifier::new(client, &config, &events)
            .store(&store, &issued, None)
            .expect("written");
        let on_disk = crate::check::read_trusted_pair(&store, &config, None, unix_now())
            .expect("a trusted pair");
        assert_eq!(on_disk.serial, issued.cert.serial);
    }

    #[tokio::test(start_paused = true)]
    async fn a_denied_csr_exits_with_the_denied_code() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config(dir.path(), &[]);
        let result = obtain_with(&config, |mut server| async move {
            let posted = accept_create(&mut server).await;
            let denied = stored(&posted, "2", &[("Denied", "True")], None);
            server.watch_events(&[("MODIFIED", denied)]).await;
        })
        .await;
        let err = result.expect_err("denied");
        assert_eq!(err.exit_code(), code::DENIED, "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_certificate_for_another_key_is_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config(dir.path(), &[]);
        let result = obtain_with(&config, |mut server| async move {
            let posted = accept_create(&mut server).await;
            let other = PrivateKey::generate(certboot_core::pki::key::KeyAlgorithm::EcdsaP256)
                .expect("a key");
            let mut foreign = posted.clone();
            let pkcs10 = build_pkcs10(&config_request(), &other).expect("a request");
            foreign.spec.request.0 = pkcs10.into_bytes();
            let done = stored(
                &posted,
                "2",
                &[("Approved", "True")],
                Some(&issue(&foreign)),
            );
            server.watch_events(&[("MODIFIED", done)]).await;
        })
        .await;
        let err = result.expect_err("rejected");
        assert_eq!(err.exit_code(), code::INVALID_CERTIFICATE, "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_certificate_below_the_lifetime_floor_is_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config(dir.path(), &[]);
        let result = obtain_with(&config, |mut server| async move {
            let posted = accept_create(&mut server).await;
            let now = unix_now();
            let cert = mock::issue_valid(&posted, now - 60, now + 2);
            let done = stored(&posted, "2", &[("Approved", "True")], Some(&cert));
            server.watch_events(&[("MODIFIED", done)]).await;
        })
        .await;
        let err = result.expect_err("rejected");
        assert_eq!(err.exit_code(), code::INVALID_CERTIFICATE, "{err}");
        assert!(err.to_string().contains("CERTBOOT_MIN_LIFETIME"), "{err}");
    }

    fn config_request() -> crate::config::RequestConfig {
        config(Path::new("/certs"), &[]).request
    }

    #[tokio::test(start_paused = true)]
    async fn nobody_approving_within_the_timeout_exits_with_the_timeout_code() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config(dir.path(), &[("CERTBOOT_TIMEOUT", "1m")]);
        let result = obtain_with(&config, |mut server| async move {
            accept_create(&mut server).await;
            let (watch, _open) = server.next().await;
            assert!(watch.is_watch());
            tokio::time::sleep(Duration::from_secs(3600)).await;
        })
        .await;
        let err = result.expect_err("timed out");
        assert_eq!(err.exit_code(), code::TIMEOUT, "{err}");
        assert!(
            err.to_string()
                .contains("kubectl certificate approve shop:web-0:6f1d3c"),
            "{err}"
        );
    }
}
