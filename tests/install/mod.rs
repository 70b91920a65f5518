//! What tests/e2e_node_install.rs checks after each step of an install, as a user would look:
//! the Lease, the Events `kubectl describe pod` lists, which CA signed a pod's certificate, the
//! API server's audit log, what an uninstall leaves, and kubectl itself.

pub mod audit;
pub mod ca;
pub mod events;
pub mod kubectl;
pub mod lease;
pub mod leftovers;

use std::time::Duration;

/// How long one step (a rollout, a takeover, a decision) may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(180);
/// Between two looks at the API server while waiting.
pub const POLL: Duration = Duration::from_millis(200);
