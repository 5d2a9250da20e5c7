//! What this node announces over BGP: its blocks (Calico's "export").
//!
//! Each confirmed block affine to this node, from an enabled pool whose BGP
//! export is not disabled, is announced with ORIGIN IGP, an empty AS_PATH,
//! NEXT_HOP = the node address and LOCAL_PREF 100 (iBGP), packed many per
//! UPDATE; a block that goes away is withdrawn. Sans-IO.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use bgp::wire::{AsPath, Ipv4Prefix, Nlri, Origin, PathAttributes, Update};
use ipam::Pool;
use ipnet::IpNet;

use super::routes::pool_for;

/// Prefixes per UPDATE: an IPv4 NLRI is at most 5 octets (9 with ADD-PATH),
/// and 400 of them with the attributes stay well under 4096 octets.
const PER_UPDATE: usize = 400;

/// The blocks to announce, from the node's confirmed blocks.
pub fn exported(blocks: &[IpNet], pools: &[Pool]) -> BTreeSet<IpNet> {
    blocks
        .iter()
        .filter(|b| pool_for(pools, b).is_some_and(|p| !p.disable_bgp_export))
        .copied()
        .collect()
}

fn nlri(prefixes: &[IpNet]) -> Vec<Nlri<Ipv4Prefix>> {
    prefixes
        .iter()
        .filter_map(|p| match p {
            IpNet::V4(n) => Ipv4Prefix::new(n.network(), n.prefix_len()),
            IpNet::V6(_) => None,
        })
        .map(|prefix| Nlri {
            path_id: None,
            prefix,
        })
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

/// UPDATEs that move a peer from having received `before` to `after`.
pub fn updates(
    before: &BTreeSet<IpNet>,
    after: &BTreeSet<IpNet>,
    next_hop: Ipv4Addr,
) -> Vec<Update> {
    let gone: Vec<IpNet> = before.difference(after).copied().collect();
    let new: Vec<IpNet> = after.difference(before).copied().collect();
    let mut out = Vec::new();
    for chunk in nlri(&gone).chunks(PER_UPDATE) {
        out.push(Update {
            withdrawn: chunk.to_vec(),
            ..Update::default()
        });
    }
    let attrs = attributes(next_hop);
    for chunk in nlri(&new).chunks(PER_UPDATE) {
        out.push(Update {
            attributes: attrs.clone(),
            nlri: chunk.to_vec(),
            ..Update::default()
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[&str]) -> BTreeSet<IpNet> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn only_the_difference_is_sent_and_announcements_are_packed() {
        let nh = Ipv4Addr::new(10, 200, 0, 1);
        let ups = updates(
            &set(&["10.0.0.0/26", "10.0.0.64/26"]),
            &set(&["10.0.0.64/26", "10.0.1.0/26"]),
            nh,
        );
        assert_eq!(ups.len(), 2);
        assert_eq!(ups[0].withdrawn.len(), 1);
        assert_eq!(ups[1].nlri.len(), 1);
        assert_eq!(ups[1].attributes.next_hop, Some(nh));
        let many: BTreeSet<IpNet> = (0..1000u32)
            .map(|i| IpNet::new(Ipv4Addr::from(0x0a00_0000 + (i << 6)).into(), 26).unwrap())
            .collect();
        let ups = updates(&BTreeSet::new(), &many, nh);
        assert_eq!(ups.len(), 3, "1000 blocks in 3 UPDATEs, not 1000");
        let mut bytes = Vec::new();
        for u in &ups {
            bytes.clear();
            bgp::wire::encode(
                &bgp::wire::Message::Update(u.clone()),
                &bgp::wire::Context::default(),
                &mut bytes,
            )
            .unwrap();
            assert!(bytes.len() <= 4096);
        }
    }
}
