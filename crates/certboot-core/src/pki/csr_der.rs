//! The strict decoder of a PKCS#10 CertificationRequest (RFC 2986), the one the approver, the
//! signer and `--dry-run` read requests with.
//!
//! Go's `x509.ParseCertificateRequest` (kube-apiserver, kube-controller-manager, cert-manager)
//! reads every `extensionRequest` attribute; a lenient Rust parser that reads only the first, or
//! skips an extension it cannot parse, would approve a name it never saw. So this decoder walks
//! the whole structure and refuses, instead of skipping: a size over [`MAX_REQUEST_DER`], more
//! than [`MAX_SANS`] SANs, any attribute but one `extensionRequest` with one value, an extension
//! it does not understand (critical or not, see [`super::csr_ext`]), a duplicate extension,
//! lengths that are not minimal DER, trailing bytes at any level. Not looked into: the signature
//! algorithm's parameters (one element, left to the signature check), and an explicit
//! `critical FALSE` is accepted; neither can carry a name.
//!
//! Signature verification (proof of possession) and key-type detection are the caller's
//! (`approver::requested`), on the same bytes.

use super::csr_ext::{self, Extensions};
use super::der::{self, DerError, Reader, BIT_STRING, INTEGER, OID, SEQUENCE, SET};

/// The most DER bytes a request may have: a certboot request is under 1 KiB.
pub const MAX_REQUEST_DER: usize = 16 * 1024;
/// The most subject alternative names (of all kinds together) a request may carry.
pub const MAX_SANS: usize = 100;

/// `[0] IMPLICIT SET OF Attribute`.
const ATTRIBUTES: u8 = 0xa0;
/// pkcs-9-at-extensionRequest, 1.2.840.113549.1.9.14.
const EXTENSION_REQUEST: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x0e];

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrDerError {
    #[error("the request is {0} bytes of DER, more than certboot's limit of {MAX_REQUEST_DER} (a pod's request is under 1 KiB)")]
    TooLarge(usize),
    #[error("the request carries {0} subject alternative names, more than certboot's limit of {MAX_SANS}")]
    TooManySans(usize),
    #[error("the request is not strict DER (in its {part}): {source}")]
    Malformed {
        part: &'static str,
        #[source]
        source: DerError,
    },
    #[error("the request's version is {0}; PKCS#10 requests are version 0 (v1)")]
    Version(u64),
    #[error("the request carries attribute {0}; certboot accepts one extensionRequest attribute and no other attribute")]
    Attribute(String),
    #[error("the request carries more than one extensionRequest attribute (a Go signer would read them all, certboot refuses to guess)")]
    TwoExtensionRequests,
    #[error("the request's extensionRequest attribute has {0} values; exactly one is allowed")]
    ExtensionRequestValues(usize),
    #[error(transparent)]
    Extension(#[from] csr_ext::ExtensionError),
}

/// One subject attribute: its short name (or dotted OID) and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAttribute {
    pub name: String,
    pub value: String,
}

/// What a request says, strictly decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrictRequest<'a> {
    /// The subject's attributes, in order.
    pub subject: Vec<NameAttribute>,
    /// The SubjectPublicKeyInfo, whole (DER).
    pub spki: &'a [u8],
    /// The key's BIT STRING content (what certboot's key fingerprint hashes).
    pub public_key: &'a [u8],
    /// The requested extensions (empty when the request has none).
    pub extensions: Extensions,
}

fn malformed(part: &'static str) -> impl Fn(DerError) -> CsrDerError {
    move |source| CsrDerError::Malformed { part, source }
}

/// Decodes a DER CertificationRequest.
pub fn parse(der_bytes: &[u8]) -> Result<StrictRequest<'_>, CsrDerError> {
    if der_bytes.len() > MAX_REQUEST_DER {
        return Err(CsrDerError::TooLarge(der_bytes.len()));
    }
    let outer = der::single(der_bytes, SEQUENCE).map_err(malformed("outer SEQUENCE"))?;
    let mut r = Reader::new(outer);
    let info = r
        .expect(SEQUENCE)
        .map_err(malformed("certificationRequestInfo"))?;
    let algorithm = r
        .expect(SEQUENCE)
        .map_err(malformed("signatureAlgorithm"))?;
    algorithm_identifier(algorithm.content).map_err(malformed("signatureAlgorithm"))?;
    let signature = r.expect(BIT_STRING).map_err(malformed("signature"))?;
    der::bit_string(signature.content).map_err(malformed("signature"))?;
    r.finish().map_err(malformed("outer SEQUENCE"))?;
    request_info(info.content)
}

fn request_info(content: &[u8]) -> Result<StrictRequest<'_>, CsrDerError> {
    let mut r = Reader::new(content);
    let version = r
        .expect(INTEGER)
        .and_then(|v| der::small_uint(v.content))
        .map_err(malformed("version"))?;
    if version != 0 {
        return Err(CsrDerError::Version(version));
    }
    let subject = r.expect(SEQUENCE).map_err(malformed("subject"))?;
    let subject = name(subject.content).map_err(malformed("subject"))?;
    let spki = r
        .expect(SEQUENCE)
        .map_err(malformed("subjectPublicKeyInfo"))?;
    let public_key = public_key_info(spki.content).map_err(malformed("subjectPublicKeyInfo"))?;
    let attributes = r.expect(ATTRIBUTES).map_err(malformed("attributes"))?;
    let extensions = attributes_of(attributes.content)?;
    r.finish().map_err(malformed("certificationRequestInfo"))?;
    let sans = extensions.san_count();
    if sans > MAX_SANS {
        return Err(CsrDerError::TooManySans(sans));
    }
    Ok(StrictRequest {
        subject,
        spki: spki.raw,
        public_key,
        extensions,
    })
}

/// `AlgorithmIdentifier ::= SEQUENCE { algorithm OID, parameters ANY OPTIONAL }`.
fn algorithm_identifier(content: &[u8]) -> Result<(), DerError> {
    let mut r = Reader::new(content);
    der::oid(r.expect(OID)?.content)?;
    if !r.is_empty() {
        r.read()?;
    }
    r.finish()
}

/// `SubjectPublicKeyInfo ::= SEQUENCE { algorithm, subjectPublicKey BIT STRING }`.
fn public_key_info(content: &[u8]) -> Result<&[u8], DerError> {
    let mut r = Reader::new(content);
    algorithm_identifier(r.expect(SEQUENCE)?.content)?;
    let key = der::bit_string(r.expect(BIT_STRING)?.content)?;
    r.finish()?;
    Ok(key)
}

/// `Name ::= SEQUENCE OF SET OF SEQUENCE { type OID, value DirectoryString }`.
fn name(content: &[u8]) -> Result<Vec<NameAttribute>, DerError> {
    let mut out = Vec::new();
    let mut rdns = Reader::new(content);
    while !rdns.is_empty() {
        let rdn = rdns.expect(SET)?;
        let mut atvs = Reader::new(rdn.content);
        if atvs.is_empty() {
            return Err(DerError::Empty);
        }
        while !atvs.is_empty() {
            let mut atv = Reader::new(atvs.expect(SEQUENCE)?.content);
            let oid = der::oid(atv.expect(OID)?.content)?;
            let value = atv.read()?;
            atv.finish()?;
            out.push(NameAttribute {
                name: attribute_name(oid),
                value: der::directory_string(value.tag, value.content)?.to_string(),
            });
        }
    }
    Ok(out)
}

fn attribute_name(oid: &[u8]) -> String {
    let short = match oid {
        [0x55, 0x04, 0x03] => "CN",
        [0x55, 0x04, 0x0a] => "O",
        [0x55, 0x04, 0x0b] => "OU",
        [0x55, 0x04, 0x06] => "C",
        [0x55, 0x04, 0x07] => "L",
        [0x55, 0x04, 0x08] => "ST",
        [0x55, 0x04, 0x05] => "serialNumber",
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01] => "emailAddress",
        _ => return der::oid_text(oid),
    };
    short.to_string()
}

/// The attributes: at most one, an `extensionRequest` with exactly one value.
fn attributes_of(content: &[u8]) -> Result<Extensions, CsrDerError> {
    let mut extensions = None;
    let mut attributes = Reader::new(content);
    while !attributes.is_empty() {
        let attribute = attributes
            .expect(SEQUENCE)
            .map_err(malformed("attributes"))?;
        let mut r = Reader::new(attribute.content);
        let oid = r
            .expect(OID)
            .and_then(|o| der::oid(o.content))
            .map_err(malformed("attributes"))?;
        let values = r.expect(SET).map_err(malformed("attributes"))?;
        r.finish().map_err(malformed("attributes"))?;
        if oid != EXTENSION_REQUEST {
            return Err(CsrDerError::Attribute(attribute_label(oid)));
        }
        if extensions.is_some() {
            return Err(CsrDerError::TwoExtensionRequests);
        }
        let mut values = Reader::new(values.content);
        let mut list = Vec::new();
        while !values.is_empty() {
            list.push(values.read().map_err(malformed("extensionRequest"))?);
        }
        let [value] = list.as_slice() else {
            return Err(CsrDerError::ExtensionRequestValues(list.len()));
        };
        if value.tag != SEQUENCE {
            return Err(CsrDerError::Malformed {
                part: "extensionRequest",
                source: DerError::UnexpectedTag {
                    expected: SEQUENCE,
                    found: value.tag,
                },
            });
        }
        extensions = Some(csr_ext::extensions(value.content)?);
    }
    Ok(extensions.unwrap_or_default())
}

fn attribute_label(oid: &[u8]) -> String {
    let dotted = der::oid_text(oid);
    let known = match dotted.as_str() {
        "1.2.840.113549.1.9.7" => "challengePassword",
        "1.2.840.113549.1.9.2" => "unstructuredName",
        "1.2.840.113549.1.9.15" => "smimeCapabilities",
        "1.3.6.1.4.1.311.2.1.14" => "msCertExtensions",
        _ => return dotted,
    };
    format!("{known} ({dotted})")
}

#[cfg(test)]
#[path = "csr_der_tests.rs"]
mod tests;
