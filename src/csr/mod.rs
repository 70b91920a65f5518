//! The CertificateSigningRequest certboot files: filing it ([`submit`]), telling whose an existing
//! one is ([`owner`]), waiting on it ([`wait`]), and printing it for `--dry-run` ([`yaml`]). The
//! object itself, its name and labels are certboot-core's (re-exported here).

pub mod owner;
pub mod submit;
pub mod wait;
pub mod yaml;

pub use certboot_core::csr::{
    build, initial_name, renewal_name, state_of, CsrState, LABEL_MANAGED_BY, LABEL_POD_NAME,
    LABEL_POD_NAMESPACE, LABEL_POD_UID,
};
