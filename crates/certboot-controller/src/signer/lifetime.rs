//! How long the signer's certificates live, per signer: its own `CERTBOOT_SIGNER_DURATION` and
//! `CERTBOOT_SIGNER_MAX_DURATION`, capped by the `maxExpirationSeconds` of the approver's policy
//! entry for that signer (the entry that approved the CSR), so a certificate never outlives what
//! the policy allows, whether or not the CSR asked for a lifetime (and on API servers before 1.22,
//! which drop `spec.expirationSeconds`, the approver cannot see what was asked).

use std::collections::BTreeMap;

use super::issue::Lifetimes;
use crate::approver::policy::Policy;

/// The signer's lifetimes, and the policy's maximum for each signer that has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerLifetimes {
    own: Lifetimes,
    policy_max: BTreeMap<String, i64>,
}

impl SignerLifetimes {
    /// `own` for every signer, capped per signer by `policy`'s `maxExpirationSeconds`.
    pub fn new(own: Lifetimes, policy: &Policy) -> SignerLifetimes {
        let policy_max = policy
            .signers
            .iter()
            .filter_map(|s| {
                s.max_expiration_seconds
                    .map(|max| (s.signer_name.clone(), i64::from(max)))
            })
            .collect();
        SignerLifetimes { own, policy_max }
    }

    /// The lifetimes for a CSR of `signer_name`.
    pub fn for_signer(&self, signer_name: &str) -> Lifetimes {
        match self.policy_max.get(signer_name) {
            Some(&max) => Lifetimes {
                default: self.own.default.min(max),
                max: self.own.max.min(max),
            },
            None => self.own,
        }
    }
}

#[cfg(test)]
mod tests {
    use rcgen::KeyPair;
    use x509_parser::prelude::{FromDer, X509Certificate};

    use super::*;
    use crate::signer::ca::SigningCa;
    use crate::signer::issue::issue;
    use certboot_core::pki::key::PrivateKey;
    use certboot_core::request::RequestConfig;

    const NOW: i64 = 1_800_000_000;
    const DAY: i64 = 86_400;
    const OWN: Lifetimes = Lifetimes {
        default: 30 * DAY,
        max: 30 * DAY,
    };

    /// A one-year CA, as its Secret would be mounted.
    fn ca() -> (tempfile::TempDir, SigningCa) {
        crate::signer::test_ca::mounted(
            KeyPair::generate().unwrap(),
            NOW - 3600,
            NOW + 365 * DAY,
            NOW,
        )
    }

    fn request_pem() -> String {
        let config = RequestConfig {
            dns_names: vec!["web.shop.svc".into()],
            usages: vec![],
            ..RequestConfig::example("certboot.io/serving", "web-0.shop")
        };
        let key = PrivateKey::generate(config.key_algorithm).unwrap();
        certboot_core::pki::pkcs10::build_pkcs10(&config, &key).unwrap()
    }

    fn policy() -> Policy {
        Policy::parse(
            r#"{"signers": [{"signerName": "certboot.io/serving", "maxExpirationSeconds": 86400},
                            {"signerName": "certboot.io/other"}]}"#,
        )
        .unwrap()
    }

    /// The lifetime of the certificate issued for a CSR of `signer` asking for `asked`.
    fn issued_lifetime(lifetimes: &SignerLifetimes, signer: &str, asked: Option<i32>) -> i64 {
        let (_dir, ca) = ca();
        let usages = vec!["digital signature".to_string(), "server auth".to_string()];
        let pem = issue(
            request_pem().as_bytes(),
            &usages,
            asked,
            &ca,
            lifetimes.for_signer(signer),
            NOW,
        )
        .unwrap();
        let block = pem::parse(pem.as_bytes()).unwrap();
        let (_, leaf) = X509Certificate::from_der(block.contents()).unwrap();
        leaf.validity().not_after.timestamp() - NOW
    }

    #[test]
    fn the_signer_never_issues_beyond_the_policy_entrys_maximum() {
        let lifetimes = SignerLifetimes::new(OWN, &policy());
        // A CSR asking for nothing (or on a server that dropped the field): the policy's day,
        // not the signer's 30-day default.
        assert_eq!(
            issued_lifetime(&lifetimes, "certboot.io/serving", None),
            DAY
        );
        assert_eq!(
            issued_lifetime(&lifetimes, "certboot.io/serving", Some(7 * 86_400)),
            DAY
        );
        assert_eq!(
            issued_lifetime(&lifetimes, "certboot.io/serving", Some(3600)),
            3600
        );
        // An entry without a maximum, and a signer the policy does not list: the signer's own.
        assert_eq!(
            issued_lifetime(&lifetimes, "certboot.io/other", None),
            30 * DAY
        );
        assert_eq!(lifetimes.for_signer("example.com/unlisted"), OWN);
    }

    #[test]
    fn the_signers_own_maximum_still_applies_below_the_policys() {
        let short = Lifetimes {
            default: 3600,
            max: 7200,
        };
        let lifetimes = SignerLifetimes::new(short, &policy());
        assert_eq!(lifetimes.for_signer("certboot.io/serving"), short);
    }
}
