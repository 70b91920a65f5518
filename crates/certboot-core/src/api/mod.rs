//! Talking to the Kubernetes API: the client ([`client`]), its proxy ([`proxy`]) and
//! connections ([`connection`]), retries of transient failures
//! ([`retry`]), errors that say what to fix ([`error`]), and which
//! optional resources the API server serves ([`discovery`]).

pub mod client;
pub mod connection;
pub mod discovery;
pub mod error;
pub mod proxy;
pub mod retry;

#[cfg(any(test, feature = "test-support"))]
pub mod mock;

pub use client::client;
pub use error::{is_transient, status_code, ApiError, ConnectError, Operation};
pub use retry::{
    backoff, retry_after, short, with_retry, with_retry_for, CALL_TIMEOUT, RETRY_MAX_DELAY,
    RETRY_MIN_DELAY,
};
