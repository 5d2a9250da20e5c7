//! The kernel side of the node: routes, workload interfaces and tunnels.
//!
//! This module owns every kernel route that carries [`ROUTE_PROTOCOL`] and
//! nothing else; it names workload interfaces ([`workload`]). It never talks
//! BGP or etcd: the node daemon hands it desired state.

pub mod workload;

/// The `rtm_protocol` value on every route tabby installs.
///
/// One owner per route: the reconciler only ever lists, changes or deletes
/// routes with this number, so routes that BIRD (12, `RTPROT_BIRD`), Felix
/// (80) or an operator installed are never touched. 95 is unassigned in
/// `/etc/iproute2/rt_protos` and in the kernel's `rtnetlink.h`.
pub const ROUTE_PROTOCOL: u8 = 95;
