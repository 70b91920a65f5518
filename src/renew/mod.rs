//! Sidecar mode: renewing the certificate before it expires, telling the app, and the metrics.

pub mod metrics;
pub mod reload;
pub mod renewer;
