//! Leak check and invariants: pure functions of an [`IpamState`] snapshot.
//!
//! [`check`] compares the allocations with the live owners it is given and
//! reports, like `calicoctl ipam check`: leaked addresses (no live owner),
//! handle-index entries that disagree with the blocks, affinities without
//! blocks (an interrupted claim) and blocks without affinities. Acting on a
//! report is [`Ipam::release_leaks`](crate::Ipam::release_leaks), which needs
//! two reports (two observations) and re-validates before each write.
//! A [`Report`] serialises (serde, camelCase) so that `routectl ipam check
//! -o` can write it and `routectl ipam release --from-report` read it back.
//!
//! [`invariants`] lists violations of the rules every reachable state must
//! keep, crash or no crash; the property tests and live tests assert it is
//! empty.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::affinity::AffinityState;
use crate::block::{ATTR_NODE, ATTR_TYPE};
use crate::client::TunnelKind;
use crate::pool::overlaps;
use crate::state::IpamState;
use crate::store::Revision;

/// Who may own addresses right now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveOwners {
    /// Handles of live workloads (`<network>.<containerID>`).
    pub workloads: BTreeSet<String>,
    /// Nodes that exist; their tunnel addresses are live.
    pub nodes: BTreeSet<String>,
}

impl LiveOwners {
    /// Whether this allocation has a live owner.
    pub fn owns(&self, handle: Option<&str>, attrs: &BTreeMap<String, String>) -> bool {
        match attrs.get(ATTR_TYPE) {
            Some(t) if TunnelKind::is_tunnel_type(t) => {
                attrs.get(ATTR_NODE).is_some_and(|n| self.nodes.contains(n))
            }
            _ => handle.is_some_and(|h| self.workloads.contains(h)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeakedAddress {
    pub ip: IpAddr,
    pub block: IpNet,
    pub handle: Option<String>,
    /// The allocation's sequence number: a release is refused if it changed.
    pub sequence_number: u64,
    pub node: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DanglingAffinity {
    pub node: String,
    pub block: IpNet,
    pub state: AffinityState,
    pub revision: Revision,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnclaimedBlock {
    pub block: IpNet,
    pub node: String,
    pub revision: Revision,
}

/// A handle whose index entry disagrees with what the blocks hold.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HandleMismatch {
    pub handle: String,
    pub indexed: BTreeMap<IpNet, u32>,
    pub actual: BTreeMap<IpNet, u32>,
    /// Revision of the handle key (0 = no index entry at all).
    pub revision: Revision,
}

/// The result of a leak check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub revision: Revision,
    pub allocations: usize,
    pub leaked: Vec<LeakedAddress>,
    pub orphaned_handles: Vec<HandleMismatch>,
    pub affinities_without_blocks: Vec<DanglingAffinity>,
    pub blocks_without_affinities: Vec<UnclaimedBlock>,
    /// Structural problems (corrupt values, overlapping or stray blocks).
    pub violations: Vec<Violation>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.leaked.is_empty()
            && self.orphaned_handles.is_empty()
            && self.affinities_without_blocks.is_empty()
            && self.blocks_without_affinities.is_empty()
            && self.violations.is_empty()
    }
}

/// A broken rule.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, thiserror::Error, Serialize, Deserialize,
)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Violation {
    #[error("corrupt value at {key}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("block {block} lies in no pool")]
    OutsidePools { block: IpNet },
    #[error("blocks {a} and {b} overlap")]
    Overlap { a: IpNet, b: IpNet },
    #[error("handle {handle} indexes {indexed} addresses in {block}, the block holds {actual}")]
    HandleIndex {
        handle: String,
        block: IpNet,
        indexed: u32,
        actual: u32,
    },
    #[error("{state:?} affinity of {node} for {block} has no block")]
    AffinityWithoutBlock {
        node: String,
        block: IpNet,
        state: AffinityState,
    },
    #[error("block {block} is affine to {node}, which has no confirmed affinity for it")]
    BlockWithoutAffinity { block: IpNet, node: String },
    #[error("affinity of {node} for {block}, but the block is affine to {owner:?}")]
    AffinityMismatch {
        node: String,
        block: IpNet,
        owner: Option<String>,
    },
}

/// Addresses per (handle, block) as the blocks hold them.
fn actual_counts(state: &IpamState) -> BTreeMap<String, BTreeMap<IpNet, u32>> {
    let mut actual: BTreeMap<String, BTreeMap<IpNet, u32>> = BTreeMap::new();
    for b in state.blocks.values() {
        for a in b.value.allocations() {
            if let Some(h) = a.handle {
                *actual
                    .entry(h.to_string())
                    .or_default()
                    .entry(b.value.cidr())
                    .or_default() += 1;
            }
        }
    }
    actual
}

fn handle_mismatches(state: &IpamState) -> Vec<HandleMismatch> {
    let actual = actual_counts(state);
    let ids: BTreeSet<&String> = actual.keys().chain(state.handles.keys()).collect();
    ids.into_iter()
        .filter_map(|id| {
            let indexed = state
                .handles
                .get(id)
                .map(|h| h.value.block.clone())
                .unwrap_or_default();
            let real = actual.get(id).cloned().unwrap_or_default();
            let revision = state.handles.get(id).map_or(0, |h| h.revision);
            (indexed != real || (real.is_empty() && revision != 0)).then(|| HandleMismatch {
                handle: id.clone(),
                indexed,
                actual: real,
                revision,
            })
        })
        .collect()
}

/// Every broken invariant. `Pending` affinities without a block are an
/// interrupted claim, not a violation: [`check`] reports them for repair.
pub fn invariants(state: &IpamState) -> Vec<Violation> {
    let mut v: Vec<Violation> = state
        .corrupt
        .iter()
        .map(|(key, reason)| Violation::Corrupt {
            key: key.clone(),
            reason: reason.clone(),
        })
        .collect();
    let cidrs: Vec<IpNet> = state.blocks.keys().copied().collect();
    for (i, a) in cidrs.iter().enumerate() {
        if !state
            .pools
            .iter()
            .any(|p| p.cidr.contains(a) && p.block_size == a.prefix_len())
        {
            v.push(Violation::OutsidePools { block: *a });
        }
        if let Some(b) = cidrs.get(i + 1).filter(|b| overlaps(a, b)) {
            v.push(Violation::Overlap { a: *a, b: *b });
        }
    }
    for m in handle_mismatches(state) {
        let blocks: BTreeSet<&IpNet> = m.indexed.keys().chain(m.actual.keys()).collect();
        for block in blocks {
            v.push(Violation::HandleIndex {
                handle: m.handle.clone(),
                block: *block,
                indexed: m.indexed.get(block).copied().unwrap_or(0),
                actual: m.actual.get(block).copied().unwrap_or(0),
            });
        }
    }
    for ((node, cidr), a) in &state.affinities {
        match state.blocks.get(cidr) {
            None if a.value.state != AffinityState::Pending => {
                v.push(Violation::AffinityWithoutBlock {
                    node: node.clone(),
                    block: *cidr,
                    state: a.value.state,
                })
            }
            Some(b) if !b.value.is_affine_to(node) && a.value.state != AffinityState::Pending => v
                .push(Violation::AffinityMismatch {
                    node: node.clone(),
                    block: *cidr,
                    owner: b.value.affine_node().map(str::to_string),
                }),
            _ => {}
        }
    }
    for b in state.blocks.values() {
        if let Some(node) = b.value.affine_node() {
            let ok = state
                .affinities
                .get(&(node.to_string(), b.value.cidr()))
                .is_some_and(|a| a.value.state != AffinityState::Pending);
            if !ok {
                v.push(Violation::BlockWithoutAffinity {
                    block: b.value.cidr(),
                    node: node.into(),
                });
            }
        }
    }
    v
}

/// The leak check: allocations without a live owner, and every
/// inconsistency between blocks, affinities and handles.
pub fn check(state: &IpamState, live: &LiveOwners) -> Report {
    let mut report = Report {
        revision: state.revision,
        ..Report::default()
    };
    for b in state.blocks.values() {
        for a in b.value.allocations() {
            report.allocations += 1;
            if !live.owns(a.handle, a.attrs) {
                report.leaked.push(LeakedAddress {
                    ip: a.ip,
                    block: b.value.cidr(),
                    handle: a.handle.map(str::to_string),
                    sequence_number: a.sequence_number,
                    node: a.attrs.get(ATTR_NODE).cloned(),
                });
            }
        }
        if let Some(node) = b.value.affine_node()
            && !state
                .affinities
                .contains_key(&(node.to_string(), b.value.cidr()))
        {
            report.blocks_without_affinities.push(UnclaimedBlock {
                block: b.value.cidr(),
                node: node.to_string(),
                revision: b.revision,
            });
        }
    }
    for ((node, cidr), a) in &state.affinities {
        if !state.blocks.contains_key(cidr) {
            report.affinities_without_blocks.push(DanglingAffinity {
                node: node.clone(),
                block: *cidr,
                state: a.value.state,
                revision: a.revision,
            });
        }
    }
    report.orphaned_handles = handle_mismatches(state);
    report.violations = invariants(state)
        .into_iter()
        .filter(|v| {
            matches!(
                v,
                Violation::Corrupt { .. }
                    | Violation::OutsidePools { .. }
                    | Violation::Overlap { .. }
            )
        })
        .collect();
    report.leaked.sort();
    report
}
