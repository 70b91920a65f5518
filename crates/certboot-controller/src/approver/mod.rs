//! The approver: approves a pod's CSR only when it provably comes from that pod, for the signers
//! its [`policy`] lists, and denies it with a stable reason otherwise.
//!
//! [`requested`] reads what the PKCS#10 request asks for, [`identity`] who filed the CSR and which
//! pod its name claims, [`checks`] decides (with [`sans`], [`usages`] and [`lifetime`], all speaking
//! [`denial`] over [`facts`]), [`controller`]
//! watches CSRs and writes decisions.

pub mod checks;
pub mod controller;
pub mod denial;
pub mod facts;
pub mod identity;
pub mod lifetime;
pub mod message;
pub mod policy;
pub mod requested;
pub mod sans;
pub mod usages;
pub mod wait;
