//! tabby-node: the daemon of one node.
//!
//! ```text
//!  etcd ── watches (+ every resync) ────▶ daemon task ──RouteCommand──▶ dataplane thread
//!   (nodes, pools, own blocks)            │   ▲                           (RouteReconciler)
//!                                         │   │ SessionEvent (UPDATEs, up/down)
//!                         add/remove peers│   │
//!                         send UPDATEs    ▼   │
//!                                      BGP speaker (bgp::speaker)
//!  routectl ── control socket ──▶ control task ──▶ daemon state (peers, learned, routes)
//! ```
//!
//! The daemon task owns all mutable state, the BGP RIB (`bgp::rib`) among
//! it: learned routes per peer, the decision process, what each peer was
//! sent. It recomputes the desired routes from its inputs each round
//! ([`routes::desired`]) and the dataplane applies only differences, so
//! start-up, steady state and repair are one code path.
//!
//! Restarts do not black-hole traffic: SIGTERM (and SIGKILL) leave kernel
//! routes in place and send no NOTIFICATION, so peers that support graceful
//! restart (every tabby node announces it) keep this node's routes, stale,
//! for 120 s; on start the agent adopts the kernel's routes and only adds
//! until every peer has sent its End-of-RIB (or 30 s passed).

pub mod apply;
pub mod cluster;
pub mod config;
pub mod control;
pub mod ctl_error;
pub mod daemon;
pub mod delete;
pub mod export;
pub mod get;
pub mod health;
pub mod ipam_check;
pub mod ipam_show;
pub mod kind;
pub mod kubernetes;
pub mod peering;
pub mod programming;
pub mod registration;
pub mod routes;
pub mod startup;
pub mod tunnels;
pub mod watch;

pub use config::NodeConfig;
