//! The tabby node agent: everything that touches one Kubernetes node.
//!
//! [`dataplane`] owns what tabby puts into the kernel. The node daemon, the
//! CNI plugin and `routectl` are built on top of it and of the `bgp` and
//! `ipam` libraries; dependencies flow only from this crate to those.

pub mod cni;
pub mod dataplane;
pub mod node;
pub mod resources;
