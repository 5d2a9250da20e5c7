//! tabby's BGP-4 speaker, as a library.
//!
//! This crate knows nothing of Kubernetes, etcd or netlink. Its core is
//! sans-IO: [`wire`] turns bytes into typed messages and back, [`session`]
//! is the RFC 4271 state machine fed with time and messages.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod session;
pub mod wire;
