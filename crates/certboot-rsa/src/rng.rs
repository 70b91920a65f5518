//! The caller's random source as the `CryptoRng` the prime search takes.
//!
//! `rand_core`'s `CryptoRng` cannot fail. Rather than panic, a failure is latched: the bytes asked
//! for are zeros, the search stops at its next candidate ([`LatchedRng::failed`]), and the key is
//! refused with [`crate::KeygenError::Random`].

use std::convert::Infallible;

use rand_core::{TryCryptoRng, TryRng};

/// The random source: fills the buffer, or says it could not.
pub type Fill = fn(&mut [u8]) -> Result<(), RandomFailed>;

/// The random source failed; it says no more (AWS-LC's does not either).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RandomFailed;

pub(crate) struct LatchedRng {
    fill: Fill,
    failed: bool,
}

impl LatchedRng {
    pub(crate) fn new(fill: Fill) -> LatchedRng {
        LatchedRng {
            fill,
            failed: false,
        }
    }

    /// Whether any fill failed so far (then nothing drawn since is random).
    pub(crate) fn failed(&self) -> bool {
        self.failed
    }

    fn draw(&mut self, dst: &mut [u8]) {
        if (self.fill)(dst).is_err() {
            dst.fill(0);
            self.failed = true;
        }
    }
}

impl TryRng for LatchedRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut bytes = [0; 4];
        self.draw(&mut bytes);
        Ok(u32::from_le_bytes(bytes))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut bytes = [0; 8];
        self.draw(&mut bytes);
        Ok(u64::from_le_bytes(bytes))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.draw(dst);
        Ok(())
    }
}

impl TryCryptoRng for LatchedRng {}

/// The tests' random source: the kernel's, read directly.
#[cfg(test)]
pub(crate) fn os_random(dst: &mut [u8]) -> Result<(), RandomFailed> {
    std::fs::File::open("/dev/urandom")
        .and_then(|mut file| std::io::Read::read_exact(&mut file, dst))
        .map_err(|_| RandomFailed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_fill_is_latched_and_yields_zeros() {
        let mut rng = LatchedRng::new(|_| Err(RandomFailed));
        assert!(!rng.failed());
        assert_eq!(rng.try_next_u64(), Ok(0));
        assert!(rng.failed());
    }
}
