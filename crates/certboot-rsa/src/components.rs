//! From two primes to the eight numbers of a PKCS#1 private key.

use std::fmt;

use crypto_bigint::{BoxedUint, ConcatenatingMul, Gcd, NonZero, Odd, Resize};
use zeroize::Zeroizing;

use crate::primes::E;

/// An RSA private key's numbers, big-endian without leading zeros, as AWS-LC's
/// `KeyPairComponents` takes them. The private ones are zeroized on drop; `Debug` prints `"..."`.
pub struct Components {
    pub n: Vec<u8>,
    pub e: Vec<u8>,
    pub d: Zeroizing<Vec<u8>>,
    pub p: Zeroizing<Vec<u8>>,
    pub q: Zeroizing<Vec<u8>>,
    pub dp: Zeroizing<Vec<u8>>,
    pub dq: Zeroizing<Vec<u8>>,
    pub qinv: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for Components {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Components")
            .field("bits", &(self.n.len() * 8))
            .field("private", &"...")
            .finish()
    }
}

/// The key of `p` and `q` (`bits / 2` bits each), or `None` for a pair FIPS 186-5 (A.1.3) turns
/// away: `|p - q| <= 2^(bits/2 - 100)`, or `d <= 2^(bits/2)`. Every number is computed at the
/// modulus' width, so that no operation meets operands of two widths, and every private one is
/// held in a zeroizing wrapper (resizing from a reference allocates afresh instead of reallocating
/// the secret's buffer).
pub(crate) fn derive(p: &BoxedUint, q: &BoxedUint, bits: u32) -> Option<Components> {
    let half = bits / 2;
    let p = Zeroizing::new(p.try_resize(bits)?);
    let q = Zeroizing::new(q.try_resize(bits)?);
    if !far_enough_apart(&p, &q, bits) {
        return None;
    }
    let n = Zeroizing::new(p.concatenating_mul(&*q));
    let n = (&*n).try_resize(bits)?;
    if n.bit_width() != bits {
        return None;
    }
    let one = BoxedUint::one_with_precision(bits);
    let p_1 = Zeroizing::new(NonZero::new(p.wrapping_sub(&one)).into_option()?);
    let q_1 = Zeroizing::new(NonZero::new(q.wrapping_sub(&one)).into_option()?);
    let lambda = Zeroizing::new(NonZero::new(lcm(&p_1, &q_1, bits)?).into_option()?);
    let e = BoxedUint::from(E).resize(bits);
    let d = Zeroizing::new(e.invert_mod(&lambda).into_option()?);
    if *d <= BoxedUint::one_with_precision(bits).shl(half) {
        return None;
    }
    let dp = Zeroizing::new(d.rem(&p_1));
    let dq = Zeroizing::new(d.rem(&q_1));
    let p_odd = Zeroizing::new(Odd::new((*p).clone()).into_option()?);
    let qinv = Zeroizing::new(q.invert_odd_mod(&p_odd).into_option()?);
    Some(Components {
        n: n.to_be_bytes_trimmed_vartime().into_vec(),
        e: e.to_be_bytes_trimmed_vartime().into_vec(),
        d: secret(&d),
        p: secret(&p),
        q: secret(&q),
        dp: secret(&dp),
        dq: secret(&dq),
        qinv: secret(&qinv),
    })
}

/// `|p - q| > 2^(bits/2 - 100)` (FIPS 186-5 A.1.3), `p` and `q` at `bits` wide.
fn far_enough_apart(p: &BoxedUint, q: &BoxedUint, bits: u32) -> bool {
    let difference = Zeroizing::new(if p > q {
        p.wrapping_sub(q)
    } else {
        q.wrapping_sub(p)
    });
    *difference > BoxedUint::one_with_precision(bits).shl(bits / 2 - 100)
}

/// `lcm(a, b) = a / gcd(a, b) * b`, at `bits` wide.
fn lcm(a: &BoxedUint, b: &BoxedUint, bits: u32) -> Option<BoxedUint> {
    let gcd = Zeroizing::new(a.gcd(b));
    let quotient = Zeroizing::new(a.checked_div(&*gcd).into_option()?);
    let wide = Zeroizing::new(quotient.concatenating_mul(b));
    (&*wide).try_resize(bits)
}

/// Big-endian without leading zeros, in a zeroizing buffer; the full-width encoding it is cut
/// from is zeroized too.
fn secret(number: &BoxedUint) -> Zeroizing<Vec<u8>> {
    let full = Zeroizing::new(number.to_be_bytes());
    let start = full
        .iter()
        .position(|byte| *byte != 0)
        .unwrap_or(full.len());
    Zeroizing::new(full[start..].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(hex: &str, bits: u32) -> BoxedUint {
        BoxedUint::from_str_radix_vartime(hex, 16)
            .unwrap()
            .resize(bits)
    }

    #[test]
    fn primes_too_close_are_turned_away() {
        // Two 1024-bit odd numbers 2 apart: turned away before any arithmetic that needs primes.
        let p = BoxedUint::one_with_precision(1024)
            .shl(1023)
            .wrapping_add(BoxedUint::from(3u32).resize(1024));
        let q = p.wrapping_add(BoxedUint::from(2u32).resize(1024));
        assert!(derive(&p, &q, 2048).is_none());
    }

    #[test]
    fn primes_2_to_the_half_minus_100_apart_or_closer_are_turned_away() {
        // FIPS 186-5 rejects |p - q| <= 2^(nlen/2 - 100), the bound included, either order.
        let q = BoxedUint::one_with_precision(2048).shl(1023);
        let bound = BoxedUint::one_with_precision(2048).shl(924);
        let at_bound = q.wrapping_add(&bound);
        let past_bound = at_bound.wrapping_add(BoxedUint::one_with_precision(2048));
        assert!(!far_enough_apart(&at_bound, &q, 2048));
        assert!(!far_enough_apart(&q, &at_bound, 2048));
        assert!(far_enough_apart(&past_bound, &q, 2048));
        assert!(far_enough_apart(&q, &past_bound, 2048));
    }

    #[test]
    fn secrets_lose_their_leading_zeros_only() {
        assert_eq!(*secret(&number("0102", 128)), vec![1, 2]);
        assert!(secret(&BoxedUint::zero_with_precision(64)).is_empty());
    }

    #[test]
    fn lcm_of_60_and_52_is_780() {
        assert_eq!(
            lcm(&number("3c", 64), &number("34", 64), 64),
            Some(number("30c", 64))
        );
    }

    #[test]
    fn a_generated_key_satisfies_pkcs1() {
        let key = crate::generate(crate::Size::Rsa2048, crate::rng::os_random).unwrap();
        let read = |bytes: &[u8]| BoxedUint::from_be_slice_vartime(bytes).resize(4096);
        let (n, e, d, p, q) = (
            read(&key.n),
            read(&key.e),
            read(&key.d),
            read(&key.p),
            read(&key.q),
        );
        assert_eq!(key.n.len(), 256);
        assert_eq!(key.e, [1, 0, 1]);
        assert_eq!(p.concatenating_mul(&q).resize(4096), n, "n = p * q");
        let one = BoxedUint::one_with_precision(4096);
        for (prime, exponent) in [(&p, &key.dp), (&q, &key.dq)] {
            let prime_1 = NonZero::new(prime.wrapping_sub(&one)).unwrap();
            assert_eq!(d.rem(&prime_1), read(exponent), "d mod (prime - 1)");
            let de = d.concatenating_mul(&e).resize(4096);
            assert_eq!(de.rem(&prime_1), one, "d * e = 1 mod (prime - 1)");
        }
        let qinv_q = read(&key.qinv).concatenating_mul(&q).resize(4096);
        assert_eq!(
            qinv_q.rem(&NonZero::new(p.clone()).unwrap()),
            one,
            "qInv * q = 1 mod p"
        );
    }

    #[test]
    fn debug_prints_no_number() {
        let components = Components {
            n: vec![0xC3; 256],
            e: vec![1, 0, 1],
            d: Zeroizing::new(vec![0xAB; 256]),
            p: Zeroizing::new(vec![0xAB; 128]),
            q: Zeroizing::new(vec![0xAB; 128]),
            dp: Zeroizing::new(vec![0xAB; 128]),
            dq: Zeroizing::new(vec![0xAB; 128]),
            qinv: Zeroizing::new(vec![0xAB; 128]),
        };
        let debug = format!("{components:?}");
        assert_eq!(debug, r#"Components { bits: 2048, private: "..." }"#);
    }
}
