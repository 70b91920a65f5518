//! RSA key generation: which library searches the primes for which size, and AWS-LC's last word.
//!
//! - RSA-2048, 3072 and 4096 with at least two CPUs to use: certboot-rsa (two threads hunting the
//!   primes, RustCrypto's big integers), faster than AWS-LC's constant-time search and than Go's;
//!   AWS-LC then checks the key (`RSA_check_key`: `n = p * q`, `d` and the CRT numbers
//!   consistent) before it signs anything.
//! - With one CPU (`available_parallelism`, which reads the container's CPU quota), and for
//!   RSA-8192: AWS-LC's own search. One thread of certboot-rsa's portable arithmetic is no faster
//!   than AWS-LC's assembly at 2048 bits, and slower above.
//!
//! docs/performance.md ("RSA key generation beside Go") has the figures behind the split.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeyPairComponents, KeySize, PublicKeyComponents};
use certboot_rsa::{Components, RandomFailed, Size};
use zeroize::Zeroizing;

/// Why no RSA key came out.
#[derive(Debug, thiserror::Error)]
pub enum RsaKeygenError {
    /// AWS-LC's generation or encoding failed; aws-lc-rs reports no detail beyond "unspecified".
    #[error("the system random generator failed; this is an environment problem (entropy source) - retry, and report it if it persists")]
    Random,
    /// The prime search (certboot-rsa) failed.
    #[error("the RSA prime search failed ({0}); retry, and report it if it persists")]
    Search(#[source] certboot_rsa::KeygenError),
    /// AWS-LC refused the numbers of a generated RSA key: a bug in the search, caught before use.
    #[error("AWS-LC found the generated RSA key inconsistent ({0}); this is a certboot bug, please report it")]
    Inconsistent(#[source] aws_lc_rs::error::KeyRejected),
}

/// A fresh RSA key of `size` (e = 65537) as PKCS#8 DER, zeroized on drop.
pub(super) fn generate(size: KeySize) -> Result<Zeroizing<Vec<u8>>, RsaKeygenError> {
    let cpus = std::thread::available_parallelism().map_or(1, |cpus| cpus.get());
    let key = match searched_here(size, cpus) {
        Some(size) => searched(size)?,
        None => KeyPair::generate(size).map_err(|_| RsaKeygenError::Random)?,
    };
    let document = key.as_der().map_err(|_| RsaKeygenError::Random)?;
    Ok(Zeroizing::new(document.as_ref().to_vec()))
}

/// The sizes certboot-rsa searches, given `cpus`; `None` leaves the search to AWS-LC.
fn searched_here(size: KeySize, cpus: usize) -> Option<Size> {
    if cpus < 2 {
        return None;
    }
    match size {
        KeySize::Rsa2048 => Some(Size::Rsa2048),
        KeySize::Rsa3072 => Some(Size::Rsa3072),
        KeySize::Rsa4096 => Some(Size::Rsa4096),
        _ => None,
    }
}

/// certboot-rsa's key, once AWS-LC has checked it.
fn searched(size: Size) -> Result<KeyPair, RsaKeygenError> {
    let components = certboot_rsa::generate(size, aws_lc_random).map_err(RsaKeygenError::Search)?;
    checked_by_aws_lc(&components)
}

/// AWS-LC's DRBG, the source of every other key certboot generates.
fn aws_lc_random(dst: &mut [u8]) -> Result<(), RandomFailed> {
    aws_lc_rs::rand::fill(dst).map_err(|_| RandomFailed)
}

/// AWS-LC loads the numbers only if they make a consistent key.
fn checked_by_aws_lc(key: &Components) -> Result<KeyPair, RsaKeygenError> {
    KeyPair::from_components(&KeyPairComponents {
        public_key: PublicKeyComponents {
            n: key.n.as_slice(),
            e: key.e.as_slice(),
        },
        d: key.d.as_slice(),
        p: key.p.as_slice(),
        q: key.q.as_slice(),
        dP: key.dp.as_slice(),
        dQ: key.dq.as_slice(),
        qInv: key.qinv.as_slice(),
    })
    .map_err(RsaKeygenError::Inconsistent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rsa::PublicKey;
    use aws_lc_rs::signature::{
        KeyPair as _, UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256,
    };

    #[test]
    fn each_size_searched_here_gives_a_key_aws_lc_accepts_and_signs_with() {
        for (size, bits) in [
            (Size::Rsa2048, 2048),
            (Size::Rsa3072, 3072),
            (Size::Rsa4096, 4096),
        ] {
            let der = searched(size).unwrap().as_der().unwrap();
            let key = KeyPair::from_pkcs8(der.as_ref()).unwrap();
            assert_eq!(key.public_modulus_len() * 8, bits);
            let public = PublicKey::from_der(key.public_key().as_ref()).unwrap();
            assert_eq!(
                public.exponent().big_endian_without_leading_zero(),
                [1, 0, 1]
            );
            let mut signature = vec![0; key.public_modulus_len()];
            let rng = aws_lc_rs::rand::SystemRandom::new();
            key.sign(&RSA_PKCS1_SHA256, &rng, b"certboot", &mut signature)
                .unwrap();
            UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key.public_key().as_ref())
                .verify(b"certboot", &signature)
                .unwrap();
        }
    }

    #[test]
    fn a_tampered_number_is_refused_by_aws_lc() {
        let mut components = certboot_rsa::generate(Size::Rsa2048, aws_lc_random).unwrap();
        let last = components.qinv.len() - 1;
        components.qinv[last] ^= 1;
        assert!(matches!(
            checked_by_aws_lc(&components),
            Err(RsaKeygenError::Inconsistent(_))
        ));
    }

    #[test]
    fn rsa_8192_and_one_cpu_stay_with_aws_lc() {
        assert_eq!(searched_here(KeySize::Rsa8192, 2), None);
        assert_eq!(searched_here(KeySize::Rsa2048, 1), None);
        assert_eq!(searched_here(KeySize::Rsa2048, 2), Some(Size::Rsa2048));
        assert_eq!(searched_here(KeySize::Rsa4096, 16), Some(Size::Rsa4096));
    }
}
