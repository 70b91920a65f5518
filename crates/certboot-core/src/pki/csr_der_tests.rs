//! The strict decoder against real requests (certboot's, rcgen's, openssl's, Go's) and hostile
//! ones, each signed by its own key so that only the decoder stands between it and a signer.

use super::*;
use crate::pki::csr_ext::{ExtensionError, San};
use rcgen::PublicKeyData;

use crate::hostile_csr::{
    attribute, extension, extension_request, hidden_san, key, oid, request, request_with, san_dns,
    seq, set, tlv, CHALLENGE_PASSWORD, EXT_KEY_USAGE, SUBJECT_ALT_NAME,
};

fn der_of_pem(text: &str) -> Vec<u8> {
    pem::parse(text).unwrap().into_contents()
}

#[test]
fn requests_from_openssl_go_rcgen_and_certboot_are_read_whole() {
    let openssl = der_of_pem(include_str!(
        "../../../../tests/golden/requests/openssl.csr"
    ));
    let r = parse(&openssl).unwrap();
    assert_eq!(r.subject[0].name, "CN");
    assert_eq!(r.subject[0].value, "web-0.shop");
    assert_eq!(
        r.extensions.sans,
        vec![
            San::Dns("web.shop.svc".into()),
            San::Ip("10.1.2.3".parse().unwrap()),
            San::Uri("spiffe://cluster.local/ns/shop/sa/web".into()),
        ]
    );
    assert!(!r.extensions.ca);
    assert_eq!(
        r.extensions.key_usages,
        vec!["digital signature", "key encipherment"]
    );
    assert_eq!(r.extensions.extended_key_usages, vec!["server auth"]);

    let go = der_of_pem(include_str!("../../../../tests/golden/requests/go.csr"));
    let r = parse(&go).unwrap();
    assert_eq!(r.extensions.sans.len(), 4);
    assert_eq!(
        r.subject
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>(),
        vec!["O", "CN"]
    );

    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["web.shop.svc".to_string()]).unwrap();
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let rcgen_der = params.serialize_request(&key).unwrap().der().to_vec();
    let r = parse(&rcgen_der).unwrap();
    assert_eq!(r.extensions.extended_key_usages, vec!["client auth"]);
    assert!(!r.extensions.ca);

    let none = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    let none_der = none.serialize_request(&key).unwrap().der().to_vec();
    let r = parse(&none_der).unwrap();
    assert_eq!(r.extensions, csr_ext::Extensions::default());
    assert_eq!(r.spki, key.subject_public_key_info().as_slice());
}

#[test]
fn a_name_hidden_in_a_second_extension_request_is_refused() {
    let key = key();
    let der = hidden_san(&key, "web-0.shop", "evil.example.com");
    assert_eq!(parse(&der), Err(CsrDerError::TwoExtensionRequests));
    // The same, the SAN first and a second (empty) attribute after it.
    let san = extension(SUBJECT_ALT_NAME, false, &san_dns(&["web.shop.svc"]));
    let der = request(
        &key,
        "web-0.shop",
        &[
            extension_request(std::slice::from_ref(&san)),
            extension_request(&[]),
        ],
    );
    assert_eq!(parse(&der), Err(CsrDerError::TwoExtensionRequests));
    // Two values in one extensionRequest's SET.
    let der = request(
        &key,
        "web-0.shop",
        &[attribute(
            EXTENSION_REQUEST,
            &[
                seq(&[]),
                seq(&[extension(SUBJECT_ALT_NAME, false, &san_dns(&["evil"]))]),
            ],
        )],
    );
    assert_eq!(parse(&der), Err(CsrDerError::ExtensionRequestValues(2)));
    let der = request(&key, "web-0.shop", &[attribute(EXTENSION_REQUEST, &[])]);
    assert_eq!(parse(&der), Err(CsrDerError::ExtensionRequestValues(0)));
}

#[test]
fn any_other_attribute_is_refused_by_name() {
    let key = key();
    let der = request(
        &key,
        "web-0.shop",
        &[
            extension_request(&[extension(SUBJECT_ALT_NAME, false, &san_dns(&["a"]))]),
            attribute(CHALLENGE_PASSWORD, &[tlv(0x0c, b"secret")]),
        ],
    );
    let err = parse(&der).unwrap_err();
    assert_eq!(
        err,
        CsrDerError::Attribute("challengePassword (1.2.840.113549.1.9.7)".into())
    );
    assert!(
        err.to_string().contains("one extensionRequest attribute"),
        "{err}"
    );
}

#[test]
fn unknown_duplicate_and_garbled_extensions_are_refused() {
    let key = key();
    let refused = |extensions: &[Vec<u8>]| {
        parse(&request(
            &key,
            "web-0.shop",
            &[extension_request(extensions)],
        ))
        .unwrap_err()
    };
    let san = extension(SUBJECT_ALT_NAME, false, &san_dns(&["web.shop.svc"]));
    // Unknown, not critical (a parser that skips it would not see it; Go might act on it).
    let err = refused(&[extension(&[0x2a, 0x03, 0x04], false, &tlv(0x05, &[]))]);
    assert_eq!(err, ExtensionError::Unknown("1.2.3.4".into()).into());
    assert!(
        err.to_string().contains("file the request without it"),
        "{err}"
    );
    // issuerAltName, nameConstraints...: understood by others, not by certboot.
    let err = refused(&[extension(&[0x55, 0x1d, 0x1e], true, &seq(&[]))]);
    assert!(
        err.to_string().contains("nameConstraints (2.5.29.30)"),
        "{err}"
    );
    // The same SAN extension twice (Go takes the last, x509-parser the first).
    let second = extension(SUBJECT_ALT_NAME, false, &san_dns(&["evil.example.com"]));
    assert_eq!(
        refused(&[san.clone(), second]),
        ExtensionError::Duplicate("subjectAltName (2.5.29.17)".into()).into()
    );
    // Garbage inside the SAN, trailing bytes after the names, a constructed (BER) dNSName, a
    // non-ASCII name, an IP of 5 bytes, an empty list, a tag that is no GeneralName.
    let garbage = [
        vec![0xde, 0xad, 0xbe, 0xef],
        [san_dns(&["a"]), vec![0x00]].concat(),
        seq(&[tlv(0xa2, &tlv(0x16, b"a"))]),
        seq(&[tlv(0x82, "é.shop".as_bytes())]),
        seq(&[tlv(0x82, b"a\0.evil")]),
        seq(&[tlv(0x87, &[10, 0, 0, 1, 2])]),
        seq(&[]),
        seq(&[tlv(0x89, b"x")]),
    ];
    for value in garbage {
        let err = refused(&[extension(SUBJECT_ALT_NAME, false, &value)]);
        assert!(
            matches!(
                err,
                CsrDerError::Extension(
                    ExtensionError::Malformed { .. }
                        | ExtensionError::IpLength(5)
                        | ExtensionError::SanKind(_)
                )
            ),
            "{value:02x?}: {err:?}"
        );
    }
    // An extKeyUsage that is no API usage; a keyUsage with bits beyond decipherOnly.
    let err = refused(&[extension(EXT_KEY_USAGE, false, &seq(&[oid(&[0x2a, 0x03])]))]);
    assert!(matches!(
        err,
        CsrDerError::Extension(ExtensionError::UnknownExtKeyUsage(_))
    ));
    let err = refused(&[extension(
        &[0x55, 0x1d, 0x0f],
        true,
        &tlv(0x03, &[0x06, 0xff, 0xc0]),
    )]);
    assert!(matches!(
        err,
        CsrDerError::Extension(ExtensionError::Malformed { .. })
    ));
    // A critical flag that is not DER (0x01 instead of 0xff).
    let mut bad_bool = extension(SUBJECT_ALT_NAME, true, &san_dns(&["a"]));
    let at = bad_bool.iter().position(|b| *b == 0xff).unwrap();
    bad_bool[at] = 0x01;
    assert!(matches!(
        refused(&[bad_bool]),
        CsrDerError::Extension(ExtensionError::List(DerError::BadBoolean))
    ));
}

#[test]
fn trailing_bytes_anywhere_are_refused() {
    let key = key();
    let ext = [extension_request(&[extension(
        SUBJECT_ALT_NAME,
        false,
        &san_dns(&["a"]),
    )])];
    assert!(parse(&request(&key, "web-0.shop", &ext)).is_ok());
    let after_all = request_with(&key, "web-0.shop", &ext, &[], &[0x00, 0x00]);
    assert!(matches!(
        parse(&after_all),
        Err(CsrDerError::Malformed {
            source: DerError::TrailingBytes(2),
            ..
        })
    ));
    let inside_info = request_with(&key, "web-0.shop", &ext, &tlv(0x04, b"evil"), &[]);
    assert!(matches!(
        parse(&inside_info),
        Err(CsrDerError::Malformed {
            part: "certificationRequestInfo",
            ..
        })
    ));
    // An extra element after the SET inside the Attribute SEQUENCE.
    let attr = seq(&[oid(EXTENSION_REQUEST), set(&[seq(&[])]), tlv(0x05, &[])]);
    assert!(matches!(
        parse(&request(&key, "web-0.shop", &[attr])),
        Err(CsrDerError::Malformed {
            part: "attributes",
            ..
        })
    ));
}

#[test]
fn size_limits_come_first_and_count_every_kind_of_name() {
    let key = key();
    let names: Vec<Vec<u8>> = (0..=MAX_SANS)
        .map(|i| {
            if i % 2 == 0 {
                tlv(0x87, &[10, 0, (i / 256) as u8, (i % 256) as u8])
            } else {
                tlv(0x82, format!("n{i}.shop.svc").as_bytes())
            }
        })
        .collect();
    let der = request(
        &key,
        "web-0.shop",
        &[extension_request(&[extension(
            SUBJECT_ALT_NAME,
            false,
            &seq(&names),
        )])],
    );
    assert_eq!(parse(&der), Err(CsrDerError::TooManySans(MAX_SANS + 1)));
    let at_limit = request(
        &key,
        "web-0.shop",
        &[extension_request(&[extension(
            SUBJECT_ALT_NAME,
            false,
            &seq(&names[..MAX_SANS]),
        )])],
    );
    assert_eq!(parse(&at_limit).unwrap().extensions.sans.len(), MAX_SANS);
    let huge = vec![0u8; MAX_REQUEST_DER + 1];
    assert_eq!(
        parse(&huge),
        Err(CsrDerError::TooLarge(MAX_REQUEST_DER + 1))
    );
}

#[test]
fn arbitrary_bytes_never_panic() {
    let key = key();
    let good = request(
        &key,
        "web-0.shop",
        &[extension_request(&[extension(
            SUBJECT_ALT_NAME,
            false,
            &san_dns(&["web.shop.svc"]),
        )])],
    );
    // Every truncation and every single-byte change of a valid request.
    for end in 0..good.len() {
        assert!(parse(&good[..end]).is_err(), "truncated at {end}");
    }
    for at in 0..good.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut bad = good.clone();
            bad[at] ^= flip;
            let _ = parse(&bad);
        }
    }
}

#[test]
fn the_fuzz_seeds_are_what_their_names_say() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/request");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        let result = parse(&bytes);
        let accepted = matches!(name.as_str(), "openssl" | "go" | "all-extensions");
        assert_eq!(result.is_ok(), accepted, "{name}: {result:?}");
        seen += 1;
    }
    assert!(seen >= 10, "{seen} seeds");
}
