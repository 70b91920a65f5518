//! Talking to the Kubernetes API: the client, retries of transient failures, errors that say what
//! to fix, and Events on the pod.

pub mod client;
pub mod events;
pub mod retry;

pub use retry::*;
