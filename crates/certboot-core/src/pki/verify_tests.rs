use super::*;

fn valid(not_before: i64, not_after: i64) -> Verified {
    Verified::with_validity(not_before, not_after)
}

#[test]
fn certificates_below_the_lifetime_floor_are_refused() {
    let floor = Duration::from_secs(600);
    let now = 1_000_000;
    // A 2-second certificate.
    let err = check_lifetime(&valid(now, now + 2), floor, now).unwrap_err();
    assert!(err.to_string().contains("CERTBOOT_MIN_LIFETIME"), "{err}");
    // Backdated by a year, 2 seconds left.
    assert!(check_lifetime(&valid(now - 31_536_000, now + 2), floor, now).is_err());
    // A 600 s certificate just issued (a second or two on the way), backdated by 5 minutes.
    assert_eq!(
        check_lifetime(&valid(now - 2, now + 598), floor, now),
        Ok(())
    );
    assert_eq!(
        check_lifetime(&valid(now - 300, now + 598), floor, now),
        Ok(())
    );
    // Lowered for a test signer.
    assert_eq!(
        check_lifetime(&valid(now, now + 15), Duration::from_secs(1), now),
        Ok(())
    );
}
use crate::pki::key::KeyAlgorithm;
use crate::timefmt::unix_now;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

struct Ca {
    params: CertificateParams,
    key: KeyPair,
    cert_pem: String,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert_pem = params.self_signed(&key).unwrap().pem();
    Ca {
        params,
        key,
        cert_pem,
    }
}

fn leaf(ca: &Ca, key: &PrivateKey, tweak: impl FnOnce(&mut CertificateParams)) -> String {
    let mut params = CertificateParams::new(vec!["web.shop.svc".to_string()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "web");
    tweak(&mut params);
    let issuer = Issuer::from_params(&ca.params, &ca.key);
    let signing = key.signing_key().unwrap();
    params.signed_by(&*signing, &issuer).unwrap().pem()
}

fn key() -> PrivateKey {
    PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap()
}

#[test]
fn a_good_chain_is_accepted_and_normalised() {
    let (ca, key) = (ca("ca"), key());
    let chain = format!(
        "junk before\n{}\n{}trailing junk",
        leaf(&ca, &key, |_| {}),
        ca.cert_pem
    );
    let verified = verify_issued(chain.as_bytes(), &key, unix_now()).unwrap();
    assert!(!verified.chain_pem.contains("junk"));
    assert_eq!(verified.chain_pem.matches("BEGIN CERTIFICATE").count(), 2);
    assert_eq!(verified.subject, "CN=web");
    assert!(verified.lifetime() > 0);
}

#[test]
fn hostile_inputs_are_rejected_with_their_reason() {
    let (ca, key) = (ca("ca"), key());
    let now = unix_now();
    let good_leaf = leaf(&ca, &key, |_| {});
    assert_eq!(verify_issued(b"", &key, now), Err(VerifyError::Empty));
    assert_eq!(
        verify_issued(b"garbage", &key, now),
        Err(VerifyError::Empty)
    );
    assert!(matches!(
        verify_issued(
            b"-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n",
            &key,
            now
        ),
        Err(VerifyError::Unparsable { index: 0, .. })
    ));
    let other_key = self::key();
    assert_eq!(
        verify_issued(leaf(&ca, &other_key, |_| {}).as_bytes(), &key, now),
        Err(VerifyError::KeyMismatch)
    );
    let ca_leaf = leaf(&ca, &key, |p| {
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained)
    });
    assert_eq!(
        verify_issued(ca_leaf.as_bytes(), &key, now),
        Err(VerifyError::IsCa)
    );
    let expired = leaf(&ca, &key, |p| {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    });
    assert!(matches!(
        verify_issued(expired.as_bytes(), &key, now),
        Err(VerifyError::Expired { .. })
    ));
    let future = leaf(&ca, &key, |p| {
        p.not_before = rcgen::date_time_ymd(2090, 1, 1);
        p.not_after = rcgen::date_time_ymd(2091, 1, 1);
    });
    assert!(matches!(
        verify_issued(future.as_bytes(), &key, now),
        Err(VerifyError::NotYetValid { .. })
    ));
    let wrong_order = format!("{}{}", ca.cert_pem, good_leaf);
    assert_eq!(
        verify_issued(wrong_order.as_bytes(), &key, now),
        Err(VerifyError::LeafNotFirst { index: 1 })
    );
    let other_ca = self::ca("other");
    let unrelated = format!("{}{}", good_leaf, other_ca.cert_pem);
    assert_eq!(
        verify_issued(unrelated.as_bytes(), &key, now),
        Err(VerifyError::ChainOrder { index: 0, next: 1 })
    );
    let key_block = format!("{}{}", good_leaf, key.to_pem().as_str());
    assert!(matches!(
        verify_issued(key_block.as_bytes(), &key, now),
        Err(VerifyError::NotCertificate { index: 1, .. })
    ));
}

#[test]
fn errors_never_echo_key_material() {
    let (ca, key) = (ca("ca"), key());
    let key_pem = key.to_pem();
    let err = verify_issued(
        format!("{}{}", leaf(&ca, &key, |_| {}), key_pem.as_str()).as_bytes(),
        &key,
        unix_now(),
    )
    .unwrap_err();
    let body_line = key_pem.lines().nth(1).unwrap();
    assert!(!err.to_string().contains(body_line));
}

#[test]
fn pairs_on_disk_must_match() {
    let (ca, key) = (ca("ca"), key());
    let cert = leaf(&ca, &key, |_| {});
    assert!(verify_pair(cert.as_bytes(), &key.to_pem(), unix_now()).is_ok());
    let other = self::key();
    assert!(matches!(
        verify_pair(cert.as_bytes(), &other.to_pem(), unix_now()),
        Err(PairError::Certificate(VerifyError::KeyMismatch))
    ));
    assert!(matches!(
        verify_pair(cert.as_bytes(), "nope", unix_now()),
        Err(PairError::Key(_))
    ));
}
