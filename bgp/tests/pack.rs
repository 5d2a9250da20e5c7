//! UPDATE packing: prefixes sharing attributes go into as few UPDATEs as
//! fit the negotiated maximum, and nothing is lost, duplicated or reordered.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{Ipv4Addr, Ipv6Addr};

use bgp::wire::pack::{announce_ipv4, announce_ipv6, withdraw_ipv4, withdraw_ipv6};
use bgp::wire::*;

fn blocks(n: u32) -> Vec<Nlri<Ipv4Prefix>> {
    (0..n)
        .map(|i| Nlri::new(Ipv4Prefix::new(Ipv4Addr::from_bits(0x0a00_0000 | i << 6), 26).unwrap()))
        .collect()
}

fn calico() -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::default()),
        next_hop: Some(Ipv4Addr::new(10, 200, 0, 4)),
        local_pref: Some(100),
        ..PathAttributes::default()
    }
}

/// Splits a stream into messages, checking each against `max`.
fn messages(mut buf: &[u8], ctx: &Context, max: usize) -> Vec<Update> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let n = frame(buf, ctx).unwrap().unwrap();
        assert!(n <= max, "message of {n} octets");
        let Message::Update(u) = decode(&buf[..n], ctx).unwrap().message else {
            panic!("not an UPDATE")
        };
        out.push(u);
        buf = &buf[n..];
    }
    out
}

#[test]
fn ipv4_blocks_fill_each_update_to_the_limit() {
    let ctx = Context::default();
    let nlri = blocks(5000);
    let mut out = Vec::new();
    let count = announce_ipv4(&calico(), &nlri, &ctx, &mut out).unwrap();
    let ups = messages(&out, &ctx, 4096);
    assert_eq!(ups.len(), count);
    // 4096 - 23 header/lengths - 21 attributes = 4052 octets = 810 /26s.
    assert_eq!(ups[0].nlri.len(), 810);
    assert_eq!(count, 5000usize.div_ceil(810));
    assert!(ups.iter().all(|u| u.attributes == calico()));
    let all: Vec<_> = ups.into_iter().flat_map(|u| u.nlri).collect();
    assert_eq!(all, nlri);
}

#[test]
fn extended_messages_need_fewer_updates() {
    let ctx = Context {
        extended_message: true,
        ..Context::default()
    };
    let nlri = blocks(20_000);
    let mut out = Vec::new();
    let count = announce_ipv4(&calico(), &nlri, &ctx, &mut out).unwrap();
    assert_eq!(count, 2);
    let all: Vec<_> = messages(&out, &ctx, 65535)
        .into_iter()
        .flat_map(|u| u.nlri)
        .collect();
    assert_eq!(all, nlri);
}

#[test]
fn add_path_ids_are_counted_in_the_budget() {
    let ctx = Context {
        add_path: AddPath {
            receive: Families::NONE,
            send: Families::of(&[Family::Ipv4Unicast]),
        },
        ..Context::default()
    };
    let mut nlri = blocks(2000);
    for (i, n) in nlri.iter_mut().enumerate() {
        n.path_id = Some(u32::try_from(i).unwrap());
    }
    let mut out = Vec::new();
    let count = announce_ipv4(&calico(), &nlri, &ctx, &mut out).unwrap();
    let ups = messages(&out, &ctx.mirror(), 4096);
    assert_eq!(ups[0].nlri.len(), 4052 / 9);
    assert_eq!(ups.len(), count);
    let all: Vec<_> = ups.into_iter().flat_map(|u| u.nlri).collect();
    assert_eq!(all, nlri);
}

#[test]
fn withdrawals_carry_no_attributes_and_are_packed() {
    let ctx = Context::default();
    let nlri = blocks(3000);
    let mut out = Vec::new();
    let count = withdraw_ipv4(&nlri, &ctx, &mut out).unwrap();
    let ups = messages(&out, &ctx, 4096);
    assert_eq!(ups[0].withdrawn.len(), (4096 - 23) / 5);
    assert_eq!(ups.len(), count);
    assert!(
        ups.iter()
            .all(|u| u.attributes == PathAttributes::default())
    );
    let all: Vec<_> = ups.into_iter().flat_map(|u| u.withdrawn).collect();
    assert_eq!(all, nlri);
}

#[test]
fn ipv6_announcements_and_withdrawals_round_trip() {
    let ctx = Context::default();
    let nlri: Vec<_> = (0..3000u128)
        .map(|i| {
            let a = Ipv6Addr::from_bits(0xfd00_0000_0000_0000_0000_0000_0000_0000 | i << 64);
            Nlri::new(Ipv6Prefix::new(a, 64).unwrap())
        })
        .collect();
    let next_hop = NextHop::V6 {
        global: "2001:db8::4".parse().unwrap(),
        link_local: None,
    };
    let mut out = Vec::new();
    let count = announce_ipv6(&calico(), next_hop, &nlri, &ctx, &mut out).unwrap();
    let ups = messages(&out, &ctx, 4096);
    assert_eq!(ups.len(), count);
    assert!(count < 3000 / 300, "{count} UPDATEs for 3000 /64s");
    let mut all = Vec::new();
    for u in ups {
        let Some(MpReach::Ipv6Unicast { nlri, next_hop: nh }) = u.attributes.mp_reach else {
            panic!("no MP_REACH_NLRI")
        };
        assert_eq!(nh, next_hop);
        all.extend(nlri);
    }
    assert_eq!(all, nlri);

    let mut out = Vec::new();
    withdraw_ipv6(&nlri, &ctx, &mut out).unwrap();
    let mut all = Vec::new();
    for u in messages(&out, &ctx, 4096) {
        let Some(MpUnreach::Ipv6Unicast(v)) = u.attributes.mp_unreach else {
            panic!("no MP_UNREACH_NLRI")
        };
        all.extend(v);
    }
    assert_eq!(all, nlri);
}

#[test]
fn attributes_too_large_for_one_message_are_an_error() {
    let mut attrs = calico();
    attrs.communities = (0..1100).map(Community).collect();
    let mut out = Vec::new();
    let err = announce_ipv4(&attrs, &blocks(1), &Context::default(), &mut out).unwrap_err();
    assert!(matches!(err, EncodeError::MessageTooLong { .. }));
    assert!(out.is_empty());
}
