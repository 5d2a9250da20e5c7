//! UPDATE generation from the Adj-RIB-Out: routes that share an interned
//! attribute set and next hop are packed together, withdrawals batched,
//! End-of-RIB once per negotiated family after the initial table, and
//! every prefix arrives exactly once with its own attributes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bgp::rib::*;
use bgp::wire::*;

const AS: u32 = 64512;

fn node() -> IpAddr {
    "192.0.2.2".parse().unwrap()
}

fn rib(families: &[Family]) -> Rib {
    let mut rib = Rib::new(LocalConfig {
        asn: AS,
        router_id: Ipv4Addr::new(10, 0, 0, 1),
        cluster_id: None,
        decision: DecisionConfig::default(),
    });
    rib.set_peer(PeerConfig::new(node(), AS));
    rib.peer_up(
        node(),
        Ipv4Addr::new(10, 0, 0, 2),
        Families::of(families),
        Families::NONE,
    )
    .unwrap();
    rib
}

/// Calico's attributes for its blocks: ORIGIN IGP, empty AS_PATH (LOCAL_PREF
/// 100 is added towards iBGP); the second set adds a community.
fn set(n: u8) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::default()),
        communities: if n == 0 {
            vec![]
        } else {
            vec![Community::new(64512, u16::from(n))]
        },
        ..PathAttributes::default()
    }
}

fn block(i: u32) -> IpPrefix {
    IpPrefix::V4(Ipv4Prefix::new(Ipv4Addr::from_bits(0x0a00_0000 | i << 6), 26).unwrap())
}

const NH: NextHop = NextHop::V4(Ipv4Addr::new(192, 0, 2, 1));

#[test]
fn ten_thousand_prefixes_with_two_sets_pack_into_14_updates() {
    let mut rib = rib(&[Family::Ipv4Unicast]);
    for i in 0..10_000 {
        rib.originate(block(i), set(u8::from(i % 2 == 1)), NH);
    }
    let ctx = Context::default();
    let out = rib.flush(&node(), &ctx).unwrap();
    // 4096 - 23 header octets - 21 (ORIGIN 4, AS_PATH 3, NEXT_HOP 7,
    // LOCAL_PREF 7) leave 4052: 810 /26 prefixes of 5 octets each.
    // 5000 per set: ceil(5000 / 810) = 7 (6 with the community's 7
    // octets: 809 per UPDATE), 2 × 7 = 14, plus End-of-RIB.
    assert_eq!(out.announced, 10_000);
    assert_eq!(out.messages, 7 + 7 + 1);
    let updates = out.updates(&ctx).unwrap();
    assert_eq!(
        updates.last().unwrap().end_of_rib_family(),
        Some(Family::Ipv4Unicast)
    );
    let mut seen: HashMap<Ipv4Prefix, Option<u32>> = HashMap::new();
    for u in &updates[..updates.len() - 1] {
        assert!(u.withdrawn.is_empty());
        assert_eq!(u.attributes.local_pref, Some(100));
        assert_eq!(u.attributes.next_hop, Some(Ipv4Addr::new(192, 0, 2, 1)));
        for n in &u.nlri {
            let c = u.attributes.communities.first().map(|c| c.0);
            assert!(seen.insert(n.prefix, c).is_none(), "{} twice", n.prefix);
        }
    }
    assert_eq!(seen.len(), 10_000);
    for i in 0..10_000 {
        let IpPrefix::V4(p) = block(i) else {
            unreachable!()
        };
        let want = (i % 2 == 1).then_some(Community::new(64512, 1).0);
        assert_eq!(seen[&p], want, "{p} carries its own set");
    }
    // Every UPDATE full but the last of each set.
    let full = updates.iter().filter(|u| u.nlri.len() >= 809).count();
    assert_eq!(full, 12);
}

#[test]
fn the_brief_figure_ten_thousand_over_810_per_set() {
    // With 10k prefixes per set the count is 2 × ceil(10k / 810) = 26.
    let mut rib = rib(&[Family::Ipv4Unicast]);
    for i in 0..20_000 {
        rib.originate(block(i), set(u8::from(i >= 10_000)), NH);
    }
    let out = rib.flush(&node(), &Context::default()).unwrap();
    assert_eq!(out.messages - 1, 2 * 10_000usize.div_ceil(810));
}

#[test]
fn withdrawals_are_batched() {
    let mut rib = rib(&[Family::Ipv4Unicast]);
    for i in 0..10_000 {
        rib.originate(block(i), set(u8::from(i % 2 == 1)), NH);
    }
    let ctx = Context::default();
    rib.flush(&node(), &ctx).unwrap();
    for i in 0..10_000 {
        rib.withdraw(block(i));
    }
    let out = rib.flush(&node(), &ctx).unwrap();
    assert_eq!(out.withdrawn, 10_000);
    // 4096 - 23 = 4073 octets of Withdrawn Routes: 814 per UPDATE.
    assert_eq!(out.messages, 10_000usize.div_ceil(814));
    let n: usize = out
        .updates(&ctx)
        .unwrap()
        .iter()
        .map(|u| u.withdrawn.len())
        .sum();
    assert_eq!(n, 10_000);
    assert!(rib.adj_rib_out(&node()).unwrap().is_empty());
}

#[test]
fn end_of_rib_per_negotiated_family_once_after_the_initial_table() {
    let mut rib = rib(&Family::ALL);
    rib.originate(block(1), set(0), NH);
    let v6 =
        IpPrefix::V6(Ipv6Prefix::new(Ipv6Addr::new(0xfd00, 0, 0, 1, 0, 0, 0, 0), 122).unwrap());
    let nh6 = NextHop::V6 {
        global: "2001:db8::1".parse().unwrap(),
        link_local: None,
    };
    rib.originate(v6, set(0), nh6);
    let ctx = Context::default();
    let updates = rib.flush(&node(), &ctx).unwrap().updates(&ctx).unwrap();
    let eor: Vec<_> = updates
        .iter()
        .filter_map(Update::end_of_rib_family)
        .collect();
    assert_eq!(eor, vec![Family::Ipv4Unicast, Family::Ipv6Unicast]);
    assert_eq!(updates.len(), 4);
    let mp = updates
        .iter()
        .find_map(|u| match &u.attributes.mp_reach {
            Some(MpReach::Ipv6Unicast { next_hop, nlri }) => Some((*next_hop, nlri.clone())),
            _ => None,
        })
        .unwrap();
    assert_eq!(mp.0, nh6);
    assert_eq!(mp.1.len(), 1);
    // A later change: no End-of-RIB again.
    rib.withdraw(v6);
    let updates = rib.flush(&node(), &ctx).unwrap().updates(&ctx).unwrap();
    assert_eq!(updates.len(), 1);
    assert!(matches!(
        &updates[0].attributes.mp_unreach,
        Some(MpUnreach::Ipv6Unicast(v)) if v.len() == 1
    ));
    // A family the session did not negotiate is neither sent nor ended.
    let mut v4_only = rib_v4_only();
    v4_only.originate(v6, set(0), nh6);
    let updates = v4_only.flush(&node(), &ctx).unwrap().updates(&ctx).unwrap();
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].end_of_rib_family(), Some(Family::Ipv4Unicast));
}

fn rib_v4_only() -> Rib {
    rib(&[Family::Ipv4Unicast])
}

#[test]
fn routes_differing_only_in_next_hop_share_attributes_but_not_updates() {
    let mut rib = rib(&[Family::Ipv4Unicast]);
    for i in 0..100 {
        let nh = NextHop::V4(Ipv4Addr::new(192, 0, 2, 10 + u8::try_from(i % 2).unwrap()));
        rib.originate(block(i), set(0), nh);
    }
    // Our set plus the exported one (LOCAL_PREF added): 2, whatever the
    // next hops.
    assert_eq!(rib.attribute_sets(), 2);
    let out = rib.flush(&node(), &Context::default()).unwrap();
    assert_eq!(out.messages, 2 + 1);
}

/// The same table originated prefix by prefix and all at once gives the
/// same changes and the same bytes on the wire, withdrawals too; and a
/// table that comes and goes leaves the peer's Adj-RIB-Out empty.
#[test]
fn originate_many_and_withdraw_many_match_one_by_one() {
    let ctx = Context::default();
    let blocks: Vec<IpPrefix> = (0..3000).rev().map(block).collect();
    let mut one = rib(&[Family::Ipv4Unicast]);
    let mut many = rib(&[Family::Ipv4Unicast]);
    let singly: usize = blocks
        .iter()
        .map(|p| one.originate(*p, set(1), NH).len())
        .sum();
    assert_eq!(many.originate_many(&blocks, set(1), NH).len(), singly);
    let (a, b) = (
        one.flush(&node(), &ctx).unwrap(),
        many.flush(&node(), &ctx).unwrap(),
    );
    assert_eq!(a, b);
    assert_eq!(b.announced, 3000);
    let singly: usize = blocks.iter().map(|p| one.withdraw(*p).len()).sum();
    assert_eq!(many.withdraw_many(&blocks).len(), singly);
    let (a, b) = (
        one.flush(&node(), &ctx).unwrap(),
        many.flush(&node(), &ctx).unwrap(),
    );
    assert_eq!(a, b);
    assert_eq!(b.withdrawn, 3000);
    assert!(many.loc_rib().is_empty());
    let out = many.adj_rib_out(&node()).unwrap();
    assert_eq!((out.len(), out.pending_len()), (0, 0));
}
