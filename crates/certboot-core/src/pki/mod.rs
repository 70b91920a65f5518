//! The cryptography of one certificate: the private key, the PKCS#10 request it signs, and the
//! checks on what the signer returns (or what is on disk).

pub mod csr_der;
pub mod csr_ext;
pub mod der;
pub mod expect;
pub mod issuer;
pub mod key;
pub mod path;
pub mod pkcs10;
pub mod rsa_keygen;
pub mod signature;
pub mod verify;
pub mod verify_error;
