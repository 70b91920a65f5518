//! The signer: issues certificates for approved CSRs of its signers from a CA the cluster owner
//! holds, and publishes the CA bundle pods should trust.
//!
//! [`ca`] loads the CA, [`source`] follows its mounted Secret (through [`inotify`]), [`issue`]
//! builds one certificate (for as long as [`lifetime`] allows), [`controller`] watches and signs, [`trust`] publishes the bundle as
//! ConfigMaps and [`cluster_trust_bundle`] as ClusterTrustBundles.

pub mod ca;
pub mod cluster_trust_bundle;
pub mod controller;
pub mod inotify;
pub mod issue;
pub mod lifetime;
pub mod source;
#[cfg(test)]
mod test_ca;
pub mod trust;
