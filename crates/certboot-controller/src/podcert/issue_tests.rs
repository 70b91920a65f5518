//! Issuing for a PodCertificateRequest: the schedule stays inside the API server's rules, and the
//! leaf carries the stub's key and exactly the granted names.

use rcgen::{BasicConstraints, DnType, IsCa, KeyPair, PublicKeyData};
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};

use super::*;
use certboot_core::pki::key::KeyAlgorithm;

const NOW: i64 = 1_800_000_000;
const DAY: i64 = 86_400;

/// The API server's rules for an Issued status (ValidatePodCertificateRequestStatusUpdate).
fn within_api_rules(s: Schedule, max_expiration: i64, now: i64) -> bool {
    let lifetime = s.not_after - s.not_before;
    (s.not_before - now).abs() <= 300
        && (3600..=max_expiration).contains(&lifetime)
        && s.begin_refresh_at >= s.not_before + 600
        && s.begin_refresh_at <= s.not_after - 600
}

#[test]
fn the_schedule_starts_now_and_refreshes_at_two_thirds() {
    let s = schedule(NOW, DAY, 30 * DAY, NOW + 365 * DAY).unwrap();
    assert_eq!(
        s.not_before, NOW,
        "no backdating: the API server allows 5 minutes"
    );
    assert_eq!(s.not_after, NOW + DAY);
    assert_eq!(s.begin_refresh_at, NOW + DAY * 2 / 3);
    assert!(within_api_rules(s, DAY, NOW));
}

#[test]
fn every_allowed_lifetime_gives_a_schedule_the_api_server_accepts() {
    for max_expiration in [3600, 3601, 4000, 7200, DAY, 7_862_400] {
        for signer_max in [3600, 5400, DAY, 90 * DAY] {
            let s = schedule(NOW, max_expiration, signer_max, NOW + 365 * DAY).unwrap();
            assert!(
                within_api_rules(s, max_expiration, NOW),
                "{max_expiration} {signer_max}: {s:?}"
            );
            assert_eq!(s.not_after - s.not_before, max_expiration.min(signer_max));
        }
    }
}

#[test]
fn a_lifetime_under_an_hour_fails_with_what_to_change() {
    let refused = schedule(NOW, DAY, 1800, NOW + 365 * DAY).unwrap_err();
    assert_eq!(refused.reason, reason::LIFETIME_TOO_SHORT);
    assert!(refused.message.contains("1800s"), "{}", refused.message);
    let refused = schedule(NOW, DAY, DAY, NOW + 1200).unwrap_err();
    assert_eq!(refused.reason, reason::SIGNER_CA_EXPIRING);
    assert!(
        refused.message.contains("rotate the CA"),
        "{}",
        refused.message
    );
    let capped = schedule(NOW, DAY, DAY, NOW + 7200).unwrap();
    assert_eq!(capped.not_after, NOW + 7200, "never beyond the CA");
}

fn ca() -> (tempfile::TempDir, SigningCa) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec![]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "unit CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.not_before = system_time(NOW - 3600).into();
    params.not_after = system_time(NOW + 30 * DAY).into();
    let cert = params.self_signed(&key).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tls.crt"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("tls.key"), key.serialize_pem()).unwrap();
    let ca = SigningCa::load(dir.path(), NOW).unwrap();
    (dir, ca)
}

#[test]
fn the_leaf_has_the_stubs_key_and_exactly_the_granted_names() {
    let (_dir, ca) = ca();
    let key = KeyPair::generate().unwrap();
    let spki_der = key.subject_public_key_info();
    let grant = Grant {
        common_name: Some("web-0.shop".into()),
        dns_names: vec!["web.shop.svc".into()],
        uris: vec!["spiffe://cluster.local/ns/shop/sa/web".into()],
        key: KeyAlgorithm::EcdsaP256,
        spki_der: spki_der.clone(),
        usages: vec!["digital signature".into(), "server auth".into()],
    };
    let s = schedule(NOW, DAY, DAY, ca.not_after()).unwrap();
    let issued = issue(&grant, &ca, s).unwrap();
    let blocks = pem::parse_many(&issued.chain).unwrap();
    assert_eq!(blocks.len(), 1, "a root CA adds no intermediate");
    let (_, leaf) = X509Certificate::from_der(blocks[0].contents()).unwrap();
    assert_eq!(leaf.public_key().raw, spki_der.as_slice());
    assert_eq!(leaf.subject().to_string(), "CN=web-0.shop");
    assert_eq!(leaf.validity().not_before.timestamp(), NOW);
    assert_eq!(leaf.validity().not_after.timestamp(), NOW + DAY);
    assert!(!leaf.is_ca());
    let mut names = Vec::new();
    for ext in leaf.extensions() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() {
            for name in &san.general_names {
                names.push(match name {
                    GeneralName::DNSName(d) => format!("dns:{d}"),
                    GeneralName::URI(u) => format!("uri:{u}"),
                    other => format!("other:{other:?}"),
                });
            }
        }
    }
    assert_eq!(
        names,
        [
            "dns:web.shop.svc",
            "uri:spiffe://cluster.local/ns/shop/sa/web"
        ]
    );
}
