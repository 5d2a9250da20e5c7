//! The error type of IPAM operations.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::ConfigError;
use crate::pool::{AllowedUse, Family, PoolError};
use crate::store::StoreError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum IpamError {
    /// The datastore failed (unreachable, timed out, refused).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored value does not decode; it is reported, never guessed at.
    #[error("corrupt value at {key}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("invalid {what} {value:?}: must be non-empty, without '/' or control characters")]
    InvalidName { what: &'static str, value: String },
    #[error("no enabled {family} pool selects node {node} for {usage:?} addresses")]
    NoPool {
        node: String,
        family: Family,
        usage: AllowedUse,
    },
    #[error("{family} addresses exhausted for node {node}: wanted {wanted}, found {found}")]
    Exhausted {
        node: String,
        family: Family,
        wanted: usize,
        found: usize,
    },
    /// A pool named in the request (by name or CIDR) cannot be used.
    #[error("requested {family} pool {pool:?} {reason}")]
    RequestedPool {
        pool: String,
        family: Family,
        reason: String,
    },
    #[error("{ip} is not in any pool")]
    NotInPool { ip: IpAddr },
    #[error("{ip} is already allocated")]
    AlreadyAllocated { ip: IpAddr },
    #[error("block {cidr} is affine to another node ({owner})")]
    ForeignBlock { cidr: IpNet, owner: String },
    #[error("block {cidr} still holds {in_use} addresses")]
    BlockNotEmpty { cidr: IpNet, in_use: usize },
    /// Every attempt lost a compare-and-swap race.
    #[error("gave up on {key} after {attempts} conflicting writes")]
    Contention { key: String, attempts: u32 },
}

impl IpamError {
    pub(crate) fn corrupt(key: &str, reason: impl std::fmt::Display) -> IpamError {
        IpamError::Corrupt {
            key: key.to_string(),
            reason: reason.to_string(),
        }
    }
}
