//! The record of where a pair came from: `.certboot.json` in the generation directory, beside the
//! certificate and key, written and fsynced with them before `..data` is swapped (so it always
//! describes the pair next to it):
//!
//! ```json
//! {"version":1,"csr":"shop:web-0:6f1d3c","signerName":"example.com/web",
//!  "podUid":"6f1d3c52-...","certSha256":"9f86d0..."}
//! ```
//!
//! A pair is reused (and `certboot check` passes) only when its record names a CSR of this pod
//! (`<namespace>:<pod>:<uid6>`, or its renewal `...:<fingerprint>`), the configured signer, this
//! pod's UID, and the SHA-256 of the leaf certificate actually on disk. The name starts with a dot,
//! which `CERTBOOT_CERT_FILE` and the other file names may not, so it never collides with them.

use serde::{Deserialize, Serialize};

/// The record's file name inside the generation directory (reachable as `..data/.certboot.json`).
pub const ORIGIN_FILE: &str = ".certboot.json";

const VERSION: u32 = 1;

/// Which CSR and signer produced the pair beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Origin {
    pub version: u32,
    pub csr: String,
    pub signer_name: String,
    pub pod_uid: String,
    /// SHA-256 of the leaf certificate's DER, lowercase hex.
    pub cert_sha256: String,
}

/// What the record must say for the pair to be trusted.
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    /// The pod's initial CSR name, `<namespace>:<pod>:<uid6>`.
    pub csr_name: &'a str,
    pub signer_name: &'a str,
    pub pod_uid: &'a str,
    pub cert_sha256: &'a str,
}

/// Why the record does not vouch for the pair.
#[derive(Debug, thiserror::Error)]
pub enum OriginError {
    #[error("it has no record of the CSR that produced it (..data/{ORIGIN_FILE}): certboot did not write this pair, or a version before the record existed did")]
    Missing,
    #[error("its record ..data/{ORIGIN_FILE} cannot be parsed ({0})")]
    Unparsable(#[source] serde_json::Error),
    #[error(
        "its record ..data/{ORIGIN_FILE} has version {0}, this certboot knows version {VERSION}"
    )]
    Version(u32),
    #[error("its record is for another certificate (SHA-256 {recorded}, the certificate on disk has {actual}): the certificate was replaced after certboot wrote it")]
    OtherCertificate { recorded: String, actual: String },
    #[error("it was issued by signer {recorded}, not by the configured CERTBOOT_SIGNER_NAME={configured}")]
    OtherSigner {
        recorded: String,
        configured: String,
    },
    #[error(
        "it was obtained with CSR {csr:?} for pod UID {uid:?}, not by this pod (CSR {wanted}...)"
    )]
    OtherPod {
        csr: String,
        uid: String,
        wanted: String,
    },
}

impl Origin {
    /// The record for a pair just obtained.
    pub fn new(csr: &str, signer_name: &str, pod_uid: &str, cert_sha256: &str) -> Origin {
        Origin {
            version: VERSION,
            csr: csr.to_string(),
            signer_name: signer_name.to_string(),
            pod_uid: pod_uid.to_string(),
            cert_sha256: cert_sha256.to_string(),
        }
    }

    /// The record as written to disk.
    pub fn to_json(&self) -> String {
        // Serializing plain strings and a number cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a record read from disk and checks it vouches for `wanted`.
    pub fn check(bytes: Option<&[u8]>, wanted: &Wanted<'_>) -> Result<Origin, OriginError> {
        let bytes = bytes.ok_or(OriginError::Missing)?;
        let origin: Origin = serde_json::from_slice(bytes).map_err(OriginError::Unparsable)?;
        if origin.version != VERSION {
            return Err(OriginError::Version(origin.version));
        }
        if !origin.cert_sha256.eq_ignore_ascii_case(wanted.cert_sha256) {
            return Err(OriginError::OtherCertificate {
                recorded: clip(&origin.cert_sha256),
                actual: wanted.cert_sha256.to_string(),
            });
        }
        if origin.signer_name != wanted.signer_name {
            return Err(OriginError::OtherSigner {
                recorded: clip(&origin.signer_name),
                configured: wanted.signer_name.to_string(),
            });
        }
        let ours = origin.csr == wanted.csr_name
            || origin
                .csr
                .strip_prefix(wanted.csr_name)
                .is_some_and(|rest| rest.starts_with(':'));
        if !ours || origin.pod_uid != wanted.pod_uid {
            return Err(OriginError::OtherPod {
                csr: clip(&origin.csr),
                uid: clip(&origin.pod_uid),
                wanted: wanted.csr_name.to_string(),
            });
        }
        Ok(origin)
    }
}

/// Text from the record goes into messages: bounded, whatever was planted there.
fn clip(text: &str) -> String {
    text.chars().take(100).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const WANTED: Wanted<'static> = Wanted {
        csr_name: "shop:web-0:6f1d3c",
        signer_name: "example.com/web",
        pod_uid: "6f1d3c52",
        cert_sha256: "ab12",
    };

    fn check(origin: &Origin) -> Result<Origin, OriginError> {
        Origin::check(Some(origin.to_json().as_bytes()), &WANTED)
    }

    #[test]
    fn the_record_must_name_this_certificate_signer_and_pod() {
        let good = Origin::new("shop:web-0:6f1d3c", "example.com/web", "6f1d3c52", "ab12");
        assert_eq!(check(&good).unwrap(), good);
        let renewal = Origin::new(
            "shop:web-0:6f1d3c:0a1b2c3d",
            "example.com/web",
            "6f1d3c52",
            "AB12",
        );
        assert!(check(&renewal).is_ok());
        let other_cert = Origin::new("shop:web-0:6f1d3c", "example.com/web", "6f1d3c52", "ffff");
        assert!(matches!(
            check(&other_cert),
            Err(OriginError::OtherCertificate { .. })
        ));
        let other_signer = Origin::new("shop:web-0:6f1d3c", "example.com/evil", "6f1d3c52", "ab12");
        assert!(matches!(
            check(&other_signer),
            Err(OriginError::OtherSigner { .. })
        ));
        let other_pod = Origin::new("shop:web-0:6f1d3cX", "example.com/web", "6f1d3c52", "ab12");
        assert!(matches!(
            check(&other_pod),
            Err(OriginError::OtherPod { .. })
        ));
        let other_uid = Origin::new("shop:web-0:6f1d3c", "example.com/web", "other", "ab12");
        assert!(matches!(
            check(&other_uid),
            Err(OriginError::OtherPod { .. })
        ));
        assert!(matches!(
            Origin::check(None, &WANTED),
            Err(OriginError::Missing)
        ));
        assert!(matches!(
            Origin::check(Some(b"{not json"), &WANTED),
            Err(OriginError::Unparsable(_))
        ));
    }
}
