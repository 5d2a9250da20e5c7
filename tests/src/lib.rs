//! The lab harness: real kernels, real daemons, real etcd, cleaned up on drop.
//!
//! Live tests build their world from these pieces:
//!
//! - [`Netns`]: a uniquely named network namespace (test tag + PID), in which
//!   commands, threads and async code run; removed on drop, also on panic.
//! - [`Switch`] and [`Router`]: a bridge namespace that puts N "nodes" on one
//!   subnet, and a router namespace joining two subnets ([`link`]).
//! - [`Etcd`]: the real etcd 3.4 on a free port, data under /dev/shm.
//! - [`Bird`], [`Frr`] and [`GoBgp`]: real BGP daemons inside a namespace,
//!   every socket, pid file and log under their own temp dir.
//! - [`speaker`]: tabby's own BGP speaker inside a lab namespace.
//! - [`bgp_lab`]: nodes on a switch and tabby's peer settings for the
//!   router tests and the convergence benchmark.
//! - [`capture`]: tshark captures and the BGP messages in them.
//! - [`lab`]: nodes running `tabby-node`, etcd, two subnets and a router.
//! - [`skip`]: how a live test reports that it cannot run here.
//!
//! Everything a test starts is stopped by PID when its guard drops; nothing
//! is ever killed by name. Logs of daemons are printed when a test fails.

pub mod apiserver;
pub mod bgp_lab;
pub mod capture;
pub mod daemon;
pub mod etcd;
pub mod lab;
pub mod link;
pub mod mesh;
pub mod netns;
pub mod process;
pub mod skip;
pub mod speaker;

pub use daemon::{Bird, Frr, GoBgp};
pub use etcd::Etcd;
pub use link::{Router, Switch, veth};
pub use netns::Netns;
pub use process::{run, wait_until};
pub use skip::{require_live, skip_for_kernel_feature};
