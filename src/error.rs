//! The top-level error, and the one place where errors become exit codes.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | certificate and key are in place (or `check` found a good pair) |
//! | 1 | Kubernetes API failure (unreachable, RBAC, rejected), or another runtime failure |
//! | 2 | configuration error (nothing was sent, nothing was written) |
//! | 3 | the CSR was denied or failed |
//! | 4 | `CERTBOOT_TIMEOUT` passed before the certificate was issued |
//! | 5 | the issued certificate was rejected (wrong key, CA, expired, bad chain, identity, lifetime cap, not from the CA bundle); `check`: pair invalid or not certboot's |
//! | 6 | the output directory could not be written; `check`: no pair on disk |
//!
//! Conventions for every error type below it (one enum per layer, `thiserror`):
//! - a cause that exists is kept, typed, under `#[source]` (never flattened into a `String`);
//! - each message says what failed, why, and then what to do. Advice that is always the same is
//!   part of the variant's `#[error]` text; advice that depends on the cause comes from a `hint`
//!   function of the typed cause, called from the `#[error]` format (`ApiError`, `StoreError`,
//!   `Unresolvable`). No error stores a pre-rendered hint.

use std::process::ExitCode;
use std::time::Duration;

use crate::config::ConfigError;
use crate::csr::submit::SubmitError;
use crate::csr::wait::WaitError;
use crate::store::origin::OriginError;
use crate::store::StoreError;
use certboot_core::api::ConnectError;
use certboot_core::pki::key::KeyError;
use certboot_core::pki::pkcs10::RequestError;
use certboot_core::pki::verify::{PairError, VerifyError};
use certboot_core::timefmt::human;

/// Exit codes, as documented in the README and `--help` (shared with certboot-controller).
pub use certboot_core::exit_code as code;

/// Everything that can end a certboot run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration error: {0}")]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("cannot start: {what}: {source}")]
    Startup {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Submit(Box<SubmitError>),
    #[error(transparent)]
    Wait(Box<WaitError>),
    #[error("signer {signer} issued an unusable certificate for CSR {csr:?}: {source}. Nothing was written; check the signer")]
    Rejected {
        csr: String,
        signer: String,
        #[source]
        source: VerifyError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no certificate within CERTBOOT_TIMEOUT={}: {waiting}. Check the approver and the signer, or raise CERTBOOT_TIMEOUT", human(*.after))]
    Timeout { after: Duration, waiting: String },
    #[error("interrupted by {0} before the certificate was issued; nothing was written")]
    Interrupted(&'static str),
    #[error("no certificate/key pair at {0}")]
    NoPair(String),
    #[error("the pair on disk cannot be used: {0}")]
    BadPair(#[from] PairError),
    #[error("the pair on disk was not written by certboot for this pod: {0}. certboot files a new CSR at start; `certboot check` fails until then")]
    Untrusted(#[from] OriginError),
    #[error("the certificate is valid for only {}, less than the required {}", human(*.left), human(*.wanted))]
    ExpiresSoon { left: Duration, wanted: Duration },
}

impl From<SubmitError> for Error {
    fn from(e: SubmitError) -> Self {
        Error::Submit(Box::new(e))
    }
}

impl From<WaitError> for Error {
    fn from(e: WaitError) -> Self {
        Error::Wait(Box::new(e))
    }
}

impl Error {
    /// The documented exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            // An unusable proxy-url is configuration: nothing was sent.
            Error::Config(_) | Error::Connect(ConnectError::Proxy(_)) => code::CONFIG,
            Error::Wait(w)
                if matches!(**w, WaitError::Denied { .. } | WaitError::Failed { .. }) =>
            {
                code::DENIED
            }
            Error::Timeout { .. } => code::TIMEOUT,
            Error::Rejected { .. }
            | Error::BadPair(_)
            | Error::Untrusted(_)
            | Error::ExpiresSoon { .. } => code::INVALID_CERTIFICATE,
            Error::Store(_) | Error::NoPair(_) => code::OUTPUT,
            Error::Connect(_)
            | Error::Startup { .. }
            | Error::Interrupted(_)
            | Error::Key(_)
            | Error::Request(_)
            | Error::Submit(_)
            | Error::Wait(_) => code::RUNTIME,
        }
    }

    /// The exit code as a process exit code.
    pub fn exit(&self) -> ExitCode {
        ExitCode::from(self.exit_code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_class_has_its_documented_code() {
        let config = Error::Config(ConfigError::Missing {
            var: "X",
            hint: "y",
        });
        assert_eq!(config.exit_code(), 2);
        let denied = Error::from(WaitError::Denied {
            name: "n".into(),
            reason: "r".into(),
            message: "m".into(),
        });
        assert_eq!(denied.exit_code(), 3);
        let timeout = Error::Timeout {
            after: Duration::from_secs(60),
            waiting: "w".into(),
        };
        assert_eq!(timeout.exit_code(), 4);
        assert!(timeout.to_string().contains("CERTBOOT_TIMEOUT=1m00s"));
        let rejected = Error::Rejected {
            csr: "c".into(),
            signer: "s".into(),
            source: VerifyError::KeyMismatch,
        };
        assert_eq!(rejected.exit_code(), 5);
        assert_eq!(Error::NoPair("/certs".into()).exit_code(), 6);
        assert_eq!(
            Error::Connect(ConnectError::Unresolvable(
                certboot_core::api::error::Unresolvable {
                    host: "x".into(),
                    url: "https://x".into(),
                    hosts: "/etc/hosts".into(),
                    resolv_conf: "/etc/resolv.conf".into(),
                    source: std::io::ErrorKind::NotFound.into(),
                }
            ))
            .exit_code(),
            1
        );
    }
}
