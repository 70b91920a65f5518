//! `certboot-controller`: the cluster-side half of certboot. One Deployment runs the approver
//! (and, with its issue, the signer) behind leader election on a Lease.
//!
//! [`settings`] reads the environment, [`leader`] holds the Lease, [`endpoints`] serves health and
//! metrics, [`metrics`] counts decisions, [`csrs`] watches CSRs once for the approver and the
//! signer, [`cache`] trims what the caches keep, [`run`] ties them together.

pub mod cache;
pub mod csrs;
pub mod endpoints;
pub mod leader;
pub mod metrics;
pub mod run;
pub mod settings;
