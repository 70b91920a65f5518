//! Hostile PKCS#10 requests, built by hand and signed by their own key (so they pass proof of
//! possession): what anyone who may create CSRs can file. Shared by the unit tests of the strict
//! decoder (crates/certboot-core/src/pki/csr_der_tests.rs) and the end-to-end tests (tests/e2e_hostile.rs).

#![allow(dead_code)] // each user takes a different part

use rcgen::{KeyPair, PublicKeyData, SigningKey};

pub const EXTENSION_REQUEST: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x0e];
pub const CHALLENGE_PASSWORD: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x07];
pub const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];
pub const EXT_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25];
pub const CLIENT_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];
/// ecdsa-with-SHA256.
const ECDSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];

/// One DER element.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = vec![tag];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

pub fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

pub fn set(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x31, &parts.concat())
}

pub fn oid(content: &[u8]) -> Vec<u8> {
    tlv(0x06, content)
}

/// A subjectAltName value with these DNS names.
pub fn san_dns(names: &[&str]) -> Vec<u8> {
    seq(&names
        .iter()
        .map(|n| tlv(0x82, n.as_bytes()))
        .collect::<Vec<_>>())
}

/// An Extension.
pub fn extension(id: &[u8], critical: bool, value: &[u8]) -> Vec<u8> {
    let mut parts = vec![oid(id)];
    if critical {
        parts.push(tlv(0x01, &[0xff]));
    }
    parts.push(tlv(0x04, value));
    seq(&parts)
}

/// An Attribute with these values.
pub fn attribute(id: &[u8], values: &[Vec<u8>]) -> Vec<u8> {
    seq(&[oid(id), set(values)])
}

/// An extensionRequest attribute with these extensions (one value).
pub fn extension_request(extensions: &[Vec<u8>]) -> Vec<u8> {
    attribute(EXTENSION_REQUEST, &[seq(extensions)])
}

/// A signed request from `key` for `CN=<cn>` with `attributes`; `info_tail` is appended inside the
/// certificationRequestInfo (after the attributes), `outer_tail` after the whole request.
pub fn request_with(
    key: &KeyPair,
    cn: &str,
    attributes: &[Vec<u8>],
    info_tail: &[u8],
    outer_tail: &[u8],
) -> Vec<u8> {
    let subject = seq(&[set(&[seq(&[
        oid(&[0x55, 0x04, 0x03]),
        tlv(0x0c, cn.as_bytes()),
    ])])]);
    let mut info_content = [
        tlv(0x02, &[0]),
        subject,
        key.subject_public_key_info(),
        tlv(0xa0, &attributes.concat()),
    ]
    .concat();
    info_content.extend_from_slice(info_tail);
    let info = tlv(0x30, &info_content);
    let signature = key.sign(&info).expect("sign");
    let mut bits = vec![0u8];
    bits.extend(signature);
    let mut der = seq(&[info, seq(&[oid(ECDSA_SHA256)]), tlv(0x03, &bits)]);
    der.extend_from_slice(outer_tail);
    der
}

/// [`request_with`] without tails.
pub fn request(key: &KeyPair, cn: &str, attributes: &[Vec<u8>]) -> Vec<u8> {
    request_with(key, cn, attributes, &[], &[])
}

/// A fresh ECDSA P-256 key.
pub fn key() -> KeyPair {
    KeyPair::generate().expect("key")
}

/// `der` as `spec.request` PEM.
pub fn pem(der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der.to_vec()))
}

/// The hidden-SAN request: an empty first extensionRequest, `hidden` in a second one.
pub fn hidden_san(key: &KeyPair, cn: &str, hidden: &str) -> Vec<u8> {
    request(
        key,
        cn,
        &[
            extension_request(&[]),
            extension_request(&[extension(SUBJECT_ALT_NAME, false, &san_dns(&[hidden]))]),
        ],
    )
}
