//! Chains through certificates that may not issue: each is refused with or without
//! `CERTBOOT_CA_BUNDLE`, by the issuer rules (the message names the certificate) and by the path
//! validator on its own.

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use x509_parser::prelude::FromDer;
use zeroize::Zeroizing;

use super::*;
use crate::pki::expect::{check_expected, Expected};
use crate::pki::key::{KeyAlgorithm, PrivateKey};
use crate::pki::verify::{verify_chain, Verified};
use crate::request::RequestConfig;
use crate::timefmt::unix_now;

const DAY: Duration = Duration::from_secs(86_400);

/// A certificate with its key, able to sign others (whether it may is what the tests are about).
struct Node {
    params: CertificateParams,
    key: Zeroizing<KeyPair>,
    pem: String,
}

impl Node {
    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &*self.key)
    }
}

fn signing_key(algorithm: KeyAlgorithm) -> Zeroizing<KeyPair> {
    PrivateKey::generate(algorithm)
        .unwrap()
        .signing_key()
        .unwrap()
}

/// CA parameters as a real CA has them: CA:true, keyCertSign and cRLSign, valid from an hour ago
/// for ten years.
fn ca_params(cn: &str, tweak: impl FnOnce(&mut CertificateParams)) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let start = SystemTime::now() - Duration::from_secs(3600);
    p.not_before = start.into();
    p.not_after = (start + 3650 * DAY).into();
    tweak(&mut p);
    p
}

fn root(cn: &str, algorithm: KeyAlgorithm, tweak: impl FnOnce(&mut CertificateParams)) -> Node {
    let key = signing_key(algorithm);
    let params = ca_params(cn, tweak);
    let pem = params.self_signed(&*key).unwrap().pem();
    Node { params, key, pem }
}

/// A certificate issued by `parent`: a sub-CA unless `tweak` says otherwise.
fn issued(parent: &Node, cn: &str, tweak: impl FnOnce(&mut CertificateParams)) -> Node {
    issued_with(parent, cn, KeyAlgorithm::EcdsaP256, tweak)
}

fn issued_with(
    parent: &Node,
    cn: &str,
    algorithm: KeyAlgorithm,
    tweak: impl FnOnce(&mut CertificateParams),
) -> Node {
    let key = signing_key(algorithm);
    let params = ca_params(cn, tweak);
    let pem = params.signed_by(&*key, &parent.issuer()).unwrap().pem();
    Node { params, key, pem }
}

/// What a signer issues for a pod: CA:false, digitalSignature, serverAuth, for the identity
/// [`request`] asks for, valid for 30 days.
fn leaf_params() -> CertificateParams {
    let mut p = CertificateParams::new(vec!["web.shop.svc".to_string()]).unwrap();
    p.subject_alt_names
        .push(SanType::IpAddress("10.0.0.7".parse().unwrap()));
    p.distinguished_name.push(DnType::CommonName, "web-0.shop");
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let start = SystemTime::now() - Duration::from_secs(300);
    p.not_before = start.into();
    p.not_after = (start + 30 * DAY).into();
    p
}

/// Our leaf for `key`, issued by `parent`.
fn leaf(parent: &Node, key: &PrivateKey) -> String {
    let signing = key.signing_key().unwrap();
    leaf_params()
        .signed_by(&*signing, &parent.issuer())
        .unwrap()
        .pem()
}

/// Another pod's leaf, as the signer issued it (CA:false), with its key.
fn victim_leaf(parent: &Node) -> Node {
    let key = signing_key(KeyAlgorithm::EcdsaP256);
    let mut params = leaf_params();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "db-0.shop");
    let pem = params.signed_by(&*key, &parent.issuer()).unwrap().pem();
    Node { params, key, pem }
}

fn our_key() -> PrivateKey {
    PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap()
}

fn request() -> RequestConfig {
    RequestConfig {
        dns_names: vec!["web.shop.svc".into()],
        ip_addresses: vec!["10.0.0.7".parse().unwrap()],
        ..RequestConfig::example("example.com/web", "web-0.shop")
    }
}

/// The chain as certboot checks an issued certificate without `CERTBOOT_CA_BUNDLE`.
fn alone(chain: &[&str], key: &PrivateKey) -> Result<Verified, VerifyError> {
    verify_chain(chain.concat().as_bytes(), key.public_key_raw(), unix_now())
}

/// The chain as certboot checks an issued certificate with `CERTBOOT_CA_BUNDLE` = `bundle`.
fn with_bundle(chain: &[&str], key: &PrivateKey, bundle: &[&str]) -> Result<(), VerifyError> {
    let now = unix_now();
    let verified = alone(chain, key)?;
    let request = request();
    let bundle = bundle.concat();
    let expected = Expected {
        request: &request,
        ca_bundle: Some(bundle.as_bytes()),
        max_lifetime: 398 * DAY,
    };
    check_expected(&verified, &expected, now)
}

fn ders(pems: &[&str]) -> Vec<Vec<u8>> {
    pems.iter()
        .map(|p| pem::parse(p).unwrap().into_contents())
        .collect()
}

fn parsed(ders: &[Vec<u8>]) -> Vec<X509Certificate<'_>> {
    ders.iter()
        .map(|d| X509Certificate::from_der(d).unwrap().1)
        .collect()
}

/// The path validator alone (without the issuer rules that run before it).
fn webpki_to_bundle(chain: &[&str], bundle: &[&str]) -> Result<(), VerifyError> {
    let (chain, bundle) = (ders(chain), ders(bundle));
    validate_to_bundle(&parsed(&chain), &parsed(&bundle), unix_now())
}

fn webpki_alone(chain: &[&str]) -> Result<(), VerifyError> {
    validate_chain(&parsed(&ders(chain)), unix_now())
}

#[test]
fn a_leaf_signed_with_the_key_of_another_pods_leaf_is_refused() {
    let root = root("cluster CA", KeyAlgorithm::EcdsaP256, |_| {});
    let victim = victim_leaf(&root);
    let key = our_key();
    let forged = leaf(&victim, &key);
    let chain = [forged.as_str(), victim.pem.as_str()];
    for result in [
        with_bundle(&chain, &key, &[&root.pem]),
        alone(&chain, &key).map(drop),
    ] {
        let err = result.unwrap_err();
        assert!(
            matches!(&err, VerifyError::IssuerNotCa { cert, issued: 0 }
                if cert == "certificate 1 of the chain (CN=db-0.shop)"),
            "{err:?}"
        );
        assert!(err.to_string().contains("is not a CA certificate"), "{err}");
    }
    // A victim without basicConstraints at all is no CA either.
    let bare = issued(&root, "db-1.shop", |p| {
        p.is_ca = IsCa::NoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    });
    let forged = leaf(&bare, &key);
    assert!(matches!(
        with_bundle(&[&forged, &bare.pem], &key, &[&root.pem]),
        Err(VerifyError::IssuerNotCa { issued: 0, .. })
    ));
    // The path validator refuses it on its own too, with and without the bundle.
    let forged = leaf(&victim, &key);
    for result in [
        webpki_to_bundle(&[&forged, &victim.pem], &[&root.pem]),
        webpki_alone(&[&forged, &victim.pem, &root.pem]),
    ] {
        let err = result.unwrap_err();
        assert!(
            matches!(err, VerifyError::PathInvalid { detail, .. } if detail == "EndEntityUsedAsCa")
        );
    }
}

#[test]
fn an_intermediate_without_key_cert_sign_is_refused() {
    let root = root("root", KeyAlgorithm::EcdsaP256, |_| {});
    let inter = issued(&root, "intermediate", |p| {
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    });
    let key = our_key();
    let cert = leaf(&inter, &key);
    for result in [
        with_bundle(&[&cert, &inter.pem], &key, &[&root.pem]),
        alone(&[&cert, &inter.pem], &key).map(drop),
    ] {
        let err = result.unwrap_err();
        assert_eq!(
            err,
            VerifyError::IssuerCannotSign {
                cert: "certificate 1 of the chain (CN=intermediate)".into(),
                issued: 0
            }
        );
        assert!(err.to_string().contains("keyCertSign"), "{err}");
    }
    // The same CA in the bundle, as the trust anchor.
    assert!(matches!(
        with_bundle(&[&cert], &key, &[&inter.pem]),
        Err(VerifyError::IssuerCannotSign { cert, .. }) if cert.starts_with("certificate 0 of CERTBOOT_CA_BUNDLE")
    ));
}

#[test]
fn a_path_length_zero_ca_issuing_another_ca_is_refused() {
    let root = root("root", KeyAlgorithm::EcdsaP256, |_| {});
    let first = issued(&root, "first", |p| {
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0))
    });
    let second = issued(&first, "second", |_| {});
    let key = our_key();
    let cert = leaf(&second, &key);
    let chain = [cert.as_str(), second.pem.as_str(), first.pem.as_str()];
    let want = VerifyError::PathTooLong {
        cert: "certificate 2 of the chain (CN=first)".into(),
        allowed: 0,
        below: 1,
    };
    assert_eq!(with_bundle(&chain, &key, &[&root.pem]), Err(want));
    assert!(matches!(
        alone(&chain, &key),
        Err(VerifyError::PathTooLong {
            allowed: 0,
            below: 1,
            ..
        })
    ));
    assert!(matches!(
        webpki_to_bundle(&chain, &[&root.pem]),
        Err(VerifyError::PathInvalid { detail, .. }) if detail == "PathLenConstraintViolated"
    ));
    // A pathLen 0 root in the bundle: it may issue leaves, not the intermediate of the chain.
    let strict_root = self::root("strict root", KeyAlgorithm::EcdsaP256, |p| {
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0))
    });
    let inter = issued(&strict_root, "intermediate", |_| {});
    let cert = leaf(&inter, &key);
    let err = with_bundle(&[&cert, &inter.pem], &key, &[&strict_root.pem]).unwrap_err();
    assert_eq!(
        err,
        VerifyError::PathTooLong {
            cert: "certificate 0 of CERTBOOT_CA_BUNDLE (CN=strict root)".into(),
            allowed: 0,
            below: 1
        }
    );
    let direct = leaf(&strict_root, &key);
    assert_eq!(with_bundle(&[&direct], &key, &[&strict_root.pem]), Ok(()));
}

#[test]
fn an_expired_intermediate_or_root_is_refused() {
    let root = root("root", KeyAlgorithm::EcdsaP256, |_| {});
    let expired = issued(&root, "old intermediate", |p| {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    });
    let key = our_key();
    let cert = leaf(&expired, &key);
    for result in [
        with_bundle(&[&cert, &expired.pem], &key, &[&root.pem]),
        alone(&[&cert, &expired.pem], &key).map(drop),
    ] {
        let err = result.unwrap_err();
        assert!(
            matches!(&err, VerifyError::IssuerExpired { cert, not_after, .. }
                if cert == "certificate 1 of the chain (CN=old intermediate)"
                    && not_after == "2021-01-01T00:00:00Z"),
            "{err:?}"
        );
        assert!(err.to_string().contains("has expired"), "{err}");
    }
    // An expired root in the bundle, and with it a valid one (a rotation's overlap).
    let old_root = self::root("old root", KeyAlgorithm::EcdsaP256, |p| {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    });
    let cert = leaf(&old_root, &key);
    assert!(matches!(
        with_bundle(&[&cert], &key, &[&old_root.pem, &root.pem]),
        Err(VerifyError::IssuerExpired { cert, .. }) if cert.contains("of CERTBOOT_CA_BUNDLE (CN=old root)")
    ));
    let cert = leaf(&root, &key);
    assert_eq!(
        with_bundle(&[&cert], &key, &[&old_root.pem, &root.pem]),
        Ok(())
    );
}

#[test]
fn a_good_three_level_chain_is_accepted_whatever_the_bundle_holds_of_it() {
    let root = root("root", KeyAlgorithm::EcdsaP256, |_| {});
    let inter = issued(&root, "intermediate", |p| {
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0))
    });
    let key = our_key();
    let cert = leaf(&inter, &key);
    let (short, full) = (
        [cert.as_str(), inter.pem.as_str()],
        [cert.as_str(), inter.pem.as_str(), root.pem.as_str()],
    );
    for chain in [&short[..], &full[..]] {
        assert!(alone(chain, &key).is_ok());
        assert_eq!(with_bundle(chain, &key, &[&root.pem]), Ok(()));
        assert_eq!(with_bundle(chain, &key, &[&inter.pem]), Ok(()));
        assert_eq!(with_bundle(chain, &key, &[&inter.pem, &root.pem]), Ok(()));
    }
    let other = self::root("other", KeyAlgorithm::EcdsaP256, |_| {});
    assert_eq!(
        with_bundle(&short, &key, &[&other.pem]),
        Err(VerifyError::NotFromBundle)
    );
    // A CA certificate without keyUsage at all (rcgen's default, some older CAs) may issue.
    let plain = self::root("plain", KeyAlgorithm::EcdsaP256, |p| p.key_usages.clear());
    let cert = leaf(&plain, &key);
    assert_eq!(with_bundle(&[&cert], &key, &[&plain.pem]), Ok(()));
}

#[test]
fn cas_with_every_key_type_certboot_issues_are_accepted() {
    for algorithm in [
        KeyAlgorithm::Ed25519,
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::EcdsaP384,
        KeyAlgorithm::EcdsaP521,
        KeyAlgorithm::Rsa2048,
        KeyAlgorithm::Rsa8192,
    ] {
        let root = root("root", algorithm, |_| {});
        let inter = issued_with(&root, "intermediate", algorithm, |_| {});
        let key = PrivateKey::generate(algorithm).unwrap();
        let cert = leaf(&inter, &key);
        let chain = [cert.as_str(), inter.pem.as_str()];
        assert!(alone(&chain, &key).is_ok(), "{algorithm}");
        assert_eq!(
            with_bundle(&chain, &key, &[&root.pem]),
            Ok(()),
            "{algorithm}"
        );
    }
}
