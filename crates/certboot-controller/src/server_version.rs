//! At start: a policy maximum (`maxExpirationSeconds`) that only the approver can enforce needs an
//! API server that shows it `spec.expirationSeconds`. Servers before 1.22 drop the field: every
//! CSR looks as if it asked for no lifetime, and the signer chooses. There the controller refuses
//! such a policy entry (exit 2) instead of making a promise it cannot keep, unless certboot's own
//! signer signs that signer in this process (it caps every certificate at the maximum itself).

use k8s_openapi::apimachinery::pkg::version::Info;
use kube::Client;

use crate::approver::controller::CALL_BUDGET;
use crate::approver::policy::Policy;
use certboot_core::api::{with_retry_for, ApiError, Operation};

/// The first release whose API server keeps `spec.expirationSeconds` (1.22).
pub const EXPIRATION_SECONDS_MINOR: u32 = 22;

/// Why the policy cannot be served by this API server, or its version is unknown.
#[derive(Debug, thiserror::Error)]
pub enum ServerVersionError {
    #[error("policy field signers[{index}].maxExpirationSeconds cannot be enforced on this API server ({version}): servers before 1.{EXPIRATION_SECONDS_MINOR} drop spec.expirationSeconds from CSRs, so the approver cannot see the lifetime a CSR asks for, and signer {signer} would choose it (kube-controller-manager: --cluster-signing-duration, 1 year by default). Remove maxExpirationSeconds from that entry and bound the signer's own lifetime instead, or, for a signer outside kubernetes.io/ (kube-controller-manager signs those too), let certboot-controller sign {signer} (add it to CERTBOOT_SIGNER_NAMES: its signer caps every certificate at the maximum), or upgrade the API server to 1.{EXPIRATION_SECONDS_MINOR} or later")]
    Unenforceable {
        index: usize,
        signer: String,
        version: String,
    },
    #[error("cannot read the API server's version, needed because the policy sets maxExpirationSeconds for a signer certboot does not sign here (servers before 1.{EXPIRATION_SECONDS_MINOR} drop spec.expirationSeconds): {0}")]
    Unknown(#[source] ApiError),
}

impl ServerVersionError {
    /// True when the policy is at fault (exit 2), not the API server's answer (exit 1).
    pub fn is_policy(&self) -> bool {
        matches!(self, ServerVersionError::Unenforceable { .. })
    }
}

/// Refuses the policy when it leaves a maximum to the approver on a server that drops
/// `spec.expirationSeconds`. Asks the server its version only when some entry needs it.
pub async fn check(client: &Client, policy: &Policy) -> Result<(), ServerVersionError> {
    if policy.maxima_left_to_the_approver().is_empty() {
        return Ok(());
    }
    let op = Operation {
        verb: "get",
        group: "",
        resource: "version",
        name: "/version".to_string(),
    };
    let info = with_retry_for(&op, CALL_BUDGET, || client.apiserver_version())
        .await
        .map_err(ServerVersionError::Unknown)?;
    judge(policy, &info)
}

/// The decision for a server that answered `info`.
pub fn judge(policy: &Policy, info: &Info) -> Result<(), ServerVersionError> {
    if keeps_expiration_seconds(info) {
        return Ok(());
    }
    match policy.maxima_left_to_the_approver().first() {
        Some((index, entry)) => Err(ServerVersionError::Unenforceable {
            index: *index,
            signer: entry.signer_name.clone(),
            version: shown(info),
        }),
        None => Ok(()),
    }
}

/// True from 1.22 on. A version that does not parse counts as older (fail closed).
fn keeps_expiration_seconds(info: &Info) -> bool {
    let number = |text: &str| -> Option<u32> {
        let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    match (number(&info.major), number(&info.minor)) {
        (Some(major), _) if major > 1 => true,
        (Some(1), Some(minor)) => minor >= EXPIRATION_SECONDS_MINOR,
        _ => false,
    }
}

fn shown(info: &Info) -> String {
    if info.git_version.is_empty() {
        format!("major {:?}, minor {:?}", info.major, info.minor)
    } else {
        info.git_version.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(major: &str, minor: &str, git: &str) -> Info {
        Info {
            major: major.into(),
            minor: minor.into(),
            git_version: git.into(),
            ..Info::default()
        }
    }

    fn policy(signed_here: &[&str]) -> Policy {
        let mut policy = Policy::parse(
            r#"{"signers": [{"signerName": "certboot.io/serving", "maxExpirationSeconds": 86400},
                            {"signerName": "kubernetes.io/kube-apiserver-client", "maxExpirationSeconds": 3600}]}"#,
        )
        .unwrap();
        let names: Vec<String> = signed_here.iter().map(|s| s.to_string()).collect();
        policy.mark_signed_here(&names);
        policy
    }

    #[test]
    fn a_server_before_1_22_refuses_a_maximum_left_to_the_approver() {
        let old = info("1", "20", "v1.20.2");
        let err = judge(&policy(&[]), &old).unwrap_err();
        assert!(err.is_policy());
        let message = err.to_string();
        for needle in [
            "signers[0].maxExpirationSeconds",
            "v1.20.2",
            "drop spec.expirationSeconds",
            "CERTBOOT_SIGNER_NAMES",
        ] {
            assert!(message.contains(needle), "{needle}: {message}");
        }
        // certboot signs the first here: the second is the one it cannot enforce.
        let err = judge(&policy(&["certboot.io/serving"]), &old).unwrap_err();
        assert!(
            err.to_string()
                .contains("signers[1].maxExpirationSeconds cannot be enforced"),
            "{err}"
        );
        // A kubernetes.io/ signer is signed by kube-controller-manager too: certboot signing it
        // caps nothing, so its maximum still cannot be enforced there.
        let both = policy(&["certboot.io/serving", "kubernetes.io/kube-apiserver-client"]);
        assert!(judge(&both, &old)
            .unwrap_err()
            .to_string()
            .contains("signers[1].maxExpirationSeconds cannot be enforced"),);
        let mut mine = Policy::parse(
            r#"{"signers": [{"signerName": "certboot.io/serving", "maxExpirationSeconds": 86400}]}"#,
        )
        .unwrap();
        mine.mark_signed_here(&["certboot.io/serving".to_string()]);
        assert!(judge(&mine, &old).is_ok());
    }

    #[test]
    fn from_1_22_on_and_without_maxima_it_starts() {
        for (major, minor) in [("1", "22"), ("1", "37"), ("1", "24+"), ("2", "0")] {
            assert!(
                judge(&policy(&[]), &info(major, minor, "")).is_ok(),
                "{major}.{minor}"
            );
        }
        let none = Policy::parse(r#"{"signers": [{"signerName": "a.io/x"}]}"#).unwrap();
        assert!(judge(&none, &info("1", "20", "v1.20.2")).is_ok());
    }

    #[test]
    fn a_version_that_does_not_parse_counts_as_old() {
        for (major, minor) in [("", ""), ("1", "x"), ("1", "21+")] {
            let err = judge(&policy(&[]), &info(major, minor, "")).unwrap_err();
            assert!(err.to_string().contains("cannot be enforced"), "{err}");
        }
    }
}
