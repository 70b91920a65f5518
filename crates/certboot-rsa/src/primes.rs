//! The prime search: two threads hunting a pair of primes, each candidate from a sieve, each prime
//! tested as Go tests it.

use crypto_bigint::{BoxedUint, NonZero, Odd, RandomBits, RandomMod, Uint, UnsignedWithMontyForm};
use crypto_primes::hazmat::{MillerRabin, SetBits, SmallFactorsSieveFactory};
use crypto_primes::{sieve_and_find, Flavor};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use zeroize::Zeroizing;

use crate::rng::{Fill, LatchedRng};
use crate::KeygenError;

/// The public exponent, `e`.
pub(crate) const E: u32 = 65537;

/// The two primes of one key.
pub(crate) struct Pair {
    pub(crate) p: Zeroizing<BoxedUint>,
    pub(crate) q: Zeroizing<BoxedUint>,
}

/// Two threads hunt primes until they hold two between them: whichever finds one keeps hunting
/// while the pair is incomplete, so both CPUs work until the end (the wait is about half the
/// one-thread search's, for the same CPU time). When no thread can be started (a pod's thread
/// limit), this one hunts both.
pub(crate) fn pair<const LIMBS: usize>(bits: u32, fill: Fill) -> Result<Pair, KeygenError>
where
    Uint<LIMBS>: UnsignedWithMontyForm + RandomMod + RandomBits,
{
    let hunt = Hunt {
        found: Mutex::new(Vec::with_capacity(2)),
        done: AtomicBool::new(false),
    };
    std::thread::scope(|scope| {
        let helper = std::thread::Builder::new()
            .name("rsa-prime".to_owned())
            .spawn_scoped(scope, || hunt.run::<LIMBS>(bits, fill));
        let mine = hunt.run::<LIMBS>(bits, fill);
        let theirs = match helper {
            Ok(thread) => thread.join().map_err(|_| KeygenError::Thread)?,
            Err(_) => Ok(()),
        };
        mine.and(theirs)
    })?;
    let mut found = hunt.found.into_inner().map_err(|_| KeygenError::Thread)?;
    match (found.pop(), found.pop()) {
        (Some(p), Some(q)) => Ok(Pair { p, q }),
        _ => Err(KeygenError::Thread),
    }
}

/// The primes found so far, and whether the pair is complete (or a hunter failed).
struct Hunt {
    found: Mutex<Vec<Zeroizing<BoxedUint>>>,
    done: AtomicBool,
}

impl Hunt {
    fn run<const LIMBS: usize>(&self, bits: u32, fill: Fill) -> Result<(), KeygenError>
    where
        Uint<LIMBS>: UnsignedWithMontyForm + RandomMod + RandomBits,
    {
        let mut rng = LatchedRng::new(fill);
        let outcome = self.hunt::<LIMBS>(&mut rng, bits);
        if outcome.is_err() {
            self.done.store(true, Ordering::Release);
        }
        outcome
    }

    fn hunt<const LIMBS: usize>(&self, rng: &mut LatchedRng, bits: u32) -> Result<(), KeygenError>
    where
        Uint<LIMBS>: UnsignedWithMontyForm + RandomMod + RandomBits,
    {
        while let Some(prime) = search::<LIMBS>(rng, bits, &self.done)? {
            let mut found = self.found.lock().map_err(|_| KeygenError::Thread)?;
            if found.len() < 2 {
                found.push(prime);
            }
            if found.len() == 2 {
                self.done.store(true, Ordering::Release);
            }
        }
        Ok(())
    }
}

/// One random prime of exactly `bits` bits, its two top bits set, with `gcd(e, p - 1) = 1`; or
/// `None` once `done` is set (checked at every candidate).
fn search<const LIMBS: usize>(
    rng: &mut LatchedRng,
    bits: u32,
    done: &AtomicBool,
) -> Result<Option<Zeroizing<BoxedUint>>, KeygenError>
where
    Uint<LIMBS>: UnsignedWithMontyForm + RandomMod + RandomBits,
{
    let rounds = random_base_rounds(bits);
    let stop = |rng: &LatchedRng| rng.failed() || done.load(Ordering::Acquire);
    loop {
        let sieve =
            SmallFactorsSieveFactory::<Uint<LIMBS>>::new(Flavor::Any, bits, SetBits::TwoMsb)
                .map_err(|error| KeygenError::Sieve(error.to_string()))?;
        let found = sieve_and_find(rng, sieve, |rng, candidate| {
            stop(rng) || is_probable_prime(rng, candidate, rounds)
        })
        .map_err(|error| KeygenError::Sieve(error.to_string()))?;
        if rng.failed() {
            return Err(KeygenError::Random);
        }
        if done.load(Ordering::Acquire) {
            return Ok(None);
        }
        // The sieve ends (None) only when its range is exhausted: start another.
        let Some(candidate) = found.map(Zeroizing::new) else {
            continue;
        };
        if coprime_to_e(&candidate) {
            return Ok(Some(Zeroizing::new(BoxedUint::from(&*candidate))));
        }
    }
}

/// Miller-Rabin to base 2, then `rounds` more with random bases. Composites nearly all fail the
/// first (base 2), so the random rounds are paid about once per prime found. No Lucas test (as in
/// Go and BoringSSL): crypto-primes' runs in variable time on the prime's bits.
fn is_probable_prime<const LIMBS: usize>(
    rng: &mut LatchedRng,
    candidate: &Uint<LIMBS>,
    rounds: usize,
) -> bool
where
    Uint<LIMBS>: UnsignedWithMontyForm + RandomMod,
{
    let Some(odd) = Option::<Odd<Uint<LIMBS>>>::from(Odd::new(*candidate)) else {
        return false;
    };
    let miller_rabin = MillerRabin::new(odd);
    if miller_rabin.test_base_two().is_composite() {
        return false;
    }
    (0..rounds).all(|_| !miller_rabin.test_random_base(rng).is_composite())
}

/// Go's rounds for a prime of `bits` bits (crypto/internal/fips140/rsa, after BoringSSL; FIPS
/// 186-5 table B.1): 5 for RSA-2048's primes, 4 for RSA-3072's and RSA-4096's.
fn random_base_rounds(bits: u32) -> usize {
    match bits {
        3747.. => 3,
        1345.. => 4,
        476.. => 5,
        _ => 6,
    }
}

/// `gcd(65537, p - 1) = 1`: 65537 is prime, so `p - 1` must not be a multiple of it.
fn coprime_to_e<const LIMBS: usize>(p: &Uint<LIMBS>) -> bool {
    let Some(e) = NonZero::new(Uint::<LIMBS>::from_u32(E)).into_option() else {
        return false;
    };
    let remainder = Zeroizing::new(p.wrapping_sub(&Uint::ONE).rem_vartime(&e));
    *remainder != Uint::ZERO
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::os_random;
    use crypto_bigint::U1024;

    #[test]
    fn primes_have_exactly_their_bits_and_the_two_top_ones_set() {
        let found = pair::<{ U1024::LIMBS }>(1024, os_random).unwrap();
        for prime in [&found.p, &found.q] {
            assert_eq!(prime.bit_width(), 1024);
            assert!(bool::from(prime.bit(1022)), "second top bit");
            assert!(bool::from(prime.bit(0)), "odd");
        }
        assert_ne!(*found.p, *found.q);
    }

    #[test]
    fn known_composites_fail_and_known_primes_pass() {
        let mut rng = LatchedRng::new(os_random);
        // 2^1024 - 105 is the largest 1024-bit prime; 2^1024 - 103 is divisible by 3 and 2^1024 - 1
        // by 3 too; a Carmichael number (561 = 3 * 11 * 17) fools Fermat, not Miller-Rabin.
        let largest = U1024::MAX.wrapping_sub(&U1024::from_u32(104));
        assert!(is_probable_prime(&mut rng, &largest, 5));
        for composite in [
            U1024::MAX,
            U1024::MAX.wrapping_sub(&U1024::from_u32(102)),
            U1024::from_u32(561),
        ] {
            assert!(!is_probable_prime(&mut rng, &composite, 5));
        }
    }

    #[test]
    fn a_prime_one_past_a_multiple_of_e_is_refused() {
        // 65537 * 2 + 1 = 131075 = 5^2 * 5243, not prime, but p - 1 is a multiple of e.
        assert!(!coprime_to_e(&U1024::from_u32(2 * E + 1)));
        assert!(coprime_to_e(&U1024::from_u32(2 * E + 3)));
    }

    #[test]
    fn a_failing_random_source_ends_the_search_with_an_error() {
        let result = pair::<{ U1024::LIMBS }>(1024, |_| Err(crate::RandomFailed));
        assert!(matches!(result, Err(KeygenError::Random)));
    }

    #[test]
    fn rounds_follow_go() {
        assert_eq!(random_base_rounds(1024), 5);
        assert_eq!(random_base_rounds(1536), 4);
        assert_eq!(random_base_rounds(2048), 4);
        assert_eq!(random_base_rounds(4096), 3);
    }
}
