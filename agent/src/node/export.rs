//! What this node announces over BGP: its blocks and borrowed addresses
//! (Calico's "export").
//!
//! Each confirmed block affine to this node, from an enabled pool whose BGP
//! export is not disabled, is announced; so is, as a /32 (/128), each local
//! pod address outside those blocks — borrowed from another node's block
//! when `strictAffinity` is off — so that the longest match sends its
//! traffic here rather than to the block's owner. Each is originated into
//! the RIB with ORIGIN IGP, an
//! empty AS_PATH, NEXT_HOP = the node address and LOCAL_PREF 100; the RIB
//! packs the UPDATEs and withdraws a block that goes away. Sans-IO.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use bgp::wire::{AsPath, Origin, PathAttributes};
use ipam::Pool;
use ipnet::IpNet;

use super::routes::pool_for;

/// The prefixes to announce: the node's confirmed blocks, and its pods'
/// host prefixes that lie in a pool but in none of those blocks.
pub fn exported(blocks: &[IpNet], pods: &[IpNet], pools: &[Pool]) -> BTreeSet<IpNet> {
    let exportable = |p: &IpNet| pool_for(pools, p).is_some_and(|p| !p.disable_bgp_export);
    let borrowed = pods
        .iter()
        .map(|p| IpNet::from(p.addr()))
        .filter(|p| !blocks.iter().any(|b| b.contains(p)));
    blocks
        .iter()
        .copied()
        .chain(borrowed)
        .filter(exportable)
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
    fn borrowed_pod_addresses_are_announced_as_host_routes() {
        let pool = ipam::IpPool::new("p", "10.0.0.0/16").validate(&[]).unwrap();
        let mut quiet = ipam::IpPool::new("q", "10.9.0.0/16");
        quiet.spec.disable_bgp_export = true;
        let quiet = quiet.validate(&[]).unwrap();
        let net = |s: &str| s.parse::<IpNet>().unwrap();
        let out = exported(
            &[net("10.0.1.0/26")],
            &[
                net("10.0.1.5/32"),
                net("10.0.7.9/32"),
                net("10.9.0.1/32"),
                net("192.168.0.1/32"),
            ],
            &[pool, quiet],
        );
        let want: BTreeSet<IpNet> = [net("10.0.1.0/26"), net("10.0.7.9/32")].into();
        assert_eq!(out, want);
    }

    #[test]
    fn announcements_are_calico_like_ibgp_routes() {
        let a = attributes(Ipv4Addr::new(10, 200, 0, 1));
        assert_eq!(a.origin, Some(Origin::Igp));
        assert_eq!(a.as_path, Some(AsPath::default()));
        assert_eq!(a.local_pref, Some(100));
        assert_eq!(a.next_hop, Some(Ipv4Addr::new(10, 200, 0, 1)));
    }
}
