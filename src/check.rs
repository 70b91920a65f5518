//! The pair on disk: `certboot check` (the exec probe for distroless images: exit 0 only when the
//! pair exists, matches, and stays valid for at least the given margin), and the reuse test at
//! start (a restarted init container files no second CSR). Both read the pair through
//! [`read_valid_pair`].

use std::time::Duration;

use tracing::{info, warn};

use crate::config::OutputConfig;
use crate::error::Error;
use crate::pki::verify::{verify_pair, Verified};
use crate::renew::schedule::renew_at;
use crate::store::Store;
use crate::timefmt::{rfc3339, unix_now};

/// The pair in `store`, verified at `now`: it exists, cert and key match, and it is valid.
pub fn read_valid_pair(store: &Store, now: i64) -> Result<Verified, Error> {
    let pair = store
        .read_pair()?
        .ok_or_else(|| Error::NoPair(store.dir().display().to_string()))?;
    Ok(verify_pair(&pair.cert_pem, &pair.key_pem, now)?)
}

/// `certboot check`: the pair in `output`; `Ok` carries the verified certificate.
pub fn check(output: &OutputConfig, min_valid: Duration) -> Result<Verified, Error> {
    let now = unix_now();
    let verified = read_valid_pair(&Store::new(output), now)?;
    let left = Duration::from_secs((verified.not_after - now).max(0) as u64);
    if left < min_valid {
        return Err(Error::ExpiresSoon {
            left,
            wanted: min_valid,
        });
    }
    Ok(verified)
}

/// A pair on disk from an earlier run of this pod that is not yet due for renewal, if any
/// (`renew_before`: `CERTBOOT_RENEW_BEFORE`). Anything else is logged and means "request a new
/// one"; no pair at all is said nothing about, one that cannot be read safely (a symlink out of
/// the directory, a FIFO, an oversized file) is a warning.
pub fn reusable_pair(store: &Store, renew_before: Option<Duration>) -> Option<Verified> {
    let now = unix_now();
    match read_valid_pair(store, now) {
        Ok(cert) if renew_at(&cert, cert.not_before, renew_before, 0.0) > now => Some(cert),
        Ok(cert) => {
            info!(
                "the pair on disk is due for renewal (valid until {}); requesting a new one",
                rfc3339(cert.not_after)
            );
            None
        }
        Err(Error::BadPair(e)) => {
            info!("the pair on disk cannot be reused ({e}); requesting a new one");
            None
        }
        Err(Error::Store(e)) => {
            warn!("the pair on disk cannot be reused: {e}; requesting a new one");
            None
        }
        Err(_) => None,
    }
}
