//! The exit codes both programs document (docs/configuration.md "Exit codes"). Each program maps
//! its own errors to them in one place: certboot in its `error.rs`, certboot-controller in `run.rs`.

pub const OK: u8 = 0;
/// Kubernetes API failure (unreachable, RBAC, rejected), or another runtime failure.
pub const RUNTIME: u8 = 1;
/// Configuration error: nothing was sent, nothing was written.
pub const CONFIG: u8 = 2;
/// The CSR was denied or failed.
pub const DENIED: u8 = 3;
/// `CERTBOOT_TIMEOUT` passed before the certificate was issued.
pub const TIMEOUT: u8 = 4;
/// The issued certificate was rejected, or `check` found the pair invalid.
pub const INVALID_CERTIFICATE: u8 = 5;
/// The output directory could not be written; `check`: no pair on disk.
pub const OUTPUT: u8 = 6;
