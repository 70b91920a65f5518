//! Fuzzes `certboot_core::pki::verify::verify_chain`, the parser of `status.certificate` (untrusted input
//! from whatever wrote the CSR's status). It must return `Ok` or `Err`, never panic or hang.
//!
//! Input: 8 bytes of "now" (Unix seconds, little endian), then the PEM text. The public key to
//! match is taken from the first certificate that parses, when one does (so the fuzzer can get
//! past the key check into the validity and chain-order checks, the issuer rules and the path
//! validation); otherwise it is the remaining input's first 65 bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use x509_parser::prelude::FromDer;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (now, pem) = data.split_at(8);
    let now = i64::from_le_bytes(now.try_into().expect("8 bytes"));
    let key: Vec<u8> = x509_parser::pem::Pem::iter_from_buffer(pem)
        .filter_map(Result::ok)
        .find_map(|block| {
            x509_parser::certificate::X509Certificate::from_der(&block.contents)
                .ok()
                .map(|(_, cert)| cert.public_key().subject_public_key.data.to_vec())
        })
        .unwrap_or_else(|| pem.iter().take(65).copied().collect());
    if let Ok(verified) = certboot_core::pki::verify::verify_chain(pem, &key, now) {
        // What would be written parses again, to the same leaf.
        let again = certboot_core::pki::verify::verify_chain(verified.chain_pem.as_bytes(), &key, now)
            .expect("a verified chain verifies again after re-encoding");
        assert_eq!(again.serial, verified.serial);
    }
});
