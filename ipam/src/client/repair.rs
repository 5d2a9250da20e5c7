//! Acting on leak reports, safely: an item is repaired only if it was seen
//! identically in two reports (two observations, e.g. a grace period apart),
//! only if it is still true when re-read just before the write (the write is
//! conditioned on the revisions re-read), and per handle all or nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

use super::{Ipam, encode_json};
use crate::affinity::{AffinityState, BlockAffinity};
use crate::check::{self, LeakedAddress, LiveOwners, Report};
use crate::error::IpamError;
use crate::handle::IpamHandle;
use crate::keys;
use crate::store::{Compare, Datastore, Op, TxnOutcome};

/// What [`Ipam::release_leaks`] did and did not do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Repair {
    pub released: Vec<IpAddr>,
    /// Handles (or, for unindexed allocations, addresses) left alone, and why.
    pub skipped: Vec<(String, &'static str)>,
    pub affinities_removed: Vec<(String, IpNet)>,
    pub blocks_fixed: Vec<IpNet>,
    pub handles_fixed: Vec<String>,
}

impl<S: Datastore> Ipam<S> {
    /// Run the leak check against a fresh snapshot.
    pub async fn check(&self, live: &LiveOwners) -> Result<Report, IpamError> {
        Ok(check::check(&self.snapshot().await?, live))
    }

    /// Repair what both `earlier` and `later` reported, identically.
    pub async fn release_leaks(
        &self,
        earlier: &Report,
        later: &Report,
        live: &LiveOwners,
    ) -> Result<Repair, IpamError> {
        let mut out = Repair::default();
        let seen: BTreeSet<&LeakedAddress> = earlier.leaked.iter().collect();
        let mut by_handle: BTreeMap<Option<&str>, Vec<&LeakedAddress>> = BTreeMap::new();
        for leak in later.leaked.iter().filter(|l| seen.contains(l)) {
            by_handle
                .entry(leak.handle.as_deref())
                .or_default()
                .push(leak);
        }
        for (handle, leaks) in by_handle {
            match handle {
                Some(h) => {
                    self.release_leaked_handle(h, &leaks, live, &mut out)
                        .await?
                }
                None => {
                    let reqs: Vec<_> = leaks
                        .iter()
                        .map(|l| super::ReleaseRequest {
                            ip: l.ip,
                            sequence_number: Some(l.sequence_number),
                            handle: None,
                        })
                        .collect();
                    let (ok, _) = self.release_ips(&reqs).await?;
                    out.released.extend(ok);
                }
            }
        }
        for a in later
            .affinities_without_blocks
            .iter()
            .filter(|a| earlier.affinities_without_blocks.contains(a))
        {
            let compares = vec![
                Compare::at(keys::affinity(&a.node, &a.block), a.revision),
                Compare::absent(keys::block(&a.block)),
            ];
            let ops = vec![Op::delete(keys::affinity(&a.node, &a.block))];
            if let TxnOutcome::Committed { .. } = self.store.txn(compares, ops).await? {
                self.forget_affinities(&a.node);
                out.affinities_removed.push((a.node.clone(), a.block));
            }
        }
        for b in later
            .blocks_without_affinities
            .iter()
            .filter(|b| earlier.blocks_without_affinities.contains(b))
        {
            let (bkey, akey) = (keys::block(&b.block), keys::affinity(&b.node, &b.block));
            let compares = vec![Compare::at(&bkey, b.revision), Compare::absent(&akey)];
            let ops = if live.nodes.contains(&b.node) {
                vec![Op::put(
                    &akey,
                    encode_json(&BlockAffinity::new(AffinityState::Confirmed)),
                )]
            } else {
                match self.block(b.block, true).await? {
                    Some(cur) if cur.revision == b.revision && cur.value.is_empty() => {
                        vec![Op::delete(&bkey)]
                    }
                    Some(cur) if cur.revision == b.revision => {
                        let mut next = cur.value.clone();
                        next.set_affinity(None, super::now());
                        vec![Op::put(&bkey, next.to_json())]
                    }
                    _ => continue,
                }
            };
            if let TxnOutcome::Committed { .. } = self.store.txn(compares, ops).await? {
                self.remember_block(b.block, None);
                out.blocks_fixed.push(b.block);
            }
        }
        for m in later
            .orphaned_handles
            .iter()
            .filter(|m| earlier.orphaned_handles.contains(m))
        {
            if self.rebuild_handle(&m.handle, m.revision).await? {
                out.handles_fixed.push(m.handle.clone());
            }
        }
        Ok(out)
    }

    /// Release all of `handle` if, re-read now, every address it holds is
    /// one of `leaks` (same sequence number) and its owner is still gone.
    async fn release_leaked_handle(
        &self,
        handle_id: &str,
        leaks: &[&LeakedAddress],
        live: &LiveOwners,
        out: &mut Repair,
    ) -> Result<(), IpamError> {
        let confirmed: BTreeMap<IpAddr, u64> =
            leaks.iter().map(|l| (l.ip, l.sequence_number)).collect();
        let hkey = keys::handle(handle_id);
        for _ in 0..self.attempts() {
            let Some(h) = self.handle(handle_id).await? else {
                out.skipped.push((
                    handle_id.into(),
                    "handle has no index entry; repair the handle first",
                ));
                return Ok(());
            };
            let mut compares = vec![Compare::at(&hkey, h.revision)];
            let mut ops = vec![Op::delete(&hkey)];
            let mut released = Vec::new();
            for cidr in h.value.block.keys() {
                let Some(b) = self.block(*cidr, true).await? else {
                    continue;
                };
                let mine: Vec<_> = b
                    .value
                    .allocations()
                    .filter(|a| a.handle == Some(handle_id))
                    .collect();
                if mine.iter().any(|a| live.owns(a.handle, a.attrs)) {
                    out.skipped.push((handle_id.into(), "owner is live again"));
                    return Ok(());
                }
                if mine
                    .iter()
                    .any(|a| confirmed.get(&a.ip) != Some(&a.sequence_number))
                {
                    out.skipped.push((
                        handle_id.into(),
                        "handle holds addresses not seen leaked twice",
                    ));
                    return Ok(());
                }
                let mut next = b.value.clone();
                released.extend(next.release_handle(handle_id));
                compares.push(Compare::at(keys::block(cidr), b.revision));
                ops.push(Op::put(keys::block(cidr), next.to_json()));
            }
            if let TxnOutcome::Committed { .. } = self.store.txn(compares, ops).await? {
                for cidr in h.value.block.keys() {
                    self.remember_block(*cidr, None);
                }
                out.released.extend(released);
                return Ok(());
            }
        }
        Err(IpamError::Contention {
            key: hkey,
            attempts: self.attempts(),
        })
    }

    /// Rewrite a handle's index entry from the blocks, if it is still at
    /// `revision` (0 = absent).
    async fn rebuild_handle(&self, handle_id: &str, revision: i64) -> Result<bool, IpamError> {
        let state = self.snapshot().await?;
        let mut actual = IpamHandle::default();
        let mut compares = vec![Compare::at(keys::handle(handle_id), revision)];
        for b in state.blocks.values() {
            let n = b.value.count_for(handle_id);
            let indexed = state
                .handles
                .get(handle_id)
                .is_some_and(|h| h.value.block.contains_key(&b.value.cidr()));
            if n > 0 || indexed {
                compares.push(Compare::at(keys::block(&b.value.cidr()), b.revision));
            }
            if n > 0 {
                actual.add(b.value.cidr(), n);
            }
        }
        let op = if actual.is_empty() {
            Op::delete(keys::handle(handle_id))
        } else {
            Op::put(keys::handle(handle_id), encode_json(&actual))
        };
        Ok(matches!(
            self.store.txn(compares, vec![op]).await?,
            TxnOutcome::Committed { .. }
        ))
    }
}
