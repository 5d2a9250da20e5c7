//! Handles: the index from an allocation's owner (`k8s-pod-network.<id>`,
//! `ipip-tunnel-addr-<node>`, ...) to how many addresses it holds in which
//! block, so release by handle reads one key instead of every block.
//!
//! The index is written in the same etcd transaction as the block it
//! describes, so it never disagrees with the blocks (Calico writes them in
//! two steps and repairs the gap in its GC).

use std::collections::BTreeMap;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpamHandle {
    /// Block CIDR → number of this handle's addresses in it.
    #[serde(default)]
    pub block: BTreeMap<IpNet, u32>,
    #[serde(default)]
    pub deleted: bool,
}

impl IpamHandle {
    pub fn add(&mut self, block: IpNet, n: u32) {
        *self.block.entry(block).or_insert(0) += n;
    }

    /// Forget `n` addresses in `block`; drops the entry at zero.
    pub fn remove(&mut self, block: IpNet, n: u32) {
        if let Some(count) = self.block.get_mut(&block) {
            *count = count.saturating_sub(n);
            if *count == 0 {
                self.block.remove(&block);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.block.is_empty()
    }

    pub fn total(&self) -> u64 {
        self.block.values().map(|&n| u64::from(n)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_block_in_calico_shape() {
        let b: IpNet = "10.0.1.64/26".parse().unwrap();
        let mut h = IpamHandle::default();
        h.add(b, 2);
        assert_eq!(
            serde_json::to_string(&h).unwrap(),
            r#"{"block":{"10.0.1.64/26":2},"deleted":false}"#
        );
        h.remove(b, 1);
        assert_eq!(h.total(), 1);
        h.remove(b, 5);
        assert!(h.is_empty());
    }
}
