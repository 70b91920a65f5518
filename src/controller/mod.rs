//! `certboot-controller`: the cluster-side half of certboot. One Deployment runs the approver
//! (and, with its issue, the signer) behind leader election on a Lease.
//!
//! [`settings`] reads the environment, [`leader`] holds the Lease, [`endpoints`] serves health and
//! metrics, [`metrics`] counts decisions, [`server_version`] checks at start that the API server
//! can show the approver what the policy bounds, [`run`] ties them together.

pub mod endpoints;
pub mod leader;
pub mod metrics;
pub mod run;
pub mod server_version;
pub mod settings;
