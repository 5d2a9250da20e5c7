//! What this node announces over BGP: its blocks (Calico's "export").
//!
//! Each confirmed block affine to this node, from an enabled pool whose BGP
//! export is not disabled, is originated into the RIB with ORIGIN IGP, an
//! empty AS_PATH, NEXT_HOP = the node address and LOCAL_PREF 100; the RIB
//! packs the UPDATEs and withdraws a block that goes away. Sans-IO.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use bgp::wire::{AsPath, Origin, PathAttributes};
use ipam::Pool;
use ipnet::IpNet;

use super::routes::pool_for;

/// The blocks to announce, from the node's confirmed blocks.
pub fn exported(blocks: &[IpNet], pools: &[Pool]) -> BTreeSet<IpNet> {
    blocks
        .iter()
        .filter(|b| pool_for(pools, b).is_some_and(|p| !p.disable_bgp_export))
        .copied()
        .collect()
}

/// The path attributes of our announcements.
pub fn attributes(next_hop: Ipv4Addr) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::default()),
        next_hop: Some(next_hop),
        local_pref: Some(100),
        ..PathAttributes::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_are_calico_like_ibgp_routes() {
        let a = attributes(Ipv4Addr::new(10, 200, 0, 1));
        assert_eq!(a.origin, Some(Origin::Igp));
        assert_eq!(a.as_path, Some(AsPath::default()));
        assert_eq!(a.local_pref, Some(100));
        assert_eq!(a.next_hop, Some(Ipv4Addr::new(10, 200, 0, 1)));
    }
}
