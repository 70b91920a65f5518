//! `certboot check`: the exec probe for distroless images. Exit 0 only when the pair on disk exists,
//! matches, and stays valid for at least the given margin.

use std::time::Duration;

use crate::config::OutputConfig;
use crate::error::Error;
use crate::pki::verify::{verify_pair, Verified};
use crate::store::Store;
use crate::timefmt::unix_now;

/// Checks the pair in `output`; `Ok` carries the verified certificate.
pub fn check(output: &OutputConfig, min_valid: Duration) -> Result<Verified, Error> {
    let store = Store::new(output);
    let pair = store
        .read_pair()?
        .ok_or_else(|| Error::NoPair(output.dir.display().to_string()))?;
    let now = unix_now();
    let verified = verify_pair(&pair.cert_pem, &pair.key_pem, now)?;
    let left = Duration::from_secs((verified.not_after - now).max(0) as u64);
    if left < min_valid {
        return Err(Error::ExpiresSoon {
            left,
            wanted: min_valid,
        });
    }
    Ok(verified)
}
