//! Fuzzes the strict PKCS#10 decoder (`certboot_core::pki::csr_der::parse`) and the approver's reading
//! of a request (`certboot_controller::approver::requested`: PEM, size limits, signature): `spec.request` is
//! untrusted input from anyone who may create CSRs. Each must return `Ok` or `Err`, never panic
//! or hang.
//!
//! Input: the DER of a request (the seeds are real and hostile requests); it is also read as
//! `spec.request` text, to fuzz the PEM checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let strict = certboot_core::pki::csr_der::parse(data);
    let decoded = certboot_controller::approver::requested::decode_der(data);
    if let Ok(requested) = decoded {
        // What the approver judges is exactly what the strict decoder read.
        let sans = strict
            .expect("decode_der accepts only what parse accepts")
            .extensions
            .sans
            .len();
        let read = requested.dns_names.len()
            + requested.ip_addresses.len()
            + requested.uris.len()
            + requested.other_sans.len();
        assert_eq!(sans, read);
        assert!(sans <= certboot_core::pki::csr_der::MAX_SANS);
    }
    let _ = certboot_controller::approver::requested::decode(data);
    let _ = certboot_controller::approver::requested::check_size(data);
});
