//! The tabby node agent: everything that touches one Kubernetes node.
//!
//! [`dataplane`] owns what tabby puts into the kernel. The node daemon, the
//! CNI plugin and `routectl` are built on top of it and of the `bgp` and
//! `ipam` libraries; dependencies flow only from this crate to those.
//! [`k8s`] owns every call to the Kubernetes API (used only in a cluster).

pub mod cni;
pub mod dataplane;
pub mod k8s;
pub mod node;
pub mod resources;
