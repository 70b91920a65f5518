//! Fault injection for certboot's end-to-end tests: a TLS-terminating proxy in front of the
//! harness's kube-apiserver that answers chosen requests with 429/5xx/4xx, resets the
//! connection, delays or holds them, or ends a watch with 410 Gone.

#![allow(dead_code)] // each test crate uses a different part

pub mod proxy;
