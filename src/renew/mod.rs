//! Sidecar mode: when to renew ([`schedule`]), waiting for that wall-clock time ([`clock`]), the
//! renewal loop ([`renewer`]), telling the app ([`reload`]), and the sidecar's `/metrics` and
//! `/healthz` ([`metrics`]).

pub mod clock;
pub mod metrics;
pub mod reload;
pub mod renewer;
pub mod schedule;

pub use renewer::Renewer;
pub use schedule::renew_at;
