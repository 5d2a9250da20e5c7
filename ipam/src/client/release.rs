//! Giving addresses back: by address (optionally guarded by the handle and
//! the sequence number the caller observed), by handle (one read of the
//! handle index, then one transaction over the handle and its blocks), and
//! everything of a node that was removed from the cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

use super::{Ipam, encode_json};
use crate::block::{ATTR_NODE, AllocationBlock, BlockError};
use crate::error::IpamError;
use crate::handle::IpamHandle;
use crate::keys;
use crate::state::{self, Versioned};
use crate::store::{Compare, Datastore, KeyValue, Op, TxnOutcome};

/// One address to release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseRequest {
    pub ip: IpAddr,
    /// Refuse if the address was reallocated since this sequence number
    /// (from [`Allocation::sequence_number`](crate::block::Allocation)).
    pub sequence_number: Option<u64>,
    /// Refuse unless the address belongs to this handle.
    pub handle: Option<String>,
}

impl ReleaseRequest {
    pub fn ip(ip: IpAddr) -> ReleaseRequest {
        ReleaseRequest {
            ip,
            sequence_number: None,
            handle: None,
        }
    }
}

/// What [`Ipam::remove_node`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeRemoval {
    pub released: Vec<IpAddr>,
    /// Empty blocks returned to their pool.
    pub blocks_released: Vec<IpNet>,
    /// Blocks that still hold other nodes' (borrowed) addresses: their
    /// affinity was removed and they stay until those are released.
    pub blocks_orphaned: Vec<IpNet>,
}

fn handle_of(kv: Option<&KeyValue>) -> Result<Option<Versioned<IpamHandle>>, IpamError> {
    kv.map(state::decode_handle).transpose()
}

impl<S: Datastore> Ipam<S> {
    /// Release addresses. Returns the ones released; the others come back as
    /// the reason they were refused (not allocated, wrong handle, stale
    /// sequence number).
    pub async fn release_ips(
        &self,
        reqs: &[ReleaseRequest],
    ) -> Result<(Vec<IpAddr>, Vec<BlockError>), IpamError> {
        let ctx = self.context(false).await?;
        let mut by_block: BTreeMap<IpNet, Vec<&ReleaseRequest>> = BTreeMap::new();
        let mut refused = Vec::new();
        let mut all_blocks: Option<Vec<IpNet>> = None;
        for req in reqs {
            let mut cidr = ctx.pools.iter().find_map(|p| p.block_for(req.ip));
            if cidr.is_none() {
                // The pool was deleted: look among the blocks themselves.
                if all_blocks.is_none() {
                    let mut list = Vec::new();
                    for prefix in [
                        keys::block_family(crate::pool::Family::V4),
                        keys::block_family(crate::pool::Family::V6),
                    ] {
                        list.extend(
                            (self.store.keys(&prefix).await?)
                                .iter()
                                .filter_map(|k| keys::parse_block(k)),
                        );
                    }
                    all_blocks = Some(list);
                }
                cidr = all_blocks
                    .iter()
                    .flatten()
                    .find(|b| b.contains(&req.ip))
                    .copied();
            }
            match cidr {
                Some(c) => by_block.entry(c).or_default().push(req),
                None => refused.push(BlockError::NotAllocated { ip: req.ip }),
            }
        }
        let mut released = Vec::new();
        for (cidr, reqs) in by_block {
            let (ok, no) = self.release_in_block(cidr, &reqs).await?;
            released.extend(ok);
            refused.extend(no);
        }
        Ok((released, refused))
    }

    async fn release_in_block(
        &self,
        cidr: IpNet,
        reqs: &[&ReleaseRequest],
    ) -> Result<(Vec<IpAddr>, Vec<BlockError>), IpamError> {
        let bkey = keys::block(&cidr);
        let mut block = self.block(cidr, false).await?;
        let mut handles: BTreeMap<String, Option<Versioned<IpamHandle>>> = BTreeMap::new();
        for _ in 0..self.attempts() {
            let Some(current) = &block else {
                return Ok((
                    Vec::new(),
                    reqs.iter()
                        .map(|r| BlockError::NotAllocated { ip: r.ip })
                        .collect(),
                ));
            };
            let mut next: AllocationBlock = current.value.clone();
            let (mut released, mut refused) = (Vec::new(), Vec::new());
            let mut freed: BTreeMap<String, u32> = BTreeMap::new();
            for req in reqs {
                let owner = next
                    .allocations()
                    .find(|a| a.ip == req.ip)
                    .map(|a| a.handle.map(str::to_string));
                if let (Some(want), Some(owner)) = (&req.handle, &owner)
                    && owner.as_deref() != Some(want.as_str())
                {
                    refused.push(BlockError::NotAllocated { ip: req.ip });
                    continue;
                }
                match next.release(req.ip, req.sequence_number) {
                    Ok(h) => {
                        released.push(req.ip);
                        if let Some(h) = h {
                            *freed.entry(h).or_default() += 1;
                        }
                    }
                    Err(e) => refused.push(e),
                }
            }
            if released.is_empty() {
                return Ok((released, refused));
            }
            for id in freed.keys() {
                if !handles.contains_key(id) {
                    handles.insert(id.clone(), self.handle(id).await?);
                }
            }
            let mut compares = vec![Compare::at(&bkey, current.revision)];
            let mut ops = vec![Op::put(&bkey, next.to_json())];
            for (id, n) in &freed {
                let old = handles.get(id).cloned().flatten();
                compares.push(Self::handle_key_compare(id, &old));
                let mut h = old.map(|h| h.value).unwrap_or_default();
                h.remove(cidr, *n);
                ops.push(if h.is_empty() {
                    Op::delete(keys::handle(id))
                } else {
                    Op::put(keys::handle(id), encode_json(&h))
                });
            }
            match self.store.txn(compares, ops).await? {
                TxnOutcome::Committed { revision } => {
                    self.remember_block(
                        cidr,
                        Some(Versioned {
                            value: next,
                            revision,
                        }),
                    );
                    return Ok((released, refused));
                }
                TxnOutcome::Conflict { current } => {
                    let mut current = current.into_iter();
                    block = self.remember_block_kv(cidr, current.next().flatten().as_ref())?;
                    for (id, kv) in freed.keys().zip(current) {
                        handles.insert(id.clone(), handle_of(kv.as_ref())?);
                    }
                }
            }
        }
        Err(IpamError::Contention {
            key: bkey,
            attempts: self.attempts(),
        })
    }

    /// Release every address of `handle` (a CNI DEL). Idempotent: an unknown
    /// handle releases nothing. One transaction covers the handle and all of
    /// its blocks, so the release is all-or-nothing.
    pub async fn release_by_handle(&self, handle_id: &str) -> Result<Vec<IpAddr>, IpamError> {
        super::check_name("handle", handle_id)?;
        let hkey = keys::handle(handle_id);
        let mut handle = self.handle(handle_id).await?;
        let mut blocks: BTreeMap<IpNet, Option<Versioned<AllocationBlock>>> = BTreeMap::new();
        for _ in 0..self.attempts() {
            let Some(h) = &handle else {
                return Ok(Vec::new());
            };
            for cidr in h.value.block.keys() {
                if !blocks.contains_key(cidr) {
                    blocks.insert(*cidr, self.block(*cidr, false).await?);
                }
            }
            let cidrs: Vec<IpNet> = h.value.block.keys().copied().collect();
            let mut compares = vec![Compare::at(&hkey, h.revision)];
            let mut ops = vec![Op::delete(&hkey)];
            let mut released = Vec::new();
            let mut written = Vec::new();
            for cidr in &cidrs {
                let b = blocks.get(cidr).cloned().flatten();
                compares.push(Compare::at(
                    keys::block(cidr),
                    b.as_ref().map_or(0, |b| b.revision),
                ));
                if let Some(b) = b {
                    let mut next = b.value.clone();
                    let ips = next.release_handle(handle_id);
                    if !ips.is_empty() {
                        released.extend(ips);
                        ops.push(Op::put(keys::block(cidr), next.to_json()));
                        written.push(next);
                    }
                }
            }
            match self.store.txn(compares, ops).await? {
                TxnOutcome::Committed { revision } => {
                    for b in written {
                        self.remember_block(b.cidr(), Some(Versioned { value: b, revision }));
                    }
                    return Ok(released);
                }
                TxnOutcome::Conflict { current } => {
                    let mut current = current.into_iter();
                    handle = handle_of(current.next().flatten().as_ref())?;
                    for (cidr, kv) in cidrs.iter().zip(current) {
                        blocks.insert(*cidr, self.remember_block_kv(*cidr, kv.as_ref())?);
                    }
                }
            }
        }
        Err(IpamError::Contention {
            key: hkey,
            attempts: self.attempts(),
        })
    }

    /// The node left the cluster: release every address allocated for it
    /// (workloads and tunnel addresses, wherever they were borrowed), give
    /// its empty blocks back and drop its affinities. Blocks that still hold
    /// other nodes' borrowed addresses lose their affinity and stay.
    pub async fn remove_node(&self, node: &str) -> Result<NodeRemoval, IpamError> {
        super::check_name("node", node)?;
        let mut out = NodeRemoval::default();
        let snapshot = self.snapshot().await?;
        let handles: BTreeSet<String> = snapshot
            .blocks
            .values()
            .flat_map(|b| {
                b.value
                    .allocations()
                    .filter(|a| a.attrs.get(ATTR_NODE).map(String::as_str) == Some(node))
                    .filter_map(|a| a.handle.map(str::to_string))
                    .collect::<Vec<_>>()
            })
            .collect();
        for h in handles {
            out.released.extend(self.release_by_handle(&h).await?);
        }
        let mut cidrs: BTreeSet<IpNet> = snapshot
            .affinities
            .keys()
            .filter(|(n, _)| n == node)
            .map(|(_, c)| *c)
            .collect();
        cidrs.extend(
            snapshot
                .blocks
                .values()
                .filter(|b| b.value.is_affine_to(node))
                .map(|b| b.value.cidr()),
        );
        for cidr in cidrs {
            if let Some(orphaned) = self.disown_block(node, cidr).await? {
                if orphaned {
                    out.blocks_orphaned.push(cidr);
                } else {
                    out.blocks_released.push(cidr);
                }
            }
        }
        self.forget_affinities(node);
        Ok(out)
    }

    /// Remove `node`'s claim on `cidr`: delete the block if it is empty,
    /// else clear its affinity. `Some(true)` if the block stays (orphaned),
    /// `Some(false)` if it was deleted, `None` if only an affinity went.
    async fn disown_block(&self, node: &str, cidr: IpNet) -> Result<Option<bool>, IpamError> {
        let akey = keys::affinity(node, &cidr);
        let bkey = keys::block(&cidr);
        for _ in 0..self.attempts() {
            let aff = self.store.get(&akey).await?;
            let arev = aff.as_ref().map_or(0, |kv| kv.mod_revision);
            let block = self.block(cidr, true).await?;
            let mut compares = vec![Compare::at(&akey, arev)];
            let mut ops = Vec::new();
            if aff.is_some() {
                ops.push(Op::delete(&akey));
            }
            let mut result = None;
            if let Some(b) = block.as_ref().filter(|b| b.value.is_affine_to(node)) {
                compares.push(Compare::at(&bkey, b.revision));
                if b.value.is_empty() {
                    ops.push(Op::delete(&bkey));
                    result = Some(false);
                } else {
                    let mut next = b.value.clone();
                    next.set_affinity(None, super::now());
                    ops.push(Op::put(&bkey, next.to_json()));
                    result = Some(true);
                }
            }
            if ops.is_empty() {
                return Ok(None);
            }
            if let TxnOutcome::Committed { .. } = self.store.txn(compares, ops).await? {
                self.remember_block(cidr, None);
                return Ok(result);
            }
        }
        Err(IpamError::Contention {
            key: akey,
            attempts: self.attempts(),
        })
    }
}
