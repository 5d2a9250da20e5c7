//! tabby's BGP-4 speaker, as a library.
//!
//! This crate knows nothing of Kubernetes, etcd or netlink. Its core is
//! sans-IO: [`wire`] turns bytes into typed messages and back, [`session`]
//! is the RFC 4271 state machine fed with time and messages, [`rib`] holds
//! the Adj-RIBs-In, Loc-RIB and Adj-RIBs-Out with the decision process. Only
//! [`speaker`] (feature `speaker`, on by default) touches sockets and tasks.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod rib;
pub mod session;
#[cfg(feature = "speaker")]
pub mod speaker;
pub mod wire;
