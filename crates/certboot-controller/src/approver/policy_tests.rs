//! The policy file: defaults, named errors, the opt-ins.

use super::*;

fn one(signer: &str) -> String {
    format!("{{\"signers\": [{signer}]}}")
}

#[test]
fn defaults_are_the_safe_ones() {
    let policy = Policy::parse(&one(r#"{"signerName": "certboot.io/serving"}"#)).unwrap();
    let s = &policy.signers[0];
    assert_eq!(policy.cluster_domain, "cluster.local");
    assert!(s.require_pod_bound_token);
    assert_eq!(s.common_names, vec!["{pod}.{namespace}"]);
    assert!(s.organizations.is_empty());
    assert!(s.uri_templates.is_empty());
    assert!(s.usages.contains("server auth"));
    assert!(!s.usages.contains("cert sign"));
    assert!(s.allows_namespace("anything"));
    assert_eq!(s.max_expiration_seconds, None);
    assert!(s.service_dns_names && !s.service_short_names);
    assert!(s.pod_ips && !s.host_network_ips);
    assert!(!s.signed_here);
    assert!(!s.pod_certificates, "PodCertificateRequests only by opt-in");
    let client = Policy::parse(&one(&format!(
        r#"{{"signerName": "{KUBE_APISERVER_CLIENT}"}}"#
    )))
    .unwrap();
    assert!(!client.signers[0].usages.contains("server auth"));
}

#[test]
fn each_bad_field_is_named() {
    let cases = [
        (r#"{"signerName": "nodomain"}"#, "signers[0].signerName"),
        (
            r#"{"signerName": "a.io/x", "usages": ["server auth", "cert sign"]}"#,
            "signers[0].usages[1]",
        ),
        (
            r#"{"signerName": "a.io/x", "usages": ["serverauth"]}"#,
            "signers[0].usages[0]",
        ),
        (
            r#"{"signerName": "a.io/x", "keyAlgorithms": ["rsa-1024"]}"#,
            "signers[0].keyAlgorithms[0]",
        ),
        (
            r#"{"signerName": "a.io/x", "dnsNameTemplates": ["{pod}.{svc}"]}"#,
            "signers[0].dnsNameTemplates[0]",
        ),
        (
            r#"{"signerName": "a.io/x", "commonNames": ["{service}"]}"#,
            "signers[0].commonNames[0]",
        ),
        (
            r#"{"signerName": "a.io/x", "maxExpirationSeconds": 60}"#,
            "signers[0].maxExpirationSeconds",
        ),
        (
            r#"{"signerName": "kubernetes.io/kube-apiserver-client", "organizations": ["system:masters"]}"#,
            "signers[0].organizations[0]",
        ),
        (
            r#"{"signerName": "a.io/x", "serviceDNSNames": false, "serviceShortNames": true}"#,
            "signers[0].serviceShortNames",
        ),
        (
            r#"{"signerName": "a.io/x", "podIPs": false, "hostNetworkIPs": true}"#,
            "signers[0].hostNetworkIPs",
        ),
    ];
    for (signer, field) in cases {
        let err = Policy::parse(&one(signer)).unwrap_err();
        assert!(err.to_string().contains(field), "{signer}: {err}");
    }
}

#[test]
fn unknown_fields_and_duplicates_are_refused() {
    let err = Policy::parse(&one(r#"{"signerName": "a.io/x", "usage": []}"#)).unwrap_err();
    assert!(err.to_string().contains("unknown field `usage`"), "{err}");
    let err = Policy::parse(r#"{"signers": [{"signerName": "a.io/x"}, {"signerName": "a.io/x"}]}"#)
        .unwrap_err();
    assert!(err.to_string().contains("listed twice"), "{err}");
    let err = Policy::parse(r#"{"signers": []}"#).unwrap_err();
    assert!(err.to_string().contains("signers"), "{err}");
}

#[test]
fn the_opt_ins_parse_and_their_misspellings_are_refused() {
    let policy = Policy::parse(&one(
        r#"{"signerName": "a.io/x", "serviceShortNames": true, "hostNetworkIPs": true}"#,
    ))
    .unwrap();
    assert!(policy.signers[0].service_short_names && policy.signers[0].host_network_ips);
    for typo in [
        r#"{"signerName": "a.io/x", "serviceShortNAMES": true}"#,
        r#"{"signerName": "a.io/x", "hostNetworkIps": true}"#,
        r#"{"signerName": "a.io/x", "signedHere": true}"#,
    ] {
        let err = Policy::parse(&one(typo)).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{typo}: {err}");
    }
    let err =
        Policy::parse(&one(r#"{"signerName": "a.io/x", "hostNetworkIPs": "yes"}"#)).unwrap_err();
    assert!(err.to_string().contains("expected a boolean"), "{err}");
}

#[test]
fn a_maximum_is_left_to_the_approver_unless_certboot_signs_here() {
    let mut policy = Policy::parse(
        r#"{"signers": [{"signerName": "a.io/x", "maxExpirationSeconds": 3600},
                        {"signerName": "b.io/y", "maxExpirationSeconds": 3600},
                        {"signerName": "c.io/z"}]}"#,
    )
    .unwrap();
    let names = |p: &Policy| -> Vec<(usize, String)> {
        p.maxima_left_to_the_approver()
            .into_iter()
            .map(|(i, s)| (i, s.signer_name.clone()))
            .collect()
    };
    assert_eq!(
        names(&policy),
        vec![(0, "a.io/x".to_string()), (1, "b.io/y".to_string())]
    );
    policy.mark_signed_here(&["b.io/y".to_string(), "c.io/z".to_string()]);
    assert_eq!(names(&policy), vec![(0, "a.io/x".to_string())]);
    assert!(policy.signers[1].signed_here && policy.signers[2].signed_here);
}

#[test]
fn a_missing_file_says_where_to_mount_it() {
    let err = Policy::load(Path::new("/nonexistent/policy.json")).unwrap_err();
    assert!(err.to_string().contains("CERTBOOT_POLICY"), "{err}");
}

#[test]
fn pod_certificates_need_certboots_signer_and_a_signer_name_of_its_own() {
    let policy = Policy::parse(&one(
        r#"{"signerName": "certboot.io/serving", "podCertificates": true}"#,
    ))
    .unwrap();
    assert_eq!(policy.pod_certificate_signers().len(), 1);
    assert!(policy
        .check_pod_certificate_signers(&["certboot.io/serving".to_string()])
        .is_ok());
    let err = policy.check_pod_certificate_signers(&[]).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("signers[0].podCertificates") && text.contains("CERTBOOT_SIGNER_NAMES"),
        "{text}"
    );
    let err = Policy::parse(&one(&format!(
        r#"{{"signerName": "{KUBE_APISERVER_CLIENT}", "podCertificates": true}}"#
    )))
    .unwrap_err();
    assert!(
        err.to_string().contains("signers[0].podCertificates"),
        "{err}"
    );
}
