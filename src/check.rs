//! The pair on disk: `certboot check` (the exec probe for distroless images: exit 0 only when the
//! pair exists, matches, is the one certboot obtained for this pod, and stays valid for at least
//! the given margin), and the reuse test at start (a restarted init container files no second
//! CSR). Both read the pair through [`read_trusted_pair`].
//!
//! The output directory is shared with the app, so a pair found there proves nothing by itself.
//! Trusted means: cert and key match and are valid now ([`verify_pair`]); the certificate chains to
//! `CERTBOOT_CA_BUNDLE` when set, names exactly the configured CN and SANs, and lives no longer
//! than `CERTBOOT_MAX_LIFETIME` ([`check_expected`], the same checks as for an issued
//! certificate); and the record beside it names this certificate, the configured signer and a
//! CSR of this pod ([`Origin::check`]).

use std::time::Duration;

use tracing::{info, warn};

use crate::config::Config;
use crate::csr;
use crate::error::Error;
use crate::renew::schedule::renew_at;
use crate::store::origin::{Origin, Wanted};
use crate::store::Store;
use certboot_core::pki::expect::{check_expected, Expected};
use certboot_core::pki::verify::{verify_pair, PairError, Verified};
use certboot_core::timefmt::{rfc3339, unix_now};

/// The pair in `store`, trusted at `now` (see the module documentation); `ca_bundle` is the
/// contents of `CERTBOOT_CA_BUNDLE`.
pub fn read_trusted_pair(
    store: &Store,
    config: &Config,
    ca_bundle: Option<&[u8]>,
    now: i64,
) -> Result<Verified, Error> {
    let pair = store
        .read_pair()?
        .ok_or_else(|| Error::NoPair(store.dir().display().to_string()))?;
    let cert = verify_pair(&pair.cert_pem, &pair.key_pem, now)?;
    let expected = Expected {
        request: &config.request,
        ca_bundle,
        max_lifetime: config.max_lifetime,
    };
    check_expected(&cert, &expected, now).map_err(PairError::Certificate)?;
    let csr_name = csr::initial_name(&config.pod);
    let wanted = Wanted {
        csr_name: &csr_name,
        signer_name: &config.request.signer_name,
        pod_uid: &config.pod.uid,
        cert_sha256: &cert.leaf_sha256(),
    };
    Origin::check(pair.origin.as_deref(), &wanted)?;
    Ok(cert)
}

/// `certboot check`: the pair for `config`; `Ok` carries the verified certificate.
pub fn check(config: &Config, min_valid: Duration) -> Result<Verified, Error> {
    let now = unix_now();
    let ca_bundle = config.output.read_ca_bundle()?;
    let verified = read_trusted_pair(
        &Store::new(&config.output),
        config,
        ca_bundle.as_deref(),
        now,
    )?;
    let left = Duration::from_secs((verified.not_after - now).max(0) as u64);
    if left < min_valid {
        return Err(Error::ExpiresSoon {
            left,
            wanted: min_valid,
        });
    }
    Ok(verified)
}

/// The `/healthz` check of the pair on disk: [`read_trusted_pair`] at the time of each request,
/// against `CERTBOOT_CA_BUNDLE` as it is then (a mounted ConfigMap changes during a CA rotation).
pub fn disk_check(config: &Config) -> impl Fn() -> Result<(), String> + Send + Sync + 'static {
    let store = Store::new(&config.output);
    let config = config.clone();
    move || {
        let ca_bundle = config.output.read_ca_bundle().map_err(|e| e.to_string())?;
        read_trusted_pair(&store, &config, ca_bundle.as_deref(), unix_now())
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

/// A trusted pair on disk from an earlier run of this pod that is not yet due for renewal, if
/// any. Anything else is logged and means "request a new one": no pair at all is said nothing
/// about, one that is due for renewal is an info line, one that is not trusted (mismatched,
/// expired, another identity, too long-lived, not from the CA bundle, no or another record) or
/// cannot be read safely (a symlink out of the directory, a FIFO, an oversized file) a warning
/// that says why.
pub fn reusable_pair(store: &Store, config: &Config, ca_bundle: Option<&[u8]>) -> Option<Verified> {
    let now = unix_now();
    match read_trusted_pair(store, config, ca_bundle, now) {
        Ok(cert) if renew_at(&cert, cert.not_before, config.renew.renew_before, 0.0) > now => {
            Some(cert)
        }
        Ok(cert) => {
            info!(
                "the pair on disk is due for renewal (valid until {}); requesting a new one",
                rfc3339(cert.not_after)
            );
            None
        }
        Err(Error::NoPair(_)) => None,
        Err(e) => {
            warn!("the pair on disk is not reused: {e}; requesting a new one");
            None
        }
    }
}

/// A pair planted in the shared directory by the app, next to one certboot obtained.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Bundle;
    use certboot_core::pki::key::{KeyAlgorithm, PrivateKey};
    use certboot_core::pki::verify::verify_chain;
    use std::path::Path;
    use std::time::SystemTime;

    fn config(dir: &Path) -> Config {
        let vars = [
            ("POD_NAME", "web-0"),
            ("POD_NAMESPACE", "shop"),
            ("POD_UID", "6f1d3c52-2b0e-4b7a-9d4e-0c8f1a2b3c4d"),
            ("POD_IPS", "10.0.0.7"),
            ("CERTBOOT_SIGNER_NAME", "example.com/web"),
            ("CERTBOOT_DNS_NAMES", "web.shop.svc"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain([("CERTBOOT_CERT_DIR".to_string(), dir.display().to_string())]);
        Config::from_env(vars, Path::new("/nonexistent")).unwrap()
    }

    /// A self-signed certificate for `key` naming the configured identity, valid for `days`.
    fn self_signed(key: &PrivateKey, days: u64) -> String {
        let mut p = rcgen::CertificateParams::new(vec!["web.shop.svc".to_string()]).unwrap();
        p.subject_alt_names
            .push(rcgen::SanType::IpAddress("10.0.0.7".parse().unwrap()));
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "web-0.shop");
        let start = SystemTime::now() - Duration::from_secs(60);
        p.not_before = start.into();
        p.not_after = (start + Duration::from_secs(days * 86_400)).into();
        p.self_signed(&*key.signing_key().unwrap()).unwrap().pem()
    }

    fn write(store: &Store, cert: &str, key: &PrivateKey, origin: Option<&str>) {
        store
            .write(&Bundle {
                cert_pem: cert,
                key_pem: &key.to_pem(),
                ca_pem: None,
                origin,
            })
            .unwrap();
    }

    fn origin_for(cert: &str, key: &PrivateKey, csr: &str) -> String {
        let verified = verify_chain(cert.as_bytes(), key.public_key_raw(), unix_now()).unwrap();
        Origin::new(
            csr,
            "example.com/web",
            "6f1d3c52-2b0e-4b7a-9d4e-0c8f1a2b3c4d",
            &verified.leaf_sha256(),
        )
        .to_json()
    }

    /// A self-signed pair valid for `days` on disk, with the record certboot writes for this
    /// pod's CSR.
    struct RecordedPair {
        _dir: tempfile::TempDir,
        config: Config,
        store: Store,
        key: PrivateKey,
        cert: String,
    }

    fn recorded_pair(days: u64) -> RecordedPair {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let store = Store::new(&config.output);
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let cert = self_signed(&key, days);
        write(
            &store,
            &cert,
            &key,
            Some(&origin_for(&cert, &key, "shop:web-0:6f1d3c")),
        );
        RecordedPair {
            _dir: dir,
            config,
            store,
            key,
            cert,
        }
    }

    #[test]
    fn a_planted_self_signed_hundred_year_pair_is_neither_reused_nor_healthy() {
        // Even with a record forged to match it.
        let RecordedPair {
            _dir,
            config,
            store,
            ..
        } = recorded_pair(36_500);
        let err = check(&config, Duration::ZERO).unwrap_err();
        assert_eq!(err.exit_code(), crate::error::code::INVALID_CERTIFICATE);
        assert!(err.to_string().contains("CERTBOOT_MAX_LIFETIME"), "{err}");
        assert!(reusable_pair(&store, &config, None).is_none());
        // The sidecar's /healthz runs the same check on every request.
        let health = disk_check(&config)().unwrap_err();
        assert!(health.contains("CERTBOOT_MAX_LIFETIME"), "{health}");
    }

    #[test]
    fn a_pair_is_reused_only_with_the_record_of_this_pods_csr() {
        // What certboot itself writes: reused, and `check` passes.
        let RecordedPair {
            _dir,
            config,
            store,
            key,
            cert,
        } = recorded_pair(30);
        assert!(reusable_pair(&store, &config, None).is_some());
        assert!(check(&config, Duration::ZERO).is_ok());
        // No record: planted (or written by a certboot before records).
        write(&store, &cert, &key, None);
        let err = check(&config, Duration::ZERO).unwrap_err();
        assert!(err.to_string().contains("no record of the CSR"), "{err}");
        assert!(reusable_pair(&store, &config, None).is_none());
        // The record of another certificate: the certificate was swapped afterwards.
        let other_key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let other = self_signed(&other_key, 30);
        write(
            &store,
            &cert,
            &key,
            Some(&origin_for(&other, &other_key, "shop:web-0:6f1d3c")),
        );
        let err = check(&config, Duration::ZERO).unwrap_err();
        assert!(err.to_string().contains("another certificate"), "{err}");
        // Another pod's CSR.
        write(
            &store,
            &cert,
            &key,
            Some(&origin_for(&cert, &key, "shop:db-0:aaaaaa")),
        );
        let err = check(&config, Duration::ZERO).unwrap_err();
        assert!(err.to_string().contains("not by this pod"), "{err}");
        assert_eq!(err.exit_code(), crate::error::code::INVALID_CERTIFICATE);
    }

    #[test]
    fn a_pair_whose_chain_goes_through_another_pods_leaf_is_neither_reused_nor_healthy() {
        let RecordedPair {
            _dir,
            config,
            store,
            key,
            ..
        } = recorded_pair(30);
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let bundle = ca.self_signed(&ca_key).unwrap().pem();
        // Another pod's certificate from the bundle's CA (CA:false) signs one for our identity.
        let victim_key = rcgen::KeyPair::generate().unwrap();
        let mut victim = rcgen::CertificateParams::new(vec!["db.shop.svc".to_string()]).unwrap();
        victim.is_ca = rcgen::IsCa::ExplicitNoCa;
        let victim_pem = victim
            .signed_by(&victim_key, &rcgen::Issuer::from_params(&ca, &ca_key))
            .unwrap()
            .pem();
        let mut ours = rcgen::CertificateParams::new(vec!["web.shop.svc".to_string()]).unwrap();
        ours.subject_alt_names
            .push(rcgen::SanType::IpAddress("10.0.0.7".parse().unwrap()));
        ours.distinguished_name
            .push(rcgen::DnType::CommonName, "web-0.shop");
        let start = SystemTime::now() - Duration::from_secs(60);
        ours.not_before = start.into();
        ours.not_after = (start + Duration::from_secs(30 * 86_400)).into();
        let forged = ours
            .signed_by(
                &*key.signing_key().unwrap(),
                &rcgen::Issuer::from_params(&victim, &victim_key),
            )
            .unwrap()
            .pem();
        let chain = format!("{forged}{victim_pem}");
        // With the record certboot would write for it.
        let leaf = Verified {
            chain_pem: chain.clone(),
            serial: String::new(),
            subject: String::new(),
            not_before: 0,
            not_after: 0,
        };
        let record = Origin::new(
            "shop:web-0:6f1d3c",
            "example.com/web",
            "6f1d3c52-2b0e-4b7a-9d4e-0c8f1a2b3c4d",
            &leaf.leaf_sha256(),
        )
        .to_json();
        write(&store, &chain, &key, Some(&record));
        let bundle = Some(bundle.as_bytes());
        assert!(reusable_pair(&store, &config, bundle).is_none());
        assert!(reusable_pair(&store, &config, None).is_none());
        let err = read_trusted_pair(&store, &config, bundle, unix_now()).unwrap_err();
        assert!(err.to_string().contains("is not a CA certificate"), "{err}");
        assert_eq!(err.exit_code(), crate::error::code::INVALID_CERTIFICATE);
        let health = disk_check(&config)().unwrap_err();
        assert!(health.contains("is not a CA certificate"), "{health}");
    }

    #[test]
    fn with_a_ca_bundle_a_pair_must_chain_to_it() {
        let RecordedPair {
            _dir,
            config,
            store,
            ..
        } = recorded_pair(30);
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let bundle = ca.self_signed(&ca_key).unwrap().pem();
        assert!(reusable_pair(&store, &config, Some(bundle.as_bytes())).is_none());
        let now = unix_now();
        let err = read_trusted_pair(&store, &config, Some(bundle.as_bytes()), now).unwrap_err();
        assert!(
            err.to_string()
                .contains("does not chain to CERTBOOT_CA_BUNDLE"),
            "{err}"
        );
    }
}
