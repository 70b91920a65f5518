//! The extensions a PKCS#10 request may ask for, strictly decoded. certboot understands five,
//! the ones openssl, Go and rcgen requests carry:
//!
//! - subjectAltName: DNS names, IP addresses (4 or 16 bytes), URIs and e-mail addresses as
//!   printable ASCII IA5Strings; other kinds are kept, described, for the approver to refuse;
//! - basicConstraints: CA:TRUE is a CA request (refused by the approver and the signer);
//! - keyUsage and extKeyUsage: read as the usage names of `spec.usages` (signers issue
//!   `spec.usages`; the approver requires a requested usage to be among them, and refuses
//!   keyCertSign / cRLSign as a CA request);
//! - subjectKeyIdentifier: ignored (a signer computes its own).
//!
//! Any other extension, critical or not, a duplicate, or one that does not parse is an error.

use std::net::IpAddr;

use super::der::{self, DerError, Reader, BIT_STRING, BOOLEAN, OCTET_STRING, OID, SEQUENCE};

const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];
const BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];
const KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x0f];
const EXT_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25];
const SUBJECT_KEY_IDENTIFIER: &[u8] = &[0x55, 0x1d, 0x0e];

/// An extension that certboot refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtensionError {
    #[error("the request's extension {0} is not one certboot understands (it reads subjectAltName, basicConstraints, keyUsage, extKeyUsage and subjectKeyIdentifier); file the request without it")]
    Unknown(String),
    #[error("the request carries extension {0} twice")]
    Duplicate(String),
    #[error("the request's {name} extension does not parse: {source}")]
    Malformed {
        name: &'static str,
        #[source]
        source: DerError,
    },
    #[error(
        "the request's subjectAltName has an entry with tag 0x{0:02x}, which is no GeneralName"
    )]
    SanKind(u8),
    #[error("the request's subjectAltName has an IP address of {0} bytes; an IP address is 4 (IPv4) or 16 (IPv6) bytes")]
    IpLength(usize),
    #[error(
        "the request's extKeyUsage lists {0}, which is no usage of the certificates.k8s.io API"
    )]
    UnknownExtKeyUsage(String),
    #[error("the request's extensions are not strict DER: {0}")]
    List(#[source] DerError),
}

/// One subject alternative name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum San {
    Dns(String),
    Ip(IpAddr),
    Uri(String),
    Email(String),
    /// A kind certboot never grants (otherName, directoryName, ...), by its ASN.1 name.
    Other(&'static str),
}

/// The understood extensions of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extensions {
    pub sans: Vec<San>,
    /// basicConstraints CA:TRUE.
    pub ca: bool,
    /// keyUsage bits, as `spec.usages` names (`cert sign`, `crl sign` included when asked).
    pub key_usages: Vec<&'static str>,
    /// extKeyUsage purposes, as `spec.usages` names.
    pub extended_key_usages: Vec<&'static str>,
}

impl Extensions {
    pub fn san_count(&self) -> usize {
        self.sans.len()
    }
}

/// `Extensions ::= SEQUENCE OF Extension` (the content of the SEQUENCE).
pub fn extensions(content: &[u8]) -> Result<Extensions, ExtensionError> {
    let mut out = Extensions::default();
    let mut seen: Vec<&[u8]> = Vec::new();
    let mut list = Reader::new(content);
    while !list.is_empty() {
        let (oid, value) = extension(&mut list).map_err(ExtensionError::List)?;
        if seen.contains(&oid) {
            return Err(ExtensionError::Duplicate(name_of(oid)));
        }
        seen.push(oid);
        let bad = |name: &'static str| move |source| ExtensionError::Malformed { name, source };
        match oid {
            SUBJECT_ALT_NAME => out.sans = sans(value)?,
            BASIC_CONSTRAINTS => {
                out.ca = basic_constraints(value).map_err(bad("basicConstraints"))?
            }
            KEY_USAGE => out.key_usages = key_usage(value).map_err(bad("keyUsage"))?,
            EXT_KEY_USAGE => out.extended_key_usages = ext_key_usage(value)?,
            SUBJECT_KEY_IDENTIFIER => {
                if der::single(value, OCTET_STRING)
                    .map_err(bad("subjectKeyIdentifier"))?
                    .is_empty()
                {
                    return Err(bad("subjectKeyIdentifier")(DerError::Empty));
                }
            }
            other => return Err(ExtensionError::Unknown(name_of(other))),
        }
    }
    Ok(out)
}

/// `Extension ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }`.
fn extension<'a>(list: &mut Reader<'a>) -> Result<(&'a [u8], &'a [u8]), DerError> {
    let mut r = Reader::new(list.expect(SEQUENCE)?.content);
    let oid = der::oid(r.expect(OID)?.content)?;
    // Critical or not makes no difference: every extension certboot accepts, it understands.
    if let Some(critical) = r.optional(BOOLEAN)? {
        der::boolean(critical.content)?;
    }
    let value = r.expect(OCTET_STRING)?.content;
    r.finish()?;
    Ok((oid, value))
}

fn name_of(oid: &[u8]) -> String {
    let dotted = der::oid_text(oid);
    let known = match oid {
        SUBJECT_ALT_NAME => "subjectAltName",
        BASIC_CONSTRAINTS => "basicConstraints",
        KEY_USAGE => "keyUsage",
        EXT_KEY_USAGE => "extKeyUsage",
        SUBJECT_KEY_IDENTIFIER => "subjectKeyIdentifier",
        [0x55, 0x1d, 0x12] => "issuerAltName",
        [0x55, 0x1d, 0x1e] => "nameConstraints",
        [0x55, 0x1d, 0x1f] => "cRLDistributionPoints",
        [0x55, 0x1d, 0x20] => "certificatePolicies",
        [0x55, 0x1d, 0x23] => "authorityKeyIdentifier",
        _ => return dotted,
    };
    format!("{known} ({dotted})")
}

/// `GeneralNames ::= SEQUENCE SIZE (1..MAX) OF GeneralName`.
fn sans(value: &[u8]) -> Result<Vec<San>, ExtensionError> {
    let bad = |source| ExtensionError::Malformed {
        name: "subjectAltName",
        source,
    };
    let mut names = Reader::new(der::single(value, SEQUENCE).map_err(bad)?);
    if names.is_empty() {
        return Err(bad(DerError::Empty));
    }
    let mut out = Vec::new();
    while !names.is_empty() {
        let name = names.read().map_err(bad)?;
        let text = |content| der::ia5(content).map(str::to_string).map_err(bad);
        out.push(match name.tag {
            0x81 => San::Email(text(name.content)?),
            0x82 => San::Dns(text(name.content)?),
            0x86 => San::Uri(text(name.content)?),
            0x87 => San::Ip(ip(name.content)?),
            0xa0 => San::Other("otherName"),
            0xa3 => San::Other("x400Address"),
            0xa4 => San::Other("directoryName"),
            0xa5 => San::Other("ediPartyName"),
            0x88 => {
                der::oid(name.content).map_err(bad)?;
                San::Other("registeredID")
            }
            other => return Err(ExtensionError::SanKind(other)),
        });
    }
    Ok(out)
}

fn ip(content: &[u8]) -> Result<IpAddr, ExtensionError> {
    if let Ok(v4) = <[u8; 4]>::try_from(content) {
        Ok(IpAddr::from(v4))
    } else if let Ok(v6) = <[u8; 16]>::try_from(content) {
        Ok(IpAddr::from(v6))
    } else {
        Err(ExtensionError::IpLength(content.len()))
    }
}

/// `BasicConstraints ::= SEQUENCE { cA BOOLEAN DEFAULT FALSE, pathLenConstraint INTEGER OPTIONAL }`.
fn basic_constraints(value: &[u8]) -> Result<bool, DerError> {
    let mut r = Reader::new(der::single(value, SEQUENCE)?);
    let ca = match r.optional(BOOLEAN)? {
        Some(b) => der::boolean(b.content)?,
        None => false,
    };
    if let Some(len) = r.optional(der::INTEGER)? {
        der::small_uint(len.content)?;
    }
    r.finish()?;
    Ok(ca)
}

/// The keyUsage bits, in RFC 5280 order, as `spec.usages` names.
const KEY_USAGE_BITS: [&str; 9] = [
    "digital signature",
    "content commitment",
    "key encipherment",
    "data encipherment",
    "key agreement",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
];

fn key_usage(value: &[u8]) -> Result<Vec<&'static str>, DerError> {
    let bits = der::bit_string(der::single(value, BIT_STRING)?)?;
    if bits.len() > 2 || bits.get(1).is_some_and(|b| b & 0x7f != 0) {
        return Err(DerError::BadBitString);
    }
    Ok(KEY_USAGE_BITS
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            bits.get(i / 8)
                .is_some_and(|byte| byte & (0x80 >> (i % 8)) != 0)
        })
        .map(|(_, name)| *name)
        .collect())
}

fn ext_key_usage(value: &[u8]) -> Result<Vec<&'static str>, ExtensionError> {
    let bad = |source| ExtensionError::Malformed {
        name: "extKeyUsage",
        source,
    };
    let mut oids = Reader::new(der::single(value, SEQUENCE).map_err(bad)?);
    if oids.is_empty() {
        return Err(bad(DerError::Empty));
    }
    let mut out = Vec::new();
    while !oids.is_empty() {
        let oid = der::oid(oids.expect(OID).map_err(bad)?.content).map_err(bad)?;
        out.push(
            purpose(oid).ok_or_else(|| ExtensionError::UnknownExtKeyUsage(der::oid_text(oid)))?,
        );
    }
    Ok(out)
}

/// An extKeyUsage purpose as a `spec.usages` name.
fn purpose(oid: &[u8]) -> Option<&'static str> {
    const PKIX_KP: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03];
    if let Some(rest) = oid.strip_prefix(PKIX_KP) {
        return match rest {
            [1] => Some("server auth"),
            [2] => Some("client auth"),
            [3] => Some("code signing"),
            [4] => Some("email protection"),
            [5] => Some("ipsec end system"),
            [6] => Some("ipsec tunnel"),
            [7] => Some("ipsec user"),
            [8] => Some("timestamping"),
            [9] => Some("ocsp signing"),
            _ => None,
        };
    }
    match oid {
        [0x55, 0x1d, 0x25, 0x00] => Some("any"),
        [0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x0a, 0x03, 0x03] => Some("microsoft sgc"),
        [0x60, 0x86, 0x48, 0x01, 0x86, 0xf8, 0x42, 0x04, 0x01] => Some("netscape sgc"),
        _ => None,
    }
}
