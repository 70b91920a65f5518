//! The private key: generated in memory, never printed, zeroized when dropped.
//!
//! Every key comes from `aws-lc-rs` (AWS-LC: ECDSA P-256/P-384/P-521, Ed25519, RSA 2048-8192,
//! with assembly-tuned RSA key generation), which also signs (through rcgen).
//! The key lives as PKCS#8 DER in a [`Zeroizing`] buffer; its `Debug` prints `"..."`. Its PEM is
//! encoded and decoded in place, in zeroized buffers (no intermediate copies of the base64 text).

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING,
    ECDSA_P521_SHA512_ASN1_SIGNING,
};
use rcgen::{
    KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ECDSA_P521_SHA512, PKCS_ED25519,
    PKCS_RSA_SHA256,
};
use zeroize::Zeroizing;

/// The key algorithms certboot can generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyAlgorithm {
    EcdsaP256,
    EcdsaP384,
    /// Signs with SHA-512.
    EcdsaP521,
    Ed25519,
    Rsa2048,
    Rsa3072,
    Rsa4096,
    Rsa8192,
}

impl KeyAlgorithm {
    /// Every accepted `CERTBOOT_KEY_ALGORITHM` value, default first.
    pub const NAMES: &'static [&'static str] = &[
        "ecdsa-p256",
        "ecdsa-p384",
        "ecdsa-p521",
        "ed25519",
        "rsa-2048",
        "rsa-3072",
        "rsa-4096",
        "rsa-8192",
    ];

    /// Every algorithm, in the order of [`KeyAlgorithm::NAMES`].
    pub const ALL: [KeyAlgorithm; 8] = [
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::EcdsaP384,
        KeyAlgorithm::EcdsaP521,
        KeyAlgorithm::Ed25519,
        KeyAlgorithm::Rsa2048,
        KeyAlgorithm::Rsa3072,
        KeyAlgorithm::Rsa4096,
        KeyAlgorithm::Rsa8192,
    ];

    /// The configuration name, e.g. `ecdsa-p256`.
    pub fn name(self) -> &'static str {
        let index = Self::ALL.iter().position(|a| *a == self).unwrap_or(0);
        Self::NAMES[index]
    }

    /// True for the RSA sizes.
    pub fn is_rsa(self) -> bool {
        self.rsa_size().is_some()
    }

    fn rsa_size(self) -> Option<KeySize> {
        match self {
            KeyAlgorithm::Rsa2048 => Some(KeySize::Rsa2048),
            KeyAlgorithm::Rsa3072 => Some(KeySize::Rsa3072),
            KeyAlgorithm::Rsa4096 => Some(KeySize::Rsa4096),
            KeyAlgorithm::Rsa8192 => Some(KeySize::Rsa8192),
            _ => None,
        }
    }

    fn signature_algorithm(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            KeyAlgorithm::EcdsaP256 => &PKCS_ECDSA_P256_SHA256,
            KeyAlgorithm::EcdsaP384 => &PKCS_ECDSA_P384_SHA384,
            KeyAlgorithm::EcdsaP521 => &PKCS_ECDSA_P521_SHA512,
            KeyAlgorithm::Ed25519 => &PKCS_ED25519,
            _ => &PKCS_RSA_SHA256,
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KeyAlgorithm {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.to_ascii_lowercase();
        Self::NAMES
            .iter()
            .position(|n| *n == wanted)
            .map(|i| Self::ALL[i])
            .ok_or(())
    }
}

/// Failures while generating or loading a key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The system random generator or the crypto library failed.
    #[error("could not generate a {algorithm} private key: {source}; this is an environment problem (entropy source) - retry, and report it if it persists")]
    Generate {
        algorithm: KeyAlgorithm,
        #[source]
        source: GenerateError,
    },
    /// A key file on disk is not PEM. The file's content is never echoed.
    #[error("the private key is not a PKCS#8 key certboot can read (not PEM)")]
    NotPem(#[source] pem_rfc7468::Error),
    /// A PEM file whose block is not a private key.
    #[error("the private key is not a PKCS#8 key certboot can read (PEM block is {tag:?}, expected \"PRIVATE KEY\")")]
    NotPrivateKey { tag: String },
    /// PKCS#8 that rcgen and ring cannot use.
    #[error("the private key is not a PKCS#8 key certboot can read ({0})")]
    Unusable(#[source] rcgen::Error),
}

/// Why generating a key failed.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// aws-lc-rs reports no detail beyond "unspecified".
    #[error("the system random generator failed")]
    Random,
    /// The key generated but could not be loaded back for signing.
    #[error(transparent)]
    Load(Box<KeyError>),
    /// The blocking task generating an RSA key did not finish.
    #[error(transparent)]
    Task(#[from] tokio::task::JoinError),
}

/// A private key held in memory as PKCS#8 DER. Zeroized on drop; never printed.
pub struct PrivateKey {
    algorithm: KeyAlgorithm,
    pkcs8: Zeroizing<Vec<u8>>,
    public_key: Vec<u8>,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("algorithm", &self.algorithm)
            .field("pkcs8", &"...")
            .finish()
    }
}

impl PrivateKey {
    /// Generates a fresh key of `algorithm` from the operating system's random source.
    pub fn generate(algorithm: KeyAlgorithm) -> Result<PrivateKey, KeyError> {
        let pkcs8 = match algorithm.rsa_size() {
            Some(size) => generate_rsa(size),
            None => generate_curve(algorithm),
        }
        .map_err(|source| KeyError::Generate { algorithm, source })?;
        Self::from_pkcs8(algorithm, pkcs8).map_err(|e| KeyError::Generate {
            algorithm,
            source: GenerateError::Load(Box::new(e)),
        })
    }

    /// Loads a PKCS#8 PEM key (as written by [`PrivateKey::to_pem`]).
    /// The DER is decoded straight into one zeroized buffer (no copy of the base64 text is made).
    pub fn from_pem(pem_text: &str) -> Result<PrivateKey, KeyError> {
        let mut der = Zeroizing::new(vec![0u8; pem_text.len()]);
        let (label, len) = pem_rfc7468::decode(pem_text.as_bytes(), &mut der)
            .map(|(label, decoded)| (label, decoded.len()))
            .map_err(KeyError::NotPem)?;
        if label != "PRIVATE KEY" {
            return Err(KeyError::NotPrivateKey {
                tag: label.to_string(),
            });
        }
        der.truncate(len);
        let pair = KeyPair::try_from(der.as_slice())
            .map(Zeroizing::new)
            .map_err(KeyError::Unusable)?;
        let algorithm = algorithm_of(&pair);
        Self::from_pkcs8(algorithm, der)
    }

    fn from_pkcs8(
        algorithm: KeyAlgorithm,
        pkcs8: Zeroizing<Vec<u8>>,
    ) -> Result<PrivateKey, KeyError> {
        let mut key = PrivateKey {
            algorithm,
            pkcs8,
            public_key: Vec::new(),
        };
        key.public_key = key.signing_key()?.public_key_raw().to_vec();
        Ok(key)
    }

    /// The algorithm this key was generated with.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// The raw public key (the SubjectPublicKeyInfo bit string), to compare with a certificate's.
    pub fn public_key_raw(&self) -> &[u8] {
        &self.public_key
    }

    /// A short, stable fingerprint of the public key (first 8 hex digits of its SHA-256).
    pub fn fingerprint(&self) -> String {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &self.public_key);
        digest.as_ref()[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// An rcgen key pair for signing, meant to be short-lived: its copy of the DER is zeroized on drop.
    pub fn signing_key(&self) -> Result<Zeroizing<KeyPair>, KeyError> {
        let der = rustls_pki_types::PrivatePkcs8KeyDer::from(self.pkcs8.as_slice());
        KeyPair::from_pkcs8_der_and_sign_algo(&der, self.algorithm.signature_algorithm())
            .map(Zeroizing::new)
            .map_err(KeyError::Unusable)
    }

    /// The key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), in a buffer zeroized on drop.
    pub fn to_pem(&self) -> Zeroizing<String> {
        pkcs8_pem(&self.pkcs8)
    }
}

const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----\n";
const PEM_END: &str = "-----END PRIVATE KEY-----\n";
const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// PEM of a PKCS#8 DER key, base64-encoded straight into one buffer allocated at its final size
/// (so no reallocation leaves an unzeroized copy behind) and zeroized on drop. A general PEM
/// encoder would build the base64 text in intermediate buffers that are freed without wiping.
fn pkcs8_pem(der: &[u8]) -> Zeroizing<String> {
    let body = der.len().div_ceil(3) * 4;
    let size = PEM_BEGIN.len() + body + body.div_ceil(64) + PEM_END.len();
    let mut out = Zeroizing::new(String::with_capacity(size));
    out.push_str(PEM_BEGIN);
    for line in der.chunks(48) {
        for group in line.chunks(3) {
            let b = [
                group[0],
                group.get(1).copied().unwrap_or(0),
                group.get(2).copied().unwrap_or(0),
            ];
            let sextets = [
                b[0] >> 2,
                ((b[0] & 0x03) << 4) | (b[1] >> 4),
                ((b[1] & 0x0f) << 2) | (b[2] >> 6),
                b[2] & 0x3f,
            ];
            for (i, sextet) in sextets.into_iter().enumerate() {
                let c = if i <= group.len() {
                    char::from(BASE64[usize::from(sextet)])
                } else {
                    '='
                };
                out.push(c);
            }
        }
        out.push('\n');
    }
    out.push_str(PEM_END);
    out
}

fn algorithm_of(pair: &KeyPair) -> KeyAlgorithm {
    let alg = pair.algorithm();
    if alg == &PKCS_ECDSA_P256_SHA256 {
        KeyAlgorithm::EcdsaP256
    } else if alg == &PKCS_ECDSA_P384_SHA384 {
        KeyAlgorithm::EcdsaP384
    } else if alg == &PKCS_ECDSA_P521_SHA512 {
        KeyAlgorithm::EcdsaP521
    } else if alg == &PKCS_ED25519 {
        KeyAlgorithm::Ed25519
    } else {
        // RSA: the size follows from the modulus; the raw public key is a DER RSAPublicKey.
        match pair.public_key_raw().len() {
            0..=300 => KeyAlgorithm::Rsa2048,
            301..=430 => KeyAlgorithm::Rsa3072,
            431..=700 => KeyAlgorithm::Rsa4096,
            _ => KeyAlgorithm::Rsa8192,
        }
    }
}

fn generate_curve(algorithm: KeyAlgorithm) -> Result<Zeroizing<Vec<u8>>, GenerateError> {
    let rng = SystemRandom::new();
    let document = match algorithm {
        KeyAlgorithm::EcdsaP256 => {
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        }
        KeyAlgorithm::EcdsaP384 => {
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, &rng)
        }
        KeyAlgorithm::EcdsaP521 => {
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P521_SHA512_ASN1_SIGNING, &rng)
        }
        // PKCS#8 v1 (no public key in the file): OpenSSL 3.0 cannot read ring's and AWS-LC's
        // default v2 for Ed25519 ("unsupported"); rcgen and AWS-LC read either.
        _ => Ed25519KeyPair::generate_pkcs8v1(&rng),
    }
    .map_err(|_| GenerateError::Random)?;
    Ok(Zeroizing::new(document.as_ref().to_vec()))
}

/// AWS-LC's RSA key generation (e = 65537); its DER buffer is zeroized on drop.
fn generate_rsa(size: KeySize) -> Result<Zeroizing<Vec<u8>>, GenerateError> {
    let key = aws_lc_rs::rsa::KeyPair::generate(size).map_err(|_| GenerateError::Random)?;
    let document = key.as_der().map_err(|_| GenerateError::Random)?;
    Ok(Zeroizing::new(document.as_ref().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_generates_a_key_that_round_trips_through_pem() {
        for algorithm in KeyAlgorithm::ALL {
            let key = PrivateKey::generate(algorithm).unwrap();
            assert_eq!(key.algorithm(), algorithm);
            let pem = key.to_pem();
            assert!(
                pem.starts_with("-----BEGIN PRIVATE KEY-----\n"),
                "{algorithm}"
            );
            let again = PrivateKey::from_pem(&pem).unwrap();
            assert_eq!(again.public_key_raw(), key.public_key_raw(), "{algorithm}");
            assert_eq!(again.algorithm(), algorithm, "{algorithm}");
        }
    }

    #[test]
    fn pem_is_encoded_in_one_buffer_of_its_final_size() {
        for algorithm in [
            KeyAlgorithm::EcdsaP256,
            KeyAlgorithm::Ed25519,
            KeyAlgorithm::EcdsaP384,
        ] {
            let key = PrivateKey::generate(algorithm).unwrap();
            let pem = key.to_pem();
            let reference = pem::encode_config(
                &pem::Pem::new("PRIVATE KEY", key.pkcs8.to_vec()),
                pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
            );
            assert_eq!(pem.as_str(), reference, "{algorithm}");
            assert_eq!(
                pem.capacity(),
                pem.len(),
                "{algorithm}: reallocated or oversized"
            );
        }
        for len in 0..100 {
            let der: Vec<u8> = (0..len).map(|i| (i * 37 % 256) as u8).collect();
            let reference = pem::encode_config(
                &pem::Pem::new("PRIVATE KEY", der.clone()),
                pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
            );
            let ours = pkcs8_pem(&der);
            assert_eq!(ours.as_str(), reference, "{len} bytes");
            assert_eq!(ours.capacity(), ours.len(), "{len} bytes");
        }
    }

    #[test]
    fn debug_output_hides_key_material() {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let debug = format!("{key:?}");
        assert_eq!(debug, "PrivateKey { algorithm: EcdsaP256, pkcs8: \"...\" }");
        let pem = key.to_pem();
        let body: String = pem.lines().nth(1).unwrap().chars().take(16).collect();
        assert!(!debug.contains(&body));
    }

    #[test]
    fn two_keys_differ_and_fingerprints_are_eight_hex_digits() {
        let a = PrivateKey::generate(KeyAlgorithm::Ed25519).unwrap();
        let b = PrivateKey::generate(KeyAlgorithm::Ed25519).unwrap();
        assert_ne!(a.public_key_raw(), b.public_key_raw());
        assert_eq!(a.fingerprint().len(), 8);
        assert_ne!(a.fingerprint(), b.fingerprint());
    }

    #[test]
    fn names_parse_case_insensitively_and_unknown_is_rejected() {
        assert_eq!(
            "ECDSA-P384".parse::<KeyAlgorithm>(),
            Ok(KeyAlgorithm::EcdsaP384)
        );
        assert!("rsa-1024".parse::<KeyAlgorithm>().is_err());
        for (name, alg) in KeyAlgorithm::NAMES.iter().zip(KeyAlgorithm::ALL) {
            assert_eq!(alg.name(), *name);
        }
    }

    #[test]
    fn garbage_key_files_are_rejected_without_echoing_content() {
        let err = PrivateKey::from_pem(
            "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n",
        )
        .unwrap_err();
        assert!(!err.to_string().contains("c2VjcmV0"));
        assert!(PrivateKey::from_pem("hello").is_err());
    }
}
