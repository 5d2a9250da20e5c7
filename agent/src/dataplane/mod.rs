//! The kernel side of the node: routes, workload interfaces and tunnels.
//!
//! This module owns every kernel route that carries [`ROUTE_PROTOCOL`] and
//! nothing else. [`route`] says what tabby wants and plans the changes
//! (sans-IO); [`route_msg`] turns routes into rtnetlink messages and back;
//! [`route_table`] applies a plan to a kernel over one netlink socket,
//! batching many requests per `sendmsg`; [`reconciler`] keeps the kernel
//! equal to the desired routes; [`workload`] names pod interfaces and
//! [`veth`] wires them; [`netns`] runs code inside a pod's namespace;
//! [`encap`] picks direct, IPIP or VXLAN per pool and remote node, and
//! [`vxlan`] keeps the VXLAN device and its per-node entries, [`ipip`]
//! the tunl0 device; [`nat`] keeps the `natOutgoing` nftables table;
//! [`autodetect`] picks the node address.
//! It never talks BGP or etcd: the node daemon hands it desired state.

pub mod autodetect;
pub mod encap;
pub mod ipip;
pub mod nat;
pub mod netns;
pub mod reconciler;
pub mod route;
pub mod route_msg;
pub mod route_table;
pub mod veth;
pub mod vxlan;
pub mod workload;

/// The `rtm_protocol` value on every route tabby installs.
///
/// One owner per route: the reconciler only ever lists, changes or deletes
/// routes with this number, so routes that BIRD (12, `RTPROT_BIRD`), Felix
/// (80) or an operator installed are never touched. 95 is unassigned in
/// `/etc/iproute2/rt_protos` and in the kernel's `rtnetlink.h`.
pub const ROUTE_PROTOCOL: u8 = 95;
