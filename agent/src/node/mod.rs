//! tabby-node: the daemon of one node.
//!
//! ```text
//!  etcd ── poll every resync interval ──▶ daemon task ──RouteCommand──▶ dataplane thread
//!   (nodes, pools, own blocks)            │   ▲                           (RouteReconciler)
//!                                         │   │ SessionEvent (UPDATEs, up/down)
//!                         add/remove peers│   │
//!                         send UPDATEs    ▼   │
//!                                      BGP speaker (bgp::speaker)
//!  routectl ── control socket ──▶ control task ──▶ daemon state (peers, learned, routes)
//! ```
//!
//! The daemon task owns all mutable state (learned routes per peer, what
//! was sent to each peer, the desired routes). It recomputes from inputs
//! each round ([`routes::desired`], [`export::updates`]) and the dataplane
//! applies only differences, so start-up, steady state and repair are one
//! code path. SIGTERM stops the daemon and leaves kernel routes in place.

pub mod cluster;
pub mod config;
pub mod control;
pub mod daemon;
pub mod export;
pub mod registration;
pub mod routes;

pub use config::NodeConfig;
