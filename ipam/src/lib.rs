//! Calico-style block IPAM: pools, blocks, affinities, handles.
//!
//! ```text
//! store/      Datastore trait (etcd semantics); etcd and in-memory backends
//! keys        the etcd key layout (one documented prefix)
//! pool, selector, config, affinity, handle, block
//!             the stored resources; block.rs holds the sans-IO allocation logic
//! state       decoding, and IpamState: a snapshot of everything at one revision
//! client/     Ipam: auto-assign, claim, borrow, release, node removal, repair
//! check       leak check (a pure function of a snapshot and the live owners)
//!             and the structural invariants
//! ```
//!
//! Where tabby differs from Calico (libcalico-go), on purpose:
//! - a block and the handle-index entries it affects are written in one etcd
//!   transaction, so the handle index can never disagree with the blocks;
//! - phase two of a block claim (create block + confirm affinity) is one
//!   transaction, so a block never exists without a confirmed affinity;
//! - claim times are Unix seconds; there is no IP cooldown (`ipCooldownSeconds`
//!   = 0, Calico's default): released addresses go straight to the FIFO tail.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod affinity;
pub mod block;
pub mod check;
mod client;
pub mod config;
pub mod error;
pub mod handle;
pub mod keys;
pub mod pool;
pub mod selector;
pub mod state;
pub mod store;

pub use affinity::{AffinityState, BlockAffinity};
pub use block::{AllocationBlock, Attrs};
pub use check::{LiveOwners, Report};
pub use client::{
    AssignArgs, Assigned, Ipam, IpamOptions, NodeRemoval, ReleaseRequest, Repair, TunnelKind,
};
pub use config::IpamConfig;
pub use error::IpamError;
pub use handle::IpamHandle;
pub use pool::{AllowedUse, AssignmentMode, EncapMode, Family, IpPool, Pool};
pub use state::{IpamState, Versioned};
pub use store::Datastore;
pub use store::etcd::{EtcdConfig, EtcdStore, EtcdTls};
pub use store::memory::MemoryStore;
