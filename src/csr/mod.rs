//! The CertificateSigningRequest: the object certboot files, filing it, and waiting on it.

pub mod object;
pub mod owner;
pub mod submit;
pub mod wait;
pub mod yaml;

pub use object::{
    build, initial_name, renewal_name, state_of, CsrState, LABEL_MANAGED_BY, LABEL_POD_NAME,
    LABEL_POD_NAMESPACE, LABEL_POD_UID,
};
