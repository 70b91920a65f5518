//! What certboot expects of a certificate beyond being valid and matching its key: it chains to
//! `CERTBOOT_CA_BUNDLE` when one is configured (a certification path validated to one of the
//! bundle's certificates, [`crate::pki::path`]), it names exactly the identity the configuration
//! requests (CN and SANs), and it lives no longer than `CERTBOOT_MAX_LIFETIME`.
//!
//! Checked on every issued certificate and on a pair found on disk (reuse at start, `certboot
//! check`), so a pair certboot accepted once is accepted again, and a pair dropped into the
//! shared directory by someone else (a self-signed 100-year certificate, say) is not.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use crate::pki::path::validate_to_bundle;
use crate::pki::verify::{Verified, VerifyError, NOT_BEFORE_TOLERANCE_SECS};
use crate::request::RequestConfig;

/// What the configuration expects of the pair.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub request: &'a RequestConfig,
    /// The contents of `CERTBOOT_CA_BUNDLE`, when set.
    pub ca_bundle: Option<&'a [u8]>,
    pub max_lifetime: Duration,
}

/// Checks `cert` (already verified) against what the configuration expects, at time `now`.
pub fn check_expected(
    cert: &Verified,
    expected: &Expected<'_>,
    now: i64,
) -> Result<(), VerifyError> {
    check_max_lifetime(cert, expected.max_lifetime)?;
    let blocks = pem::parse_many(cert.chain_pem.as_bytes()).map_err(VerifyError::NotPem)?;
    let chain = parse_all(&blocks)?;
    let leaf = chain.first().ok_or(VerifyError::Empty)?;
    check_identity(leaf, expected.request)?;
    if let Some(bundle) = expected.ca_bundle {
        check_chains_to(&chain, bundle, now)?;
    }
    Ok(())
}

/// Refuses a certificate valid for longer than `cap` (plus the 5 minutes signers backdate).
pub fn check_max_lifetime(cert: &Verified, cap: Duration) -> Result<(), VerifyError> {
    let cap_secs = i64::try_from(cap.as_secs()).unwrap_or(i64::MAX);
    if cert.lifetime() <= cap_secs.saturating_add(NOT_BEFORE_TOLERANCE_SECS) {
        return Ok(());
    }
    Err(VerifyError::TooLongLived {
        lifetime: Duration::from_secs(cert.lifetime().max(0) as u64),
        cap,
    })
}

fn parse_all(blocks: &[pem::Pem]) -> Result<Vec<X509Certificate<'_>>, VerifyError> {
    blocks
        .iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .enumerate()
        .map(
            |(index, block)| match X509Certificate::from_der(block.contents()) {
                Ok((_, cert)) => Ok(cert),
                Err(source) => Err(VerifyError::Unparsable { index, source }),
            },
        )
        .collect()
}

/// The leaf's CN and SANs must be exactly those the configuration requests. The pod's IPs are
/// part of that set: when the kubelet recreates a pod's sandbox, the pod may get another IP, and
/// the pair naming the old one is then not reused (the output directory, an `emptyDir`, lives as
/// long as the pod, not as long as its sandbox).
fn check_identity(leaf: &X509Certificate<'_>, request: &RequestConfig) -> Result<(), VerifyError> {
    let cn = leaf
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default();
    if cn != request.common_name {
        return Err(mismatch("subject CN", cn, &request.common_name));
    }
    let (mut dns, mut ips, mut uris) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    if let Ok(Some(san)) = leaf.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => {
                    dns.insert(d.to_ascii_lowercase());
                }
                GeneralName::IPAddress(bytes) => {
                    ips.insert(ip_text(bytes));
                }
                GeneralName::URI(u) => {
                    uris.insert(u.to_string());
                }
                _ => {}
            }
        }
    }
    let want_dns: BTreeSet<String> = request
        .dns_names
        .iter()
        .map(|d| d.to_ascii_lowercase())
        .collect();
    let want_ips: BTreeSet<String> = request.ip_addresses.iter().map(IpAddr::to_string).collect();
    let want_uris: BTreeSet<String> = request.uris.iter().cloned().collect();
    for (what, got, want) in [
        ("DNS SANs", dns, want_dns),
        ("IP SANs", ips, want_ips),
        ("URI SANs", uris, want_uris),
    ] {
        if got != want {
            return Err(mismatch(what, &join(&got), &join(&want)));
        }
    }
    Ok(())
}

fn ip_text(bytes: &[u8]) -> String {
    match bytes.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(bytes).unwrap_or_default()).to_string(),
        16 => IpAddr::from(<[u8; 16]>::try_from(bytes).unwrap_or_default()).to_string(),
        _ => format!("{bytes:02x?}"),
    }
}

fn join(set: &BTreeSet<String>) -> String {
    if set.is_empty() {
        "(none)".to_string()
    } else {
        set.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}

fn mismatch(what: &'static str, got: &str, want: &str) -> VerifyError {
    VerifyError::IdentityMismatch {
        what,
        got: got.chars().take(200).collect(),
        want: want.chars().take(200).collect(),
    }
}

/// The chain must validate, as a certification path, to a certificate of the bundle.
fn check_chains_to(
    chain: &[X509Certificate<'_>],
    bundle: &[u8],
    now: i64,
) -> Result<(), VerifyError> {
    let blocks = pem::parse_many(bundle).map_err(|_| VerifyError::BundleUnusable)?;
    let anchors = parse_all(&blocks).map_err(|_| VerifyError::BundleUnusable)?;
    if anchors.is_empty() {
        return Err(VerifyError::BundleUnusable);
    }
    validate_to_bundle(chain, &anchors, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::key::{KeyAlgorithm, PrivateKey};
    use crate::pki::verify::verify_chain;
    use crate::timefmt::unix_now;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};

    fn request() -> RequestConfig {
        RequestConfig {
            dns_names: vec!["web.shop.svc".into()],
            ip_addresses: vec!["10.0.0.7".parse().unwrap()],
            ..RequestConfig::example("example.com/web", "web-0.shop")
        }
    }

    fn params(days: i64, tweak: impl FnOnce(&mut CertificateParams)) -> CertificateParams {
        let mut p = CertificateParams::new(vec!["web.shop.svc".to_string()]).unwrap();
        p.subject_alt_names
            .push(SanType::IpAddress("10.0.0.7".parse().unwrap()));
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "web-0.shop");
        let start = std::time::SystemTime::now() - Duration::from_secs(60);
        p.not_before = start.into();
        p.not_after = (start + Duration::from_secs(days as u64 * 86_400)).into();
        tweak(&mut p);
        p
    }

    fn ca() -> (CertificateParams, KeyPair, String) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, "ca");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let pem = p.self_signed(&key).unwrap().pem();
        (p, key, pem)
    }

    fn verified(pem: &str, key: &PrivateKey) -> Verified {
        verify_chain(pem.as_bytes(), key.public_key_raw(), unix_now()).unwrap()
    }

    #[test]
    fn a_self_signed_hundred_year_pair_is_refused_however_it_is_named() {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let signing = key.signing_key().unwrap();
        let cert = params(36_500, |_| {}).self_signed(&*signing).unwrap().pem();
        let request = request();
        let expected = Expected {
            request: &request,
            ca_bundle: None,
            max_lifetime: Duration::from_secs(398 * 86_400),
        };
        let err = check_expected(&verified(&cert, &key), &expected, unix_now()).unwrap_err();
        assert!(matches!(err, VerifyError::TooLongLived { .. }), "{err}");
        assert!(err.to_string().contains("CERTBOOT_MAX_LIFETIME"), "{err}");
        // Within the cap but not from the CA bundle.
        let (_, _, ca_pem) = ca();
        let cert = params(30, |_| {}).self_signed(&*signing).unwrap().pem();
        let with_bundle = Expected {
            ca_bundle: Some(ca_pem.as_bytes()),
            ..expected
        };
        assert_eq!(
            check_expected(&verified(&cert, &key), &with_bundle, unix_now()),
            Err(VerifyError::NotFromBundle)
        );
        // Without a bundle, the identity still has to be the configured one.
        assert_eq!(
            check_expected(&verified(&cert, &key), &expected, unix_now()),
            Ok(())
        );
        let other = params(30, |p| {
            p.subject_alt_names
                .push(SanType::DnsName("evil.example".try_into().unwrap()))
        })
        .self_signed(&*signing)
        .unwrap()
        .pem();
        let err = check_expected(&verified(&other, &key), &expected, unix_now()).unwrap_err();
        assert!(err.to_string().contains("DNS SANs"), "{err}");
        let renamed = params(30, |p| {
            p.distinguished_name
                .push(rcgen::DnType::CommonName, "admin")
        })
        .self_signed(&*signing)
        .unwrap()
        .pem();
        let err = check_expected(&verified(&renamed, &key), &expected, unix_now()).unwrap_err();
        assert!(err.to_string().contains("subject CN"), "{err}");
    }

    #[test]
    fn a_pair_issued_by_the_bundles_ca_for_the_configured_identity_is_accepted() {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let (ca_params, ca_key, ca_pem) = ca();
        let issuer = Issuer::from_params(&ca_params, &ca_key);
        let signing = key.signing_key().unwrap();
        let leaf = params(365, |_| {})
            .signed_by(&*signing, &issuer)
            .unwrap()
            .pem();
        let request = request();
        let expected = Expected {
            request: &request,
            ca_bundle: Some(ca_pem.as_bytes()),
            max_lifetime: Duration::from_secs(398 * 86_400),
        };
        assert_eq!(
            check_expected(&verified(&leaf, &key), &expected, unix_now()),
            Ok(())
        );
        // The chain may carry the CA itself.
        let chain = format!("{leaf}{ca_pem}");
        assert_eq!(
            check_expected(&verified(&chain, &key), &expected, unix_now()),
            Ok(())
        );
        // A year is above a 30-day cap.
        let capped = Expected {
            max_lifetime: Duration::from_secs(30 * 86_400),
            ..expected
        };
        assert!(check_expected(&verified(&leaf, &key), &capped, unix_now()).is_err());
    }
}
