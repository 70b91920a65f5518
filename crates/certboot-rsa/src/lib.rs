//! certboot-rsa: RSA private keys, generated faster than AWS-LC's prime search and at least as fast
//! as Go's `crypto/rsa` (docs/performance.md, "RSA key generation beside Go").
//!
//! [`generate`] searches the two primes at once, one on a thread of its own (the same CPU time as
//! one after the other, half the wait on two cores), each with:
//! - a sieve of small factors over a random odd start with its two top bits set (so `p * q` has
//!   exactly the bits asked for);
//! - Miller-Rabin to base 2, which nearly every composite fails;
//! - then, for the one candidate that passed, Go's count of Miller-Rabin rounds with random bases
//!   (FIPS 186-5, table B.1): the test Go and BoringSSL use;
//! - `gcd(e, p - 1) = 1` for `e = 65537`.
//!
//! [`components`] then derives `n`, `d = e⁻¹ mod lcm(p - 1, q - 1)`, the CRT exponents and
//! coefficient, and rejects pairs FIPS 186-5 rejects (`|p - q|` too small, `d` too small). The
//! caller hands them to AWS-LC, which checks the key once more (`RSA_check_key`).
//!
//! This crate holds no random source of its own: the caller passes its [`Fill`] (certboot passes
//! AWS-LC's). The numbers this crate holds are zeroized when dropped; the temporaries inside
//! crypto-bigint and crypto-primes (the sieve's residues, division scratch) are not.

mod components;
mod primes;
mod rng;

pub use components::Components;
pub use rng::{Fill, RandomFailed};

use crypto_bigint::{U1024, U1536, U2048};

/// The modulus sizes this crate generates. (certboot leaves RSA-8192 to AWS-LC, faster there.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Rsa2048,
    Rsa3072,
    Rsa4096,
}

impl Size {
    /// The modulus' length in bits.
    pub fn bits(self) -> u32 {
        match self {
            Size::Rsa2048 => 2048,
            Size::Rsa3072 => 3072,
            Size::Rsa4096 => 4096,
        }
    }
}

/// Why no key came out.
#[derive(Debug, thiserror::Error)]
pub enum KeygenError {
    /// The caller's random source failed (its error carries no detail).
    #[error("the random source failed")]
    Random,
    /// The prime search's sieve refused the size: a bug in this crate, not an environment problem.
    #[error("the prime search could not start ({0})")]
    Sieve(String),
    /// The thread searching the second prime ended without an answer.
    #[error("the thread searching the second prime failed")]
    Thread,
    /// Every pair found was turned away (each happens with probability about 2^-100): a bug.
    #[error("{0} prime pairs in a row were turned away")]
    Refused(usize),
}

/// How many pairs [`generate`] searches before it gives up (one is all it ever needs).
const PAIRS: usize = 4;

/// A fresh RSA key of `size` with `e = 65537`, from `fill`'s randomness.
pub fn generate(size: Size, fill: Fill) -> Result<Components, KeygenError> {
    let prime_bits = size.bits() / 2;
    for _ in 0..PAIRS {
        let found = match size {
            Size::Rsa2048 => primes::pair::<{ U1024::LIMBS }>(prime_bits, fill)?,
            Size::Rsa3072 => primes::pair::<{ U1536::LIMBS }>(prime_bits, fill)?,
            Size::Rsa4096 => primes::pair::<{ U2048::LIMBS }>(prime_bits, fill)?,
        };
        // A pair FIPS 186-5 rejects (|p - q| or d too small; about 2^-100 each) is searched again.
        if let Some(key) = components::derive(&found.p, &found.q, size.bits()) {
            return Ok(key);
        }
    }
    Err(KeygenError::Refused(PAIRS))
}
