//! Decoding stored values into IPAM types, and [`IpamState`]: a snapshot of
//! everything IPAM keeps, read at one revision, for `check`, for operator
//! views (`routectl ipam show`) and for invariant tests.

use std::collections::BTreeMap;

use ipnet::IpNet;

use crate::affinity::BlockAffinity;
use crate::block::AllocationBlock;
use crate::config::IpamConfig;
use crate::error::IpamError;
use crate::handle::IpamHandle;
use crate::keys;
use crate::pool::{IpPool, Pool};
use crate::store::{KeyValue, Range, Revision};

/// A decoded value with the mod_revision it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    pub value: T,
    pub revision: Revision,
}

pub(crate) fn decode_block(kv: &KeyValue) -> Result<Versioned<AllocationBlock>, IpamError> {
    let cidr =
        keys::parse_block(&kv.key).ok_or_else(|| IpamError::corrupt(&kv.key, "not a block key"))?;
    let value =
        AllocationBlock::from_json(&kv.value).map_err(|e| IpamError::corrupt(&kv.key, e))?;
    if value.cidr() != cidr {
        return Err(IpamError::corrupt(
            &kv.key,
            format!("holds block {}", value.cidr()),
        ));
    }
    Ok(Versioned {
        value,
        revision: kv.mod_revision,
    })
}

pub(crate) fn decode_affinity(
    kv: &KeyValue,
) -> Result<(String, IpNet, Versioned<BlockAffinity>), IpamError> {
    let (node, cidr) = keys::parse_affinity(&kv.key)
        .ok_or_else(|| IpamError::corrupt(&kv.key, "not an affinity key"))?;
    let value: BlockAffinity =
        serde_json::from_slice(&kv.value).map_err(|e| IpamError::corrupt(&kv.key, e))?;
    Ok((
        node,
        cidr,
        Versioned {
            value,
            revision: kv.mod_revision,
        },
    ))
}

pub(crate) fn decode_handle(kv: &KeyValue) -> Result<Versioned<IpamHandle>, IpamError> {
    let value: IpamHandle =
        serde_json::from_slice(&kv.value).map_err(|e| IpamError::corrupt(&kv.key, e))?;
    Ok(Versioned {
        value,
        revision: kv.mod_revision,
    })
}

/// Decode and validate the stored pools, in key order.
pub(crate) fn decode_pools(kvs: &[KeyValue]) -> Result<Vec<Pool>, IpamError> {
    let mut pools = Vec::new();
    for kv in kvs {
        let raw = IpPool::from_json(&kv.value).map_err(|e| IpamError::corrupt(&kv.key, e))?;
        pools.push(
            raw.validate(&pools)
                .map_err(|e| IpamError::corrupt(&kv.key, e))?,
        );
    }
    Ok(pools)
}

pub(crate) fn decode_config(kv: Option<&KeyValue>) -> Result<IpamConfig, IpamError> {
    match kv {
        None => Ok(IpamConfig::default()),
        Some(kv) => IpamConfig::from_json(&kv.value).map_err(|e| IpamError::corrupt(&kv.key, e)),
    }
}

/// Everything IPAM stores, decoded. Values that do not decode are listed in
/// `corrupt` instead of failing the whole snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpamState {
    /// The revision the IPAM keys were read at.
    pub revision: Revision,
    pub pools: Vec<Pool>,
    pub config: IpamConfig,
    pub blocks: BTreeMap<IpNet, Versioned<AllocationBlock>>,
    pub affinities: BTreeMap<(String, IpNet), Versioned<BlockAffinity>>,
    pub handles: BTreeMap<String, Versioned<IpamHandle>>,
    /// (key, reason) of each value that did not decode.
    pub corrupt: Vec<(String, String)>,
}

impl IpamState {
    /// Decode a range over [`keys::IPAM`] and one over [`keys::POOLS`].
    pub fn decode(ipam: &Range, pools: &Range) -> IpamState {
        let mut state = IpamState {
            revision: ipam.revision,
            ..IpamState::default()
        };
        let mut corrupt = Vec::new();
        for kv in &pools.kvs {
            match IpPool::from_json(&kv.value).and_then(|p| p.validate(&state.pools)) {
                Ok(p) => state.pools.push(p),
                Err(e) => corrupt.push(state_corrupt(&kv.key, e.into())),
            }
        }
        for kv in &ipam.kvs {
            let result = if kv.key == keys::CONFIG {
                decode_config(Some(kv)).map(|c| state.config = c)
            } else if kv.key.starts_with(keys::BLOCKS) {
                decode_block(kv).map(|b| {
                    state.blocks.insert(b.value.cidr(), b);
                })
            } else if kv.key.starts_with(keys::HANDLES) {
                let id = keys::parse_handle(&kv.key).unwrap_or_default().to_string();
                decode_handle(kv).map(|h| {
                    state.handles.insert(id, h);
                })
            } else if kv.key.starts_with(keys::HOSTS) {
                decode_affinity(kv).map(|(node, cidr, a)| {
                    state.affinities.insert((node, cidr), a);
                })
            } else {
                Ok(())
            };
            if let Err(e) = result {
                corrupt.push(state_corrupt(&kv.key, e));
            }
        }
        state.corrupt = corrupt;
        state
    }
}

fn state_corrupt(key: &str, e: IpamError) -> (String, String) {
    (key.to_string(), e.to_string())
}
