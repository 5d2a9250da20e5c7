//! Block affinities: which node a block is claimed for, and how far the
//! claim has got (`pending` → `confirmed` → `pendingDeletion`).
//!
//! The affinity's node and block are in its key
//! ([`keys::affinity`](crate::keys::affinity)); the value carries only the
//! state. Only `confirmed` affinities count for routing and allocation.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AffinityState {
    /// First phase of a claim: the block may not exist yet.
    Pending,
    /// The block exists and is affine to the node.
    Confirmed,
    /// The node is giving the (empty) block back.
    PendingDeletion,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BlockAffinity {
    pub state: AffinityState,
    /// Calico's soft-delete flag; readers treat `true` as absent.
    #[serde(default)]
    pub deleted: bool,
}

impl BlockAffinity {
    pub fn new(state: AffinityState) -> BlockAffinity {
        BlockAffinity {
            state,
            deleted: false,
        }
    }

    /// The value written to the block's `affinity` field for `node`.
    pub fn host(node: &str) -> String {
        format!("host:{node}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_use_calico_spelling() {
        let json =
            serde_json::to_string(&BlockAffinity::new(AffinityState::PendingDeletion)).unwrap();
        assert_eq!(json, r#"{"state":"pendingDeletion","deleted":false}"#);
        let a: BlockAffinity = serde_json::from_str(r#"{"state":"confirmed"}"#).unwrap();
        assert_eq!(a, BlockAffinity::new(AffinityState::Confirmed));
        assert!(serde_json::from_str::<BlockAffinity>(r#"{"state":"claimed"}"#).is_err());
    }
}
