//! Allocation blocks and the pure logic over them (no I/O).
//!
//! A block is a power-of-two range of a pool (a /26 by default) stored as
//! one etcd value. Each ordinal (address offset) is either free — then it is
//! in the FIFO `unallocated` list — or points into `attributes`, which says
//! which handle owns it. Allocation pops from the front of the FIFO and
//! release pushes to the back, so the address that has been free longest is
//! handed out first.
//!
//! Every mutation bumps `sequenceNumber`, and each allocation records the
//! sequence number it was made at. A release that names the sequence number
//! it observed is refused if the address was released and reused since
//! (ABA protection for the leak repairer).
//!
//! Decoding checks every structural rule, so a corrupt stored value becomes a
//! [`BlockError`], never a panic or an out-of-range index later.
//!
//! Encoding is compact (a block is rewritten by every allocation, so its
//! size is most of the cost of that etcd transaction), with Calico v3 field
//! names kept: no whitespace, `affinityClaimTime`, `deleted`, empty
//! `sequenceNumberForAllocation` and empty `secondary` are omitted, and an
//! allocation's `node` attribute is omitted when it is the block's affine
//! node (decoding puts it back; an attribute that really has no `node` in an
//! affine block is written as `"node":""`). Decoding also accepts the
//! verbose form. The round trip is exact.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::pool::{offset_ip, to_u128};

/// Owner attributes of an allocation (`pod`, `namespace`, `node`, `type`).
pub type Attrs = BTreeMap<String, String>;

/// Attribute keys, as Calico names them.
pub const ATTR_NODE: &str = "node";
pub const ATTR_TYPE: &str = "type";
/// Blocks larger than 2^12 addresses are refused (Calico's limits are /20
/// and /116).
const MAX_HOST_BITS: u8 = 12;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AllocationAttribute {
    pub handle_id: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secondary: Attrs,
}

/// An attribute as written inside a block affine to `node`: the `node`
/// attribute is implied when it equals the affine node.
struct WireAttribute<'a> {
    attr: &'a AllocationAttribute,
    node: Option<&'a str>,
}

/// What `node` becomes on the wire in a block affine to some node.
enum NodeOnWire {
    /// As stored (no affine node, or a different node).
    Kept,
    /// The affine node itself: implied.
    Omitted,
    /// No `node` attribute at all: written `"node":""`.
    Empty,
}

/// An attribute's `secondary` map as written (see [`WireAttribute`]),
/// serialised straight from the stored map, in key order.
struct WireSecondary<'a> {
    attrs: &'a Attrs,
    node: NodeOnWire,
}

impl WireSecondary<'_> {
    fn is_empty(&self) -> bool {
        match self.node {
            NodeOnWire::Kept => self.attrs.is_empty(),
            NodeOnWire::Omitted => self.attrs.len() == 1,
            NodeOnWire::Empty => false,
        }
    }
}

impl Serialize for WireSecondary<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        let mut empty_node = matches!(self.node, NodeOnWire::Empty);
        for (k, v) in self.attrs {
            // "node" sorts among the others: the implied empty one goes
            // where the key order puts it, as a sorted map would
            if empty_node && k.as_str() > ATTR_NODE {
                map.serialize_entry(ATTR_NODE, "")?;
                empty_node = false;
            }
            if k == ATTR_NODE && matches!(self.node, NodeOnWire::Omitted) {
                continue;
            }
            map.serialize_entry(k, v)?;
        }
        if empty_node {
            map.serialize_entry(ATTR_NODE, "")?;
        }
        map.end()
    }
}

impl Serialize for WireAttribute<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let a = self.attr;
        let node = match (self.node, a.secondary.get(ATTR_NODE)) {
            (Some(node), Some(v)) if v == node => NodeOnWire::Omitted,
            (Some(_), None) => NodeOnWire::Empty,
            _ => NodeOnWire::Kept,
        };
        let secondary = WireSecondary {
            attrs: &a.secondary,
            node,
        };
        let mut st = s.serialize_struct("AllocationAttribute", 2)?;
        st.serialize_field("handleId", &a.handle_id)?;
        if !secondary.is_empty() {
            st.serialize_field("secondary", &secondary)?;
        }
        st.end()
    }
}

struct WireAttributes<'a>(&'a [AllocationAttribute], Option<&'a str>);

impl Serialize for WireAttributes<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            self.0
                .iter()
                .map(|attr| WireAttribute { attr, node: self.1 }),
        )
    }
}

/// The stored form of a block (see the module docs).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireBlock<'a> {
    cidr: &'a IpNet,
    affinity: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    affinity_claim_time: &'a Option<u64>,
    allocations: &'a [Option<usize>],
    unallocated: &'a VecDeque<usize>,
    attributes: WireAttributes<'a>,
    sequence_number: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    sequence_number_for_allocation: &'a BTreeMap<usize, u64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    deleted: bool,
}

/// One allocation block, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AllocationBlock {
    cidr: IpNet,
    /// `host:<node>`, or none for a block nobody is affine to.
    affinity: Option<String>,
    /// Unix seconds of the claim.
    #[serde(default)]
    affinity_claim_time: Option<u64>,
    allocations: Vec<Option<usize>>,
    unallocated: VecDeque<usize>,
    attributes: Vec<AllocationAttribute>,
    sequence_number: u64,
    #[serde(default)]
    sequence_number_for_allocation: BTreeMap<usize, u64>,
    #[serde(default)]
    deleted: bool,
}

/// One allocated address of a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation<'a> {
    pub ip: IpAddr,
    pub ordinal: usize,
    pub handle: Option<&'a str>,
    pub attrs: &'a Attrs,
    pub sequence_number: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    #[error("block is not valid JSON: {0}")]
    Json(String),
    #[error("block {cidr}: {problem}")]
    Corrupt { cidr: IpNet, problem: String },
    #[error("{ip} is not in block {cidr}")]
    NotInBlock { ip: IpAddr, cidr: IpNet },
    #[error("{ip} is already allocated")]
    AlreadyAllocated { ip: IpAddr },
    #[error("{ip} is not allocated")]
    NotAllocated { ip: IpAddr },
    #[error("{ip} was reallocated since it was observed (sequence {expected}, now {current})")]
    StaleSequence {
        ip: IpAddr,
        expected: u64,
        current: u64,
    },
}

impl AllocationBlock {
    /// A new, empty block; every ordinal is free, in address order.
    pub fn new(cidr: IpNet, affinity: Option<String>, now: u64) -> AllocationBlock {
        let size = 1usize << (cidr.max_prefix_len() - cidr.prefix_len()).min(MAX_HOST_BITS);
        AllocationBlock {
            cidr: cidr.trunc(),
            affinity_claim_time: affinity.as_ref().map(|_| now),
            affinity,
            allocations: vec![None; size],
            unallocated: (0..size).collect(),
            attributes: Vec::new(),
            sequence_number: 0,
            sequence_number_for_allocation: BTreeMap::new(),
            deleted: false,
        }
    }

    /// Decode and check a stored block.
    pub fn from_json(bytes: &[u8]) -> Result<AllocationBlock, BlockError> {
        let mut b: AllocationBlock =
            serde_json::from_slice(bytes).map_err(|e| BlockError::Json(e.to_string()))?;
        if let Some(node) = b.affine_node().map(str::to_string) {
            for a in &mut b.attributes {
                match a.secondary.get(ATTR_NODE).map(String::as_str) {
                    None => {
                        a.secondary.insert(ATTR_NODE.into(), node.clone());
                    }
                    Some("") => {
                        a.secondary.remove(ATTR_NODE);
                    }
                    Some(_) => {}
                }
            }
        }
        b.check()?;
        Ok(b)
    }

    pub fn to_json(&self) -> Vec<u8> {
        let wire = WireBlock {
            cidr: &self.cidr,
            affinity: &self.affinity,
            affinity_claim_time: &self.affinity_claim_time,
            allocations: &self.allocations,
            unallocated: &self.unallocated,
            attributes: WireAttributes(&self.attributes, self.affine_node()),
            sequence_number: self.sequence_number,
            sequence_number_for_allocation: &self.sequence_number_for_allocation,
            deleted: self.deleted,
        };
        // Room for a full block of short handles, so encoding rarely grows
        // the buffer: a block is re-encoded by every allocation.
        let mut out = Vec::with_capacity(256 + 64 * self.allocations.len());
        // Plain data with string map keys: serialisation cannot fail.
        match serde_json::to_writer(&mut out, &wire) {
            Ok(()) => out,
            Err(_) => Vec::new(),
        }
    }

    fn check(&self) -> Result<(), BlockError> {
        let corrupt = |problem: String| BlockError::Corrupt {
            cidr: self.cidr,
            problem,
        };
        let host_bits = self.cidr.max_prefix_len() - self.cidr.prefix_len();
        if host_bits > MAX_HOST_BITS || self.cidr.trunc() != self.cidr {
            return Err(corrupt(
                "CIDR is not a masked block of a supported size".into(),
            ));
        }
        let size = 1usize << host_bits;
        if self.allocations.len() != size {
            return Err(corrupt(format!(
                "{} allocation slots for {size} addresses",
                self.allocations.len()
            )));
        }
        let mut seen = vec![false; size];
        for &ord in &self.unallocated {
            match seen.get_mut(ord) {
                Some(s) if !*s => *s = true,
                Some(_) => return Err(corrupt(format!("ordinal {ord} listed free twice"))),
                None => return Err(corrupt(format!("free ordinal {ord} out of range"))),
            }
        }
        for (ord, slot) in self.allocations.iter().enumerate() {
            match slot {
                Some(i) if *i >= self.attributes.len() => {
                    return Err(corrupt(format!(
                        "ordinal {ord} points at missing attribute {i}"
                    )));
                }
                Some(_) if seen[ord] => {
                    return Err(corrupt(format!("ordinal {ord} is both free and allocated")));
                }
                None if !seen[ord] => {
                    return Err(corrupt(format!(
                        "ordinal {ord} is neither free nor allocated"
                    )));
                }
                _ => {}
            }
        }
        Ok(())
    }

    pub fn cidr(&self) -> IpNet {
        self.cidr
    }
    pub fn affinity(&self) -> Option<&str> {
        self.affinity.as_deref()
    }
    /// The node of a `host:<node>` affinity.
    pub fn affine_node(&self) -> Option<&str> {
        self.affinity
            .as_deref()
            .and_then(|a| a.strip_prefix("host:"))
    }
    pub fn is_affine_to(&self, node: &str) -> bool {
        self.affine_node() == Some(node)
    }
    pub fn sequence_number(&self) -> u64 {
        self.sequence_number
    }
    pub fn deleted(&self) -> bool {
        self.deleted
    }
    pub fn size(&self) -> usize {
        self.allocations.len()
    }
    pub fn free(&self) -> usize {
        self.unallocated.len()
    }
    pub fn in_use(&self) -> usize {
        self.size() - self.free()
    }
    pub fn is_empty(&self) -> bool {
        self.free() == self.size()
    }
    /// Free ordinals, the next one to be handed out first.
    pub fn free_list(&self) -> impl Iterator<Item = usize> + '_ {
        self.unallocated.iter().copied()
    }

    pub fn ip(&self, ordinal: usize) -> IpAddr {
        offset_ip(self.cidr.network(), ordinal as u128)
    }

    pub fn ordinal(&self, ip: IpAddr) -> Option<usize> {
        if !self.cidr.contains(&ip) {
            return None;
        }
        usize::try_from(to_u128(ip) - to_u128(self.cidr.network())).ok()
    }

    pub fn set_affinity(&mut self, affinity: Option<String>, now: u64) {
        self.affinity_claim_time = affinity.as_ref().map(|_| now);
        self.affinity = affinity;
        self.sequence_number += 1;
    }

    /// Every allocated address, in ordinal order.
    pub fn allocations(&self) -> impl Iterator<Item = Allocation<'_>> + '_ {
        self.allocations
            .iter()
            .enumerate()
            .filter_map(|(ordinal, slot)| {
                let attr = &self.attributes[(*slot)?];
                Some(Allocation {
                    ip: self.ip(ordinal),
                    ordinal,
                    handle: attr.handle_id.as_deref(),
                    attrs: &attr.secondary,
                    sequence_number: self
                        .sequence_number_for_allocation
                        .get(&ordinal)
                        .copied()
                        .unwrap_or(0),
                })
            })
    }

    /// How many addresses `handle` holds here.
    pub fn count_for(&self, handle: &str) -> u32 {
        let n = self
            .allocations()
            .filter(|a| a.handle == Some(handle))
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    fn attribute_index(&mut self, handle: &str, attrs: &Attrs) -> usize {
        if let Some(i) = self
            .attributes
            .iter()
            .position(|a| a.handle_id.as_deref() == Some(handle) && a.secondary == *attrs)
        {
            return i;
        }
        self.attributes.push(AllocationAttribute {
            handle_id: Some(handle.into()),
            secondary: attrs.clone(),
        });
        self.attributes.len() - 1
    }

    /// Allocate up to `n` addresses for `handle`, longest-free first.
    pub fn assign(&mut self, n: usize, handle: &str, attrs: &Attrs) -> Vec<IpAddr> {
        let n = n.min(self.free());
        if n == 0 {
            return Vec::new();
        }
        self.sequence_number += 1;
        let attr = self.attribute_index(handle, attrs);
        let mut ips = Vec::with_capacity(n);
        for ord in self.unallocated.drain(..n).collect::<Vec<_>>() {
            self.allocations[ord] = Some(attr);
            self.sequence_number_for_allocation
                .insert(ord, self.sequence_number);
            ips.push(self.ip(ord));
        }
        ips
    }

    /// Allocate exactly `ip` for `handle`.
    pub fn assign_ip(&mut self, ip: IpAddr, handle: &str, attrs: &Attrs) -> Result<(), BlockError> {
        let ord = self.ordinal(ip).ok_or(BlockError::NotInBlock {
            ip,
            cidr: self.cidr,
        })?;
        let pos = self
            .unallocated
            .iter()
            .position(|&o| o == ord)
            .ok_or(BlockError::AlreadyAllocated { ip })?;
        self.unallocated.remove(pos);
        self.sequence_number += 1;
        let attr = self.attribute_index(handle, attrs);
        self.allocations[ord] = Some(attr);
        self.sequence_number_for_allocation
            .insert(ord, self.sequence_number);
        Ok(())
    }

    /// Free `ip`, if it is still the allocation observed at `expected`
    /// (when given). Returns the handle that held it.
    pub fn release(
        &mut self,
        ip: IpAddr,
        expected: Option<u64>,
    ) -> Result<Option<String>, BlockError> {
        let ord = self.ordinal(ip).ok_or(BlockError::NotInBlock {
            ip,
            cidr: self.cidr,
        })?;
        let attr = self.allocations[ord].ok_or(BlockError::NotAllocated { ip })?;
        let current = self
            .sequence_number_for_allocation
            .get(&ord)
            .copied()
            .unwrap_or(0);
        if let Some(expected) = expected.filter(|&e| e != current) {
            return Err(BlockError::StaleSequence {
                ip,
                expected,
                current,
            });
        }
        let handle = self.attributes[attr].handle_id.clone();
        self.free_ordinals(&[ord]);
        Ok(handle)
    }

    /// Free every address of `handle`; returns them.
    pub fn release_handle(&mut self, handle: &str) -> Vec<IpAddr> {
        let ords: Vec<usize> = self
            .allocations()
            .filter(|a| a.handle == Some(handle))
            .map(|a| a.ordinal)
            .collect();
        self.free_ordinals(&ords);
        ords.into_iter().map(|o| self.ip(o)).collect()
    }

    fn free_ordinals(&mut self, ords: &[usize]) {
        if ords.is_empty() {
            return;
        }
        self.sequence_number += 1;
        for &ord in ords {
            self.allocations[ord] = None;
            self.sequence_number_for_allocation.remove(&ord);
            self.unallocated.push_back(ord);
        }
        self.compact_attributes();
    }

    /// Drop attributes no allocation points at, renumbering the rest.
    fn compact_attributes(&mut self) {
        let mut used = vec![false; self.attributes.len()];
        for i in self.allocations.iter().flatten() {
            used[*i] = true;
        }
        let mut remap = vec![0; self.attributes.len()];
        let mut next = 0;
        for (i, u) in used.iter().enumerate() {
            if *u {
                remap[i] = next;
                next += 1;
            }
        }
        let mut i = 0;
        self.attributes.retain(|_| {
            i += 1;
            used[i - 1]
        });
        for slot in self.allocations.iter_mut().flatten() {
            *slot = remap[*slot];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block() -> AllocationBlock {
        AllocationBlock::new("10.0.1.64/29".parse().unwrap(), Some("host:n1".into()), 7)
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn fifo_reuse_hands_out_the_longest_free_address_first() {
        let mut b = block();
        let a = b.assign(3, "h1", &Attrs::new());
        assert_eq!(a, [ip("10.0.1.64"), ip("10.0.1.65"), ip("10.0.1.66")]);
        b.release(ip("10.0.1.65"), None).unwrap();
        b.release(ip("10.0.1.64"), None).unwrap();
        // .67..=.71 have been free longest, then .65, then .64
        let next = b.assign(7, "h2", &Attrs::new());
        assert_eq!(next.first(), Some(&ip("10.0.1.67")));
        assert_eq!(&next[5..], [ip("10.0.1.65"), ip("10.0.1.64")]);
        assert_eq!(b.free(), 0);
        assert!(b.assign(1, "h3", &Attrs::new()).is_empty());
    }

    #[test]
    fn stale_release_cannot_free_a_reused_address() {
        let mut b = block();
        b.assign(1, "old", &Attrs::new());
        let observed = b.allocations().next().unwrap().sequence_number;
        b.release(ip("10.0.1.64"), Some(observed)).unwrap();
        // the block is full-cycle: make .64 come round again
        b.assign(8, "new", &Attrs::new());
        let err = b.release(ip("10.0.1.64"), Some(observed)).unwrap_err();
        assert!(matches!(err, BlockError::StaleSequence { .. }), "{err}");
        assert_eq!(b.count_for("new"), 8);
    }

    #[test]
    fn release_by_handle_and_attribute_compaction() {
        let mut b = block();
        b.assign(2, "a", &Attrs::new());
        b.assign(2, "b", &Attrs::new());
        b.assign_ip(ip("10.0.1.71"), "a", &Attrs::new()).unwrap();
        assert_eq!(
            b.release_handle("a"),
            [ip("10.0.1.64"), ip("10.0.1.65"), ip("10.0.1.71")]
        );
        assert_eq!(b.count_for("b"), 2);
        assert_eq!(b.attributes.len(), 1);
        let back = AllocationBlock::from_json(&b.to_json()).unwrap();
        assert_eq!(back, b);
        assert_eq!(
            b.assign_ip(ip("10.0.1.66"), "c", &Attrs::new()),
            Err(BlockError::AlreadyAllocated {
                ip: ip("10.0.1.66")
            })
        );
        assert!(matches!(
            b.release(ip("10.0.1.64"), None),
            Err(BlockError::NotAllocated { .. })
        ));
        assert!(matches!(
            b.release(ip("10.9.9.9"), None),
            Err(BlockError::NotInBlock { .. })
        ));
    }

    #[test]
    fn compact_encoding_round_trips_exactly_and_reads_the_verbose_form() {
        let mut b = block();
        let on = |n: &str| Attrs::from([(ATTR_NODE.to_string(), n.to_string())]);
        let mut pod = on("n1");
        pod.insert("pod".into(), "p".into());
        b.assign(1, "mine", &on("n1"));
        b.assign(1, "borrowed", &on("n2"));
        b.assign(1, "nodeless", &Attrs::new());
        b.assign(1, "pod", &pod);
        // an implied empty node sorts among the other keys
        let around = Attrs::from([
            ("namespace".to_string(), "ns".to_string()),
            ("pod".to_string(), "q".to_string()),
        ]);
        b.assign(1, "around", &around);
        let json = String::from_utf8(b.to_json()).unwrap();
        assert!(
            json.contains(r#""secondary":{"namespace":"ns","node":"","pod":"q"}"#),
            "{json}"
        );
        assert!(json.contains(r#"{"handleId":"mine"}"#), "{json}");
        assert!(json.contains(r#""secondary":{"node":"n2"}"#), "{json}");
        assert!(json.contains(r#""secondary":{"node":""}"#), "{json}");
        assert!(json.contains(r#""secondary":{"pod":"p"}"#), "{json}");
        assert!(!json.contains("deleted") && !json.contains(' '), "{json}");
        assert_eq!(AllocationBlock::from_json(json.as_bytes()).unwrap(), b);
        // the verbose (serde default) form decodes to the same block
        let verbose = serde_json::json!({
            "cidr": "10.0.1.64/29", "affinity": "host:n1", "affinityClaimTime": 7,
            "allocations": [0, null, null, null, null, null, null, null],
            "unallocated": [1, 2, 3, 4, 5, 6, 7],
            "attributes": [{"handleId": "mine", "secondary": {"node": "n1"}}],
            "sequenceNumber": 1, "sequenceNumberForAllocation": {"0": 1}, "deleted": false,
        });
        let mut one = block();
        one.assign(1, "mine", &on("n1"));
        let decoded = AllocationBlock::from_json(verbose.to_string().as_bytes()).unwrap();
        assert_eq!(decoded, one);
        // without an affinity nothing is implied
        let mut free = AllocationBlock::new("10.0.1.64/29".parse().unwrap(), None, 7);
        free.assign(1, "x", &on("n1"));
        assert_eq!(AllocationBlock::from_json(&free.to_json()).unwrap(), free);
    }

    #[test]
    fn corrupt_blocks_are_errors_not_panics() {
        let good = String::from_utf8(block().to_json()).unwrap();
        let bad = [
            good.replace("\"allocations\":[null,", "\"allocations\":["),
            good.replace("\"unallocated\":[0,", "\"unallocated\":[1,"),
            good.replace("\"unallocated\":[0,", "\"unallocated\":[99,"),
            good.replace("\"allocations\":[null", "\"allocations\":[5")
                .replace("\"unallocated\":[0,", "\"unallocated\":["),
            good.replace("10.0.1.64/29", "10.0.1.65/29"),
            good.replace("10.0.1.64/29", "10.0.0.0/8"),
            "{".to_string(),
        ];
        for json in bad {
            assert!(
                AllocationBlock::from_json(json.as_bytes()).is_err(),
                "{json}"
            );
        }
    }
}
