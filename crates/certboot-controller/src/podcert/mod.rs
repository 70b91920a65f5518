//! The PodCertificateRequest signer (Kubernetes 1.37+): certboot-controller answers the requests
//! the kubelet files for a pod's `podCertificate` volume, for the signers whose policy entry has
//! `podCertificates: true`, with the same policy, CA and leader election as CSRs.
//!
//! [`decide`] proves the request comes from the pod it names and grants the policy's identity,
//! [`issue`] signs it inside the API server's rules for an issued PCR, [`controller`] watches
//! and writes the one condition (Issued, Denied or Failed).

pub mod controller;
pub mod decide;
pub mod issue;
