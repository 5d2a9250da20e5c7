//! Block ownership: the two-phase claim of a block for a node, and giving
//! empty blocks back.
//!
//! Claim (Calico's `claimAffineBlock`, tightened for etcd):
//! 1. create the affinity `pending`, only if neither it nor the block exists
//!    (a conflict reads both back, so the next step needs no extra read);
//! 2. in **one** transaction, create the block with `affinity: host:<node>`
//!    (only if absent) and confirm the affinity (only if it is still the
//!    pending one we saw). Calico does these as two writes; with etcd's
//!    multi-key transactions a block can never exist without its confirmed
//!    affinity, and a crash leaves at most a `pending` affinity, which the
//!    node's next claim completes and `check` reports;
//! 3. if the block already belongs to another node, delete our pending
//!    affinity and report [`Claim::Taken`], so the caller tries another block.
//!
//! Release: `confirmed → pendingDeletion`, then delete block and affinity in
//! one transaction conditioned on the block still being the empty one we
//! saw. If an address was taken from it meanwhile (a borrower), the
//! affinity goes back to `confirmed`.

use std::collections::HashSet;

use ipnet::IpNet;

use super::assign::node_seed;
use super::{Ipam, encode_json, now};
use crate::affinity::{AffinityState, BlockAffinity};
use crate::block::AllocationBlock;
use crate::error::IpamError;
use crate::keys;
use crate::pool::Pool;
use crate::state::{self, Versioned};
use crate::store::{Compare, Datastore, KeyValue, Op, TxnOutcome};

/// The result of trying to claim one block.
#[derive(Debug, Clone)]
pub(crate) enum Claim {
    Ours(Versioned<AllocationBlock>),
    Taken,
}

fn affinity_of(kv: Option<&KeyValue>) -> Result<Option<Versioned<BlockAffinity>>, IpamError> {
    kv.map(|kv| state::decode_affinity(kv).map(|(_, _, a)| a))
        .transpose()
}

impl<S: Datastore> Ipam<S> {
    /// Claim some block of `pools` that does not exist yet, for `node`.
    /// `None` when every block of every pool exists.
    pub(crate) async fn claim_new_block(
        &self,
        node: &str,
        pools: &[&Pool],
    ) -> Result<Option<Versioned<AllocationBlock>>, IpamError> {
        let Some(family) = pools.first().map(|p| p.family()) else {
            return Ok(None);
        };
        // The set of existing blocks steers the walk; the claim itself
        // checks the block is absent, so a set from the cache that missed a
        // new block costs one failed transaction, never a wrong claim. A
        // cached set that finds nothing is re-read once before giving up.
        let mut fresh = false;
        loop {
            let existing = match self.cached_block_keys(family).filter(|_| !fresh) {
                Some(set) => set,
                None => {
                    fresh = true;
                    let set: HashSet<IpNet> =
                        (self.store.keys(&keys::block_family(family)).await?)
                            .iter()
                            .filter_map(|k| keys::parse_block(k))
                            .collect();
                    self.remember_block_keys(family, set.clone());
                    set
                }
            };
            if let Some(block) = self.walk_and_claim(node, pools, &existing).await? {
                self.note_block_exists(family, block.value.cidr());
                return Ok(Some(block));
            }
            if fresh {
                return Ok(None);
            }
            fresh = true;
        }
    }

    /// Try the blocks of `pools` not in `existing`, from the node's seed on.
    async fn walk_and_claim(
        &self,
        node: &str,
        pools: &[&Pool],
        existing: &HashSet<IpNet>,
    ) -> Result<Option<Versioned<AllocationBlock>>, IpamError> {
        for pool in pools {
            let count = pool.block_count();
            let start = node_seed(node) % count;
            // Each index is either an existing block or one claim attempt;
            // bound the walk so huge IPv6 pools stay cheap.
            let budget = (existing.len() as u128)
                .saturating_add(u128::from(self.attempts()))
                .min(count);
            for i in 0..budget {
                let cidr = pool.block_at((start + i) % count);
                if existing.contains(&cidr) {
                    continue;
                }
                match self.claim_cidr(node, cidr).await? {
                    Claim::Ours(block) => return Ok(Some(block)),
                    Claim::Taken => self.note_block_exists(pool.family(), cidr),
                }
            }
        }
        Ok(None)
    }

    /// Claim `cidr` for `node` (or finish an interrupted claim of it).
    pub(crate) async fn claim_cidr(&self, node: &str, cidr: IpNet) -> Result<Claim, IpamError> {
        let akey = keys::affinity(node, &cidr);
        let bkey = keys::block(&cidr);
        let pending = encode_json(&BlockAffinity::new(AffinityState::Pending));
        let confirmed = encode_json(&BlockAffinity::new(AffinityState::Confirmed));
        let result = self
            .claim_cidr_once(node, cidr, &akey, &bkey, pending, confirmed)
            .await;
        match &result {
            Ok((Claim::Ours(_), Some(revision))) => self.remember_affinity(
                node,
                cidr,
                Versioned {
                    value: BlockAffinity::new(AffinityState::Confirmed),
                    revision: *revision,
                },
            ),
            _ => self.forget_affinities(node),
        }
        result.map(|(claim, _)| claim)
    }

    /// The claim state machine. Also returns the revision of the confirmed
    /// affinity when this call wrote it together with the block.
    async fn claim_cidr_once(
        &self,
        node: &str,
        cidr: IpNet,
        akey: &str,
        bkey: &str,
        pending: Vec<u8>,
        confirmed: Vec<u8>,
    ) -> Result<(Claim, Option<crate::store::Revision>), IpamError> {
        let (akey, bkey) = (akey.to_string(), bkey.to_string());
        let mut aff: Option<Versioned<BlockAffinity>> = None;
        // The block is assumed absent until a transaction says otherwise.
        let mut blk: Option<Versioned<AllocationBlock>> = None;
        for _ in 0..self.attempts() {
            match (&aff, &blk) {
                (None, None) => {
                    // Phase 1: pending affinity, only while the block is
                    // absent too; a conflict reads both back in the same
                    // round trip.
                    let compares = vec![Compare::absent(&akey), Compare::absent(&bkey)];
                    let ops = vec![Op::put(&akey, pending.clone())];
                    match self.store.txn(compares, ops).await? {
                        TxnOutcome::Committed { revision } => {
                            aff = Some(Versioned {
                                value: BlockAffinity::new(AffinityState::Pending),
                                revision,
                            })
                        }
                        TxnOutcome::Conflict { current } => {
                            let mut current = current.into_iter();
                            aff = affinity_of(current.next().flatten().as_ref())?;
                            blk =
                                self.remember_block_kv(cidr, current.next().flatten().as_ref())?;
                        }
                    }
                }
                (None, Some(b)) if b.value.is_affine_to(node) => {
                    // Our block lost its affinity key: restore it.
                    match self.store.create(&akey, confirmed.clone()).await? {
                        TxnOutcome::Committed { .. } => return Ok((Claim::Ours(b.clone()), None)),
                        TxnOutcome::Conflict { current } => {
                            aff = affinity_of(current.first().and_then(Option::as_ref))?
                        }
                    }
                }
                (None, Some(_)) => return Ok((Claim::Taken, None)),
                (Some(a), None) if a.value.state != AffinityState::PendingDeletion => {
                    // Phase 2: create the block and confirm, atomically.
                    let block = AllocationBlock::new(cidr, Some(BlockAffinity::host(node)), now());
                    let compares = vec![Compare::absent(&bkey), Compare::at(&akey, a.revision)];
                    let ops = vec![
                        Op::put(&bkey, block.to_json()),
                        Op::put(&akey, confirmed.clone()),
                    ];
                    match self.store.txn(compares, ops).await? {
                        TxnOutcome::Committed { revision } => {
                            let block = Versioned {
                                value: block,
                                revision,
                            };
                            self.remember_block(cidr, Some(block.clone()));
                            return Ok((Claim::Ours(block), Some(revision)));
                        }
                        TxnOutcome::Conflict { current } => {
                            let mut current = current.into_iter();
                            blk =
                                self.remember_block_kv(cidr, current.next().flatten().as_ref())?;
                            aff = affinity_of(current.next().flatten().as_ref())?;
                        }
                    }
                }
                (Some(a), None) => {
                    // pendingDeletion without a block: a release that stopped
                    // half-way. Clear it and start over.
                    if let TxnOutcome::Committed { .. } =
                        self.store.delete(&akey, a.revision).await?
                    {
                        aff = None;
                    } else {
                        aff = affinity_of(self.store.get(&akey).await?.as_ref())?;
                    }
                }
                (Some(a), Some(b)) if b.value.is_affine_to(node) => match a.value.state {
                    AffinityState::Confirmed => return Ok((Claim::Ours(b.clone()), None)),
                    AffinityState::PendingDeletion => return Ok((Claim::Taken, None)),
                    AffinityState::Pending => match self
                        .store
                        .update(&akey, confirmed.clone(), a.revision)
                        .await?
                    {
                        TxnOutcome::Committed { .. } => return Ok((Claim::Ours(b.clone()), None)),
                        TxnOutcome::Conflict { current } => {
                            aff = affinity_of(current.first().and_then(Option::as_ref))?
                        }
                    },
                },
                (Some(a), Some(_)) => {
                    // Someone else's block: withdraw our claim.
                    let _ = self.store.delete(&akey, a.revision).await?;
                    return Ok((Claim::Taken, None));
                }
            }
        }
        Err(IpamError::Contention {
            key: akey,
            attempts: self.attempts(),
        })
    }

    /// Give an empty block of `node` back to its pool. `Ok(false)` if the
    /// node has no affinity for it.
    pub async fn release_block_affinity(&self, node: &str, cidr: IpNet) -> Result<bool, IpamError> {
        let akey = keys::affinity(node, &cidr);
        let bkey = keys::block(&cidr);
        self.forget_affinities(node);
        for _ in 0..self.attempts() {
            let Some(aff) = affinity_of(self.store.get(&akey).await?.as_ref())? else {
                return Ok(false);
            };
            let block = self.block(cidr, true).await?;
            let outcome = match &block {
                // No block, or not ours: the affinity is all there is to remove.
                None => self.store.delete(&akey, aff.revision).await?,
                Some(b) if !b.value.is_affine_to(node) => {
                    self.store.delete(&akey, aff.revision).await?
                }
                Some(b) if !b.value.is_empty() => {
                    if aff.value.state == AffinityState::PendingDeletion {
                        let back = encode_json(&BlockAffinity::new(AffinityState::Confirmed));
                        let _ = self.store.update(&akey, back, aff.revision).await?;
                    }
                    return Err(IpamError::BlockNotEmpty {
                        cidr,
                        in_use: b.value.in_use(),
                    });
                }
                Some(_) if aff.value.state != AffinityState::PendingDeletion => {
                    let marked = encode_json(&BlockAffinity::new(AffinityState::PendingDeletion));
                    let _ = self.store.update(&akey, marked, aff.revision).await?;
                    continue;
                }
                Some(b) => {
                    let compares = vec![
                        Compare::at(&bkey, b.revision),
                        Compare::at(&akey, aff.revision),
                    ];
                    self.store
                        .txn(compares, vec![Op::delete(&bkey), Op::delete(&akey)])
                        .await?
                }
            };
            if let TxnOutcome::Committed { .. } = outcome {
                if block.as_ref().is_some_and(|b| b.value.is_affine_to(node)) {
                    self.remember_block(cidr, None);
                    self.note_block_gone(cidr);
                }
                return Ok(true);
            }
        }
        Err(IpamError::Contention {
            key: akey,
            attempts: self.attempts(),
        })
    }

    /// Release `node`'s empty blocks, keeping at least `keep` blocks (Calico
    /// keeps one so a node does not churn). Returns the released blocks.
    pub async fn release_empty_blocks(
        &self,
        node: &str,
        keep: usize,
    ) -> Result<Vec<IpNet>, IpamError> {
        super::check_name("node", node)?;
        let affinities = self.affinities(node, true).await?;
        let mut empty = Vec::new();
        for entry in affinities.iter() {
            match self.block(entry.cidr, true).await? {
                Some(b) if !b.value.is_empty() && b.value.is_affine_to(node) => {}
                _ => empty.push(entry.cidr),
            }
        }
        let busy = affinities.len() - empty.len();
        let spare = empty.len().saturating_sub(keep.saturating_sub(busy));
        let mut released = Vec::new();
        for cidr in empty.into_iter().take(spare) {
            match self.release_block_affinity(node, cidr).await {
                Ok(true) => released.push(cidr),
                Ok(false) | Err(IpamError::BlockNotEmpty { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(released)
    }
}
