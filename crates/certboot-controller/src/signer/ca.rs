//! The CA the signer issues from: a `kubernetes.io/tls` Secret mounted as files — `tls.crt` (the
//! signing CA first, then any intermediates up to, not necessarily including, the root),
//! `tls.key` (its PKCS#8 key: ECDSA P-256/P-384/P-521, Ed25519 or RSA 2048-8192), and optionally `ca.crt` (the
//! root pods should trust). Checked at start: the key is the first certificate's, which is a CA
//! and valid now.

use std::path::{Path, PathBuf};

use rcgen::{Issuer, KeyPair};
use x509_parser::prelude::{FromDer, X509Certificate};
use zeroize::Zeroizing;

/// The CA cannot be used; says which file and why.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CaError {
    #[error("cannot read {path}: {reason}. Mount the CA's kubernetes.io/tls Secret at CERTBOOT_SIGNER_CA_DIR")]
    Read { path: PathBuf, reason: String },
    #[error("{path} is not usable: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// One certificate of the CA chain, parsed facts only.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ChainCert {
    der: Vec<u8>,
    self_signed: bool,
    not_after: i64,
}

/// The loaded CA.
pub struct SigningCa {
    issuer: Issuer<'static, KeyPair>,
    chain: Vec<ChainCert>,
    /// PEM of the certificates pods should trust.
    trust_bundle: String,
    /// Whether the bundle holds the root (or issuer) of `chain`: false means pods would not
    /// trust what this CA signs.
    anchored: bool,
}

impl std::fmt::Debug for SigningCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningCa")
            .field("chain", &self.chain.len())
            .field("key", &"...")
            .finish()
    }
}

impl SigningCa {
    /// Loads `tls.crt`, `tls.key` and (optional) `ca.crt` from `dir`.
    pub fn load(dir: &Path, now: i64) -> Result<SigningCa, CaError> {
        SigningCa::from_files(dir, &CaFiles::read(dir)?, now)
    }

    /// Checks and parses files read by [`CaFiles::read`] (`dir` names them in errors).
    pub fn from_files(dir: &Path, files: &CaFiles, now: i64) -> Result<SigningCa, CaError> {
        let invalid = |name: &str, reason: String| CaError::Invalid {
            path: dir.join(name),
            reason,
        };
        let cert_pem = &files.tls_crt;
        let key_pem = &files.tls_key;
        let chain = parse_chain(cert_pem).map_err(|r| invalid("tls.crt", r))?;
        let key_text =
            std::str::from_utf8(key_pem).map_err(|_| invalid("tls.key", "not PEM text".into()))?;
        let key = KeyPair::from_pem(key_text).map_err(|_| {
            invalid(
                "tls.key",
                "not a PKCS#8 ECDSA, Ed25519 or RSA private key in PEM".into(),
            )
        })?;
        let first = chain
            .first()
            .ok_or_else(|| invalid("tls.crt", "holds no certificate".into()))?;
        check_signing_cert(&first.der, &key, now).map_err(|r| invalid("tls.crt", r))?;
        let first_pem = pem_of(std::iter::once(first));
        let issuer = Issuer::from_ca_cert_pem(&first_pem, key)
            .map_err(|e| invalid("tls.crt", e.to_string()))?;
        let roots = match &files.ca_crt {
            Some(bytes) => parse_chain(bytes).map_err(|r| invalid("ca.crt", r))?,
            None => chain.last().into_iter().cloned().collect(),
        };
        let anchored = anchored(&chain, &roots);
        Ok(SigningCa {
            issuer,
            trust_bundle: pem_of(roots.iter()),
            chain,
            anchored,
        })
    }

    /// The issuer (the signing CA's name, key identifier and key).
    pub fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }

    /// The signing CA's notAfter (Unix seconds): no leaf outlives it.
    pub fn not_after(&self) -> i64 {
        self.chain.first().map(|c| c.not_after).unwrap_or(0)
    }

    /// What follows the leaf in `status.certificate`: the signing CA and intermediates, roots left
    /// out (a client gets those from its trust bundle). Empty when the signing CA is a root.
    pub fn intermediates_pem(&self) -> String {
        pem_of(self.chain.iter().filter(|c| !c.self_signed))
    }

    /// False when the trust bundle holds neither the last certificate of `tls.crt` nor its
    /// issuer: pods would not trust the certificates signed (e.g. `tls.crt` switched to a new CA
    /// before the new root was added to `ca.crt`).
    pub fn bundle_trusts_chain(&self) -> bool {
        self.anchored
    }

    /// The PEM bundle pods should trust (`ca.crt`, or the last certificate of `tls.crt`).
    pub fn trust_bundle(&self) -> &str {
        &self.trust_bundle
    }
}

/// The bytes of the three files, as read at one moment.
pub struct CaFiles {
    tls_crt: Vec<u8>,
    tls_key: Zeroizing<Vec<u8>>,
    ca_crt: Option<Vec<u8>>,
}

impl CaFiles {
    /// Reads `tls.crt`, `tls.key` and, when present, `ca.crt` from `dir`. A mounted Secret's
    /// `..data` link is resolved once, so the three come from one generation even while the
    /// kubelet swaps in the next (a file of a generation removed meanwhile is a read error: the
    /// caller keeps its previous CA and reads again at the next change). Only a `ca.crt` that
    /// does not exist is "absent": any other failure to read it is an error, never a smaller
    /// bundle.
    pub fn read(dir: &Path) -> Result<CaFiles, CaError> {
        let generation =
            std::fs::canonicalize(dir.join("..data")).unwrap_or_else(|_| dir.to_path_buf());
        let read = |name: &str| {
            let path = generation.join(name);
            std::fs::read(&path).map_err(|e| CaError::Read {
                path: dir.join(name),
                reason: e.to_string(),
            })
        };
        let ca_crt = match read("ca.crt") {
            Ok(bytes) => Some(bytes),
            Err(_) if !generation.join("ca.crt").exists() && !dir.join("ca.crt").exists() => None,
            Err(e) => return Err(e),
        };
        Ok(CaFiles {
            tls_crt: read("tls.crt")?,
            tls_key: Zeroizing::new(read("tls.key")?),
            ca_crt,
        })
    }

    /// A SHA-256 over all three: equal digests, same CA (the key itself is never kept twice).
    pub fn digest(&self) -> [u8; 32] {
        let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        for part in [
            self.tls_crt.as_slice(),
            self.tls_key.as_slice(),
            self.ca_crt.as_deref().unwrap_or_default(),
        ] {
            context.update(&(part.len() as u64).to_be_bytes());
            context.update(part);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(context.finish().as_ref());
        out
    }
}

fn pem_of<'a>(certs: impl Iterator<Item = &'a ChainCert>) -> String {
    certs
        .map(|c| {
            let lf = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
            pem::encode_config(&pem::Pem::new("CERTIFICATE", c.der.clone()), lf)
        })
        .collect()
}

fn anchored(chain: &[ChainCert], roots: &[ChainCert]) -> bool {
    let Some(last) = chain.last() else {
        return false;
    };
    let Ok((_, last_cert)) = X509Certificate::from_der(&last.der) else {
        return false;
    };
    roots.iter().any(|root| {
        root.der == last.der
            || X509Certificate::from_der(&root.der)
                .is_ok_and(|(_, cert)| cert.subject() == last_cert.issuer())
    })
}

fn parse_chain(bytes: &[u8]) -> Result<Vec<ChainCert>, String> {
    let blocks = pem::parse_many(bytes).map_err(|e| format!("not PEM ({e})"))?;
    let mut chain = Vec::new();
    for block in blocks.iter().filter(|b| b.tag() == "CERTIFICATE") {
        let (_, cert) = X509Certificate::from_der(block.contents())
            .map_err(|_| "a CERTIFICATE block is not X.509".to_string())?;
        chain.push(ChainCert {
            der: block.contents().to_vec(),
            self_signed: cert.subject() == cert.issuer(),
            not_after: cert.validity().not_after.timestamp(),
        });
    }
    if chain.is_empty() {
        return Err("holds no CERTIFICATE block".into());
    }
    Ok(chain)
}

fn check_signing_cert(der: &[u8], key: &KeyPair, now: i64) -> Result<(), String> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|_| "not X.509".to_string())?;
    if !cert.is_ca() {
        return Err("its first certificate is not a CA (basicConstraints CA:TRUE)".into());
    }
    if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        return Err("its first certificate does not belong to the key in tls.key".into());
    }
    let validity = cert.validity();
    if validity.not_after.timestamp() <= now || validity.not_before.timestamp() > now {
        return Err(format!(
            "the CA is not valid now (valid from {} to {})",
            validity.not_before, validity.not_after
        ));
    }
    Ok(())
}
