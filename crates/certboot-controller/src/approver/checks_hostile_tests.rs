//! The approver against hostile requests: filed by the pod's own token, under the pod's own name,
//! signed by their own key, so only the request itself can get them denied.

use super::*;

use crate::hostile_csr::{
    attribute, extension, extension_request, hidden_san, key, pem, request, seq, tlv,
    CHALLENGE_PASSWORD, SUBJECT_ALT_NAME,
};

/// certboot's CSR for pod web-0 (bound token, right name), carrying `der` as its request.
fn filing(der: &[u8]) -> CertificateSigningRequest {
    let mut c = csr();
    c.spec.request = ByteString(pem(der).into_bytes());
    c
}

fn judged(c: &CertificateSigningRequest) -> Verdict {
    verdict(c, &policy(""), Some(&pod()), &[service("web", "web")])
}

#[test]
fn a_san_hidden_from_the_first_extension_request_is_denied() {
    let key = key();
    // What x509-parser's requested_extensions() and `openssl req -text` show: no SAN at all.
    let message = assert_denied(
        judged(&filing(&hidden_san(&key, "web-0.shop", "evil.example.com"))),
        reason::INVALID_REQUEST,
    );
    assert!(
        message.contains("more than one extensionRequest"),
        "{message}"
    );
    // Two values in the one attribute, a challengePassword, an unknown extension.
    let two_values = attribute(
        crate::hostile_csr::EXTENSION_REQUEST,
        &[
            seq(&[]),
            seq(&[extension(
                SUBJECT_ALT_NAME,
                false,
                &tlv(0x30, &tlv(0x82, b"evil")),
            )]),
        ],
    );
    let password = attribute(CHALLENGE_PASSWORD, &[tlv(0x0c, b"pw")]);
    let unknown = extension_request(&[extension(&[0x2a, 0x03, 0x04], false, &tlv(0x05, &[]))]);
    for attributes in [vec![two_values], vec![password], vec![unknown]] {
        assert_denied(
            judged(&filing(&request(&key, "web-0.shop", &attributes))),
            reason::INVALID_REQUEST,
        );
    }
    // The same request with its SAN in the only attribute is judged on that SAN.
    let plain = request(
        &key,
        "web-0.shop",
        &[extension_request(&[extension(
            SUBJECT_ALT_NAME,
            false,
            &tlv(0x30, &tlv(0x82, b"web.shop.svc")),
        )])],
    );
    assert!(matches!(judged(&filing(&plain)), Verdict::Approve(_)));
}

/// A request from the pod's key with `count` IP SANs 10.x.y.z.
fn with_ip_sans(count: u32) -> CertificateSigningRequest {
    let names: Vec<Vec<u8>> = (0..count)
        .map(|i| tlv(0x87, &(0x0a00_0000 + i).to_be_bytes()))
        .collect();
    filing(&request(
        &key(),
        "web-0.shop",
        &[extension_request(&[extension(
            SUBJECT_ALT_NAME,
            false,
            &seq(&names),
        )])],
    ))
}

#[test]
fn oversized_requests_are_denied_first_with_a_short_message() {
    // 100,000 IP SANs (600 KB): denied at the claim step, before the pod is read, even for a
    // requester that is not a pod.
    let mut huge = with_ip_sans(100_000);
    huge.spec.username = Some("kubernetes-admin".into());
    let denial = claim(&huge, &policy("").signers[0]).unwrap_err();
    assert_eq!(
        denial.reason,
        reason::REQUEST_TOO_LARGE,
        "{}",
        denial.message
    );
    assert!(denial.message.len() < 300, "{}", denial.message);
    assert!(denial.message.contains("limit"), "{}", denial.message);
    // Within 16 KiB but over 100 names.
    let denial = claim(&with_ip_sans(101), &policy("").signers[0]).unwrap_err();
    assert_eq!(denial.reason, reason::REQUEST_TOO_LARGE);
    assert!(
        denial.message.contains("101 subject alternative names") && denial.message.contains("100"),
        "{}",
        denial.message
    );
    // 100 foreign IPs pass the size check; the IP denial names a few and stays short.
    let message = assert_denied(judged(&with_ip_sans(100)), reason::IP_NOT_ALLOWED);
    assert!(
        message.len() <= crate::approver::message::MAX_DENIAL_MESSAGE,
        "{}",
        message.len()
    );
    assert!(message.contains("10.0.0.0"), "{message}");
}

#[test]
fn usages_must_include_an_extended_key_usage() {
    for usages in [
        vec!["digital signature"],
        vec!["digital signature", "key encipherment"],
        vec![],
    ] {
        let mut c = csr();
        c.spec.usages = Some(usages.iter().map(|u| u.to_string()).collect());
        let message = assert_denied(judged(&c), reason::EXTENDED_KEY_USAGE_MISSING);
        assert!(
            message.contains("valid for any purpose")
                && message.contains("server auth")
                && message.contains("client auth"),
            "{message}"
        );
    }
    // A policy that allows no extended key usage says so.
    let mut c = csr();
    c.spec.usages = Some(vec!["digital signature".into()]);
    let message = assert_denied(
        verdict(
            &c,
            &policy(r#", "usages": ["digital signature"]"#),
            Some(&pod()),
            &[service("web", "web")],
        ),
        reason::EXTENDED_KEY_USAGE_MISSING,
    );
    assert!(message.contains("allows none"), "{message}");
}

#[test]
fn a_requested_key_usage_beyond_spec_usages_is_denied() {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["web.shop.svc".to_string()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "web-0.shop");
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let der = params.serialize_request(&key).unwrap().der().to_vec();
    let mut c = filing(&der);
    c.spec.usages = Some(vec!["digital signature".into(), "server auth".into()]);
    let message = assert_denied(judged(&c), reason::USAGE_NOT_ALLOWED);
    assert!(message.contains("\"client auth\""), "{message}");
    c.spec.usages = Some(vec!["server auth".into(), "client auth".into()]);
    assert!(
        matches!(judged(&c), Verdict::Approve(_)),
        "{:?}",
        judged(&c)
    );
}
