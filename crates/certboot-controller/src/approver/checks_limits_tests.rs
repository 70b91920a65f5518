//! Lifetimes and names that are not the pod's: a maximum is a maximum (also for a CSR that asks
//! for no lifetime), the bare `<svc>` and `<svc>.<ns>` names and a `hostNetwork` pod's (node's)
//! IPs only by opt-in.

use super::*;

fn asking(seconds: Option<u32>) -> CertificateSigningRequest {
    let mut r = request();
    r.expiration_seconds = seconds;
    csr_with(&r, "shop:web-0:6f1d3c", Some(("web-0", UID)))
}

fn with_dns(names: &[&str]) -> CertificateSigningRequest {
    let mut r = request();
    r.dns_names = names.iter().map(|n| n.to_string()).collect();
    csr_with(&r, "shop:web-0:6f1d3c", Some(("web-0", UID)))
}

#[track_caller]
fn assert_approved(v: Verdict) {
    assert!(matches!(v, Verdict::Approve(_)), "{v:?}");
}

const MAX_DAY: &str = r#", "maxExpirationSeconds": 86400"#;

#[test]
fn a_maximum_denies_a_csr_that_asks_for_no_lifetime() {
    let web = [service("web", "web")];
    let message = assert_denied(
        verdict(&asking(None), &policy(MAX_DAY), Some(&pod()), &web),
        reason::EXPIRATION_REQUIRED,
    );
    assert!(
        message.contains("CERTBOOT_EXPIRATION_SECONDS") && message.contains("86400"),
        "{message}"
    );
    // Without a maximum, the signer's default is the policy's choice.
    assert_approved(verdict(&asking(None), &policy(""), Some(&pod()), &web));
}

#[test]
fn a_lifetime_up_to_the_maximum_is_approved_and_beyond_it_denied() {
    let web = [service("web", "web")];
    for seconds in [600, 3600, 86_400] {
        assert_approved(verdict(
            &asking(Some(seconds)),
            &policy(MAX_DAY),
            Some(&pod()),
            &web,
        ));
    }
    let message = assert_denied(
        verdict(&asking(Some(86_401)), &policy(MAX_DAY), Some(&pod()), &web),
        reason::EXPIRATION_TOO_LONG,
    );
    assert!(
        message.contains("86401") && message.contains("86400"),
        "{message}"
    );
}

#[test]
fn where_certboots_signer_signs_it_caps_the_lifetime_so_none_asked_is_approved() {
    let web = [service("web", "web")];
    let mut here = policy(MAX_DAY);
    here.mark_signed_here(&["certboot.io/serving".to_string()]);
    assert_approved(verdict(&asking(None), &here, Some(&pod()), &web));
    // Asking for more than the maximum is still denied: the CSR would not get what it asks.
    assert_denied(
        verdict(&asking(Some(86_401)), &here, Some(&pod()), &web),
        reason::EXPIRATION_TOO_LONG,
    );
}

#[test]
fn a_services_short_names_are_granted_only_by_opt_in() {
    let web = [service("web", "web")];
    for name in ["web.shop.svc", "web.shop.svc.cluster.local"] {
        assert_approved(verdict(&with_dns(&[name]), &policy(""), Some(&pod()), &web));
    }
    for name in ["web", "web.shop", "WEB.shop"] {
        let message = assert_denied(
            verdict(&with_dns(&[name]), &policy(""), Some(&pod()), &web),
            reason::DNS_NOT_ALLOWED,
        );
        assert!(message.contains("serviceShortNames: true"), "{message}");
    }
    let short = policy(r#", "serviceShortNames": true"#);
    assert_approved(verdict(
        &with_dns(&["web", "web.shop", "web.shop.svc"]),
        &short,
        Some(&pod()),
        &web,
    ));
}

#[test]
fn a_short_name_is_denied_at_once_not_waited_for() {
    // `db` (no such Service yet): only a granted form is worth waiting for.
    for name in ["db", "db.shop"] {
        assert_denied(
            verdict(&with_dns(&[name]), &policy(""), Some(&pod()), &[]),
            reason::DNS_NOT_ALLOWED,
        );
    }
    let short = policy(r#", "serviceShortNames": true"#);
    assert!(matches!(
        verdict(&with_dns(&["db"]), &short, Some(&pod()), &[]),
        Verdict::Wait(_)
    ));
    assert!(matches!(
        verdict(&with_dns(&["db.shop.svc"]), &policy(""), Some(&pod()), &[]),
        Verdict::Wait(_)
    ));
}

fn host_network_pod() -> Pod {
    let mut pod = pod();
    pod.spec.as_mut().unwrap().host_network = Some(true);
    pod
}

#[test]
fn a_host_network_pod_gets_no_ip_sans_unless_the_policy_opts_in() {
    let web = [service("web", "web")];
    // Its "pod IP" 10.1.2.3 is the node's.
    let message = assert_denied(
        verdict(&csr(), &policy(""), Some(&host_network_pod()), &web),
        reason::IP_NOT_ALLOWED,
    );
    assert!(
        message.contains("hostNetwork") && message.contains("hostNetworkIPs: true"),
        "{message}"
    );
    // Without IP SANs it gets its names.
    let mut no_ips = request();
    no_ips.ip_addresses = vec![];
    let c = csr_with(&no_ips, "shop:web-0:6f1d3c", Some(("web-0", UID)));
    assert_approved(verdict(&c, &policy(""), Some(&host_network_pod()), &web));
    // Opted in: the node's IPs, and only those.
    let opted = policy(r#", "hostNetworkIPs": true"#);
    assert_approved(verdict(&csr(), &opted, Some(&host_network_pod()), &web));
    let mut other = request();
    other.ip_addresses = vec!["10.9.9.9".parse().unwrap()];
    let c = csr_with(&other, "shop:web-0:6f1d3c", Some(("web-0", UID)));
    assert_denied(
        verdict(&c, &opted, Some(&host_network_pod()), &web),
        reason::IP_NOT_ALLOWED,
    );
}
